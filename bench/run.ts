// Kiln's benchmark harness: plain compiles, ccache, sccache and Kiln building real projects
// side by side in one run. Usage and method: bench/README.md.
import type { Subprocess } from "bun";
import { chmodSync, closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { cpus, homedir, release, totalmem } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { writeRustWorkspace } from "../scripts/rust-workspace.ts";

const repoRoot = resolve(import.meta.dir, "..");
/** kiln-base: another Kiln build (--kiln-base PATH), to compare two builds in one run. */
const TOOL_NAMES = ["plain", "ccache", "sccache", "kiln", "kiln-depend", "kiln-base"] as const;
/** The tools a run measures unless --tools says otherwise. */
const DEFAULT_TOOLS: ToolName[] = ["plain", "ccache", "sccache", "kiln"];
type ToolName = (typeof TOOL_NAMES)[number];
type Env = Record<string, string>;
type Phase = "cold" | "warm";

interface Options {
  workloads: string[];
  tools: ToolName[];
  reps?: number;
  jobs: number;
  quick: boolean;
  timeoutSec?: number;
  kilnBin: string;
  kilnBaseBin?: string;
  keep: boolean;
}

/** One timed full build. CPU counts the build tree (make and every compiler it waited for)
 * plus, for tools with a server, the server's own CPU and that of the compilers it ran. */
interface Sample {
  wallSec: number;
  cpuSec: number;
  daemonCpuSec: number | null;
  daemonPeakRssMb: number | null;
  hits: number | null;
  misses: number | null;
  /** CPU the rest of the machine used during the build (incl. VM steal): other work skews a sample. */
  foreignCpuSec: number;
}

interface HitLatency { medianMs: number; meanMs: number; minMs: number; maxMs: number; runs: number; command: string }

interface ToolResult { cold: Sample[]; warm: Sample[]; hit: HitLatency | null; error?: string }

// ---------------------------------------------------------------- processes

const running = new Set<Subprocess>();
let aborted = false;

interface RunOptions {
  env: Env; cwd?: string; timeoutSec?: number; logFile?: string; check?: boolean;
  /** Cleanup steps (stopping servers) still run after Ctrl-C. */
  evenIfInterrupted?: boolean;
}
interface RunResult { code: number; wallSec: number; cpuSec: number; output: string }

/** Runs argv under coreutils `timeout`, which puts it in its own process group and kills the
 * whole group (make and every compiler) when time runs out or when we forward a SIGTERM. */
async function run(argv: string[], o: RunOptions): Promise<RunResult> {
  if (aborted && !o.evenIfInterrupted) throw new Error("interrupted");
  const timeoutSec = o.timeoutSec ?? 120;
  const fd = o.logFile === undefined ? undefined : openSync(o.logFile, "w");
  const start = performance.now();
  const proc = Bun.spawn(["timeout", "-k", "10", String(timeoutSec), ...argv], {
    cwd: o.cwd, env: o.env, stdin: "ignore", stdout: fd ?? "pipe", stderr: fd ?? "pipe",
  });
  running.add(proc);
  try {
    const [out, err] = fd === undefined
      ? await Promise.all([new Response(proc.stdout as ReadableStream).text(), new Response(proc.stderr as ReadableStream).text()])
      : ["", ""];
    const code = await proc.exited;
    const wallSec = (performance.now() - start) / 1000;
    const usage = proc.resourceUsage();
    const cpuSec = usage ? Number(usage.cpuTime.user + usage.cpuTime.system) / 1e6 : NaN;
    const output = fd === undefined ? out + err : readFileSync(o.logFile!, "utf8");
    if (o.check !== false && code !== 0) {
      const why = code === 124 ? `timed out after ${timeoutSec} s` : `exit ${code}`;
      const tail = output.trimEnd().split("\n").slice(-15).join("\n");
      throw new Error(`${argv.join(" ")}: ${why}${o.logFile ? ` (log: ${o.logFile})` : ""}\n${tail}`);
    }
    return { code, wallSec, cpuSec, output };
  } finally {
    running.delete(proc);
    if (fd !== undefined) closeSync(fd);
  }
}

const clkTck = Number(Bun.spawnSync(["getconf", "CLK_TCK"]).stdout.toString().trim()) || 100;

/** utime+stime+cutime+cstime: the process and every child it has reaped (compilers it ran). */
function procCpuSec(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ").map(Number); // f[0] is field 3
    return (f[11]! + f[12]! + f[13]! + f[14]!) / clkTck;
  } catch {
    return null;
  }
}

function procPeakRssMb(pid: number): number | null {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

/** Writing 5 to clear_refs resets VmHWM, so each build reports its own peak. */
function resetPeakRss(pid: number): void {
  try { writeFileSync(`/proc/${pid}/clear_refs`, "5"); } catch { /* older kernel: peak since start */ }
}

/** Busy CPU of the whole machine so far (all fields of /proc/stat's cpu line but idle and iowait). */
function machineBusySec(): number {
  const [, user, nice, system, , , irq, softirq, steal] = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).map(Number);
  return (user! + nice! + system! + irq! + softirq! + (steal ?? 0)) / clkTck;
}

/** More than a quarter of a core went to other work while this build ran. */
const isNoisy = (s: Sample) => s.foreignCpuSec > 0.25 * s.wallSec + 0.05;

const alive = (pid: number) => existsSync(`/proc/${pid}/stat`);

/** Processes (other than us) whose environment holds `marker`: how we find a tool's server. */
function pidsWithEnv(marker: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync("/proc")) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      if (readFileSync(`/proc/${pid}/environ`, "latin1").split("\0").includes(marker)) pids.push(pid);
    } catch { /* gone or not ours */ }
  }
  return pids;
}

function freePort(): number {
  const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = server.port;
  server.stop(true);
  return port;
}

// ---------------------------------------------------------------- tools

interface Tool {
  name: ToolName;
  /** Words before the compiler: `CC="<prefix> gcc"`, CMake's launcher. Empty for plain. */
  prefix: string[];
  env: Env;
  version: string;
  /** Cold start: an empty cache and, for server tools, a fresh server already listening. */
  reset(): Promise<void>;
  /** Untimed, before each warm build: the server is up. */
  ready(): Promise<void>;
  zeroStats(): Promise<void>;
  stats(): Promise<{ hits: number; misses: number } | null>;
  serverPids(): number[];
  stop(): Promise<void>;
}

function baseEnv(marker: string): Env {
  const env: Env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined || /^(CCACHE_|SCCACHE_|KILN_|MAKEFLAGS$|MFLAGS$|MAKELEVEL$|RUSTC_WRAPPER$|RUSTC_WORKSPACE_WRAPPER$|CARGO_INCREMENTAL$)/.test(k)) continue;
    env[k] = v;
  }
  // rustup's cargo may be installed but off PATH.
  const cargoBin = join(homedir(), ".cargo", "bin");
  if (!Bun.which("cargo", { PATH: env.PATH ?? "" }) && existsSync(join(cargoBin, "cargo"))) env.PATH = `${cargoBin}:${env.PATH ?? ""}`;
  const [key, value] = marker.split("=") as [string, string];
  env[key] = value;
  return env;
}

async function firstLine(argv: string[], env: Env): Promise<string> {
  try {
    const r = await run(argv, { env, timeoutSec: 20, check: false });
    return r.output.trim().split("\n")[0] ?? "unknown";
  } catch {
    return "unknown";
  }
}

const sumNumbers = (v: unknown): number =>
  typeof v === "number" ? v
  : v && typeof v === "object" ? ("total" in v ? sumNumbers((v as { total: unknown }).total) : Object.values(v).reduce<number>((s, x) => s + sumNumbers(x), 0))
  : 0;

/** Reads hits/misses from sccache-style stats JSON without trusting its exact shape. */
function countsFromJson(text: string): { hits: number; misses: number } | null {
  try {
    if (!text.includes("{")) return null;
    const json = JSON.parse(text.slice(text.indexOf("{"))) as Record<string, unknown>;
    const pick = (keys: string[]) => {
      for (const obj of [json, json.stats as Record<string, unknown> | undefined]) {
        for (const k of keys) if (obj && typeof obj === "object" && k in obj) return sumNumbers(obj[k]);
      }
      return undefined;
    };
    const hits = pick(["cache_hits", "hits"]);
    const misses = pick(["cache_misses", "misses"]);
    return hits === undefined && misses === undefined ? null : { hits: hits ?? 0, misses: misses ?? 0 };
  } catch {
    return null;
  }
}

async function plainTool(dir: string): Promise<Tool> {
  const env = baseEnv(`KILN_BENCH_TOOL=${dir}`);
  return {
    name: "plain", prefix: [], env, version: await firstLine(["gcc", "--version"], env),
    async reset() {}, async ready() {}, async zeroStats() {},
    async stats() { return null; }, serverPids: () => [], async stop() {},
  };
}

async function ccacheTool(dir: string): Promise<Tool> {
  const env = { ...baseEnv(`KILN_BENCH_TOOL=${dir}`), CCACHE_DIR: join(dir, "cache") };
  const bin = Bun.which("ccache") ?? "ccache";
  return {
    name: "ccache", prefix: [bin], env, version: await firstLine([bin, "--version"], env),
    async reset() { await run([bin, "-C", "-z"], { env }); },
    async ready() {},
    async zeroStats() { await run([bin, "-z"], { env }); },
    async stats() {
      const r = await run([bin, "--print-stats"], { env, check: false });
      const n = (k: string) => Number(new RegExp(`^${k}\\t(\\d+)`, "m").exec(r.output)?.[1] ?? 0);
      return { hits: n("direct_cache_hit") + n("preprocessed_cache_hit"), misses: n("cache_miss") };
    },
    serverPids: () => [],
    async stop() {},
  };
}

/** sccache and Kiln share a command line: --start-server, --stop-server, -z, -s --stats-format json. */
async function serverTool(name: "sccache" | "kiln" | "kiln-depend" | "kiln-base", bin: string, dir: string, env: Env, cacheDir: string): Promise<Tool> {
  const marker = `KILN_BENCH_TOOL=${dir}`;
  let pids: number[] = [];
  let started = false;
  const statsJson = async () => {
    const r = await run([bin, "-s", "--stats-format", "json"], { env, check: false });
    return r.code === 0 ? r.output : "";
  };
  const start = async () => {
    await run([bin, "--start-server"], { env, timeoutSec: 60 });
    started = true;
    pids = pidsWithEnv(marker);
    if (pids.length === 0) {
      // A daemon that scrubs its environment: Kiln's stats name its pid.
      const pid = Number(/"daemon_pid"\s*:\s*(\d+)/.exec(await statsJson())?.[1]);
      if (pid > 0 && alive(pid)) pids = [pid];
    }
    if (pids.length === 0) log(`warning: ${name} server started but its pid was not found; its CPU and memory go unmeasured`);
    else log(`${name} server started: pid ${pids.join(", ")}`);
  };
  const stop = async () => {
    if (!started) return;
    await run([bin, "--stop-server"], { env, timeoutSec: 30, check: false, evenIfInterrupted: true });
    for (let i = 0; i < 50 && pids.some(alive); i++) await Bun.sleep(100);
    for (const pid of pids.filter(alive)) process.kill(pid, "SIGTERM"); // we started it
    pids = [];
  };
  return {
    name, prefix: [bin], env, version: await firstLine([bin, "--version"], env),
    async reset() {
      await stop();
      rmSync(cacheDir, { recursive: true, force: true });
      await start();
    },
    async ready() {
      // With no pid found we cannot tell; the client starts a missing server itself.
      if (started && (pids.length === 0 || pids.every(alive))) return;
      if (started) log(`note: ${name} server was not running before a warm build; restarting it (untimed)`);
      await start();
    },
    async zeroStats() { await run([bin, "-z"], { env, check: false }); },
    async stats() { return countsFromJson(await statsJson()); },
    serverPids: () => pids.filter(alive),
    stop,
  };
}

async function makeTool(name: ToolName, scratch: string, opts: Options): Promise<Tool | null> {
  const dir = join(scratch, name);
  mkdirSync(dir, { recursive: true });
  switch (name) {
    case "plain": return plainTool(dir);
    case "ccache": return ccacheTool(dir);
    case "sccache": {
      const env = {
        ...baseEnv(`KILN_BENCH_TOOL=${dir}`), SCCACHE_DIR: join(dir, "cache"),
        SCCACHE_SERVER_PORT: String(freePort()), SCCACHE_IDLE_TIMEOUT: "0",
      };
      return serverTool("sccache", Bun.which("sccache") ?? "sccache", dir, env, env.SCCACHE_DIR);
    }
    case "kiln":
    case "kiln-depend":
    case "kiln-base": {
      const source = name === "kiln-base" ? opts.kilnBaseBin : opts.kilnBin;
      if (source === undefined) throw new Error("--tools kiln-base needs --kiln-base PATH (the Kiln build to compare with)");
      if (!existsSync(source)) {
        log(`skipping ${name}: ${source} not found (build it with \`npm run build\`, or pass --kiln PATH)`);
        return null;
      }
      // Snapshot the binary: dist/kiln is rebuilt while people work, and one run must measure one build.
      const bin = join(dir, "kiln");
      for (let attempt = 1; ; attempt++) {
        const before = statSync(source);
        copyFileSync(source, bin);
        const after = statSync(source);
        if (before.mtimeMs === after.mtimeMs && before.size === after.size) break;
        if (attempt === 3) throw new Error(`${source} keeps changing while being copied; try again after the build`);
        await Bun.sleep(5000);
      }
      chmodSync(bin, 0o755);
      const sha = new Bun.CryptoHasher("sha256").update(await Bun.file(bin).arrayBuffer()).digest("hex").slice(0, 12);
      const runtime = join(dir, "run");
      mkdirSync(runtime, { recursive: true });
      chmodSync(runtime, 0o700);
      const env = {
        ...baseEnv(`KILN_BENCH_TOOL=${dir}`), KILN_DIR: join(dir, "cache"), KILN_RUNTIME_DIR: runtime, KILN_IDLE_TIMEOUT: "0",
        // kiln-depend: depend mode, which skips the preprocessing run on misses of -MD compiles.
        ...(name === "kiln-depend" ? { KILN_DEPEND: "1" } : {}),
      };
      const tool = await serverTool(name, bin, dir, env, env.KILN_DIR);
      tool.version += ` (${source}, sha256 ${sha}, built ${statSync(source).mtime.toISOString()})`;
      return tool;
    }
  }
}

// ---------------------------------------------------------------- workloads

/** The workload's sources, fetched once by scripts/workload.sh (the tests use it too). */
function workloadSource(name: string): string {
  const get = join(repoRoot, "scripts", "workload.sh");
  const r = Bun.spawnSync([get, name], { stderr: "inherit" });
  if (r.exitCode === 0) return r.stdout.toString().trim();
  const src = join(process.env.KILN_WORKLOADS ?? join(homedir(), ".cache/kiln-workloads"), name, "src");
  if (!existsSync(src)) throw new Error(`workload ${name}: ${get} failed and there are no sources at ${src}`);
  log(`warning: ${get} ${name} failed; using ${src}`);
  return src;
}

interface Workload {
  name: string;
  /** The tools that can cache this workload's compiles (all when absent). */
  tools?: readonly ToolName[];
  defaultColdReps: number;
  timeoutSec: number;
  /** Copy sources into `dir` (the tool's own scratch tree) and configure; untimed. */
  prepare(tool: Tool, dir: string): Promise<void>;
  build(tool: Tool, dir: string, jobs: number): string[];
  clean(dir: string): string[];
  /** The exact compile the build ran for the single-file hit test, without the tool's prefix. */
  hitCommand(tool: Tool, dir: string): { cwd: string; command: string };
}

const stripPrefix = (command: string, prefix: string[]) => {
  const words = command.trim().split(/\s+/);
  const has = prefix.length > 0 && prefix.every((p, i) => words[i] === p);
  return (has ? words.slice(prefix.length) : words).join(" ");
};

const lua: Workload = {
  name: "lua5.4",
  defaultColdReps: 5,
  timeoutSec: 300,
  async prepare(tool, dir) {
    await run(["cp", "-a", workloadSource("lua5.4"), join(dir, "lua")], { env: tool.env });
  },
  build: (tool, dir, jobs) =>
    ["make", "-C", join(dir, "lua/src"), `-j${jobs}`, "linux", `CC=${[...tool.prefix, "gcc", "-std=gnu99"].join(" ")}`],
  clean: (dir) => ["make", "-C", join(dir, "lua/src"), "clean"],
  hitCommand(tool, dir) {
    const log = readFileSync(join(dir, "build.log"), "utf8");
    const line = log.split("\n").find((l) => / -c /.test(l) && /\slapi\.c\s*$/.test(l));
    if (!line) throw new Error(`no compile of lapi.c in ${join(dir, "build.log")}`);
    return { cwd: join(dir, "lua/src"), command: stripPrefix(line, tool.prefix) };
  },
};

const leveldb: Workload = {
  name: "leveldb",
  defaultColdReps: 3,
  timeoutSec: 1800,
  async prepare(tool, dir) {
    const tree = join(dir, "leveldb");
    await run(["cp", "-a", workloadSource("leveldb"), tree], { env: tool.env });
    for (const dep of ["googletest", "benchmark"]) {
      rmSync(join(tree, "third_party", dep), { recursive: true, force: true });
      await run(["ln", "-sfn", workloadSource(dep), join(tree, "third_party", dep)], { env: tool.env });
    }
    const launcher = tool.prefix.length > 0
      ? [`-DCMAKE_C_COMPILER_LAUNCHER=${tool.prefix.join(";")}`, `-DCMAKE_CXX_COMPILER_LAUNCHER=${tool.prefix.join(";")}`]
      : [];
    await run([
      "cmake", "-S", tree, "-B", join(dir, "build"), "-G", "Unix Makefiles", "-DCMAKE_BUILD_TYPE=Release",
      "-DLEVELDB_BUILD_TESTS=ON", "-DLEVELDB_BUILD_BENCHMARKS=OFF", "-DLEVELDB_INSTALL=OFF",
      "-DCMAKE_EXPORT_COMPILE_COMMANDS=ON", ...launcher,
    ], { env: tool.env, timeoutSec: 300, logFile: join(dir, "configure.log") });
  },
  build: (_tool, dir, jobs) => ["make", "-C", join(dir, "build"), `-j${jobs}`],
  clean: (dir) => ["make", "-C", join(dir, "build"), "clean"],
  hitCommand(tool, dir) {
    const db = JSON.parse(readFileSync(join(dir, "build/compile_commands.json"), "utf8")) as { directory: string; command: string; file: string }[];
    const entry = db.find((e) => e.file.endsWith("/db/db_impl.cc"));
    if (!entry) throw new Error(`db/db_impl.cc not in ${dir}/build/compile_commands.json`);
    return { cwd: entry.directory, command: stripPrefix(entry.command, tool.prefix) };
  },
};

/**
 * A cargo workspace (scripts/rust-workspace.ts: regex, serde_json, clap with derive, from
 * Debian's packaged crates, offline). The tool is cargo's RUSTC_WRAPPER; CARGO_INCREMENTAL=0
 * for every tool (incremental crates are not cacheable, and plain builds would differ).
 */
const rust: Workload = {
  name: "rust",
  tools: ["plain", "sccache", "kiln", "kiln-base"],
  defaultColdReps: 3,
  timeoutSec: 600,
  async prepare(_tool, dir) {
    writeRustWorkspace(join(dir, "ws"));
  },
  // cargo reads .cargo/config.toml (the offline source) from its working directory: env -C.
  build: (tool, dir, jobs) => [
    "env", "-C", join(dir, "ws"), ...(tool.prefix.length > 0 ? [`RUSTC_WRAPPER=${tool.prefix.join(" ")}`] : []), "CARGO_INCREMENTAL=0",
    "cargo", "build", "-v", `-j${jobs}`,
  ],
  clean: (dir) => ["env", "-C", join(dir, "ws"), "cargo", "clean"],
  hitCommand(tool, dir) {
    // cargo -v prints each rustc call as `Running \`ENV=... [wrapper] rustc args\``.
    const log = readFileSync(join(dir, "build.log"), "utf8");
    const line = log.split("\n").find((l) => /Running `.* --crate-name regex /.test(l));
    if (!line) throw new Error(`no compile of regex in ${join(dir, "build.log")}`);
    const command = line.slice(line.indexOf("`") + 1, line.lastIndexOf("`"));
    // cargo compiles a registry crate in its own directory (the cwd is part of the key).
    const cwd = /CARGO_MANIFEST_DIR=(\S+)/.exec(command)?.[1] ?? join(dir, "ws");
    return { cwd, command: `env CARGO_INCREMENTAL=0 ${command}` };
  },
};

const WORKLOADS: Record<string, Workload> = { "lua5.4": lua, leveldb, rust };

// ---------------------------------------------------------------- measuring

function log(msg: string): void {
  process.stderr.write(`${msg}\n`);
}

async function measureBuild(tool: Tool, w: Workload, dir: string, phase: Phase, o: Options): Promise<Sample> {
  const timeoutSec = o.timeoutSec ?? w.timeoutSec;
  await run(w.clean(dir), { env: tool.env, timeoutSec, logFile: join(dir, "clean.log") });
  await (phase === "cold" ? tool.reset() : tool.ready());
  await tool.zeroStats();
  const machineBefore = machineBusySec();
  const pids = tool.serverPids();
  pids.forEach(resetPeakRss);
  const cpuBefore = pids.map(procCpuSec);
  const r = await run(w.build(tool, dir, o.jobs), { env: tool.env, timeoutSec, logFile: join(dir, "build.log") });
  const machineSec = machineBusySec() - machineBefore;
  let daemonCpuSec: number | null = null;
  let daemonPeakRssMb: number | null = null;
  if (pids.length > 0) {
    const cpuAfter = pids.map(procCpuSec);
    const peaks = pids.map(procPeakRssMb);
    if (cpuAfter.every((c) => c !== null) && cpuBefore.every((c) => c !== null)) {
      daemonCpuSec = cpuAfter.reduce<number>((s, c, i) => s + c! - cpuBefore[i]!, 0);
    }
    if (peaks.every((p) => p !== null)) daemonPeakRssMb = Math.max(...(peaks as number[]));
  }
  const stats = await tool.stats();
  const cpuSec = r.cpuSec + (daemonCpuSec ?? 0);
  return {
    wallSec: r.wallSec, cpuSec, daemonCpuSec, daemonPeakRssMb,
    hits: stats?.hits ?? null, misses: stats?.misses ?? null, foreignCpuSec: Math.max(0, machineSec - cpuSec),
  };
}

async function measureHit(tool: Tool, w: Workload, dir: string, o: Options): Promise<HitLatency> {
  const { cwd, command } = w.hitCommand(tool, dir);
  await tool.ready();
  const full = w.name === "rust" ? command : [...tool.prefix, command].join(" ");
  const out = join(dir, "hyperfine.json");
  const runs = tool.name === "plain"
    ? ["--warmup", "1", "--runs", o.quick ? "3" : "5"]
    : ["--warmup", "3", "--min-runs", o.quick ? "10" : "30"];
  await run(["hyperfine", "-N", "--style", "basic", ...runs, "--export-json", out, full], { env: tool.env, cwd, timeoutSec: 600 });
  const res = (JSON.parse(readFileSync(out, "utf8")) as { results: { mean: number; median: number; min: number; max: number; times: number[] }[] }).results[0]!;
  return { medianMs: res.median * 1000, meanMs: res.mean * 1000, minMs: res.min * 1000, maxMs: res.max * 1000, runs: res.times.length, command: full };
}

function describe(s: Sample): string {
  const parts = [`${s.wallSec.toFixed(3)} s wall`, `${s.cpuSec.toFixed(2)} s cpu`];
  if (s.daemonCpuSec !== null) parts.push(`server ${s.daemonCpuSec.toFixed(2)} s cpu`);
  if (s.daemonPeakRssMb !== null) parts.push(`server peak ${s.daemonPeakRssMb.toFixed(0)} MB`);
  if (s.hits !== null) parts.push(`hits ${s.hits} misses ${s.misses}`);
  if (isNoisy(s)) parts.push(`NOISY: ${s.foreignCpuSec.toFixed(2)} s cpu used by other processes meanwhile`);
  return parts.join(", ");
}

async function benchWorkload(w: Workload, allTools: Tool[], scratch: string, o: Options): Promise<Record<string, ToolResult>> {
  const tools = allTools.filter((t) => !w.tools || w.tools.includes(t.name));
  const results: Record<string, ToolResult> = {};
  const dirs: Record<string, string> = {};
  // A tool that fails is reported and left out of the rest of this workload.
  const attempt = async (tool: Tool, what: string, fn: () => Promise<void>) => {
    if (results[tool.name]!.error) return;
    try {
      await fn();
    } catch (e) {
      if (aborted) throw e;
      results[tool.name]!.error = `${what}: ${(e as Error).message.split("\n")[0]}`;
      log(`[${w.name}] ${tool.name} FAILED during ${what}:\n${(e as Error).message}`);
    }
  };
  for (const tool of tools) {
    results[tool.name] = { cold: [], warm: [], hit: null };
    dirs[tool.name] = join(scratch, tool.name, w.name);
    mkdirSync(dirs[tool.name]!, { recursive: true });
    log(`[${w.name}] preparing ${tool.name} in ${dirs[tool.name]}`);
    await attempt(tool, "prepare", () => w.prepare(tool, dirs[tool.name]!));
  }
  const phases: [Phase, number][] = [
    ["cold", o.quick ? 1 : (o.reps ?? w.defaultColdReps)],
    ["warm", o.quick ? 1 : (o.reps ?? 5)],
  ];
  for (const [phase, reps] of phases) {
    for (let rep = 1; rep <= reps; rep++) {
      for (const tool of tools) {
        await attempt(tool, `${phase} build`, async () => {
          log(`[${w.name} ${phase} ${rep}/${reps}] ${tool.name} ...`);
          const s = await measureBuild(tool, w, dirs[tool.name]!, phase, o);
          results[tool.name]![phase].push(s);
          log(`[${w.name} ${phase} ${rep}/${reps}] ${tool.name}: ${describe(s)}`);
        });
      }
    }
  }
  for (const tool of tools) {
    await attempt(tool, "hit latency", async () => {
      log(`[${w.name} hit latency] ${tool.name} (hyperfine) ...`);
      const h = await measureHit(tool, w, dirs[tool.name]!, o);
      results[tool.name]!.hit = h;
      log(`[${w.name} hit latency] ${tool.name}: median ${h.medianMs.toFixed(1)} ms over ${h.runs} runs`);
    });
  }
  return results;
}

// ---------------------------------------------------------------- report

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const digitsFor = (x: number) => (x >= 100 ? 0 : x >= 10 ? 1 : x >= 1 ? 2 : 3);
const num = (x: number) => x.toFixed(digitsFor(x));
const spread = (xs: number[]) =>
  xs.length === 0 ? "–" : xs.length === 1 ? num(xs[0]!) : `${num(median(xs))} (${num(Math.min(...xs))}–${num(Math.max(...xs))})`;
const vals = (xs: Sample[], f: (s: Sample) => number | null) => xs.map(f).filter((x): x is number => x !== null);

function table(header: string[], rows: string[][]): string {
  return [`| ${header.join(" | ")} |`, `|${header.map(() => "---").join("|")}|`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n");
}

function workloadReport(name: string, results: Record<string, ToolResult>): string {
  const rows = Object.entries(results).map(([tool, r]) => {
    if (r.error && r.cold.length === 0) return [tool, `failed (${r.error})`, "", "", "", "", "", "", ""];
    const peakRss = vals([...r.cold, ...r.warm], (s) => s.daemonPeakRssMb);
    const counts = (xs: Sample[]) => (xs.some((s) => s.hits !== null) ? xs.map((s) => `${s.hits}/${s.misses}`).at(-1)! : "–");
    return [
      tool + (r.error ? ` (failed later: ${r.error})` : ""),
      spread(r.cold.map((s) => s.wallSec)),
      spread(r.warm.map((s) => s.wallSec)),
      spread(r.cold.map((s) => s.cpuSec)),
      spread(r.warm.map((s) => s.cpuSec)),
      spread(vals(r.warm, (s) => s.daemonCpuSec)),
      peakRss.length ? num(Math.max(...peakRss)) : "–",
      r.hit ? `${num(r.hit.medianMs)} (${num(r.hit.minMs)}–${num(r.hit.maxMs)})` : "–",
      `${counts(r.cold)} · ${counts(r.warm)}`,
    ];
  });
  let md = `## ${name}\n\nMedian (min–max) over repetitions. CPU = user+sys of the build and its children, plus the server's for sccache/kiln.\n\n`;
  md += table(["tool", "cold wall s", "warm wall s", "cold CPU s", "warm CPU s", "warm server CPU s", "server peak RSS MB", "1-file hit ms", "hits/misses (cold · warm)"], rows);
  const kilns = (["kiln", "kiln-depend", "kiln-base"] as const).filter((k) => results[k] && !results[k].error);
  if (kilns.length) {
    const m = (r: ToolResult | undefined, f: (r: ToolResult) => number[]) => (r && f(r).length ? median(f(r)) : NaN);
    const metrics: [string, (r: ToolResult) => number[]][] = [
      ["cold wall", (r) => r.cold.map((s) => s.wallSec)], ["warm wall", (r) => r.warm.map((s) => s.wallSec)],
      ["cold CPU", (r) => r.cold.map((s) => s.cpuSec)], ["warm CPU", (r) => r.warm.map((s) => s.cpuSec)],
      ["1-file hit", (r) => (r.hit ? [r.hit.medianMs] : [])],
    ];
    const ratioRows = kilns.flatMap((k) =>
      ["plain", "ccache", "sccache", ...(k === "kiln-base" ? [] : ["kiln-base"])].filter((b) => results[b] && !results[b].error).map((b) => [
        `${k} / ${b}`, ...metrics.map(([, f]) => { const x = m(results[k], f) / m(results[b], f); return Number.isFinite(x) ? x.toFixed(2) : "–"; }),
      ]),
    );
    md += `\n\nRatios of medians (below 1 means Kiln is faster):\n\n${table(["", ...metrics.map(([n]) => n)], ratioRows)}`;
  } else md += "\n\nNo Kiln results in this run, so no Kiln ratios.";
  const samples = Object.values(results).flatMap((r) => [...r.cold, ...r.warm]);
  const noisy = samples.filter(isNoisy);
  if (noisy.length) {
    md += `\n\n**Noisy:** during ${noisy.length} of ${samples.length} builds other processes used more than a quarter of a core ` +
      `(up to ${Math.max(...noisy.map((s) => s.foreignCpuSec / s.wallSec)).toFixed(1)} cores): compare medians with care; \`foreignCpuSec\` per build is in the JSON.`;
  }
  const hits = Object.entries(results).filter(([, r]) => r.hit).map(([t, r]) => `- ${t}: \`${r.hit!.command}\``);
  if (hits.length) md += `\n\nSingle-file hit commands (hyperfine, no shell):\n${hits.join("\n")}`;
  return md + "\n";
}

// ---------------------------------------------------------------- main

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      workload: { type: "string", default: "all" },
      tools: { type: "string", default: DEFAULT_TOOLS.join(",") },
      reps: { type: "string" },
      jobs: { type: "string", default: "2" },
      quick: { type: "boolean", default: false },
      timeout: { type: "string" },
      kiln: { type: "string", default: join(repoRoot, "dist/kiln") },
      "kiln-base": { type: "string" },
      keep: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    log("usage: bun bench/run.ts [--workload lua5.4|leveldb|rust|all] [--tools plain,ccache,sccache,kiln,kiln-depend] [--reps N] [--jobs N] [--quick] [--timeout SEC] [--kiln PATH] [--kiln-base PATH] [--keep]");
    process.exit(0);
  }
  const tools = values.tools.split(",").map((t) => t.trim());
  for (const t of tools) if (!(TOOL_NAMES as readonly string[]).includes(t)) throw new Error(`unknown tool ${t}; choose from ${TOOL_NAMES.join(",")}`);
  const workloads = values.workload === "all" ? (values.quick ? ["lua5.4"] : Object.keys(WORKLOADS)) : values.workload.split(",");
  for (const w of workloads) if (!WORKLOADS[w]) throw new Error(`unknown workload ${w}; choose from ${Object.keys(WORKLOADS).join(", ")} or all`);
  const int = (s: string | undefined, what: string) => {
    if (s === undefined) return undefined;
    const n = Number(s);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${what} wants a positive integer, got ${s}`);
    return n;
  };
  return {
    workloads, tools: tools as ToolName[], reps: int(values.reps, "reps"), jobs: int(values.jobs, "jobs")!,
    quick: values.quick, timeoutSec: int(values.timeout, "timeout"), kilnBin: resolve(values.kiln),
    ...(values["kiln-base"] !== undefined ? { kilnBaseBin: resolve(values["kiln-base"]) } : {}), keep: values.keep,
  };
}

async function machineInfo(tools: Tool[], workloads: string[]): Promise<Record<string, string>> {
  const env = baseEnv("KILN_BENCH_TOOL=info");
  const cpuModel = /^model name\s*:\s*(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? cpus()[0]?.model ?? "unknown";
  const info: Record<string, string> = {
    nproc: (await firstLine(["nproc"], env)),
    cpu: cpuModel,
    memory: `${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    kernel: release(),
    make: await firstLine(["make", "--version"], env),
    cmake: await firstLine(["cmake", "--version"], env),
    hyperfine: await firstLine(["hyperfine", "--version"], env),
    bun: Bun.version,
  };
  for (const t of tools) info[t.name === "plain" ? "gcc" : t.name] = t.version;
  if (workloads.includes("rust")) {
    info.rustc = await firstLine(["rustc", "--version"], env);
    info.cargo = await firstLine(["cargo", "--version"], env);
  }
  if (!info.gcc) info.gcc = await firstLine(["gcc", "--version"], env);
  return info;
}

async function main(): Promise<void> {
  const o = parseOptions();
  const scratch = mkdtempSync("/tmp/kiln-bench-");
  const tools: Tool[] = [];
  let cleaning: Promise<void> | undefined;
  const cleanup = () => (cleaning ??= (async () => {
    for (const t of tools) {
      try { await t.stop(); } catch (e) { log(`warning: stopping ${t.name}: ${(e as Error).message}`); }
    }
    if (o.keep) log(`scratch kept at ${scratch}`);
    else rmSync(scratch, { recursive: true, force: true });
  })());
  process.on("SIGINT", () => {
    if (aborted) process.exit(130);
    aborted = true;
    log("interrupted: stopping builds and servers (Ctrl-C again to quit at once)");
    for (const p of running) p.kill("SIGTERM"); // `timeout` passes it on to the build's process group
    void cleanup().finally(() => process.exit(130));
  });

  const all: Record<string, Record<string, ToolResult>> = {};
  let info: Record<string, string> = {};
  try {
    for (const name of o.tools) {
      const t = await makeTool(name, scratch, o);
      if (t) tools.push(t);
    }
    if (tools.length === 0) throw new Error("no tools to benchmark");
    info = await machineInfo(tools, o.workloads);
    log(`scratch: ${scratch}; tools: ${tools.map((t) => t.name).join(", ")}; make -j${o.jobs}`);
    for (const w of o.workloads) all[w] = await benchWorkload(WORKLOADS[w]!, tools, scratch, o);
  } finally {
    await cleanup();
  }

  const stamp = new Date().toISOString().replace(/\.\d+Z$/, "Z").replace(/:/g, "-");
  const settings = `make -j${o.jobs} (cargo build -j${o.jobs} for rust); reps: ${o.quick ? "1 (quick)" : o.reps ?? "cold 5 on lua, 3 on leveldb and rust; warm 5"}; cold = empty cache (server restarted, untimed), warm = \`make clean\` (\`cargo clean\`) then rebuild with the cache full`;
  let md = `# Kiln benchmark, ${stamp}\n\n`;
  md += Object.entries(info).map(([k, v]) => `- ${k}: ${v}`).join("\n");
  md += `\n- settings: ${settings}\n\n`;
  md += Object.entries(all).map(([w, r]) => workloadReport(w, r)).join("\n");
  const outDir = join(import.meta.dir, "results");
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, `${stamp}.md`), md);
  writeFileSync(join(outDir, `${stamp}.json`), JSON.stringify({ date: stamp, machine: info, options: o, workloads: all }, null, 2));
  process.stdout.write(md);
  log(`\nwritten: bench/results/${stamp}.md and .json`);
  if (Object.values(all).some((r) => Object.values(r).some((t) => t.error))) process.exitCode = 1;
}

main().catch((e: unknown) => {
  log(`bench: ${(e as Error).message}`);
  process.exitCode = 1;
});
