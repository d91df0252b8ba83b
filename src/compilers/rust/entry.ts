// What Kiln stores for rustc: a manifest per crate compiled one way (its source sets and
// env-dep values seen so far, each with the result it produced), and result entries holding
// the output files by name, stdout and stderr.

import { CorruptEntry, EntryKind, openEntry, packSections, sealEntry, unpackSections } from "../../storage/entry.ts";

export interface RustVariant {
  /** The result entry's key. */
  result: string;
  /** Every source file from dep-info: [path (normalized), sha256 hex]. */
  files: [string, string][];
  /** The env-deps and the values the compile saw (null: unset). */
  env: [string, string | null][];
}

export interface RustManifest {
  variants: RustVariant[];
}

export interface RustResult {
  /** Output files by name, inside the call's output directory. */
  outputs: { name: string; data: Uint8Array }[];
  stdout: Uint8Array;
  stderr: Uint8Array;
}

/** Enough for a crate edited back and forth, few enough to check quickly. */
const MAX_VARIANTS = 12;

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

export function encodeRustManifest(m: RustManifest): Uint8Array {
  return sealEntry(EntryKind.RustManifest, utf8.encode(JSON.stringify(m)));
}

export function decodeRustManifest(blob: Uint8Array): RustManifest {
  let m: RustManifest;
  try {
    m = JSON.parse(fromUtf8.decode(openEntry(EntryKind.RustManifest, blob))) as RustManifest;
  } catch (e) {
    throw e instanceof CorruptEntry ? e : new CorruptEntry("unreadable manifest");
  }
  if (!m || !Array.isArray(m.variants)) throw new CorruptEntry("malformed manifest");
  return m;
}

/** The manifest with `variant` first, replacing one for the same result, capped. */
export function withRustVariant(m: RustManifest | undefined, variant: RustVariant): RustManifest {
  const others = (m?.variants ?? []).filter((v) => v.result !== variant.result);
  return { variants: [variant, ...others].slice(0, MAX_VARIANTS) };
}

interface ResultMeta {
  outputs: { name: string; size: number }[];
  stdout: number;
  stderr: number;
}

export function encodeRustResult(r: RustResult): Uint8Array {
  const meta: ResultMeta = {
    outputs: r.outputs.map((o) => ({ name: o.name, size: o.data.length })),
    stdout: r.stdout.length,
    stderr: r.stderr.length,
  };
  return sealEntry(EntryKind.RustResult, packSections(meta, [...r.outputs.map((o) => o.data), r.stdout, r.stderr]));
}

export function decodeRustResult(blob: Uint8Array): RustResult {
  const { meta, sections } = unpackSections<ResultMeta>(openEntry(EntryKind.RustResult, blob), (m) => [
    ...m.outputs.map((o) => o.size),
    m.stdout,
    m.stderr,
  ]);
  const n = meta.outputs.length;
  if (meta.outputs.some((o) => typeof o.name !== "string" || o.name.includes("/") || o.name.startsWith("."))) {
    throw new CorruptEntry("bad output name");
  }
  return {
    outputs: meta.outputs.map((o, i) => ({ name: o.name, data: sections[i]! })),
    stdout: sections[n]!,
    stderr: sections[n + 1]!,
  };
}
