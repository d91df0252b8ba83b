// The cache as the compile service sees it: local disk (level 0), then the shared levels in
// order. A read tries each level in turn; a hit at a slower level is copied back to the faster
// ones in the background. A write lands on disk (the caller's background work waits for that
// only) and goes to every writable shared level in the background.
//
// A shared level never fails a build: each call has a deadline, errors are counted and become
// misses, and after repeated failures a circuit breaker skips the level for a while (logged
// once when it opens). The levels' modules are loaded on first use.

import type { Logger } from "../daemon/log.ts";
import { isKilnError } from "../util/errors.ts";
import { RemoteAuthError, RemoteTimeout, type CacheStorage } from "./types.ts";

/** Consecutive failures that open a level's circuit breaker. */
const FAILURES_TO_OPEN = 3;
/** How long an open breaker skips its level before one call tries it again (by default). */
const OPEN_FOR_MS = 30_000;

export interface LevelSpec {
  /** "disk", "redis", "s3", "memcached", "webdav". */
  name: string;
  /** Where the level is, without credentials. */
  location: string;
  readOnly: boolean;
  /** Entries larger than this are not written to the level. */
  maxEntrySize: number;
  /** The most one call may take (connect and transfer); undefined: no limit (local disk). */
  timeoutMs: number | undefined;
  /** Creates the backend; called on first use (loads its module). */
  open(): Promise<CacheStorage>;
}

/** Per-level statistics as `--stats-format json` prints them (`cache_levels`). */
export interface LevelStatsJson {
  name: string;
  location: string;
  read_only: boolean;
  hits: number;
  misses: number;
  errors: number;
  /** Successful calls and the sum of their times; divide for an average. */
  reads: number;
  read_time_ms: number;
  writes: number;
  write_time_ms: number;
  /** Entries copied into this level after a hit at a slower one. */
  backfills: number;
  /** Entries not written because they exceed the level's max_entry_size. */
  oversized: number;
  /** Calls skipped while the circuit breaker was open. */
  skipped: number;
  breaker: "closed" | "open";
}

type Outcome<T> = { ok: true; value: T } | { ok: false; error: unknown };

class Level {
  stats: LevelStatsJson;
  private storage: CacheStorage | undefined;
  private opening: Promise<CacheStorage> | undefined;
  private failures = 0;
  private openUntil = 0;
  private authReported = false;

  constructor(
    readonly spec: LevelSpec,
    private readonly log: Logger,
    private readonly breaker: boolean,
    private readonly openForMs = OPEN_FOR_MS,
  ) {
    this.stats = this.emptyStats();
  }

  emptyStats(): LevelStatsJson {
    return {
      name: this.spec.name, location: this.spec.location, read_only: this.spec.readOnly,
      hits: 0, misses: 0, errors: 0, reads: 0, read_time_ms: 0, writes: 0, write_time_ms: 0,
      backfills: 0, oversized: 0, skipped: 0, breaker: "closed",
    };
  }

  get writable(): boolean {
    return !this.spec.readOnly;
  }

  async call<T>(kind: "read" | "write", use: (s: CacheStorage) => Promise<T>): Promise<Outcome<T>> {
    const now = Date.now();
    if (this.breaker && now < this.openUntil) {
      this.stats.skipped += 1;
      return { ok: false, error: new Error(`${this.spec.name}: circuit breaker open`) };
    }
    // Half-open: one trial call at a time; the others keep skipping until it answers.
    if (this.breaker && this.failures >= FAILURES_TO_OPEN) this.openUntil = now + this.openForMs;
    const started = performance.now();
    try {
      const value = await this.deadline(async () => use(await this.backend()));
      const ms = performance.now() - started;
      if (kind === "read") {
        this.stats.reads += 1;
        this.stats.read_time_ms += ms;
      } else {
        this.stats.writes += 1;
        this.stats.write_time_ms += ms;
      }
      if (this.breaker && this.failures >= FAILURES_TO_OPEN) this.log.warn(`${this.spec.location} answers again; using it`);
      this.failures = 0;
      this.openUntil = 0;
      this.stats.breaker = "closed";
      return { ok: true, value };
    } catch (error) {
      this.failed(kind, error);
      return { ok: false, error };
    }
  }

  private backend(): Promise<CacheStorage> {
    if (this.storage) return Promise.resolve(this.storage);
    this.opening ??= this.spec.open().then(
      (s) => (this.storage = s),
      (e: unknown) => {
        this.opening = undefined;
        throw e;
      },
    );
    return this.opening;
  }

  private deadline<T>(work: () => Promise<T>): Promise<T> {
    const ms = this.spec.timeoutMs;
    if (ms === undefined) return work();
    let timer: Timer | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.storage?.reset?.();
        reject(new RemoteTimeout(`no answer from ${this.spec.location} within ${ms} ms`));
      }, ms);
    });
    return Promise.race([work(), expired]).finally(() => clearTimeout(timer));
  }

  private failed(kind: "read" | "write", error: unknown): void {
    this.stats.errors += 1;
    this.failures += 1;
    const message = error instanceof Error ? error.message : String(error);
    if (error instanceof RemoteAuthError) {
      if (!this.authReported) this.log.warn(`${error.message}${error.hint ? `; ${error.hint}` : ""}`);
      this.authReported = true;
    } else if (this.failures === 1 && this.breaker) {
      // Local disk errors are thrown on and logged by the caller: said once, not twice.
      this.log.warn(`cache ${kind} at ${this.spec.location} failed: ${message}`);
    } else {
      this.log.debug(`cache ${kind} at ${this.spec.location} failed: ${message}`);
    }
    if (this.breaker && this.failures === FAILURES_TO_OPEN) {
      this.openUntil = Date.now() + this.openForMs;
      this.stats.breaker = "open";
      this.log.warn(
        `${this.spec.location} failed ${FAILURES_TO_OPEN} times in a row (last: ${message}); ` +
          `not using it for ${this.openForMs / 1000} s, compiles go on without it`,
      );
    }
  }

  async close(): Promise<void> {
    await this.storage?.close?.();
  }
}

export interface TieredDeps {
  log: Logger;
  /** Background work the daemon must finish before exiting (remote writes, backfills). */
  track: (work: Promise<unknown>) => void;
  /** How long an open circuit breaker skips its level (default 30 s). */
  breakerOpenMs?: number;
}

export class TieredStorage implements CacheStorage {
  readonly location: string;
  private readonly levels: Level[];
  /**
   * Keys recently served by a shared level: that level and its backfills. An entry found
   * corrupt is removed from the levels it came through, not from the others, whose copies
   * may be sound (a teammate's good entry is not dropped for a bad local disk).
   */
  private readonly served = new Map<string, { level: number; backfill: Promise<unknown> }>();

  /** `disk` is level 0; `remotes` follow in lookup order. */
  constructor(disk: CacheStorage, remotes: readonly LevelSpec[], private readonly deps: TieredDeps) {
    this.location = disk.location;
    const diskSpec: LevelSpec = {
      name: "disk", location: disk.location, readOnly: false, maxEntrySize: Infinity, timeoutMs: undefined,
      open: async () => disk,
    };
    this.levels = [new Level(diskSpec, deps.log, false), ...remotes.map((r) => new Level(r, deps.log, true, deps.breakerOpenMs))];
  }

  /** The first level that holds the key; a disk read error is thrown if no level has it. */
  async get(key: string): Promise<Uint8Array | undefined> {
    let diskError: unknown;
    for (const [i, level] of this.levels.entries()) {
      const got = await level.call("read", (s) => s.get(key));
      if (!got.ok) {
        if (i === 0) diskError = got.error;
        continue;
      }
      if (got.value === undefined) {
        level.stats.misses += 1;
        continue;
      }
      level.stats.hits += 1;
      if (i > 0) {
        if (this.served.size >= 10_000) this.served.clear();
        this.served.set(key, { level: i, backfill: this.backfill(key, got.value, i) });
      }
      return got.value;
    }
    if (diskError !== undefined) throw diskError;
    return undefined;
  }

  /** Copies a blob found at level `found` into the faster levels, in the background. */
  private backfill(key: string, blob: Uint8Array, found: number): Promise<unknown> {
    const writes: Promise<unknown>[] = [];
    for (const level of this.levels.slice(0, found)) {
      if (!this.fits(level, blob)) continue;
      const write = level.call("write", (s) => s.put(key, blob)).then((r) => {
        if (r.ok) level.stats.backfills += 1;
      });
      this.deps.track(write);
      writes.push(write);
    }
    return Promise.all(writes);
  }

  private fits(level: Level, blob: Uint8Array): boolean {
    if (!level.writable) return false;
    if (blob.length <= level.spec.maxEntrySize) return true;
    level.stats.oversized += 1;
    this.deps.log.debug(`not writing a ${blob.length}-byte entry to ${level.spec.location} (max_entry_size ${level.spec.maxEntrySize})`);
    return false;
  }

  /** Waits for the disk write; the shared levels are written in the background. */
  async put(key: string, blob: Uint8Array): Promise<void> {
    for (const level of this.levels.slice(1)) {
      if (this.fits(level, blob)) this.deps.track(level.call("write", (s) => s.put(key, blob)));
    }
    const written = await this.levels[0]!.call("write", (s) => s.put(key, blob));
    if (!written.ok) throw written.error;
  }

  /** Removes a corrupt entry from the levels it was read through (see `served`). */
  async remove(key: string): Promise<void> {
    const served = this.served.get(key);
    this.served.delete(key);
    // The backfill of the bad blob must land before it is removed, or it would come back.
    await served?.backfill;
    for (const level of this.levels.slice(1, (served?.level ?? 0) + 1)) {
      if (level.writable) this.deps.track(level.call("write", (s) => s.remove(key)));
    }
    const removed = await this.levels[0]!.call("write", (s) => s.remove(key));
    if (!removed.ok) throw removed.error;
  }

  levelStats(): LevelStatsJson[] {
    return this.levels.map((l) => ({ ...l.stats }));
  }

  zeroStats(): void {
    for (const l of this.levels) l.stats = { ...l.emptyStats(), breaker: l.stats.breaker };
  }

  async close(): Promise<void> {
    for (const level of this.levels.slice(1)) {
      try {
        await level.close();
      } catch (e) {
        this.deps.log.debug(`closing ${level.spec.location}: ${isKilnError(e) ? e.message : String(e)}`);
      }
    }
  }
}
