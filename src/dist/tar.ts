// POSIX ustar archives, zstd-compressed: how toolchains travel from a client to build servers.
//
// The writer is deterministic (the caller sorts; owners, times and modes are fixed), so the
// same toolchain always gives the same bytes and therefore the same content-addressed id.
//
// The reader is a security boundary: a build server unpacks archives that any client with a
// token can upload. It accepts regular files, directories and symlinks only, with relative
// paths that stay inside the target directory, symlinks that resolve inside it, and nothing
// written through a symlink. Every rejection names the entry and the reason.

import { constants } from "node:fs";
import { lstat, mkdir, open, symlink } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { zstdDecompress } from "node:zlib";
import { relativePathProblem } from "./protocol.ts";

export type TarEntry =
  | { type: "file"; path: string; data: Uint8Array; mode: number }
  | { type: "dir"; path: string }
  | { type: "symlink"; path: string; target: string };

export interface TarLimits {
  /** Bytes of the uncompressed archive. */
  unpackedBytes: number;
  entries: number;
}

const DEFAULT_TAR_LIMITS: TarLimits = {
  unpackedBytes: 4 * 1024 * 1024 * 1024 - 1,
  entries: 100_000,
};

/** A rejected archive; the message names the entry and the reason. */
export class BadArchive extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BadArchive";
  }
}

const BLOCK = 512;

// ---------------------------------------------------------------------------------------------
// Writing

/** A zstd-compressed ustar archive of `entries`, in the order given. */
export function packTarZst(entries: readonly TarEntry[], level = 6): Uint8Array {
  return Bun.zstdCompressSync(writeTar(entries), { level });
}

/** The same bytes as `packTarZst`, compressed off the main thread (for the daemon). */
export function packTarZstAsync(entries: readonly TarEntry[], level = 6): Promise<Uint8Array> {
  return Bun.zstdCompress(writeTar(entries), { level });
}

export function writeTar(entries: readonly TarEntry[]): Uint8Array {
  let size = 2 * BLOCK;
  for (const e of entries) size += BLOCK + (e.type === "file" ? roundUp(e.data.length) : 0);
  const out = new Uint8Array(size);
  let at = 0;
  for (const e of entries) {
    const problem = relativePathProblem(e.path);
    if (problem) throw new Error(`cannot archive ${JSON.stringify(e.path)}: ${problem}`);
    const header = out.subarray(at, at + BLOCK);
    const name = e.type === "dir" ? `${e.path}/` : e.path;
    const [prefix, base] = splitName(name);
    putString(header, 0, 100, base);
    putOctal(header, 100, 8, e.type === "file" ? (e.mode & 0o111 ? 0o755 : 0o644) : e.type === "dir" ? 0o755 : 0o777);
    putOctal(header, 108, 8, 0);
    putOctal(header, 116, 8, 0);
    putOctal(header, 124, 12, e.type === "file" ? e.data.length : 0);
    putOctal(header, 136, 12, 0);
    header[156] = e.type === "file" ? 0x30 : e.type === "dir" ? 0x35 : 0x32;
    if (e.type === "symlink") {
      if (byteLength(e.target) > 100) throw new Error(`cannot archive symlink ${e.path}: target longer than 100 bytes`);
      putString(header, 157, 100, e.target);
    }
    putString(header, 257, 6, "ustar");
    putString(header, 263, 2, "00");
    putString(header, 345, 155, prefix);
    header.fill(0x20, 148, 156);
    let sum = 0;
    for (const b of header) sum += b;
    putString(header, 148, 7, sum.toString(8).padStart(6, "0"));
    at += BLOCK;
    if (e.type === "file") {
      out.set(e.data, at);
      at += roundUp(e.data.length);
    }
  }
  return out;
}

function splitName(name: string): [prefix: string, name: string] {
  if (byteLength(name) <= 100) return ["", name];
  // The prefix ends at a "/" that leaves at most 100 bytes of name and at most 155 of prefix.
  for (let i = name.indexOf("/"); i >= 0; i = name.indexOf("/", i + 1)) {
    const prefix = name.slice(0, i);
    const rest = name.slice(i + 1);
    if (byteLength(prefix) <= 155 && byteLength(rest) <= 100 && rest !== "") return [prefix, rest];
  }
  throw new Error(`cannot archive ${JSON.stringify(name)}: the path does not fit a ustar header`);
}

function putString(block: Uint8Array, at: number, width: number, text: string): void {
  const bytes = new TextEncoder().encode(text);
  if (bytes.length > width) throw new Error(`tar field overflow: ${JSON.stringify(text)}`);
  block.set(bytes, at);
}

function putOctal(block: Uint8Array, at: number, width: number, value: number): void {
  putString(block, at, width - 1, value.toString(8).padStart(width - 1, "0"));
}

function roundUp(n: number): number {
  return Math.ceil(n / BLOCK) * BLOCK;
}

function byteLength(text: string): number {
  return Buffer.byteLength(text);
}

// ---------------------------------------------------------------------------------------------
// Reading

const decompress = promisify(zstdDecompress);

/**
 * Decompresses with a bound on the output, so a small bomb cannot exhaust memory. Off the
 * main thread: a build server keeps heartbeating while it unpacks a toolchain.
 */
async function decompressArchive(archive: Uint8Array, limits: TarLimits = DEFAULT_TAR_LIMITS): Promise<Uint8Array> {
  try {
    return await decompress(archive, { maxOutputLength: limits.unpackedBytes });
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    if (/larger than/i.test(why)) throw new BadArchive(`archive unpacks to more than ${limits.unpackedBytes} bytes`);
    throw new BadArchive(`archive is not valid zstd: ${why}`);
  }
}

/** Parses and validates an uncompressed archive; file data are views into `tar`. */
export function readTar(tar: Uint8Array, limits: TarLimits = DEFAULT_TAR_LIMITS): TarEntry[] {
  if (tar.length > limits.unpackedBytes) throw new BadArchive(`archive is larger than ${limits.unpackedBytes} bytes`);
  const entries: TarEntry[] = [];
  let at = 0;
  for (;;) {
    if (at + BLOCK > tar.length) throw new BadArchive("archive is truncated (no end-of-archive marker)");
    const header = tar.subarray(at, at + BLOCK);
    at += BLOCK;
    if (header.every((b) => b === 0)) break;
    if (entries.length >= limits.entries) throw new BadArchive(`archive has more than ${limits.entries} entries`);
    const name = readString(header, 0, 100);
    const prefix = readString(header, 345, 155);
    const full = prefix ? `${prefix}/${name}` : name;
    const where = `entry ${JSON.stringify(full.slice(0, 300))}`;
    if (readString(header, 257, 6) !== "ustar") throw new BadArchive(`${where}: not a ustar header`);
    if (readOctal(header, 148, 8, where) !== checksum(header)) throw new BadArchive(`${where}: header checksum mismatch`);
    const size = readOctal(header, 124, 12, where);
    const type = String.fromCharCode(header[156]!);
    const isDir = type === "5";
    const path = isDir && full.endsWith("/") ? full.slice(0, -1) : full;
    const problem = relativePathProblem(path);
    if (problem) throw new BadArchive(`${where}: ${problem}`);
    switch (type) {
      case "0":
      case "\0": {
        if (at + size > tar.length) throw new BadArchive(`${where}: size ${size} runs past the end of the archive`);
        const mode = readOctal(header, 100, 8, where);
        entries.push({ type: "file", path, data: tar.subarray(at, at + size), mode: mode & 0o111 ? 0o755 : 0o644 });
        at += roundUp(size);
        break;
      }
      case "5":
        entries.push({ type: "dir", path });
        break;
      case "2": {
        const target = readString(header, 157, 100);
        if (target === "") throw new BadArchive(`${where}: symlink with an empty target`);
        entries.push({ type: "symlink", path, target });
        break;
      }
      case "1":
        throw new BadArchive(`${where}: hard links are not allowed`);
      case "3":
      case "4":
        throw new BadArchive(`${where}: device files are not allowed`);
      case "6":
        throw new BadArchive(`${where}: FIFOs are not allowed`);
      default:
        throw new BadArchive(`${where}: unknown entry type ${JSON.stringify(type)}`);
    }
    if (type !== "0" && type !== "\0" && size !== 0) throw new BadArchive(`${where}: non-file entry with data`);
  }
  checkTree(entries);
  return entries;
}

/**
 * The tree as a whole: no path twice, nothing below a symlink or a file, and every symlink
 * resolving (through the archive's other symlinks) inside the root.
 */
function checkTree(entries: readonly TarEntry[]): void {
  const byPath = new Map<string, TarEntry>();
  for (const e of entries) {
    if (byPath.has(e.path)) throw new BadArchive(`entry ${JSON.stringify(e.path)}: appears twice`);
    byPath.set(e.path, e);
  }
  for (const e of entries) {
    const parts = e.path.split("/");
    for (let i = 1; i < parts.length; i++) {
      const parent = byPath.get(parts.slice(0, i).join("/"));
      if (parent && parent.type !== "dir") {
        throw new BadArchive(`entry ${JSON.stringify(e.path)}: its parent ${JSON.stringify(parent.path)} is a ${parent.type === "symlink" ? "symlink" : "file"}`);
      }
    }
    if (e.type === "symlink") {
      const escape = resolvesOutside(e, byPath);
      if (escape) throw new BadArchive(`entry ${JSON.stringify(e.path)}: symlink to ${JSON.stringify(e.target)} ${escape}`);
    }
  }
}

/** Why `link` resolves outside the root, or undefined when it stays inside. */
function resolvesOutside(link: TarEntry & { type: "symlink" }, byPath: Map<string, TarEntry>): string | undefined {
  let hops = 0;
  // Resolve physically: a symlink met on the way is followed before a later "..", as the
  // kernel would, so "a -> ." followed by "b -> a/.." is caught.
  const resolve = (base: readonly string[], target: string): string[] => {
    if (target.startsWith("/")) throw "is absolute";
    if (++hops > 40) throw "has too many levels of symlinks";
    const stack = [...base];
    for (const part of target.split("/")) {
      if (part === "" || part === ".") continue;
      if (part === "..") {
        if (stack.length === 0) throw "points outside the archive";
        stack.pop();
        continue;
      }
      const met = byPath.get([...stack, part].join("/"));
      if (met?.type === "symlink") stack.splice(0, stack.length, ...resolve(stack, met.target));
      else stack.push(part);
    }
    return stack;
  };
  try {
    resolve(link.path.split("/").slice(0, -1), link.target);
    return undefined;
  } catch (why) {
    if (typeof why === "string") return why;
    throw why;
  }
}

/**
 * Unpacks into `dir`, which must exist and be empty. Files are created with O_EXCL and
 * O_NOFOLLOW and no entry lies below a symlink, so nothing is written outside `dir`.
 * Returns the total size of the files.
 */
export async function unpackTarZst(archive: Uint8Array, dir: string, limits: TarLimits = DEFAULT_TAR_LIMITS): Promise<number> {
  const entries = readTar(await decompressArchive(archive, limits), limits);
  let bytes = 0;
  const made = new Set<string>([""]);
  const ensureDir = async (rel: string): Promise<void> => {
    if (made.has(rel)) return;
    const slash = rel.lastIndexOf("/");
    await ensureDir(slash < 0 ? "" : rel.slice(0, slash));
    const abs = join(dir, rel);
    try {
      await mkdir(abs, 0o755);
    } catch (e) {
      if (!(await lstat(abs)).isDirectory()) throw e;
    }
    made.add(rel);
  };
  for (const e of entries) {
    const slash = e.path.lastIndexOf("/");
    await ensureDir(slash < 0 ? "" : e.path.slice(0, slash));
    const abs = join(dir, e.path);
    if (e.type === "dir") await ensureDir(e.path);
    else if (e.type === "symlink") await symlink(e.target, abs);
    else {
      const file = await open(abs, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, e.mode);
      try {
        await file.writeFile(e.data);
      } finally {
        await file.close();
      }
      bytes += e.data.length;
    }
  }
  return bytes;
}

function readString(block: Uint8Array, at: number, width: number): string {
  const field = block.subarray(at, at + width);
  const end = field.indexOf(0);
  return new TextDecoder().decode(end < 0 ? field : field.subarray(0, end));
}

function readOctal(block: Uint8Array, at: number, width: number, where: string): number {
  const text = readString(block, at, width).trim();
  if (!/^[0-7]+$/.test(text)) throw new BadArchive(`${where}: bad numeric field ${JSON.stringify(text)}`);
  return parseInt(text, 8);
}

function checksum(header: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i]!;
  return sum;
}
