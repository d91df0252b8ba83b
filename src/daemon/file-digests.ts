// The daemon's memory of file contents: a digest per path, trusted while the file's stat data
// (inode, size, mtime, ctime) is unchanged, so a warm direct hit hashes nothing it has seen.
// Also the directory listings used to prove that no file appeared where the preprocessor
// would have found it first.

import { readdirSync, readFileSync, statSync, type Stats } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";

/**
 * A change within this window of the last stat may not show in mtime (coarse timestamps,
 * two writes in one tick), so such files and directories are not trusted from memory.
 */
const RACY_MS = 1000;

/** Directory listings consulted for an answer: path -> the listing object (null: no directory). */
export type Listings = Map<string, Set<string> | null>;

/** Stands for an answer no listing backs (a plain stat): it never compares as unchanged. */
const NOT_TRACKABLE: Set<string> = new Set();

export interface FileDigest {
  /** sha256 of the content, hex. */
  digest: string;
  mtimeMs: number;
  ctimeMs: number;
  /** The time macros the file mentions: they make its meaning depend on the clock. */
  usesTime: boolean;
  usesDate: boolean;
  usesTimestamp: boolean;
}

/** What must be unchanged for remembered contents to hold. */
interface StatKey {
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
}

function statKey(st: Stats): StatKey {
  return { dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs };
}

function sameStat(a: StatKey, st: Stats): boolean {
  return a.ino === st.ino && a.mtimeMs === st.mtimeMs && a.ctimeMs === st.ctimeMs && a.size === st.size && a.dev === st.dev;
}

/**
 * A Map bounded by the summed weights of its values (1 each unless the caller says more);
 * past the bound the oldest entries go first (insertion order is the age).
 */
export class BoundedCache<V> {
  private readonly map = new Map<string, { value: V; weight: number }>();
  private total = 0;
  constructor(private readonly maxWeight: number) {}

  get(key: string): V | undefined {
    return this.map.get(key)?.value;
  }

  set(key: string, value: V, weight = 1): void {
    const old = this.map.get(key);
    if (old) {
      this.total -= old.weight;
      this.map.delete(key);
    }
    if (weight > this.maxWeight) return;
    this.map.set(key, { value, weight });
    this.total += weight;
    for (const [k, v] of this.map) {
      if (this.total <= this.maxWeight) break;
      this.map.delete(k);
      this.total -= v.weight;
    }
  }
}

function digestBytes(bytes: Uint8Array): string {
  return new Bun.CryptoHasher("sha256").update(bytes).digest("hex");
}

function scanTimeMacros(bytes: Uint8Array): Pick<FileDigest, "usesTime" | "usesDate" | "usesTimestamp"> {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.indexOf("__") < 0) return { usesTime: false, usesDate: false, usesTimestamp: false };
  return {
    usesTime: buf.indexOf("__TIME__") >= 0,
    usesDate: buf.indexOf("__DATE__") >= 0,
    usesTimestamp: buf.indexOf("__TIMESTAMP__") >= 0,
  };
}

export class FileDigests {
  private readonly files: BoundedCache<{ key: StatKey; value: FileDigest }>;
  private readonly dirs: BoundedCache<{ key: StatKey; names: Set<string> }>;
  private readonly binaries = new BoundedCache<{ key: StatKey; digest: string }>(10_000);
  private readonly binaryReads = new Map<string, { key: StatKey; digest: Promise<string | undefined> }>();

  constructor(
    maxFiles = 200_000,
    maxDirs = 20_000,
    private readonly now: () => number = Date.now,
  ) {
    this.files = new BoundedCache(maxFiles);
    this.dirs = new BoundedCache(maxDirs);
  }

  /** The digest of a regular file as it is now; undefined when it is missing or not a file. */
  file(path: string): FileDigest | undefined {
    const st = statSync(path, { throwIfNoEntry: false });
    if (!st || !st.isFile()) return undefined;
    const cached = this.files.get(path);
    if (cached && sameStat(cached.key, st)) return cached.value;
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(path);
    } catch {
      return undefined;
    }
    const value: FileDigest = {
      digest: digestBytes(bytes),
      mtimeMs: st.mtimeMs,
      ctimeMs: st.ctimeMs,
      ...scanTimeMacros(bytes),
    };
    const now = this.now();
    if (now - st.mtimeMs > RACY_MS && now - st.ctimeMs > RACY_MS) this.files.set(path, { key: statKey(st), value });
    return value;
  }

  /**
   * The sha256 of a large file (a compiler's shared libraries), read in chunks without
   * blocking the daemon, remembered while its stat data is unchanged; one read per file at a
   * time. Undefined when it is missing or not a regular file.
   */
  async binary(path: string): Promise<string | undefined> {
    const st = statSync(path, { throwIfNoEntry: false });
    if (!st || !st.isFile()) return undefined;
    const cached = this.binaries.get(path);
    if (cached && sameStat(cached.key, st)) return cached.digest;
    const reading = this.binaryReads.get(path);
    if (reading && sameStat(reading.key, st)) return reading.digest;
    const digest = (async () => {
      const h = new Bun.CryptoHasher("sha256");
      const chunk = Buffer.allocUnsafe(1 << 20);
      let file: FileHandle | undefined;
      try {
        file = await open(path, "r");
        for (let r = await file.read(chunk, 0, chunk.length); r.bytesRead > 0; r = await file.read(chunk, 0, chunk.length)) {
          h.update(chunk.subarray(0, r.bytesRead));
        }
      } catch {
        return undefined;
      } finally {
        await file?.close();
      }
      const value = h.digest("hex");
      const now = this.now();
      if (now - st.mtimeMs > RACY_MS && now - st.ctimeMs > RACY_MS) this.binaries.set(path, { key: statKey(st), digest: value });
      return value;
    })();
    const entry = { key: statKey(st), digest };
    this.binaryReads.set(path, entry);
    try {
      return await digest;
    } finally {
      if (this.binaryReads.get(path) === entry) this.binaryReads.delete(path);
    }
  }

  /**
   * The names in a directory, from memory while its stat data is unchanged. `memo` holds what
   * one request has already looked at, so each directory is stat'ed once per request.
   */
  private listing(dir: string, memo: Map<string, Set<string> | null>, touched?: Listings): Set<string> | null {
    const seen = memo.get(dir);
    if (seen !== undefined) {
      touched?.set(dir, seen);
      return seen;
    }
    const st = statSync(dir, { throwIfNoEntry: false });
    let names: Set<string> | null = null;
    if (st?.isDirectory()) {
      const cached = this.dirs.get(dir);
      if (cached && sameStat(cached.key, st)) names = cached.names;
      else {
        try {
          names = new Set(readdirSync(dir));
        } catch {
          names = null;
        }
        const now = this.now();
        if (names && now - st.mtimeMs > RACY_MS && now - st.ctimeMs > RACY_MS) this.dirs.set(dir, { key: statKey(st), names });
      }
    }
    memo.set(dir, names);
    touched?.set(dir, names);
    return names;
  }

  /**
   * Whether each directory's listing is still the very object recorded (cached listings are
   * replaced, never changed, when a directory changes; racy ones are fresh every time).
   */
  unchanged(recorded: Listings, memo: Map<string, Set<string> | null>): boolean {
    for (const [dir, names] of recorded) if (this.listing(dir, memo) !== names) return false;
    return true;
  }

  /**
   * Whether `dir/rel` exists, walking `rel` one component at a time through cached listings.
   * `rel` with `..` is answered by a plain stat (listings cannot follow it through symlinks).
   */
  /**
   * The shortest leading part of `rel` that is missing under `dir` ("a" when dir/a does not
   * exist, "a/b" when a exists but not a/b; "" when `dir` itself is missing). Recording that
   * instead of `rel` says the same and less: nothing under a missing name exists. Undefined
   * when all of dir/rel exists.
   */
  missingPrefix(dir: string, rel: string, memo: Map<string, Set<string> | null>): string | undefined {
    if (rel.includes("..")) return this.exists(dir, rel, memo) ? undefined : rel;
    if (this.listing(dir, memo) === null) return "";
    let current = dir;
    const parts = rel.split("/").filter((p) => p !== "" && p !== ".");
    for (let i = 0; i < parts.length; i++) {
      const names = this.listing(current, memo);
      if (!names || !names.has(parts[i]!)) return parts.slice(0, i + 1).join("/");
      current = current === "/" ? `/${parts[i]}` : `${current}/${parts[i]}`;
    }
    return undefined;
  }

  exists(dir: string, rel: string, memo: Map<string, Set<string> | null>, touched?: Listings): boolean {
    if (rel === "") {
      // The directory itself (a search directory that did not exist).
      touched?.set(dir, NOT_TRACKABLE);
      return statSync(dir, { throwIfNoEntry: false }) !== undefined;
    }
    if (!rel.includes("/")) return rel !== ".." && (this.listing(dir, memo, touched)?.has(rel) ?? false);
    if (rel.includes("..")) {
      touched?.set(`${dir}/${rel}`, NOT_TRACKABLE);
      return statSync(`${dir}/${rel}`, { throwIfNoEntry: false }) !== undefined;
    }
    let current = dir;
    for (const part of rel.split("/")) {
      if (part === "" || part === ".") continue;
      const names = this.listing(current, memo, touched);
      if (!names || !names.has(part)) return false;
      current = current === "/" ? `/${part}` : `${current}/${part}`;
    }
    return true;
  }
}
