// bench/dist.ts: the overhead of one remote compile on loopback. lua5.4 is built at -j2 with
// every job sent to build servers on this machine: Kiln (kiln-dist scheduler + servers),
// distcc (distccd on 127.0.0.1) and icecream (icecc-scheduler + iceccd, ICECC_PREFERRED_HOST),
// and plainly. Overhead per job = (median build − median plain build) / jobs. Kiln runs with
// KILN_RECACHE=1, so its cache answers nothing and every job goes remote.
//
//   bun bench/dist.ts [--reps N] [--servers N] [--jobs N] [--tools plain,kiln,distcc,icecc] [--keep]
//
// Progress on stderr; a Markdown table on stdout and in bench/results/dist-<time>.md.

import { chmodSync, chownSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";

const repo = resolve(import.meta.dir, "..");
const KILN = join(repo, "dist", "kiln");
const KILN_DIST = join(repo, "dist", "kiln-dist");

type ToolName = "plain" | "kiln" | "distcc" | "icecc";
interface Options {
  reps: number;
  servers: number;
  jobs: number;
  tools: ToolName[];
  keep: boolean;
}

function parseOptions(argv: string[]): Options {
  const o: Options = { reps: 3, servers: 2, jobs: 2, tools: ["plain", "kiln", "distcc", "icecc"], keep: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === "--reps") o.reps = Number(value());
    else if (a === "--servers") o.servers = Number(value());
    else if (a === "--jobs") o.jobs = Number(value());
    else if (a === "--tools") o.tools = value().split(",") as ToolName[];
    else if (a === "--keep") o.keep = true;
    else throw new Error(`unknown option ${a}; see the header of bench/dist.ts`);
  }
  return o;
}

const log = (m: string) => process.stderr.write(`[dist-bench] ${m}\n`);
const processes: Subprocess[] = [];

function start(argv: string[], env: Record<string, string | undefined> = process.env): Subprocess {
  const p = Bun.spawn(argv, { env, stdin: "ignore", stdout: "ignore", stderr: "ignore" });
  processes.push(p);
  return p;
}

function freePort(): number {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

function sh(argv: string[], env: Record<string, string | undefined> = process.env, cwd?: string): { code: number; out: string; err: string } {
  const r = Bun.spawnSync(argv, { env, cwd, stdout: "pipe", stderr: "pipe", timeout: 600_000 });
  return { code: r.exitCode ?? 128, out: r.stdout.toString(), err: r.stderr.toString() };
}

async function until(check: () => Promise<boolean> | boolean, what: string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return;
    await Bun.sleep(100);
  }
  throw new Error(`timed out: ${what}`);
}

/**
 * Runs a build under coreutils `timeout`: its rusage then covers make and everything make
 * waited for (the compilers, or the kiln/distcc/icecc clients and their preprocessors).
 */
async function build(argv: string[], env: Record<string, string | undefined>): Promise<{ code: number; wallSec: number; cpuSec: number; err: string }> {
  const started = performance.now();
  const proc = Bun.spawn(["timeout", "-k", "10", "600", ...argv], { env, stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  const err = await new Response(proc.stderr).text();
  const code = await proc.exited;
  const usage = proc.resourceUsage();
  const cpuSec = usage ? Number(usage.cpuTime.user + usage.cpuTime.system) / 1e6 : NaN;
  return { code, wallSec: (performance.now() - started) / 1000, cpuSec, err };
}

const clkTck = Number(sh(["getconf", "CLK_TCK"]).out.trim()) || 100;

/** utime+stime+cutime+cstime of a process (a daemon and the preprocessors it reaped). */
function procCpuSec(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ").map(Number);
    return (f[11]! + f[12]! + f[13]! + f[14]!) / clkTck;
  } catch {
    return 0;
  }
}

interface Tool {
  name: ToolName;
  cc: string;
  env: Record<string, string | undefined>;
  /** A daemon on the client side whose CPU counts as the client's (Kiln's). */
  daemonPid?: () => number | undefined;
  /** How many of the last build's jobs ran remotely, if the tool can say. */
  remoteJobs?: () => number | undefined;
  note?: string;
}

async function kilnTool(root: string, o: Options): Promise<Tool> {
  for (const bin of [KILN, KILN_DIST]) if (!existsSync(bin)) throw new Error(`${bin} is missing: run bun scripts/build.ts`);
  const port = freePort();
  const clientToken = crypto.randomUUID();
  const serverToken = crypto.randomUUID();
  writeFileSync(
    join(root, "scheduler.toml"),
    `public_addr = "127.0.0.1:${port}"\n[client_auth]\ntype = "token"\ntoken = "${clientToken}"\n[server_auth]\ntype = "token"\ntoken = "${serverToken}"\n`,
  );
  start([KILN_DIST, "scheduler", "--config", join(root, "scheduler.toml")]);
  const cores = Math.max(1, Math.ceil(o.jobs / o.servers));
  for (let i = 0; i < o.servers; i++) {
    const dir = join(root, `server${i}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      join(dir, "server.toml"),
      `scheduler_url = "http://127.0.0.1:${port}"\nname = "bench${i}"\ncores = ${cores}\ncache_dir = "${dir}/cache"\nbuild_dir = "${dir}/build"\n` +
        `[scheduler_auth]\ntype = "token"\ntoken = "${serverToken}"\n`,
    );
    start([KILN_DIST, "server", "--config", join(dir, "server.toml")]);
  }
  await until(async () => {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/api/v1/status`, { headers: { authorization: `Bearer ${clientToken}` } });
      return r.ok && ((await r.json()) as { numServers: number }).numServers === o.servers;
    } catch {
      return false;
    }
  }, "kiln-dist servers joined");
  const env = {
    ...process.env,
    KILN_DIR: join(root, "kiln-cache"),
    KILN_RUNTIME_DIR: join(root, "kiln-run"),
    KILN_CONF: undefined,
    XDG_CONFIG_HOME: join(root, "kiln-config"),
    KILN_IDLE_TIMEOUT: "0",
    KILN_RECACHE: "1",
    KILN_LOG: "warn",
    KILN_DIST_SCHEDULER_URL: `http://127.0.0.1:${port}`,
    KILN_DIST_TOKEN: clientToken,
  };
  mkdirSync(env.KILN_RUNTIME_DIR, { recursive: true, mode: 0o700 });
  sh([KILN, "--start-server"], env);
  const stats = () => JSON.parse(sh([KILN, "-s", "--stats-format", "json"], env).out).stats as { dist_compiles: Record<string, number> };
  const daemonPid = () => {
    try {
      return (JSON.parse(readFileSync(join(env.KILN_RUNTIME_DIR, "daemon.lock"), "utf8")) as { pid: number }).pid;
    } catch {
      return undefined;
    }
  };
  return {
    name: "kiln",
    cc: `${KILN} gcc -std=gnu99`,
    env,
    daemonPid,
    remoteJobs: () => {
      const n = Object.values(stats().dist_compiles).reduce((a, b) => a + b, 0);
      sh([KILN, "-z"], env);
      return n;
    },
    note: `${o.servers} kiln-dist server(s) × ${cores} cores`,
  };
}

async function distccTool(root: string, o: Options): Promise<Tool> {
  const port = freePort();
  const args = ["distccd", "--daemon", "--no-detach", "--listen", "127.0.0.1", "--port", String(port), "--allow", "127.0.0.1", "--jobs", String(o.jobs + 1), "--log-file", join(root, "distccd.log")];
  if (process.getuid?.() === 0) args.push("--user", "nobody");
  start(args);
  await until(async () => {
    try {
      (await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } })).end();
      return true;
    } catch {
      return false;
    }
  }, "distccd listens");
  const distccDir = join(root, "distcc");
  mkdirSync(distccDir, { recursive: true });
  // No "localhost" in the hosts: distcc then never compiles locally (except on failure).
  return { name: "distcc", cc: "distcc gcc -std=gnu99", env: { ...process.env, DISTCC_HOSTS: `127.0.0.1:${port}/${o.jobs + 1}`, DISTCC_DIR: distccDir, DISTCC_FALLBACK: "0" } };
}

async function iceccTool(root: string, o: Options): Promise<Tool> {
  if (process.getuid?.() !== 0) throw new Error("iceccd needs root here (it chroots into toolchain environments)");
  const schedPort = freePort();
  const daemonPort = freePort();
  const net = `kilnbench${process.pid}`;
  // iceccd runs as the icecc user and recreates its environment directory: the directory
  // and its parent must be that user's, and the path to them traversable.
  const home = join(root, "icecc");
  const envDir = join(home, "envs");
  mkdirSync(envDir, { recursive: true });
  chmodSync(root, 0o755);
  const uid = Number(sh(["id", "-u", "icecc"]).out.trim());
  const gid = Number(sh(["id", "-g", "icecc"]).out.trim());
  if (!Number.isInteger(uid)) throw new Error("there is no icecc user (install the icecc package)");
  chownSync(home, uid, gid);
  chownSync(envDir, uid, gid);
  start(["icecc-scheduler", "-n", net, "-p", String(schedPort), "-l", join(home, "scheduler.log")]);
  const node = `kilnbench-${hostname()}`;
  start(["iceccd", "-n", net, "-s", `127.0.0.1:${schedPort}`, "-p", String(daemonPort), "-b", envDir, "-m", String(o.jobs + 1), "-N", node, "-l", join(home, "iceccd.log"), "-vv"]);
  await until(() => existsSync(join(home, "iceccd.log")) && readFileSync(join(home, "iceccd.log"), "utf8").includes("Connected to scheduler"), "iceccd connected to icecc-scheduler", 60_000);
  return {
    name: "icecc",
    cc: "icecc gcc -std=gnu99",
    env: { ...process.env, ICECC_PREFERRED_HOST: node, ICECC_SCHEDULER: `127.0.0.1:${schedPort}` },
    note: "one iceccd, ICECC_PREFERRED_HOST set to it",
  };
}

function makeArgs(dir: string, tool: Tool, jobs: number): string[] {
  return ["make", "-C", join(dir, "src"), `-j${jobs}`, "linux", `CC=${tool.cc}`];
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function main(): Promise<number> {
  const o = parseOptions(process.argv.slice(2));
  const src = sh(["bash", join(repo, "scripts", "workload.sh"), "lua5.4"]).out.trim();
  const root = mkdtempSync(join(tmpdir(), "kiln-bench-dist-"));
  const tools: Tool[] = [];
  const skipped: string[] = [];
  try {
    for (const name of o.tools) {
      try {
        if (name === "plain") tools.push({ name, cc: "gcc -std=gnu99", env: process.env });
        else if (name === "kiln") tools.push(await kilnTool(root, o));
        else if (name === "distcc") tools.push(await distccTool(root, o));
        else if (name === "icecc") tools.push(await iceccTool(root, o));
      } catch (e) {
        skipped.push(`${name}: ${(e as Error).message}`);
        log(`skipping ${name}: ${(e as Error).message}`);
      }
    }
    const walls = new Map<ToolName, number[]>();
    const cpus = new Map<ToolName, number[]>();
    const remote = new Map<ToolName, number[]>();
    const failures: string[] = [];
    let jobs = 0;
    for (const tool of tools) {
      const dir = join(root, tool.name, "lua");
      cpSync(src, dir, { recursive: true });
      // A warm-up build: toolchain packaging and upload, first server fetch, page cache.
      const warm = sh(makeArgs(dir, tool, o.jobs), tool.env);
      if (warm.code !== 0) failures.push(`${tool.name} warm-up build failed: ${warm.err.slice(-500)}`);
      tool.remoteJobs?.();
    }
    for (let rep = 0; rep < o.reps; rep++) {
      for (const tool of tools) {
        const dir = join(root, tool.name, "lua");
        sh(["make", "-C", join(dir, "src"), "clean"]);
        const daemonBefore = procCpuSec(tool.daemonPid?.());
        const r = await build(makeArgs(dir, tool, o.jobs), tool.env);
        const wall = r.wallSec;
        if (r.code !== 0) {
          failures.push(`${tool.name} rep ${rep + 1} failed: ${r.err.slice(-500)}`);
          continue;
        }
        const cpu = r.cpuSec + procCpuSec(tool.daemonPid?.()) - daemonBefore;
        (cpus.get(tool.name) ?? cpus.set(tool.name, []).get(tool.name)!).push(cpu);
        jobs = readdirSync(join(dir, "src")).filter((f) => f.endsWith(".o")).length;
        const n = tool.remoteJobs?.();
        if (n !== undefined) (remote.get(tool.name) ?? remote.set(tool.name, []).get(tool.name)!).push(n);
        (walls.get(tool.name) ?? walls.set(tool.name, []).get(tool.name)!).push(wall);
        log(`${tool.name} rep ${rep + 1}: ${wall.toFixed(2)} s, client CPU ${cpu.toFixed(2)} s${n !== undefined ? `, ${n}/${jobs} jobs remote` : ""}`);
      }
    }
    const plain = walls.get("plain");
    const rows = tools
      .filter((t) => walls.has(t.name))
      .map((t) => {
        const w = walls.get(t.name)!;
        const m = median(w);
        const overhead = plain && t.name !== "plain" ? `${(((m - median(plain)) / jobs) * 1000).toFixed(1)}` : "-";
        const r = remote.get(t.name);
        const cpu = median(cpus.get(t.name)!);
        return `| ${t.name} | ${m.toFixed(2)} (${Math.min(...w).toFixed(2)}–${Math.max(...w).toFixed(2)}) | ${overhead} | ${cpu.toFixed(2)} | ${r ? `${Math.min(...r)}/${jobs}` : "n/a"} | ${t.note ?? ""} |`;
      });
    const report = [
      `## Remote compile overhead on loopback: lua5.4, make -j${o.jobs}, ${jobs} jobs, ${o.reps} reps`,
      "",
      "| tool | build wall s, median (min–max) | overhead ms/job vs plain | client CPU s | jobs remote (min) | setup |",
      "|---|---|---|---|---|---|",
      ...rows,
      "",
      "Anchors from the issue: distcc 12-15 ms/job, icecream 16-41 ms/job; Kiln's goal ≤ 10 ms/job.",
      "Client CPU: make and everything it waited for, plus the Kiln daemon's own CPU and the preprocessors it ran (median).",
      ...(skipped.length ? ["", ...skipped.map((s) => `- skipped ${s}`)] : []),
      ...(failures.length ? ["", ...failures.map((s) => `- ${s}`)] : []),
    ].join("\n");
    console.log(report);
    mkdirSync(join(repo, "bench", "results"), { recursive: true });
    writeFileSync(join(repo, "bench", "results", `dist-${new Date().toISOString().replace(/[:.]/g, "-")}.md`), report + "\n");
    return failures.length ? 1 : 0;
  } finally {
    const kiln = tools.find((t) => t.name === "kiln");
    if (kiln) sh([KILN, "--stop-server"], kiln.env);
    for (const p of processes) p.kill("SIGTERM");
    await Promise.all(processes.map((p) => Promise.race([p.exited, Bun.sleep(3_000)])));
    for (const p of processes) p.kill("SIGKILL");
    if (!o.keep) rmSync(root, { recursive: true, force: true });
    else log(`kept ${root}`);
  }
}

process.exitCode = await main();
