// A build server: dials out to the scheduler over a WebSocket (so it needs no inbound port
// and no routable address), announces its cores, heartbeats, and runs the jobs it is sent,
// each in a bubblewrap sandbox (sandbox.ts) in a fresh build directory. It reconnects with
// jittered backoff whenever the connection drops, so servers and schedulers restart in any
// order.
//
// Nothing from a job is trusted: the request is checked again here, inputs are written with
// O_EXCL|O_NOFOLLOW into a directory only this job uses, and outputs are read back only if
// they are regular files reached through real directories inside that directory.

import { closeSync, constants, fstatSync, lstatSync, mkdirSync, mkdtempSync, openSync, readSync, readdirSync, rmSync, writeSync } from "node:fs";
import { dirname, join } from "node:path";
import { KilnError } from "../util/errors.ts";
import type { ServerConfig } from "./config.ts";
import type { DistLog } from "./log.ts";
import {
  DIST_PROTOCOL_VERSION,
  LIMITS,
  MalformedFrame,
  decodeFrame,
  encodeFrame,
  jobRequestProblem,
  splitPayload,
  type FileRef,
  type JobRequest,
  type JobResult,
  type SchedulerMessage,
  type ServerMessage,
} from "./protocol.ts";
import { cwdProblem, probeSandbox, runSandboxed } from "./sandbox.ts";
import { ToolchainCache } from "./toolchain-cache.ts";

export interface BuildServerOptions extends ServerConfig {
  log: DistLog;
  /** Longest wait between reconnection attempts. */
  maxBackoffMs?: number;
}

/** A job that cannot run (as opposed to a compiler that fails): the client falls back. */
class JobFailure extends Error {}

export class BuildServer {
  private readonly toolchains: ToolchainCache;
  private readonly running = new Map<string, AbortController>();
  private socket: WebSocket | undefined;
  private heartbeat: ReturnType<typeof setInterval> | undefined;
  private reconnect: ReturnType<typeof setTimeout> | undefined;
  private attempts = 0;
  private welcomed = false;
  private closed = false;
  private lastProblem = "";

  /** Probes the sandbox first; throws a KilnError saying what to fix when it cannot work. */
  static async start(options: BuildServerOptions): Promise<BuildServer> {
    const problem = await probeSandbox(options.bwrap);
    if (problem) {
      throw new KilnError("KILN_DIST_SANDBOX", `${problem}; a build server runs every job in a bubblewrap sandbox`, {
        hint: "install bubblewrap (apt-get install bubblewrap), set [builder] bwrap_path, and allow unprivileged user namespaces or run as root (in a container: --privileged or a seccomp profile that allows unshare)",
      });
    }
    const server = new BuildServer(options, claimBuildDir(options.buildDir, options.log));
    server.connect();
    return server;
  }

  private constructor(
    private readonly options: BuildServerOptions,
    /** This process's own directory under build_dir; jobs get fresh ones below it. */
    private readonly jobsDir: string,
  ) {
    this.toolchains = new ToolchainCache(join(options.cacheDir, "toolchains"), options.toolchainCacheSize, (id) =>
      options.log.info(`toolchain ${id.slice(0, 12)} evicted (cache limit ${options.toolchainCacheSize} bytes)`),
    );
  }

  /** Connected and welcomed by the scheduler. */
  get connected(): boolean {
    return this.welcomed;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.reconnect);
    clearInterval(this.heartbeat);
    for (const job of this.running.values()) job.abort();
    this.socket?.close(1000, "server stopping");
  }

  private get wsUrl(): string {
    return `${this.options.schedulerUrl.replace(/^http/, "ws").replace(/\/$/, "")}/api/v1/servers/connect`;
  }

  private connect(): void {
    if (this.closed) return;
    const ws = new WebSocket(this.wsUrl, { headers: { Authorization: `Bearer ${this.options.token}` } } as unknown as string[]);
    ws.binaryType = "arraybuffer";
    this.socket = ws;
    ws.onopen = () => {
      this.send(ws, {
        type: "hello",
        version: DIST_PROTOCOL_VERSION,
        name: this.options.name,
        cores: this.options.cores,
        capacity: this.options.capacity,
        toolchains: this.toolchains.ids(),
      });
    };
    ws.onmessage = (event) => {
      if (!(event.data instanceof ArrayBuffer)) return;
      try {
        this.onMessage(ws, new Uint8Array(event.data));
      } catch (e) {
        this.options.log.error(`message from the scheduler: ${e instanceof Error ? e.stack : String(e)}`);
      }
    };
    ws.onclose = (event) => {
      if (this.socket !== ws) return;
      const wasWelcomed = this.welcomed;
      this.welcomed = false;
      clearInterval(this.heartbeat);
      // Results of running jobs can no longer be delivered; the scheduler has failed them.
      for (const job of this.running.values()) job.abort();
      if (this.closed) return;
      if (wasWelcomed) this.options.log.warn(`lost the scheduler at ${this.options.schedulerUrl} (${event.code} ${event.reason}); reconnecting`);
      else void this.explainRefusal(event.code, event.reason);
      const delay = Math.min(this.options.maxBackoffMs ?? 5000, 200 * 2 ** this.attempts++) * (0.5 + Math.random() / 2);
      this.reconnect = setTimeout(() => this.connect(), delay);
    };
    ws.onerror = () => {
      // onclose follows and handles it
    };
  }

  /** Says once, clearly, why the scheduler keeps refusing (a wrong token, no scheduler). */
  private async explainRefusal(code: number, reason: string): Promise<void> {
    let problem: string;
    try {
      const res = await fetch(this.wsUrl.replace(/^ws/, "http"), {
        headers: { Authorization: `Bearer ${this.options.token}` },
        signal: AbortSignal.timeout(5000),
      });
      const body = (await res.text()).trim();
      problem = res.status === 401
        ? `the scheduler at ${this.options.schedulerUrl} rejected the server token (401): check [scheduler_auth] token against the scheduler's [server_auth] token`
        : reason
          ? `the scheduler at ${this.options.schedulerUrl} closed the connection (${code}): ${reason}`
          : `the scheduler at ${this.options.schedulerUrl} refused the connection (${res.status} ${body.slice(0, 200)})`;
    } catch (e) {
      problem = `cannot reach the scheduler at ${this.options.schedulerUrl}: ${e instanceof Error ? e.message : String(e)}; retrying`;
    }
    if (problem !== this.lastProblem) this.options.log.error(problem);
    this.lastProblem = problem;
  }

  private send(ws: WebSocket, message: ServerMessage, payload: Uint8Array[] = []): void {
    if (ws.readyState === WebSocket.OPEN) ws.send(encodeFrame(message, payload));
  }

  private onMessage(ws: WebSocket, frame: Uint8Array): void {
    let message: SchedulerMessage;
    let payload: Uint8Array;
    try {
      ({ header: message, payload } = decodeFrame<SchedulerMessage>(frame));
    } catch (e) {
      if (e instanceof MalformedFrame) {
        this.options.log.error(`malformed frame from the scheduler: ${e.message}`);
        return;
      }
      throw e;
    }
    switch (message.type) {
      case "welcome": {
        if (message.version !== DIST_PROTOCOL_VERSION) {
          this.options.log.error(`the scheduler speaks protocol ${message.version}, this server ${DIST_PROTOCOL_VERSION}; update one of them`);
          ws.close(1000, "protocol version mismatch");
          return;
        }
        this.welcomed = true;
        this.attempts = 0;
        this.lastProblem = "";
        this.options.log.info(`joined the scheduler at ${this.options.schedulerUrl} (${this.options.cores} cores, capacity ${this.options.capacity})`);
        clearInterval(this.heartbeat);
        const beat = Math.max(100, Math.min(message.heartbeatMs, 60_000));
        this.heartbeat = setInterval(() => this.send(ws, { type: "heartbeat", running: this.running.size, toolchains: this.toolchains.ids() }), beat);
        return;
      }
      case "job": {
        const { jobId, request } = message;
        if (typeof jobId !== "string") return;
        // Copy: the socket's buffer is not ours past this call.
        void this.runJob(ws, jobId, request, payload.slice());
        return;
      }
      case "cancel":
        this.running.get(message.jobId)?.abort();
        return;
    }
  }

  private async runJob(ws: WebSocket, jobId: string, request: JobRequest, payload: Uint8Array): Promise<void> {
    if (this.running.size >= this.options.capacity) {
      this.send(ws, { type: "failed", jobId, reason: `server ${this.options.name} is at its capacity of ${this.options.capacity} jobs` });
      return;
    }
    const abort = new AbortController();
    this.running.set(jobId, abort);
    try {
      const { result, files } = await this.execute(request, payload, abort.signal);
      this.send(ws, { type: "result", jobId, result }, files);
    } catch (e) {
      const reason = e instanceof JobFailure || e instanceof Error ? e.message : String(e);
      if (!(e instanceof JobFailure)) this.options.log.warn(`job ${jobId}: ${reason}`);
      this.send(ws, { type: "failed", jobId, reason });
    } finally {
      this.running.delete(jobId);
    }
  }

  private async execute(request: JobRequest, payload: Uint8Array, signal: AbortSignal): Promise<{ result: JobResult; files: Uint8Array[] }> {
    const t0 = performance.now();
    const problem = jobRequestProblem(request, payload.length);
    if (problem) throw new JobFailure(`bad job request: ${problem}`);
    const toolchain = await this.toolchains.acquire(request.toolchain, (id) => this.fetchToolchain(id)).catch((e: unknown) => {
      throw new JobFailure(`toolchain ${request.toolchain.slice(0, 12)}: ${e instanceof Error ? e.message : String(e)}`);
    });
    const t1 = performance.now();
    let buildDir: string | undefined;
    let t2 = t1;
    let t3 = t1;
    try {
      buildDir = mkdtempSync(join(this.jobsDir, "job-"));
      const cwdError = cwdProblem(request.cwd, toolchain.dir);
      if (cwdError) throw new JobFailure(`bad job request: ${cwdError}`);
      writeInputs(buildDir, request.inputs, payload);
      // Compilers write into existing directories only (`-o obj/x.o`); nothing in this fresh
      // directory is a symlink yet, so these stay inside it.
      for (const output of request.outputs) mkdirSync(dirname(join(buildDir, output)), { recursive: true });
      t2 = performance.now();
      const run = await runSandboxed(
        {
          bwrap: this.options.bwrap,
          toolchainDir: toolchain.dir,
          buildDir,
          cwd: request.cwd,
          argv: request.argv,
          env: { PATH: "/usr/bin:/bin", ...request.env },
          timeoutMs: request.timeoutMs,
          maxOutputBytes: LIMITS.jobOutputBytes,
        },
        signal,
      );
      t3 = performance.now();
      if (signal.aborted) throw new JobFailure("cancelled");
      if (run.timedOut) throw new JobFailure(`timed out after ${request.timeoutMs} ms`);
      if (run.overflowed) throw new JobFailure(`stdout and stderr exceed ${LIMITS.jobOutputBytes} bytes`);
      const outputs: FileRef[] = [];
      const files: Uint8Array[] = [run.stdout, run.stderr];
      let total = run.stdout.length + run.stderr.length;
      if (run.exitCode === 0) {
        for (const path of request.outputs) {
          const data = readOutput(buildDir, path, LIMITS.jobOutputBytes - total);
          total += data.length;
          outputs.push({ path, size: data.length });
          files.push(data);
        }
      }
      if (total > LIMITS.jobOutputBytes) throw new JobFailure(`outputs exceed ${LIMITS.jobOutputBytes} bytes`);
      const result: JobResult = {
        version: DIST_PROTOCOL_VERSION,
        exitCode: run.exitCode,
        stdoutSize: run.stdout.length,
        stderrSize: run.stderr.length,
        outputs,
        server: this.options.name,
      };
      return { result, files };
    } finally {
      toolchain.release();
      if (buildDir) rmSync(buildDir, { recursive: true, force: true });
      const ms = (a: number, b: number): string => (b - a).toFixed(1);
      this.options.log.debug(
        `job ${request.argv[0]}: toolchain ${ms(t0, t1)} ms, inputs ${ms(t1, t2)} ms, sandbox ${ms(t2, t3)} ms, outputs and cleanup ${ms(t3, performance.now())} ms`,
      );
    }
  }

  private async fetchToolchain(id: string): Promise<Uint8Array> {
    const url = `${this.options.schedulerUrl.replace(/\/$/, "")}/api/v1/toolchains/${id}`;
    const res = await fetch(url, {
      headers: { Authorization: `Bearer ${this.options.token}` },
      signal: AbortSignal.timeout(10 * 60_000),
    });
    if (!res.ok) throw new Error(`fetching it from the scheduler gave ${res.status} ${(await res.text()).trim().slice(0, 200)}`);
    const length = Number(res.headers.get("content-length") ?? "0");
    if (length > LIMITS.toolchainBytes) throw new Error(`the archive is ${length} bytes, more than ${LIMITS.toolchainBytes}`);
    const archive = await res.bytes();
    this.options.log.info(`toolchain ${id.slice(0, 12)} fetched (${archive.length} bytes)`);
    return archive;
  }
}

/**
 * Makes `<buildDir>/server-<pid>` for this process's jobs, and removes those of server
 * processes that are gone (killed mid-job, their job directories were never cleaned up).
 */
function claimBuildDir(buildDir: string, log: DistLog): string {
  mkdirSync(buildDir, { recursive: true });
  for (const name of readdirSync(buildDir)) {
    const pid = /^server-(\d+)$/.exec(name)?.[1];
    if (pid === undefined || Number(pid) === process.pid || processExists(Number(pid))) continue;
    rmSync(join(buildDir, name), { recursive: true, force: true });
    log.info(`removed ${join(buildDir, name)}, left by a server process that is gone`);
  }
  const own = join(buildDir, `server-${process.pid}`);
  rmSync(own, { recursive: true, force: true });
  mkdirSync(own);
  return own;
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Writes a job's inputs into its fresh build directory. */
function writeInputs(buildDir: string, inputs: readonly FileRef[], payload: Uint8Array): void {
  const parts = splitPayload(payload, inputs.map((f) => f.size));
  inputs.forEach((file, i) => {
    const path = join(buildDir, file.path);
    try {
      mkdirSync(dirname(path), { recursive: true });
      const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, (file.mode ?? 0) & 0o100 ? 0o755 : 0o644);
      try {
        const data = parts[i]!;
        for (let off = 0; off < data.length; ) off += writeSync(fd, data, off);
      } finally {
        closeSync(fd);
      }
    } catch (e) {
      throw new JobFailure(`input ${JSON.stringify(file.path)}: cannot write it (${e instanceof Error ? e.message : String(e)})`);
    }
  });
}

/**
 * Reads an output the compiler wrote: it must be a regular file reached through real
 * directories (no symlinks) inside the build directory. The sandbox's processes are gone by
 * now (its PID namespace died with it), so nothing can swap a path between check and read.
 */
function readOutput(buildDir: string, path: string, maxBytes: number): Uint8Array {
  const where = `output ${JSON.stringify(path)}`;
  const parts = path.split("/");
  for (let i = 1; i <= parts.length; i++) {
    const at = join(buildDir, ...parts.slice(0, i));
    let stat;
    try {
      stat = lstatSync(at);
    } catch {
      throw new JobFailure(`${where}: the compiler did not write it`);
    }
    const last = i === parts.length;
    if (stat.isSymbolicLink()) throw new JobFailure(`${where}: ${last ? "is" : "goes through"} a symlink`);
    if (!last && !stat.isDirectory()) throw new JobFailure(`${where}: ${parts.slice(0, i).join("/")} is not a directory`);
    if (last && !stat.isFile()) throw new JobFailure(`${where}: not a regular file`);
  }
  const fd = openSync(join(buildDir, path), constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const size = fstatSync(fd).size;
    if (size > maxBytes) throw new JobFailure(`${where}: ${size} bytes, more than the ${LIMITS.jobOutputBytes} allowed for outputs`);
    const data = new Uint8Array(size);
    for (let off = 0; off < size; ) {
      const n = readSync(fd, data, off, size - off, off);
      if (n === 0) break;
      off += n;
    }
    return data;
  } finally {
    closeSync(fd);
  }
}
