// Shared test scaffolding: an isolated Kiln (own cache, own socket directory, own daemon),
// real compilers, real workloads.

import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { StatsJson } from "../src/daemon/stats.ts";

export const REPO = resolve(import.meta.dir, "..");
export const KILN = join(REPO, "dist", "kiln");

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export function run(
  argv: string[],
  options: { cwd?: string; env?: Record<string, string | undefined>; timeoutMs?: number } = {},
): RunResult {
  const proc = Bun.spawnSync(argv, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdout: "pipe",
    stderr: "pipe",
    timeout: options.timeoutMs ?? 300_000,
  });
  return {
    exitCode: proc.exitCode ?? 128,
    stdout: proc.stdout.toString(),
    stderr: proc.stderr.toString(),
  };
}

/** Runs and throws with the output when the exit code is not 0. */
export function ok(argv: string[], options: Parameters<typeof run>[1] = {}): RunResult {
  const r = run(argv, options);
  if (r.exitCode !== 0) throw new Error(`${argv.join(" ")} exited ${r.exitCode}\n${r.stdout}\n${r.stderr}`);
  return r;
}

const scratchDirs: string[] = [];

/** A temporary directory removed after the test file. Short: socket paths must fit 108 bytes. */
export function scratch(prefix = "kt-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  scratchDirs.push(dir);
  return dir;
}

const instances: KilnInstance[] = [];

/**
 * Stops every daemon and removes every scratch directory: once, when the whole run ends
 * (test/setup.ts, preloaded by bunfig.toml; `bun test` fires no process exit event).
 */
export function cleanupAll(): void {
  for (const k of instances.splice(0)) k.kill();
  for (const d of scratchDirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

/** True while the process runs (a zombie nobody reaped yet counts as gone). */
export function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

/** One private Kiln: its own cache directory, socket directory and daemon. */
export class KilnInstance {
  readonly root: string;
  readonly env: Record<string, string | undefined>;

  constructor(extraEnv: Record<string, string | undefined> = {}) {
    this.root = scratch("kiln-");
    this.env = {
      ...process.env,
      KILN_DIR: join(this.root, "cache"),
      KILN_RUNTIME_DIR: join(this.root, "run"),
      KILN_CONF: undefined,
      XDG_CONFIG_HOME: join(this.root, "config"),
      KILN_LOG: "debug",
      KILN_IDLE_TIMEOUT: "300",
      ...extraEnv,
    };
    instances.push(this);
  }

  get logFile(): string {
    return join(this.root, "run", "daemon.log");
  }

  kiln(args: string[], options: { cwd?: string; env?: Record<string, string | undefined> } = {}): RunResult {
    return run([KILN, ...args], { cwd: options.cwd, env: { ...this.env, ...options.env } });
  }

  stats(): StatsJson["stats"] {
    const r = this.kiln(["-s", "--stats-format", "json"]);
    if (r.exitCode !== 0) throw new Error(`kiln -s failed: ${r.stderr}`);
    return (JSON.parse(r.stdout) as StatsJson).stats;
  }

  statsJson(): StatsJson {
    return JSON.parse(this.kiln(["-s", "--stats-format", "json"]).stdout) as StatsJson;
  }

  zero(): void {
    ok([KILN, "-z"], { env: this.env });
  }

  daemonPid(): number | undefined {
    try {
      return (JSON.parse(readFileSync(join(this.root, "run", "daemon.lock"), "utf8")) as { pid: number })
        .pid;
    } catch {
      return undefined;
    }
  }

  stop(): void {
    this.kiln(["--stop-server"]);
  }

  kill(): void {
    const pid = this.daemonPid();
    if (pid) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {}
    }
  }
}

/** A workload's sources (downloaded once, cached under ~/.cache), copied to a fresh directory. */
export function workload(name: string, into = scratch("wl-")): string {
  const src = ok([join(REPO, "scripts", "workload.sh"), name], { timeoutMs: 600_000 }).stdout.trim();
  const dest = join(into, name);
  cpSync(src, dest, { recursive: true });
  return dest;
}

/**
 * Writes files (creating directories) under `dir`. Then waits a little: a file stamped
 * within a few clock ticks of a compile's start counts as written during it, and direct
 * mode does not record it (CLOCK_SLACK_MS), which would make hits depend on timing.
 */
export function writeFiles(dir: string, files: Record<string, string>): void {
  for (const [name, body] of Object.entries(files)) {
    mkdirSync(join(dir, name, ".."), { recursive: true });
    writeFileSync(join(dir, name), body);
  }
  Bun.sleepSync(30);
}

export function sha256File(path: string): string {
  return new Bun.CryptoHasher("sha256").update(readFileSync(path)).digest("hex");
}
