// Counters for `kiln -s`, kept per daemon lifetime (like sccache's server) and zeroed by `-z`.

import { readFileSync } from "node:fs";
import type { Language, NotCacheableReason } from "../compilers/types.ts";
import type { LevelStatsJson } from "../storage/tiered.ts";

export type HitKind = "direct" | "preprocessed";

/** What hits and misses are counted by: a C-family language, or Rust (every rustc call). */
export type CountedLanguage = Language | "rust";

/** Stats as `--stats-format json` prints them. Field names are part of the CLI contract. */
export interface StatsJson {
  stats: {
    compile_requests: number;
    requests_executed: number;
    cache_hits: Record<string, number>;
    cache_misses: Record<string, number>;
    cache_hits_total: number;
    cache_misses_total: number;
    direct_hits: number;
    preprocessed_hits: number;
    forced_recaches: number;
    cache_read_errors: number;
    cache_write_errors: number;
    compile_failures: number;
    non_cacheable_calls: number;
    not_cacheable: Record<string, number>;
    /** Times are sums in milliseconds; divide by the matching count for an average. */
    hit_time_ms: number;
    miss_time_ms: number;
    compiler_time_ms: number;
    compiler_runs: number;
    /** Distributed compilation: successful remote compiles by build server name. */
    dist_compiles: Record<string, number>;
    /** Misses that tried the fleet and were compiled locally instead, by reason. */
    dist_fallbacks: Record<string, number>;
    /** Misses never sent to the fleet (e.g. their dependency-file options), by reason. */
    dist_skipped: Record<string, number>;
    /** Sum of the wall time of successful remote compiles, client side. */
    dist_time_ms: number;
  };
  cache_location: string;
  cache_size: number | null;
  cache_entries: number | null;
  max_cache_size: number | null;
  daemon_pid: number;
  /** Resident memory of the daemon when the stats were taken, and its peak so far. */
  daemon_rss_bytes: number;
  daemon_peak_rss_bytes: number | null;
  started_at: string;
  /** Each storage level, local disk first (see storage/tiered.ts). */
  cache_levels?: LevelStatsJson[];
}

const LANGUAGE_LABEL: Record<CountedLanguage, string> = {
  c: "C",
  "c++": "C++",
  "objective-c": "Objective-C",
  "objective-c++": "Objective-C++",
  "cpp-output": "C",
  "c++-cpp-output": "C++",
  "objective-c-cpp-output": "Objective-C",
  "objective-c++-cpp-output": "Objective-C++",
  assembler: "Assembler",
  "assembler-with-cpp": "Assembler",
  rust: "Rust",
};

function bump(map: Record<string, number>, key: string, by = 1): void {
  map[key] = (map[key] ?? 0) + by;
}

export class Stats {
  private s = Stats.empty();
  private startedAt = new Date();

  private static empty(): StatsJson["stats"] {
    return {
      compile_requests: 0,
      requests_executed: 0,
      cache_hits: {},
      cache_misses: {},
      cache_hits_total: 0,
      cache_misses_total: 0,
      direct_hits: 0,
      preprocessed_hits: 0,
      forced_recaches: 0,
      cache_read_errors: 0,
      cache_write_errors: 0,
      compile_failures: 0,
      non_cacheable_calls: 0,
      not_cacheable: {},
      hit_time_ms: 0,
      miss_time_ms: 0,
      compiler_time_ms: 0,
      compiler_runs: 0,
      dist_compiles: {},
      dist_fallbacks: {},
      dist_skipped: {},
      dist_time_ms: 0,
    };
  }

  zero(): void {
    this.s = Stats.empty();
    this.startedAt = new Date();
  }

  request(): void {
    this.s.compile_requests += 1;
  }

  hit(language: CountedLanguage, kind: HitKind, ms: number): void {
    bump(this.s.cache_hits, LANGUAGE_LABEL[language]);
    this.s.cache_hits_total += 1;
    if (kind === "direct") this.s.direct_hits += 1;
    else this.s.preprocessed_hits += 1;
    this.s.hit_time_ms += ms;
  }

  miss(language: CountedLanguage, ms: number): void {
    bump(this.s.cache_misses, LANGUAGE_LABEL[language]);
    this.s.cache_misses_total += 1;
    this.s.miss_time_ms += ms;
  }

  compilerRun(ms: number): void {
    this.s.requests_executed += 1;
    this.s.compiler_runs += 1;
    this.s.compiler_time_ms += ms;
  }

  recache(): void {
    this.s.forced_recaches += 1;
  }

  compileFailure(): void {
    this.s.compile_failures += 1;
  }

  notCacheable(reason: NotCacheableReason): void {
    this.s.non_cacheable_calls += 1;
    bump(this.s.not_cacheable, reason);
  }

  distCompiled(server: string, ms: number): void {
    bump(this.s.dist_compiles, server);
    this.s.dist_time_ms += ms;
  }

  distFallback(reason: string): void {
    bump(this.s.dist_fallbacks, reason);
  }

  distSkipped(reason: string): void {
    bump(this.s.dist_skipped, reason);
  }

  readError(): void {
    this.s.cache_read_errors += 1;
  }

  writeError(): void {
    this.s.cache_write_errors += 1;
  }

  snapshot(cache: { location: string; size?: number; entries?: number; maxSize?: number }): StatsJson {
    return {
      stats: structuredClone(this.s),
      cache_location: cache.location,
      cache_size: cache.size ?? null,
      cache_entries: cache.entries ?? null,
      max_cache_size: cache.maxSize ?? null,
      daemon_pid: process.pid,
      daemon_rss_bytes: process.memoryUsage.rss(),
      daemon_peak_rss_bytes: peakRss(),
      started_at: this.startedAt.toISOString(),
    };
  }
}

/** VmHWM from /proc (Linux); null elsewhere. */
function peakRss(): number | null {
  try {
    const kb = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync("/proc/self/status", "utf8"))?.[1];
    return kb ? Number(kb) * 1024 : null;
  } catch {
    return null;
  }
}

function formatBytes(n: number | null): string {
  if (n === null) return "unknown";
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return i === 0 ? `${v} bytes` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/** One `kiln -s` row: the label, then the value right-aligned. */
function row(label: string, value: string | number): string {
  return `${label.padEnd(36)}${String(value).padStart(12)}`;
}

/** A count table's entries, largest first (then by name, so the order is stable). */
function byCount(counts: Record<string, number>): [string, number][] {
  return Object.entries(counts).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
}

function seconds(totalMs: number, count: number): string {
  return `${(count > 0 ? totalMs / count / 1000 : 0).toFixed(3)} s`;
}

/** The table `kiln -s` prints, with the rows sccache users know. */
export function formatStats(j: StatsJson): string {
  const s = j.stats;
  const rows: [string, string | number][] = [
    ["Compile requests", s.compile_requests],
    ["Compile requests executed", s.requests_executed],
    ["Cache hits", s.cache_hits_total],
    ...Object.entries(s.cache_hits).map(([l, n]): [string, number] => [`Cache hits (${l})`, n]),
    ["  direct", s.direct_hits],
    ["  preprocessed", s.preprocessed_hits],
    ["Cache misses", s.cache_misses_total],
    ...Object.entries(s.cache_misses).map(([l, n]): [string, number] => [`Cache misses (${l})`, n]),
    ["Cache hit rate", hitRate(s.cache_hits_total, s.cache_misses_total)],
    ["Forced recaches", s.forced_recaches],
    ["Cache read errors", s.cache_read_errors],
    ["Cache write errors", s.cache_write_errors],
    ["Compilation failures", s.compile_failures],
    ["Non-cacheable calls", s.non_cacheable_calls],
    ["Average cache read hit", seconds(s.hit_time_ms, s.cache_hits_total)],
    ["Average cache miss", seconds(s.miss_time_ms, s.cache_misses_total)],
    ["Average compiler", seconds(s.compiler_time_ms, s.compiler_runs)],
  ];
  const lines = rows.map(([k, v]) => row(k, v));
  const reasons = byCount(s.not_cacheable);
  if (reasons.length > 0) {
    lines.push("", "Non-cacheable reasons:");
    for (const [r, n] of reasons) lines.push(row(r, n));
  }
  lines.push(...formatDist(s));
  lines.push(
    "",
    `${"Cache location".padEnd(24)}${j.cache_location}`,
    `${"Cache size".padEnd(24)}${formatBytes(j.cache_size)}${j.cache_entries !== null ? ` (${j.cache_entries} entries)` : ""}`,
    `${"Max cache size".padEnd(24)}${formatBytes(j.max_cache_size)}`,
    `${"Daemon memory".padEnd(24)}${formatBytes(j.daemon_rss_bytes)} (peak ${formatBytes(j.daemon_peak_rss_bytes)})`,
  );
  if (j.cache_levels && j.cache_levels.length > 1) lines.push("", ...formatLevels(j.cache_levels));
  return lines.join("\n") + "\n";
}

/** The distributed-compilation rows; none when nothing was distributed or tried. */
function formatDist(s: StatsJson["stats"]): string[] {
  const remote = Object.values(s.dist_compiles).reduce((a, b) => a + b, 0);
  const fallbacks = Object.values(s.dist_fallbacks).reduce((a, b) => a + b, 0);
  const skipped = Object.values(s.dist_skipped).reduce((a, b) => a + b, 0);
  if (remote + fallbacks + skipped === 0) return [];
  const lines = ["", row("Distributed compiles", remote)];
  for (const [server, n] of byCount(s.dist_compiles)) lines.push(row(`  ${server}`, n));
  lines.push(row("Average distributed compile", seconds(s.dist_time_ms, remote)));
  lines.push(row("Distributed fallbacks to local", fallbacks));
  for (const [reason, n] of byCount(s.dist_fallbacks)) lines.push(row(`  ${reason}`, n));
  if (skipped > 0) {
    lines.push(row("Not distributed", skipped));
    for (const [reason, n] of byCount(s.dist_skipped)) lines.push(row(`  ${reason}`, n));
  }
  return lines;
}

function hitRate(hits: number, misses: number): string {
  const total = hits + misses;
  return total === 0 ? "-" : `${((hits / total) * 100).toFixed(2)} %`;
}

/** The per-level table, shown when there are shared levels besides local disk. */
function formatLevels(levels: readonly LevelStatsJson[]): string[] {
  const ms = (total: number, n: number) => (n > 0 ? `${(total / n).toFixed(2)} ms` : "-");
  const lines = ["Cache levels:"];
  for (const [i, l] of levels.entries()) {
    lines.push(`  ${i}. ${l.location}${l.breaker === "open" ? "  [circuit breaker open]" : ""}`);
    const rows: [string, string | number][] = [
      ["hits", l.hits], ["misses", l.misses], ["errors", l.errors],
      ["average read", ms(l.read_time_ms, l.reads)], ["average write", ms(l.write_time_ms, l.writes)],
      ["backfills", l.backfills], ["oversized (not written)", l.oversized], ["skipped (breaker open)", l.skipped],
    ];
    for (const [k, v] of rows) lines.push(row(`     ${k}`, v));
  }
  return lines;
}
