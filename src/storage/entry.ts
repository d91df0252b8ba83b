// One cache entry = one immutable blob:
//
//   "KLN" u8 kind | u8 format version | u8 zstd? | u16 reserved | u32 payload length |
//   u64 xxh3 of the stored payload bytes | payload (zstd-compressed unless the flag is 0)
//
// A result payload: u32 JSON length, JSON {outputs: [{kind, size}], stdout, stderr}, then the
// bytes of each output, stdout and stderr in that order. Anything that does not check out
// (magic, version, length, checksum, decompression, layout) is a CorruptEntry: the caller
// treats it as a miss, removes it and counts a read error.

import type { OutputKind } from "../compilers/types.ts";

export const ENTRY_FORMAT_VERSION = 1;
const HEADER_BYTES = 20;
const MAGIC = [0x4b, 0x4c, 0x4e]; // "KLN"

export const EntryKind = { Result: 1, Manifest: 2, RustManifest: 3, RustResult: 4 } as const;
export type EntryKind = (typeof EntryKind)[keyof typeof EntryKind];

export class CorruptEntry extends Error {
  override name = "CorruptEntry";
}

export interface ResultEntry {
  outputs: { kind: OutputKind; data: Uint8Array }[];
  stdout: Uint8Array;
  stderr: Uint8Array;
  /** The targets the stored dependency file names (see CFamilyCompile.depTargets). */
  depTargets?: string;
}

/** Below this, compression costs more than it saves. */
const COMPRESS_MIN_BYTES = 512;

export function sealEntry(kind: EntryKind, payload: Uint8Array): Uint8Array {
  const compress = payload.length >= COMPRESS_MIN_BYTES;
  const stored = compress ? Bun.zstdCompressSync(payload, { level: 1 }) : payload;
  const blob = new Uint8Array(HEADER_BYTES + stored.length);
  const view = new DataView(blob.buffer);
  blob.set(MAGIC, 0);
  blob[3] = kind;
  blob[4] = ENTRY_FORMAT_VERSION;
  blob[5] = compress ? 1 : 0;
  view.setUint32(8, payload.length, true);
  view.setBigUint64(12, Bun.hash.xxHash3(stored), true);
  blob.set(stored, HEADER_BYTES);
  return blob;
}

/** The checksum a blob's header records for its payload (identifies the content). */
export function entryChecksum(blob: Uint8Array): bigint | undefined {
  if (blob.length < HEADER_BYTES) return undefined;
  return new DataView(blob.buffer, blob.byteOffset, blob.byteLength).getBigUint64(12, true);
}

export function openEntry(kind: EntryKind, blob: Uint8Array): Uint8Array {
  if (blob.length < HEADER_BYTES) throw new CorruptEntry(`entry too short (${blob.length} bytes)`);
  if (blob[0] !== MAGIC[0] || blob[1] !== MAGIC[1] || blob[2] !== MAGIC[2]) throw new CorruptEntry("bad magic");
  if (blob[3] !== kind) throw new CorruptEntry(`entry kind ${blob[3]}, expected ${kind}`);
  if (blob[4] !== ENTRY_FORMAT_VERSION) throw new CorruptEntry(`entry format ${blob[4]}, expected ${ENTRY_FORMAT_VERSION}`);
  const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  const length = view.getUint32(8, true);
  const stored = blob.subarray(HEADER_BYTES);
  if (view.getBigUint64(12, true) !== Bun.hash.xxHash3(stored)) throw new CorruptEntry("checksum mismatch");
  let payload: Uint8Array;
  try {
    payload = blob[5] ? Bun.zstdDecompressSync(stored) : stored;
  } catch (e) {
    throw new CorruptEntry(`zstd: ${(e as Error).message}`);
  }
  if (payload.length !== length) throw new CorruptEntry(`payload is ${payload.length} bytes, header says ${length}`);
  return payload;
}

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

/** Concatenates a JSON header (u32 length first) and the given byte sections. */
export function packSections(meta: unknown, sections: Uint8Array[]): Uint8Array {
  const json = utf8.encode(JSON.stringify(meta));
  const total = 4 + json.length + sections.reduce((n, s) => n + s.length, 0);
  const out = new Uint8Array(total);
  new DataView(out.buffer).setUint32(0, json.length, true);
  out.set(json, 4);
  let at = 4 + json.length;
  for (const s of sections) {
    out.set(s, at);
    at += s.length;
  }
  return out;
}

/** Splits what packSections made; `sizes` reads the section lengths out of the JSON. */
export function unpackSections<M>(payload: Uint8Array, sizes: (meta: M) => number[]): { meta: M; sections: Uint8Array[] } {
  if (payload.length < 4) throw new CorruptEntry("payload too short");
  const jsonLength = new DataView(payload.buffer, payload.byteOffset, payload.byteLength).getUint32(0, true);
  if (4 + jsonLength > payload.length) throw new CorruptEntry("header runs past the payload");
  let meta: M;
  try {
    meta = JSON.parse(fromUtf8.decode(payload.subarray(4, 4 + jsonLength))) as M;
  } catch {
    throw new CorruptEntry("unreadable header");
  }
  let lengths: number[];
  try {
    lengths = sizes(meta);
  } catch {
    throw new CorruptEntry("malformed header");
  }
  let at = 4 + jsonLength;
  const sections: Uint8Array[] = [];
  for (const n of lengths) {
    if (!Number.isInteger(n) || n < 0 || at + n > payload.length) throw new CorruptEntry("section runs past the payload");
    sections.push(payload.subarray(at, at + n));
    at += n;
  }
  if (at !== payload.length) throw new CorruptEntry("trailing bytes");
  return { meta, sections };
}

interface ResultMeta {
  outputs: { kind: OutputKind; size: number }[];
  stdout: number;
  stderr: number;
  depTargets?: string;
}

export function encodeResult(entry: ResultEntry): Uint8Array {
  const meta: ResultMeta = {
    outputs: entry.outputs.map((o) => ({ kind: o.kind, size: o.data.length })),
    stdout: entry.stdout.length,
    stderr: entry.stderr.length,
  };
  if (entry.depTargets !== undefined) meta.depTargets = entry.depTargets;
  const payload = packSections(meta, [...entry.outputs.map((o) => o.data), entry.stdout, entry.stderr]);
  return sealEntry(EntryKind.Result, payload);
}

export function decodeResult(blob: Uint8Array): ResultEntry {
  const { meta, sections } = unpackSections<ResultMeta>(openEntry(EntryKind.Result, blob), (m) => [
    ...m.outputs.map((o) => o.size),
    m.stdout,
    m.stderr,
  ]);
  const n = meta.outputs.length;
  return {
    outputs: meta.outputs.map((o, i) => ({ kind: o.kind, data: sections[i]! })),
    stdout: sections[n]!,
    stderr: sections[n + 1]!,
    ...(typeof meta.depTargets === "string" ? { depTargets: meta.depTargets } : {}),
  };
}
