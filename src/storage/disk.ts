// Local disk tier: one file per entry at <dir>/<k0k1>/<rest of key>, written to a unique
// temporary file and renamed into place, so readers see a whole entry or none, whatever
// other daemons (another user's, or a restarted one) do in the same directory at once.
//
// Size is held by LRU eviction: a hit refreshes the entry's mtime; when the running total
// passes the limit, one scan (readdir + stat) learns the truth, including other daemons'
// writes, and deletes the oldest entries until the total is back under EVICT_TO of the limit.

import { mkdirSync, readFileSync } from "node:fs";
import { mkdir, readdir, rename, rm, stat, utimes, writeFile } from "node:fs/promises";
import { errnoCode } from "../util/errors.ts";
import type { CacheStorage } from "./types.ts";

/** Eviction brings the total down to this fraction of the limit, so it does not run per write. */
const EVICT_TO = 0.9;
/** Temporary files older than this are leftovers of a crash. */
const STALE_TEMP_MS = 60 * 60 * 1000;
/** Rescan at least this often while writing, to see what other daemons added. */
const RESCAN_EVERY_MS = 5 * 60 * 1000;
/** A hit refreshes an entry's mtime (its LRU age) at most this often. */
const TOUCH_EVERY_MS = 5 * 60 * 1000;

interface ScannedEntry {
  path: string;
  size: number;
  mtimeMs: number;
}

export class DiskStorage implements CacheStorage {
  readonly location: string;
  private readonly tmpDir: string;
  private total = 0;
  private entries = 0;
  private scanned: Promise<void> | undefined;
  private evicting: Promise<void> | undefined;
  private lastScanAt = 0;
  private tmpCounter = 0;
  /** Keys whose mtime this daemon refreshed, and when (cleared as it grows). */
  private touched = new Map<string, number>();

  constructor(
    readonly dir: string,
    readonly maxSize: number,
    private readonly onError: (message: string) => void = () => {},
  ) {
    this.location = `Local disk: "${dir}"`;
    this.tmpDir = `${dir}/tmp`;
  }

  private pathOf(key: string): string {
    return `${this.dir}/${key.slice(0, 2)}/${key.slice(2)}`;
  }

  /** Starts the first size scan in the background; later calls share it. */
  start(): Promise<void> {
    this.scanned ??= this.rescan();
    return this.scanned;
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    const path = this.pathOf(key);
    let blob: Uint8Array;
    try {
      // A synchronous read of a small file from the page cache beats a thread-pool round trip.
      blob = readFileSync(path);
    } catch (e) {
      if (errnoCode(e) === "ENOENT") return undefined;
      throw e;
    }
    this.touch(key, path);
    return blob;
  }

  private touch(key: string, path: string): void {
    const now = Date.now();
    const last = this.touched.get(key);
    if (last !== undefined && now - last < TOUCH_EVERY_MS) return;
    if (this.touched.size > 100_000) this.touched = new Map();
    this.touched.set(key, now);
    const date = new Date(now);
    utimes(path, date, date).catch(() => {});
  }

  async put(key: string, blob: Uint8Array): Promise<void> {
    const path = this.pathOf(key);
    const tmp = `${this.tmpDir}/${process.pid}.${++this.tmpCounter}.${Math.random().toString(36).slice(2)}`;
    try {
      await writeFile(tmp, blob);
    } catch (e) {
      if (errnoCode(e) !== "ENOENT") throw e;
      mkdirSync(this.tmpDir, { recursive: true });
      await writeFile(tmp, blob);
    }
    try {
      try {
        await rename(tmp, path);
      } catch (e) {
        if (errnoCode(e) !== "ENOENT") throw e;
        await mkdir(`${this.dir}/${key.slice(0, 2)}`, { recursive: true });
        await rename(tmp, path);
      }
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
    this.total += blob.length;
    this.entries += 1;
    this.touched.set(key, Date.now());
    if (this.total > this.maxSize || Date.now() - this.lastScanAt > RESCAN_EVERY_MS) void this.evictInBackground();
  }

  async remove(key: string): Promise<void> {
    await rm(this.pathOf(key), { force: true });
  }

  async usage(): Promise<{ size: number; maxSize: number; entries: number }> {
    await this.start();
    return { size: this.total, maxSize: this.maxSize, entries: this.entries };
  }

  /** Resolves when any eviction under way has finished (tests and shutdown). */
  async settle(): Promise<void> {
    await this.scanned;
    await this.evicting;
  }

  private evictInBackground(): Promise<void> {
    this.evicting ??= this.evict()
      .catch((e) => this.onError(`cache eviction in ${this.dir} failed: ${(e as Error).message}`))
      .finally(() => (this.evicting = undefined));
    return this.evicting;
  }

  private async evict(): Promise<void> {
    await this.scanned;
    const all = await this.scan();
    let total = all.reduce((n, e) => n + e.size, 0);
    let count = all.length;
    if (total > this.maxSize) {
      all.sort((a, b) => a.mtimeMs - b.mtimeMs);
      const target = this.maxSize * EVICT_TO;
      for (const entry of all) {
        if (total <= target) break;
        await rm(entry.path, { force: true });
        total -= entry.size;
        count -= 1;
      }
    }
    this.total = total;
    this.entries = count;
  }

  private async rescan(): Promise<void> {
    try {
      const all = await this.scan();
      this.total = all.reduce((n, e) => n + e.size, 0);
      this.entries = all.length;
      if (this.total > this.maxSize) await this.evictInBackground();
    } catch (e) {
      this.onError(`cannot scan the cache directory ${this.dir}: ${(e as Error).message}`);
    }
  }

  /** Every entry with its size and age; also removes temporary files a crash left behind. */
  private async scan(): Promise<ScannedEntry[]> {
    this.lastScanAt = Date.now();
    let top: string[];
    try {
      top = await readdir(this.dir);
    } catch (e) {
      if (errnoCode(e) === "ENOENT") return [];
      throw e;
    }
    const found: ScannedEntry[] = [];
    for (const sub of top) {
      const isTmp = sub === "tmp";
      if (!isTmp && !/^[0-9a-z]{2}$/.test(sub)) continue;
      let names: string[];
      try {
        names = await readdir(`${this.dir}/${sub}`);
      } catch {
        continue;
      }
      for (const name of names) {
        const path = `${this.dir}/${sub}/${name}`;
        try {
          const st = await stat(path);
          if (!st.isFile()) continue;
          if (isTmp) {
            if (Date.now() - st.mtimeMs > STALE_TEMP_MS) await rm(path, { force: true });
            continue;
          }
          found.push({ path, size: st.size, mtimeMs: st.mtimeMs });
        } catch {
          // Removed by another daemon while we looked: fine.
        }
      }
    }
    return found;
  }
}
