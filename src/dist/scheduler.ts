// The scheduler: one HTTP address for clients (jobs, toolchains, status) and for build
// servers, which dial in over a WebSocket and receive their jobs on it. It places each job,
// relays the inputs to the chosen server and the outputs back, and keeps the toolchain
// archives servers fetch. The routes and messages are in protocol.ts.
//
// Nothing a peer sends may crash it: every request is checked (4xx with the reason), every
// server message is checked (a bad one closes that server's socket), and a server that
// vanishes (socket closed, or heartbeats missed) is dropped and its running jobs answered 502
// at once, so a client falls back instead of waiting.

import { timingSafeEqual } from "node:crypto";
import type { Server, ServerWebSocket, WebSocketHandler } from "bun";
import type { DistLog } from "./log.ts";
import {
  DIST_PROTOCOL_VERSION,
  LIMITS,
  MalformedFrame,
  decodeFrame,
  encodeFrame,
  jobRequestProblem,
  type JobRequest,
  type JobResult,
  type SchedulerMessage,
  type SchedulerStatus,
  type ServerMessage,
} from "./protocol.ts";
import { MemoryState, type SchedulerState } from "./state.ts";
import { toolchainId } from "./toolchain.ts";

export interface SchedulerOptions {
  clientToken: string;
  serverToken: string;
  /** How often servers heartbeat; one silent for 3 intervals is dropped. */
  heartbeatMs: number;
  log: DistLog;
  state?: SchedulerState;
  /** Bytes of toolchain archives kept in memory; least recently used ones go first. */
  toolchainBytes?: number;
}

/** Toolchain archives in memory, least recently used evicted past a size limit. */
class ToolchainStore {
  // Map order is use order: a hit moves the entry to the end.
  private readonly archives = new Map<string, Uint8Array>();
  private bytes = 0;

  constructor(private readonly limit: number) {}

  has(id: string): boolean {
    return this.archives.has(id);
  }

  get(id: string): Uint8Array | undefined {
    const archive = this.archives.get(id);
    if (archive) {
      this.archives.delete(id);
      this.archives.set(id, archive);
    }
    return archive;
  }

  /** Stores it; returns the ids evicted to make room. */
  put(id: string, archive: Uint8Array): string[] {
    if (this.archives.has(id)) return [];
    this.archives.set(id, archive);
    this.bytes += archive.length;
    const evicted: string[] = [];
    for (const [old, data] of this.archives) {
      if (this.bytes <= this.limit || old === id) break;
      this.archives.delete(old);
      this.bytes -= data.length;
      evicted.push(old);
    }
    return evicted;
  }
}

const DEFAULT_SCHEDULER_TOOLCHAIN_BYTES = 4 * 1024 ** 3;

interface Connection {
  serverId: string | undefined;
  name: string;
}

type Socket = ServerWebSocket<Connection>;

interface PendingJob {
  serverId: string;
  toolchain: string;
  outputs: readonly string[];
  settle(response: Response): void;
}

/** Extra time over a job's own timeout for fetching its toolchain and moving its bytes. */
const JOB_MARGIN_MS = 30_000;
const TOOLCHAIN_ID = /^[0-9a-f]{64}$/;
const HELLO_TIMEOUT_MS = 10_000;

export class Scheduler {
  private readonly state: SchedulerState;
  private readonly sockets = new Map<string, Socket>();
  private readonly jobs = new Map<string, PendingJob>();
  private readonly toolchains: ToolchainStore;
  private readonly sweep: ReturnType<typeof setInterval>;
  private nextJob = 1;

  constructor(private readonly options: SchedulerOptions) {
    this.state = options.state ?? new MemoryState();
    this.toolchains = new ToolchainStore(options.toolchainBytes ?? DEFAULT_SCHEDULER_TOOLCHAIN_BYTES);
    this.sweep = setInterval(() => this.dropSilent(), options.heartbeatMs);
    this.sweep.unref?.();
  }

  close(): void {
    clearInterval(this.sweep);
    for (const id of [...this.sockets.keys()]) this.dropServer(id, "the scheduler is stopping");
  }

  status(): SchedulerStatus {
    const servers = this.state.servers();
    return {
      version: DIST_PROTOCOL_VERSION,
      numServers: servers.length,
      numCpus: servers.reduce((n, s) => n + s.cores, 0),
      inProgress: servers.reduce((n, s) => n + s.running, 0),
      servers,
    };
  }

  /** The HTTP side; undefined when the request became a server's WebSocket. */
  async fetch(req: Request, server: Server<Connection>): Promise<Response | undefined> {
    try {
      return await this.route(req, server);
    } catch (e) {
      this.options.log.error(`${req.method} ${new URL(req.url).pathname}: ${e instanceof Error ? e.stack : String(e)}`);
      return text(500, "internal scheduler error; see the scheduler's log");
    }
  }

  private async route(req: Request, server: Server<Connection>): Promise<Response | undefined> {
    const path = new URL(req.url).pathname;
    if (path === "/api/v1/servers/connect") {
      if (!this.authorized(req, this.options.serverToken)) return rejected("server");
      if (req.method !== "GET") return text(405, "use GET with a WebSocket upgrade");
      const data: Connection = { serverId: undefined, name: "" };
      if (server.upgrade(req, { data })) return undefined;
      return text(426, "this route takes a WebSocket upgrade (kiln-dist server connects here)");
    }
    if (path === "/api/v1/status") {
      if (!this.authorized(req, this.options.clientToken) && !this.authorized(req, this.options.serverToken)) {
        return rejected("client");
      }
      if (req.method !== "GET") return text(405, "use GET");
      return Response.json(this.status());
    }
    if (path.startsWith("/api/v1/toolchains/")) return this.toolchainRoute(req, path.slice("/api/v1/toolchains/".length));
    if (path === "/api/v1/jobs") {
      if (!this.authorized(req, this.options.clientToken)) return rejected("client");
      if (req.method !== "POST") return text(405, "use POST");
      server.timeout(req, 0);
      return this.job(req);
    }
    return text(404, `no route ${path}; kiln-dist serves /api/v1/status, /api/v1/jobs, /api/v1/toolchains/<id> and /api/v1/servers/connect`);
  }

  private async toolchainRoute(req: Request, id: string): Promise<Response> {
    const isGet = req.method === "GET";
    // Servers fetch; clients check and upload.
    if (!this.authorized(req, isGet ? this.options.serverToken : this.options.clientToken)) {
      return rejected(isGet ? "server" : "client");
    }
    if (!TOOLCHAIN_ID.test(id)) return text(400, "a toolchain id is a SHA-256 in lowercase hex");
    switch (req.method) {
      case "HEAD":
        return new Response(null, { status: this.toolchains.has(id) ? 200 : 404 });
      case "GET": {
        const archive = this.toolchains.get(id);
        return archive ? new Response(archive) : text(404, `toolchain ${id} is not on the scheduler`);
      }
      case "PUT": {
        const tooBig = bodyTooLarge(req, LIMITS.toolchainBytes);
        if (tooBig) return tooBig;
        const body = await req.bytes();
        if (body.length > LIMITS.toolchainBytes) return text(413, `a toolchain may be at most ${LIMITS.toolchainBytes} bytes`);
        if (toolchainId(body) !== id) return text(400, `the body's SHA-256 is not ${id}`);
        const fresh = !this.toolchains.has(id);
        for (const old of this.toolchains.put(id, body)) {
          this.options.log.info(`toolchain ${old.slice(0, 12)} evicted from memory (toolchain_cache_size)`);
        }
        if (fresh) this.options.log.info(`toolchain ${id.slice(0, 12)} uploaded (${body.length} bytes)`);
        return new Response(null, { status: fresh ? 201 : 200 });
      }
      default:
        return text(405, "use HEAD, GET or PUT");
    }
  }

  private async job(req: Request): Promise<Response> {
    const tooBig = bodyTooLarge(req, LIMITS.jobInputBytes + LIMITS.headerBytes + 4);
    if (tooBig) return tooBig;
    const body = await req.bytes();
    let request: JobRequest;
    let payload: Uint8Array;
    try {
      ({ header: request, payload } = decodeFrame<JobRequest>(body));
    } catch (e) {
      if (e instanceof MalformedFrame) return text(400, `malformed job frame: ${e.message}`);
      throw e;
    }
    const problem = jobRequestProblem(request, payload.length);
    if (problem) return text(400, `bad job request: ${problem}`);
    if (!this.toolchains.has(request.toolchain)) {
      return text(412, `toolchain ${request.toolchain} is not on the scheduler; PUT it to /api/v1/toolchains/${request.toolchain} first`);
    }
    const serverId = this.state.place(request.toolchain);
    if (serverId === undefined) {
      const n = this.sockets.size;
      return text(503, n === 0 ? "no capacity: no build servers are connected" : `no capacity: all ${n} build servers are full`);
    }
    const socket = this.sockets.get(serverId);
    const jobId = String(this.nextJob++);
    const name = socket?.data.name ?? serverId;
    return new Promise<Response>((resolve) => {
      let settled = false;
      const timer = setTimeout(() => {
        this.sendTo(serverId, { type: "cancel", jobId });
        settle(text(504, `build server ${name} did not answer within ${request.timeoutMs + JOB_MARGIN_MS} ms`));
      }, request.timeoutMs + JOB_MARGIN_MS);
      const onAbort = (): void => {
        this.sendTo(serverId, { type: "cancel", jobId });
        settle(text(499, "client went away"));
      };
      const settle = (response: Response): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        req.signal.removeEventListener("abort", onAbort);
        this.jobs.delete(jobId);
        this.state.finish(serverId, response.status === 200);
        resolve(response);
      };
      req.signal.addEventListener("abort", onAbort, { once: true });
      this.jobs.set(jobId, { serverId, toolchain: request.toolchain, outputs: request.outputs, settle });
      const message: SchedulerMessage = { type: "job", jobId, request };
      if (!socket || socket.send(encodeFrame(message, [payload])) === 0) {
        settle(text(502, `build server ${name} could not be sent the job`));
      }
    });
  }

  // ------------------------------------------------------------------------------------------
  // Build servers, over their WebSockets

  readonly websocket: WebSocketHandler<Connection> = {
    maxPayloadLength: Math.max(LIMITS.jobInputBytes, LIMITS.jobOutputBytes) + LIMITS.headerBytes + 4,
    idleTimeout: 0,
    open: (ws) => {
      // A connection that never says hello holds a socket for nothing.
      setTimeout(() => {
        if (ws.data.serverId === undefined && ws.readyState === 1) ws.close(4408, "no hello within 10 s");
      }, HELLO_TIMEOUT_MS).unref?.();
    },
    message: (ws, message) => {
      try {
        this.onMessage(ws, message);
      } catch (e) {
        this.options.log.error(`message from ${ws.data.name || "a server"}: ${e instanceof Error ? e.stack : String(e)}`);
        ws.close(1011, "internal scheduler error");
      }
    },
    close: (ws) => {
      const id = ws.data.serverId;
      if (id !== undefined && this.sockets.get(id) === ws) this.dropServer(id, "its connection closed");
    },
  };

  private onMessage(ws: Socket, raw: string | Buffer): void {
    if (typeof raw === "string") return refuse(ws, "messages must be binary frames");
    let message: ServerMessage;
    let payload: Uint8Array;
    try {
      ({ header: message, payload } = decodeFrame<ServerMessage>(raw));
    } catch (e) {
      if (e instanceof MalformedFrame) return refuse(ws, `malformed frame: ${e.message}`);
      throw e;
    }
    const id = ws.data.serverId;
    if (id === undefined) {
      if (message.type !== "hello") return refuse(ws, "the first message must be hello");
      const problem = helloProblem(message);
      if (problem) return refuse(ws, problem);
      const serverId = crypto.randomUUID();
      ws.data.serverId = serverId;
      ws.data.name = message.name;
      this.sockets.set(serverId, ws);
      this.state.addServer(
        { id: serverId, name: message.name, cores: message.cores, capacity: message.capacity, toolchains: message.toolchains },
        Date.now(),
      );
      this.options.log.info(`server ${message.name} joined (${message.cores} cores, capacity ${message.capacity})`);
      this.sendTo(serverId, { type: "welcome", version: DIST_PROTOCOL_VERSION, serverId, heartbeatMs: this.options.heartbeatMs });
      return;
    }
    switch (message.type) {
      case "heartbeat":
        if (!isToolchainList(message.toolchains)) return refuse(ws, "heartbeat: toolchains must be a list of ids");
        this.state.heartbeat(id, message.toolchains, Date.now());
        return;
      case "result": {
        const job = this.ownJob(id, message.jobId);
        if (!job) return;
        const problem = resultProblem(message.result, payload.length, job.outputs);
        if (problem) {
          job.settle(text(502, `build server ${ws.data.name} sent a bad result: ${problem}`));
          return;
        }
        this.state.addToolchain(id, job.toolchain);
        const result: JobResult = { ...message.result, server: ws.data.name };
        job.settle(new Response(encodeFrame(result, [payload])));
        return;
      }
      case "failed": {
        const job = this.ownJob(id, message.jobId);
        const reason = typeof message.reason === "string" ? message.reason.slice(0, 2000) : "no reason given";
        job?.settle(text(502, `build server ${ws.data.name} could not run the job: ${reason}`));
        return;
      }
      default:
        return refuse(ws, `unknown message type ${JSON.stringify((message as { type: unknown }).type)}`);
    }
  }

  private ownJob(serverId: string, jobId: unknown): PendingJob | undefined {
    const job = typeof jobId === "string" ? this.jobs.get(jobId) : undefined;
    // A job that timed out or whose client left is gone already; its late answer is dropped.
    return job?.serverId === serverId ? job : undefined;
  }

  private sendTo(serverId: string, message: SchedulerMessage): void {
    this.sockets.get(serverId)?.send(encodeFrame(message));
  }

  private dropSilent(): void {
    for (const id of this.state.silentSince(Date.now(), 3 * this.options.heartbeatMs)) {
      this.dropServer(id, "it missed 3 heartbeats");
    }
  }

  private dropServer(id: string, why: string): void {
    const socket = this.sockets.get(id);
    const name = socket?.data.name ?? id;
    this.sockets.delete(id);
    this.state.removeServer(id);
    for (const job of [...this.jobs.values()]) {
      if (job.serverId === id) job.settle(text(502, `build server ${name} vanished mid-job: ${why}`));
    }
    socket?.close(1001, why);
    this.options.log.warn(`server ${name} dropped: ${why}`);
  }

  private authorized(req: Request, token: string): boolean {
    const header = req.headers.get("authorization") ?? "";
    const given = Buffer.from(header.startsWith("Bearer ") ? header.slice(7) : "");
    const wanted = Buffer.from(token);
    return given.length === wanted.length && timingSafeEqual(given, wanted);
  }
}

function refuse(ws: Socket, why: string): void {
  ws.close(4400, why.slice(0, 120));
}

function text(status: number, body: string): Response {
  return new Response(`${body}\n`, { status, headers: { "content-type": "text/plain; charset=utf-8" } });
}

function rejected(which: "client" | "server"): Response {
  return text(401, `the scheduler rejected the ${which} token: send \`Authorization: Bearer <token>\` with the ${which === "client" ? "[client_auth]" : "[server_auth]"} token of its config`);
}

function bodyTooLarge(req: Request, limit: number): Response | undefined {
  const length = Number(req.headers.get("content-length") ?? "0");
  return length > limit ? text(413, `request body of ${length} bytes exceeds ${limit}`) : undefined;
}

function isToolchainList(value: unknown): value is string[] {
  return Array.isArray(value) && value.length <= 100_000 && value.every((t) => typeof t === "string" && TOOLCHAIN_ID.test(t));
}

function helloProblem(hello: ServerMessage & { type: "hello" }): string | undefined {
  if (hello.version !== DIST_PROTOCOL_VERSION) return `protocol version ${String(hello.version)} is not ${DIST_PROTOCOL_VERSION}`;
  if (typeof hello.name !== "string" || hello.name === "" || hello.name.length > 200) return "hello: bad name";
  if (!Number.isInteger(hello.cores) || hello.cores < 1 || hello.cores > 65_536) return "hello: bad cores";
  if (!Number.isInteger(hello.capacity) || hello.capacity < 1 || hello.capacity > 1_000_000) return "hello: bad capacity";
  if (!isToolchainList(hello.toolchains)) return "hello: toolchains must be a list of ids";
  return undefined;
}

function resultProblem(result: JobResult, payloadBytes: number, wanted: readonly string[]): string | undefined {
  if (typeof result !== "object" || result === null) return "no result";
  if (!Number.isInteger(result.exitCode)) return "bad exit code";
  if (!Array.isArray(result.outputs)) return "bad outputs";
  // A success carries exactly the outputs asked for, in order; a failure none.
  const paths = result.outputs.map((o) => o?.path);
  const expected = result.exitCode === 0 ? wanted : [];
  if (paths.length !== expected.length || paths.some((p, i) => p !== expected[i])) return "outputs other than the ones asked for";
  const sizes = [result.stdoutSize, result.stderrSize, ...result.outputs.map((o) => o?.size)];
  if (!sizes.every((n) => Number.isSafeInteger(n) && (n as number) >= 0)) return "bad sizes";
  const total = sizes.reduce<number>((a, b) => a + (b as number), 0);
  if (total !== payloadBytes) return `sizes add up to ${total}, payload has ${payloadBytes}`;
  return undefined;
}

export interface ListenOptions {
  hostname: string;
  port: number;
}

/** Serves `scheduler` on one address (port 0 picks a free one). */
export function serveScheduler(scheduler: Scheduler, listen: ListenOptions): Server<Connection> {
  return Bun.serve<Connection>({
    hostname: listen.hostname,
    port: listen.port,
    maxRequestBodySize: LIMITS.toolchainBytes + 1,
    idleTimeout: 255,
    fetch: (req, server) => scheduler.fetch(req, server),
    websocket: scheduler.websocket,
    error: () => text(500, "internal scheduler error"),
  });
}
