// Remote-hit rebuilds: the local cache wiped, a shared level holding every entry. Kiln with
// Redis, WebDAV (nginx) and S3 (Ceph RGW, when ../shared/services/s3 exists) side by side
// with ccache 4.7 using remote_storage=redis://, in one run, on the same servers.
//
//   bun bench/remote.ts [--workload lua5.4|leveldb|all] [--reps N] [--jobs N] [--tools kiln-redis,ccache-redis,...]
//
// Each tool builds its own copy once to fill the shared level (untimed), then per repetition:
// `make clean`, wipe the local cache (a fresh KILN_DIR / CCACHE_DIR; Kiln's daemon restarted
// untimed, as it would already be running on a developer's machine), and time the rebuild.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { S3_SCRIPT, startRedis, startS3, startWebdav, type Server } from "../test/servers.ts";

const repoRoot = resolve(import.meta.dir, "..");
const KILN = join(repoRoot, "dist", "kiln");
type Env = Record<string, string | undefined>;

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] ?? fallback : fallback;
}
const reps = Number(option("reps", "5"));
const jobs = Number(option("jobs", "2"));
const workloads = option("workload", "all") === "all" ? ["lua5.4", "leveldb"] : [option("workload", "lua5.4")];
const toolFilter = option("tools", "").split(",").filter(Boolean);

function log(msg: string): void {
  process.stderr.write(`${msg}\n`);
}

function sh(argv: string[], env: Env, cwd?: string): { code: number; sec: number; out: string } {
  const t = performance.now();
  const r = Bun.spawnSync(argv, { env, cwd, stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode ?? 1, sec: (performance.now() - t) / 1000, out: r.stdout.toString() + r.stderr.toString() };
}

function must(argv: string[], env: Env, cwd?: string): void {
  const r = sh(argv, env, cwd);
  if (r.code !== 0) throw new Error(`${argv.join(" ")} exited ${r.code}\n${r.out.slice(-2000)}`);
}

function source(name: string): string {
  return sh([join(repoRoot, "scripts", "workload.sh"), name], process.env).out.trim().split("\n").at(-1)!;
}

interface Tool {
  name: string;
  prefix: string[];
  env: Env;
  /** A fresh, empty local cache (and daemon). */
  wipeLocal(): void;
  /** Hits/misses of the last build, for the report. */
  counts(): string;
}

/** With --restart-daemon, each rebuild also starts a new daemon (empty memory: no file digests, no connections). */
const restartDaemon = process.argv.includes("--restart-daemon");

function kilnTool(name: string, root: string, remote: Record<string, string>): Tool {
  const cache = join(root, "cache");
  const env: Env = { ...process.env, ...remote, KILN_DIR: cache, KILN_RUNTIME_DIR: join(root, "run"), KILN_IDLE_TIMEOUT: "0", KILN_CONF: join(root, "none.toml") };
  writeFileSync(join(root, "none.toml"), "");
  return {
    name, prefix: [KILN], env,
    wipeLocal() {
      if (restartDaemon) sh([KILN, "--stop-server"], env);
      rmSync(cache, { recursive: true, force: true });
      if (restartDaemon) must([KILN, "--start-server"], env);
    },
    counts() {
      const j = JSON.parse(sh([KILN, "-s", "--stats-format", "json"], env).out) as { stats: { cache_hits_total: number; cache_misses_total: number } };
      sh([KILN, "-z"], env);
      return `${j.stats.cache_hits_total} hits, ${j.stats.cache_misses_total} misses`;
    },
  };
}

function ccacheTool(root: string, redisPort: number): Tool {
  const bin = Bun.which("ccache") ?? "ccache";
  const env: Env = { ...process.env, CCACHE_REMOTE_STORAGE: `redis://127.0.0.1:${redisPort}`, CCACHE_CONFIGPATH: join(root, "ccache.conf") };
  writeFileSync(join(root, "ccache.conf"), "");
  let n = 0;
  return {
    name: "ccache-redis", prefix: [bin], env,
    wipeLocal() {
      env.CCACHE_DIR = join(root, `cache-${n++}`);
    },
    counts() {
      const out = sh([bin, "--print-stats"], env).out;
      const get = (k: string) => Number(new RegExp(`^${k}\\t(\\d+)`, "m").exec(out)?.[1] ?? 0);
      sh([bin, "-z"], env);
      return `${get("direct_cache_hit") + get("preprocessed_cache_hit")} hits (${get("remote_storage_hit")} remote), ${get("cache_miss")} misses`;
    },
  };
}

interface Workload {
  prepare(tool: Tool, dir: string): void;
  build(tool: Tool, dir: string): string[];
  clean(dir: string): string[];
}

const WORKLOADS: Record<string, Workload> = {
  "lua5.4": {
    prepare: (tool, dir) => must(["cp", "-a", source("lua5.4"), join(dir, "lua")], tool.env),
    build: (tool, dir) => ["make", "-C", join(dir, "lua/src"), `-j${jobs}`, "linux", `CC=${[...tool.prefix, "gcc", "-std=gnu99"].join(" ")}`],
    clean: (dir) => ["make", "-C", join(dir, "lua/src"), "clean"],
  },
  leveldb: {
    prepare(tool, dir) {
      const tree = join(dir, "leveldb");
      must(["cp", "-a", source("leveldb"), tree], tool.env);
      for (const dep of ["googletest", "benchmark"]) {
        rmSync(join(tree, "third_party", dep), { recursive: true, force: true });
        must(["ln", "-sfn", source(dep), join(tree, "third_party", dep)], tool.env);
      }
      const launcher = tool.prefix.join(";");
      must([
        "cmake", "-S", tree, "-B", join(dir, "build"), "-G", "Unix Makefiles", "-DCMAKE_BUILD_TYPE=Release",
        "-DLEVELDB_BUILD_TESTS=ON", "-DLEVELDB_BUILD_BENCHMARKS=OFF", "-DLEVELDB_INSTALL=OFF",
        `-DCMAKE_C_COMPILER_LAUNCHER=${launcher}`, `-DCMAKE_CXX_COMPILER_LAUNCHER=${launcher}`,
      ], tool.env);
    },
    build: (_tool, dir) => ["make", "-C", join(dir, "build"), `-j${jobs}`],
    clean: (dir) => ["make", "-C", join(dir, "build"), "clean"],
  },
};

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const fmt = (sec: number) => (sec >= 10 ? sec.toFixed(1) : sec >= 1 ? sec.toFixed(2) : sec.toFixed(3));

const scratch = mkdtempSync(join(tmpdir(), "kiln-remote-bench-"));
const servers: Server[] = [];
let report = `# Remote-hit rebuilds (local cache wiped), ${new Date().toISOString()}\n\nmake -j${jobs}, ${reps} repetitions, median (min–max); Kiln's daemon ${restartDaemon ? "restarted before each rebuild" : "kept running (its local cache directory wiped)"}.\n`;
try {
  const redis = await startRedis();
  const dav = await startWebdav();
  servers.push(redis, dav);
  const remotes: [string, Record<string, string>][] = [["kiln-redis", redis.env], ["kiln-webdav", dav.env]];
  if (existsSync(S3_SCRIPT)) {
    const s3 = await startS3();
    servers.push(s3);
    remotes.push(["kiln-s3", s3.env]);
  }
  for (const wname of workloads) {
    const w = WORKLOADS[wname]!;
    const tools: Tool[] = [];
    const rootOf = (name: string) => {
      const root = join(scratch, wname, name);
      mkdirSync(root, { recursive: true });
      return root;
    };
    if (!toolFilter.length || toolFilter.includes("ccache-redis")) tools.push(ccacheTool(rootOf("ccache-redis"), redis.port));
    for (const [name, env] of remotes) if (!toolFilter.length || toolFilter.includes(name)) tools.push(kilnTool(name, rootOf(name), env));
    const rows: string[][] = [];
    const medians: Record<string, number> = {};
    for (const tool of tools) {
      const dir = join(scratch, wname, tool.name);
      log(`${wname} ${tool.name}: preparing and filling the shared level`);
      w.prepare(tool, dir);
      tool.wipeLocal();
      must(w.build(tool, dir), tool.env);
      tool.counts();
      const times: number[] = [];
      let counts = "";
      for (let i = 0; i < reps; i++) {
        must(w.clean(dir), tool.env);
        tool.wipeLocal();
        const r = sh(w.build(tool, dir), tool.env);
        if (r.code !== 0) throw new Error(`${tool.name} rebuild failed:\n${r.out.slice(-2000)}`);
        times.push(r.sec);
        counts = tool.counts();
        log(`  rep ${i + 1}: ${fmt(r.sec)} s (${counts})`);
      }
      if (tool.prefix[0] === KILN) sh([KILN, "--stop-server"], tool.env);
      medians[tool.name] = median(times);
      rows.push([tool.name, `${fmt(median(times))} s (${fmt(Math.min(...times))}–${fmt(Math.max(...times))})`, counts]);
    }
    const base = medians["ccache-redis"];
    report += `\n## ${wname}\n\n| tool | rebuild from the shared level | last repetition | vs ccache-redis |\n|---|---|---|---|\n`;
    for (const row of rows) report += `| ${row[0]} | ${row[1]} | ${row[2]} | ${base ? `${(medians[row[0]!]! / base).toFixed(2)}×` : "-"} |\n`;
  }
  process.stdout.write(report);
  mkdirSync(join(repoRoot, "bench", "results"), { recursive: true });
  writeFileSync(join(repoRoot, "bench", "results", `remote-${new Date().toISOString().replace(/[:.]/g, "-")}.md`), report);
} finally {
  for (const s of servers) s.stop();
  if (!process.argv.includes("--keep")) rmSync(scratch, { recursive: true, force: true });
}
