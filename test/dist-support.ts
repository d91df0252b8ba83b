// Scaffolding for the kiln-dist tests: a scheduler and build servers as separate processes
// (the real dist/kiln-dist executable), and a minimal job client speaking protocol.ts.

import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import {
  DIST_PROTOCOL_VERSION,
  decodeFrame,
  encodeFrame,
  splitPayload,
  type JobRequest,
  type JobResult,
  type SchedulerStatus,
} from "../src/dist/protocol.ts";
import { packagePrograms } from "../src/dist/toolchain.ts";
import { REPO, scratch } from "./support.ts";

export const KILN_DIST = join(REPO, "dist", "kiln-dist");

const children: Subprocess[] = [];
process.on("exit", () => {
  for (const c of children) c.kill("SIGKILL");
});

/** A child process whose stderr is collected as it arrives. */
export class Child {
  output = "";
  readonly proc: Subprocess<"ignore", "pipe", "pipe">;

  constructor(argv: string[], env: Record<string, string | undefined> = {}, wrap: string[] = []) {
    this.proc = Bun.spawn([...wrap, ...argv], {
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, ...env },
    });
    children.push(this.proc);
    void this.collect(this.proc.stderr);
    void this.collect(this.proc.stdout);
  }

  private async collect(stream: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    for await (const chunk of stream) this.output += decoder.decode(chunk, { stream: true });
  }

  /** Waits for a line matching `pattern` in the output; throws with the output on timeout. */
  async waitFor(pattern: RegExp, timeoutMs = 20_000): Promise<RegExpExecArray> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const m = pattern.exec(this.output);
      if (m) return m;
      if (this.proc.exitCode !== null) break;
      await Bun.sleep(25);
    }
    throw new Error(`no ${pattern} in the output of ${this.proc.pid} (exit ${this.proc.exitCode}):\n${this.output}`);
  }

  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<number> {
    this.proc.kill(signal);
    return this.proc.exited;
  }
}

export interface SchedulerProcess {
  url: string;
  clientToken: string;
  serverToken: string;
  child: Child;
  config: string;
}

export async function startScheduler(
  options: { clientToken?: string; serverToken?: string; heartbeatMs?: number; addr?: string; wrap?: string[]; extra?: string } = {},
): Promise<SchedulerProcess> {
  const dir = scratch("kd-");
  const clientToken = options.clientToken ?? `client-${crypto.randomUUID()}`;
  const serverToken = options.serverToken ?? `server-${crypto.randomUUID()}`;
  const config = join(dir, "scheduler.toml");
  writeFileSync(
    config,
    `public_addr = "${options.addr ?? "127.0.0.1:0"}"\nheartbeat_interval_ms = ${options.heartbeatMs ?? 2000}\n${options.extra ?? ""}` +
      `[client_auth]\ntype = "token"\ntoken = "${clientToken}"\n[server_auth]\ntype = "token"\ntoken = "${serverToken}"\n`,
  );
  const child = new Child([KILN_DIST, "scheduler", "--config", config], {}, options.wrap);
  const m = await child.waitFor(/listening on (http:\/\/\S+)/);
  return { url: m[1]!, clientToken, serverToken, child, config };
}

export interface ServerProcess {
  child: Child;
  dir: string;
}

export async function startServer(
  schedulerUrl: string,
  token: string,
  options: { name?: string; cores?: number; extra?: string; wrap?: string[]; waitJoined?: boolean; dir?: string } = {},
): Promise<ServerProcess> {
  const dir = options.dir ?? scratch("ks-");
  const config = join(dir, "server.toml");
  writeFileSync(
    config,
    `scheduler_url = "${schedulerUrl}"\ncache_dir = "${dir}/cache"\nbuild_dir = "${dir}/build"\n` +
      (options.name ? `name = "${options.name}"\n` : "") +
      (options.cores ? `cores = ${options.cores}\n` : "") +
      (options.extra ?? "") +
      `[scheduler_auth]\ntype = "token"\ntoken = "${token}"\n`,
  );
  const child = new Child([KILN_DIST, "server", "--config", config], { KILN_LOG: "debug" }, options.wrap);
  if (options.waitJoined !== false) await child.waitFor(/joined the scheduler/);
  return { child, dir };
}

export async function status(url: string, token: string): Promise<SchedulerStatus> {
  const res = await fetch(`${url}/api/v1/status`, { headers: { Authorization: `Bearer ${token}` } });
  if (!res.ok) throw new Error(`status: ${res.status} ${await res.text()}`);
  return (await res.json()) as SchedulerStatus;
}

/** Polls until `check` is true; throws `what` on timeout. */
export async function eventually(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await Bun.sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

export async function uploadToolchain(url: string, token: string, id: string, archive: Uint8Array): Promise<number> {
  const res = await fetch(`${url}/api/v1/toolchains/${id}`, { method: "PUT", headers: { Authorization: `Bearer ${token}` }, body: archive });
  await res.arrayBuffer();
  return res.status;
}

export interface JobDone {
  ok: true;
  status: 200;
  result: JobResult;
  stdout: string;
  stderr: string;
  outputs: Map<string, Uint8Array>;
}

export type JobAnswer = JobDone | { ok: false; status: number; text: string };

/** The answer of a job that ran; throws with the scheduler's reason otherwise. */
export function done(answer: JobAnswer): JobDone {
  if (!answer.ok) throw new Error(`job failed: ${answer.status} ${answer.text}`);
  return answer;
}

export interface JobSpec {
  toolchain: string;
  argv: string[];
  cwd: string;
  inputs: Record<string, Uint8Array | string>;
  outputs: string[];
  env?: Record<string, string>;
  timeoutMs?: number;
}

export function jobFrame(spec: JobSpec): Uint8Array {
  const files = Object.entries(spec.inputs).map(([path, data]) => [path, typeof data === "string" ? new TextEncoder().encode(data) : data] as const);
  const request: JobRequest = {
    version: DIST_PROTOCOL_VERSION,
    toolchain: spec.toolchain,
    argv: spec.argv,
    cwd: spec.cwd,
    env: spec.env ?? { LC_ALL: "C" },
    inputs: files.map(([path, data]) => ({ path, size: data.length })),
    outputs: spec.outputs,
    timeoutMs: spec.timeoutMs ?? 60_000,
  };
  return encodeFrame(request, files.map(([, data]) => data));
}

export async function postJob(url: string, token: string, body: Uint8Array | string, timeoutMs = 60_000): Promise<JobAnswer> {
  const res = await fetch(`${url}/api/v1/jobs`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}` },
    body,
    signal: AbortSignal.timeout(timeoutMs),
  });
  const bytes = new Uint8Array(await res.arrayBuffer());
  if (res.status !== 200) return { ok: false, status: res.status, text: new TextDecoder().decode(bytes) };
  const { header, payload } = decodeFrame<JobResult>(bytes);
  const parts = splitPayload(payload, [header.stdoutSize, header.stderrSize, ...header.outputs.map((o) => o.size)]);
  const decoder = new TextDecoder();
  return {
    ok: true,
    status: 200,
    result: header,
    stdout: decoder.decode(parts[0]),
    stderr: decoder.decode(parts[1]),
    outputs: new Map(header.outputs.map((o, i) => [o.path, parts[i + 2]!])),
  };
}

export function runJob(url: string, token: string, spec: JobSpec): Promise<JobAnswer> {
  return postJob(url, token, jobFrame(spec), (spec.timeoutMs ?? 60_000) + 40_000);
}

/** The "compiler" of a hand-made toolchain: misbehaves as its first argument says. */
export const EVILCC = `#!/bin/bash
netread() {
  if (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; then echo "tcp: connected"; else echo "tcp: refused"; fi
  if [ -r /etc/hostname ] && h=$(< /etc/hostname); then echo "hostname: $h"; else echo "hostname: unreadable"; fi
}
case "$1" in
  netread) netread "$2" "$3" ;;
  probe)
    netread "$2" "$3"
    for f in /pwned /usr/pwned ../pwned; do (echo pwned > "$f") 2>/dev/null && echo "wrote $f"; done
    echo ok > out.o ;;
  symlink) ln -s "$2" out.o ;;
  dirlink) rmdir linkdir; mkdir real && echo x > real/out.o && ln -s real linkdir ;;
  sleep) sleep "$2"; echo slept > out.o ;;
  none) ;;
esac
exit 0
`;

/** bash, ln, mkdir, rmdir and sleep with their libraries, and EVILCC as /usr/bin/evilcc. */
export function evilToolchain(): Promise<{ id: string; archive: Uint8Array }> {
  return packagePrograms(["/bin/bash", "/usr/bin/ln", "/usr/bin/mkdir", "/usr/bin/rmdir", "/usr/bin/sleep"], [
    { type: "file", path: "usr/bin/evilcc", data: new TextEncoder().encode(EVILCC), mode: 0o755 },
  ]);
}
