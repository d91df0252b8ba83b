// The per-user daemon: owns the socket while it holds the lock, serves compile requests and
// commands, and exits on `--stop-server`, SIGTERM/SIGINT, idle timeout, or when a newer
// client shows up.

import { rmSync, writeFileSync } from "node:fs";
import type { Socket } from "bun";
import { loadConfig, type KilnConfig } from "../config/config.ts";
import { runtimePaths, type RuntimePaths } from "../ipc/paths.ts";
import { ensurePrivateDir } from "../ipc/private-dir.ts";
import {
  decodeJson,
  encodeDone,
  encodeFrame,
  encodeJson,
  encodeText,
  FrameReader,
  Kind,
  PROTOCOL_VERSION,
  type Command,
  type CompileCall,
  type Frame,
} from "../ipc/wire.ts";
import { DiskStorage } from "../storage/disk.ts";
import { tieredStorage } from "../storage/levels.ts";
import type { TieredStorage } from "../storage/tiered.ts";
import { isKilnError } from "../util/errors.ts";
import { CompileService } from "./compile.ts";
import { distCompilerFor } from "./dist-setup.ts";
import { Logger } from "./log.ts";
import { Stats, type StatsJson } from "./stats.ts";
import { tryLock } from "./lock.ts";

/** After this long without requests the daemon runs a full GC (a build's burst is over). */
const GC_WHEN_QUIET_MS = 500;

/** How long shutdown waits for compiles in flight and cache writes before giving up on them. */
const DRAIN_TIMEOUT_MS = 60_000;

interface Connection {
  reader: FrameReader;
  /** Bytes the socket has not taken yet. */
  pending: Uint8Array;
  answered: boolean;
  /** The last frame is queued: close once `pending` is written. */
  replied: boolean;
}

export interface LockInfo {
  pid: number;
  version: number;
  socket: string;
}

export async function runDaemon(env: Record<string, string | undefined>): Promise<number> {
  const paths = runtimePaths(env, process.getuid?.() ?? 0);
  let config: KilnConfig;
  let warnings: string[];
  try {
    ensurePrivateDir(paths.dir);
    ({ config, warnings } = loadConfig(env));
  } catch (e) {
    const message = isKilnError(e) ? e.format().replace(/^kiln: error: /, "") : String(e);
    try {
      writeFileSync(paths.startError, message + "\n", { mode: 0o600 });
    } catch {}
    return 2;
  }
  const lock = tryLock(paths.lock);
  if (!lock) return 0; // Another daemon runs (or is starting): it serves.
  const daemon = new Daemon(paths, config, env);
  for (const w of warnings) daemon.log.warn(w);
  try {
    daemon.listen();
    lock.write(JSON.stringify({ pid: process.pid, version: PROTOCOL_VERSION, socket: paths.socket } satisfies LockInfo) + "\n");
    rmSync(paths.startError, { force: true });
    await daemon.finished;
  } catch (e) {
    try {
      writeFileSync(paths.startError, `cannot listen on ${paths.socket}: ${(e as Error).message}\n`, { mode: 0o600 });
    } catch {}
    daemon.log.error(`daemon failed: ${(e as Error).stack ?? e}`);
    return 2;
  } finally {
    daemon.log.close();
    lock.release();
  }
  return 0;
}

class Daemon {
  readonly log: Logger;
  readonly finished: Promise<void>;
  private readonly stats = new Stats();
  private readonly disk: DiskStorage;
  /** Local disk, then the shared levels ([cache.multilevel]). */
  private readonly storage: TieredStorage;
  private readonly service: CompileService;
  private server: ReturnType<typeof Bun.listen<Connection>> | undefined;
  private inflight = 0;
  private readonly background = new Set<Promise<unknown>>();
  private idleTimer: Timer | undefined;
  private gcTimer: Timer | undefined;
  private closing: Promise<void> | undefined;
  private resolveFinished!: () => void;

  constructor(
    private readonly paths: RuntimePaths,
    private readonly config: KilnConfig,
    env: Record<string, string | undefined>,
  ) {
    this.log = new Logger(config.logFile ?? paths.log, config.logLevel);
    this.disk = new DiskStorage(config.cacheDir, config.cacheSize, (m) => this.log.warn(m));
    this.storage = tieredStorage(this.disk, config.remoteLevels, env, { log: this.log, track: (work) => this.track(work) });
    this.service = new CompileService({
      storage: this.storage,
      stats: this.stats,
      log: this.log,
      options: { directMode: config.directMode, dependMode: config.dependMode, basedirs: config.basedirs },
      track: (work) => this.track(work),
      dist: distCompilerFor(config, this.stats, this.log),
    });
    this.finished = new Promise((resolve) => (this.resolveFinished = resolve));
  }

  listen(): void {
    rmSync(this.paths.socket, { force: true });
    const self = this;
    this.server = Bun.listen<Connection>({
      unix: this.paths.socket,
      socket: {
        open(s) {
          s.data = { reader: new FrameReader(), pending: new Uint8Array(), answered: false, replied: false };
        },
        data(s, chunk) {
          let frames: Frame[];
          try {
            frames = s.data.reader.push(chunk);
          } catch (e) {
            self.log.warn(`dropping a client: ${(e as Error).message}`);
            s.end();
            return;
          }
          const frame = frames[0];
          if (frame && !s.data.answered) {
            s.data.answered = true;
            self.onFrame(s, frame);
          }
        },
        drain(s) {
          self.flush(s);
        },
        error(_s, e) {
          self.log.debug(`client socket error: ${e.message}`);
        },
      },
    });
    process.on("SIGTERM", () => void this.close("SIGTERM"));
    process.on("SIGINT", () => void this.close("SIGINT"));
    process.on("SIGHUP", () => {});
    void this.disk.start();
    this.log.info(
      `daemon ${process.pid} listening on ${this.paths.socket}; cache ${this.config.cacheDir} (max ${this.config.cacheSize} bytes)` +
        this.storage.levelStats().slice(1).map((l) => `, then ${l.location}`).join(""),
    );
    this.armIdleTimer();
  }

  private track(work: Promise<unknown>): void {
    this.background.add(work);
    void work.finally(() => this.background.delete(work));
  }

  /** Queues a frame; the connection closes after the reply (`last`, the default) is written. */
  private send(s: Socket<Connection>, bytes: Uint8Array, last = true): void {
    const { pending } = s.data;
    if (pending.length === 0) s.data.pending = bytes;
    else {
      const both = new Uint8Array(pending.length + bytes.length);
      both.set(pending);
      both.set(bytes, pending.length);
      s.data.pending = both;
    }
    if (last) s.data.replied = true;
    this.flush(s);
  }

  private flush(s: Socket<Connection>): void {
    let pending = s.data.pending;
    while (pending.length > 0) {
      const n = s.write(pending);
      if (n <= 0) break;
      pending = pending.subarray(n);
    }
    s.data.pending = pending;
    if (pending.length === 0 && s.data.replied) s.end();
  }

  private onFrame(s: Socket<Connection>, frame: Frame): void {
    if (frame.version !== PROTOCOL_VERSION) {
      this.send(
        s,
        encodeJson(Kind.Refused, {
          version: PROTOCOL_VERSION,
          pid: process.pid,
          message: `this daemon (pid ${process.pid}) speaks protocol ${PROTOCOL_VERSION}; stop it with 'kiln --stop-server' from the same Kiln version`,
        }),
      );
      if (frame.version > PROTOCOL_VERSION) void this.close(`a client speaks the newer protocol ${frame.version}`);
      return;
    }
    this.inflight += 1;
    this.disarmIdleTimer();
    const work = frame.kind === Kind.Compile ? this.onCompile(s, frame) : this.onCommand(s, frame);
    void work
      .catch((e) => {
        // Closing without an answer makes the client run the compiler itself.
        this.log.error(`request failed: ${(e as Error).stack ?? e}`);
        s.end();
      })
      .finally(() => {
        this.inflight -= 1;
        this.armIdleTimer();
      });
  }

  private async onCompile(s: Socket<Connection>, frame: Frame): Promise<void> {
    const call = decodeJson<CompileCall>(frame.payload);
    const stream = call.streams === true ? (chunk: Uint8Array) => this.send(s, encodeFrame(Kind.Stderr, chunk), false) : undefined;
    const reply = await this.service.handle(call, stream);
    if (reply.kind === "done") this.send(s, encodeDone(reply.exitCode, reply.stdout, reply.stderr));
    else this.send(s, encodeText(Kind.RunLocal, reply.compiler));
  }

  private async onCommand(s: Socket<Connection>, frame: Frame): Promise<void> {
    const command = decodeJson<Command>(frame.payload);
    switch (command.cmd) {
      case "ping":
        this.send(s, encodeJson(Kind.Reply, { pid: process.pid, version: PROTOCOL_VERSION }));
        return;
      case "stats":
        this.send(s, encodeJson(Kind.Reply, await this.snapshot()));
        return;
      case "zero-stats":
        this.stats.zero();
        this.storage.zeroStats();
        this.send(s, encodeJson(Kind.Reply, await this.snapshot()));
        return;
      case "stop": {
        const snapshot = await this.snapshot();
        this.send(s, encodeJson(Kind.Reply, snapshot));
        void this.close("--stop-server");
        return;
      }
      default:
        this.send(s, encodeJson(Kind.Reply, { error: `unknown command ${JSON.stringify(command)}` }));
    }
  }

  private async snapshot(): Promise<StatsJson> {
    const usage = await this.disk.usage().catch(() => undefined);
    const snapshot = this.stats.snapshot({
      location: this.disk.location,
      size: usage?.size,
      entries: usage?.entries,
      maxSize: this.disk.maxSize,
    });
    return { ...snapshot, cache_levels: this.storage.levelStats() };
  }

  private armIdleTimer(): void {
    this.disarmIdleTimer();
    if (this.inflight === 0 && !this.closing) {
      // A quiet moment: collect garbage and hand freed memory back to the system.
      this.gcTimer ??= setTimeout(() => {
        this.gcTimer = undefined;
        if (this.inflight === 0) Bun.gc(true);
      }, GC_WHEN_QUIET_MS);
    }
    const seconds = this.config.idleTimeoutSec;
    if (seconds <= 0 || this.inflight > 0 || this.closing) return;
    this.idleTimer = setTimeout(() => void this.close(`idle for ${seconds} s`), seconds * 1000);
  }

  private disarmIdleTimer(): void {
    if (this.gcTimer) clearTimeout(this.gcTimer);
    this.gcTimer = undefined;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  close(reason: string): Promise<void> {
    this.closing ??= this.closeOnce(reason);
    return this.closing;
  }

  private async closeOnce(reason: string): Promise<void> {
    this.log.info(`shutting down: ${reason}`);
    this.disarmIdleTimer();
    // Every step runs even if an earlier one throws.
    try {
      this.server?.stop(false);
    } catch (e) {
      this.log.warn(`closing the listener: ${(e as Error).message}`);
    }
    try {
      rmSync(this.paths.socket, { force: true });
    } catch {}
    // Poll with a real timer: the work being waited for needs the event loop to finish
    // (a compiler's exit, a socket write), so this wait must never be a microtask loop.
    const deadline = Date.now() + DRAIN_TIMEOUT_MS;
    while ((this.inflight > 0 || this.background.size > 0) && Date.now() < deadline) await Bun.sleep(20);
    try {
      await this.disk.settle();
    } catch {}
    try {
      await this.storage.close();
    } catch {}
    this.log.info("stopped");
    this.resolveFinished();
  }
}
