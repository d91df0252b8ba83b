// Cache entries as the compile services read and write them. A read failure or a corrupt
// entry is a counted miss, never a failed compile; writes run in the background after the
// reply, and a read of a key waits for that key's write under way, so a compile right
// behind another sees what it stored; a manifest is changed by one update at a time.

import { CorruptEntry } from "../storage/entry.ts";
import type { CacheStorage } from "../storage/types.ts";
import type { Logger } from "./log.ts";
import type { Stats } from "./stats.ts";

export interface EntryStoreDeps {
  storage: CacheStorage;
  stats: Stats;
  log: Logger;
  /** Work the daemon must finish before exiting. */
  track: (work: Promise<unknown>) => void;
}

export class EntryStore {
  /** Writes still under way, by key. */
  private readonly pending = new Map<string, Promise<unknown>>();
  /** The last update under way of each key changed by `update`. */
  private readonly updates = new Map<string, Promise<void>>();

  constructor(private readonly deps: EntryStoreDeps) {}

  /** A blob, or undefined on a miss or a read error (counted and logged). */
  async fetch(key: string, waitForWrite = true): Promise<Uint8Array | undefined> {
    const { storage, stats, log } = this.deps;
    const writing = waitForWrite ? this.pending.get(key) : undefined;
    if (writing) await writing;
    try {
      return await storage.get(key);
    } catch (e) {
      stats.readError();
      log.warn(`cache read of ${key} from ${storage.location} failed: ${(e as Error).message}`);
      return undefined;
    }
  }

  /** A decoded entry; a corrupt one is removed, counted as a read error, and is a miss. */
  async decode<T>(key: string, decode: (blob: Uint8Array) => T, waitForWrite = true): Promise<T | undefined> {
    const blob = await this.fetch(key, waitForWrite);
    if (!blob) return undefined;
    try {
      return decode(blob);
    } catch (e) {
      if (!(e instanceof CorruptEntry)) throw e;
      const { storage, stats, log } = this.deps;
      stats.readError();
      log.warn(`corrupt cache entry ${key} in ${storage.location} (${e.message}); removed`);
      await storage.remove(key).catch(() => {});
      return undefined;
    }
  }

  /** Tracks background work that ends in a write of `key`: reads of `key` wait for it. */
  background(key: string, work: Promise<unknown>): Promise<unknown> {
    this.pending.set(key, work);
    void work.finally(() => {
      if (this.pending.get(key) === work) this.pending.delete(key);
    });
    this.deps.track(work);
    return work;
  }

  /** Encodes and writes in the background; a failure is counted and logged, never thrown. */
  put(key: string, encode: () => Uint8Array): Promise<unknown> {
    const { storage, stats, log } = this.deps;
    return this.background(
      key,
      (async () => {
        try {
          await storage.put(key, encode());
        } catch (e) {
          stats.writeError();
          log.warn(`cache write of ${key} to ${storage.location} failed: ${(e as Error).message}`);
        }
      })(),
    );
  }

  /**
   * Reads the entry with `read` (which must not wait for writes of `key`: the caller's own
   * background work may be one), writes `change(current)`: one update per key at a time, each
   * on top of the last, so concurrent compiles of one source do not drop each other's.
   */
  update<T>(key: string, read: () => Promise<T | undefined>, change: (current: T | undefined) => Uint8Array): Promise<void> {
    const update = (this.updates.get(key) ?? Promise.resolve()).then(async () => {
      const current = await read();
      await this.put(key, () => change(current));
    });
    const settled = update.catch(() => {});
    this.updates.set(key, settled);
    void settled.then(() => {
      if (this.updates.get(key) === settled) this.updates.delete(key);
    });
    return update;
  }
}
