// The wire contract between the three dist roles. Clients (the Kiln daemon) and build servers
// talk only to the scheduler; servers dial out to it, so neither needs a routable address.
//
//   client ──HTTP──> scheduler <──WebSocket── server (the server opened it)
//
// HTTP routes on the scheduler (one address serves everything):
//   GET  /api/v1/status                 client (or server) token. 200, JSON `SchedulerStatus`.
//   HEAD /api/v1/toolchains/<id>        client token. 200 if the scheduler holds it, else 404.
//   PUT  /api/v1/toolchains/<id>        client token. Body: the toolchain archive (tar.zst).
//                                       The scheduler checks the id is the SHA-256 of the body.
//   GET  /api/v1/toolchains/<id>        server token. The archive, for a server to unpack.
//   POST /api/v1/jobs                   client token. Body: a `Frame` with a `JobRequest`
//                                       header and the inputs as payload. 200: a `Frame` with
//                                       a `JobResult` header and the outputs as payload.
//                                       Errors: 400 malformed, 401 bad token, 412 the toolchain
//                                       is not on the scheduler (PUT it, then retry), 413 too
//                                       large, 503 no capacity, 502 the server failed or
//                                       vanished, 504 timeout; text body says why.
//   GET  /api/v1/servers/connect        server token, WebSocket upgrade. Messages are `Frame`s
//                                       (binary) whose headers are `ServerMessage` or
//                                       `SchedulerMessage`.
// Tokens go in `Authorization: Bearer <token>`. A wrong one gets 401 and a text body naming
// which token was rejected ("client token" or "server token").

/** Bump on any incompatible change; both sides refuse a peer with another one. */
export const DIST_PROTOCOL_VERSION = 1;

/** Bounds every role enforces on what it receives. */
export const LIMITS = {
  /** A frame's JSON header. */
  headerBytes: 1024 * 1024,
  /** A job's inputs, all files together. */
  jobInputBytes: 512 * 1024 * 1024,
  /** A job's outputs (plus stdout and stderr). */
  jobOutputBytes: 512 * 1024 * 1024,
  /** A toolchain archive, compressed. */
  toolchainBytes: 2 * 1024 * 1024 * 1024,
  /** Files in one job's inputs or outputs. */
  files: 10_000,
} as const;

/**
 * A frame: u32 big-endian length of the JSON header, the UTF-8 JSON header, then the payload.
 * File contents are in the payload, back to back, in the order the header lists them, each
 * with the `size` the header gives.
 */
export interface FileRef {
  /** Relative to the job's build directory: no leading "/", no "." or ".." segments, no "//". */
  path: string;
  size: number;
  /** Unix mode bits; only 0o100 (executable) is honoured. */
  mode?: number;
}

export interface JobRequest {
  version: number;
  /** The toolchain archive's SHA-256 (hex); it must be on the scheduler first. */
  toolchain: string;
  /**
   * The command, argv[0] an absolute path inside the toolchain (e.g. "/usr/bin/gcc").
   * Paths in it that name inputs or outputs are under `cwd`.
   */
  argv: string[];
  /**
   * Absolute path the build directory is mounted at inside the sandbox, and the command's
   * working directory: the client's own cwd, so paths recorded in outputs match a local
   * compile. Must be normalised, and not "/" or a toolchain system directory.
   */
  cwd: string;
  env: Record<string, string>;
  /** Files written into the build directory before the run (paths relative to `cwd`). */
  inputs: FileRef[];
  /** Files the client wants back, relative to `cwd`; a missing one is an error result. */
  outputs: string[];
  /** Milliseconds the server may run the command for. */
  timeoutMs: number;
}

export interface JobResult {
  version: number;
  /** The compiler's exit code; outputs are only present when it is 0. */
  exitCode: number;
  /** Payload order: stdout, stderr, then `outputs` in order. */
  stdoutSize: number;
  stderrSize: number;
  outputs: FileRef[];
  /** The server that ran it, for per-server stats. */
  server: string;
}

export interface ServerStatus {
  id: string;
  name: string;
  cores: number;
  running: number;
  /** Toolchain ids unpacked on the server. */
  toolchains: number;
  lastHeartbeatMs: number;
  /** Jobs completed since the server joined. */
  jobsDone: number;
}

export interface SchedulerStatus {
  version: number;
  numServers: number;
  numCpus: number;
  inProgress: number;
  servers: ServerStatus[];
}

/** Server → scheduler, over the WebSocket. */
export type ServerMessage =
  | { type: "hello"; version: number; name: string; cores: number; capacity: number; toolchains: string[] }
  | { type: "heartbeat"; running: number; toolchains: string[] }
  /** Payload as for `JobResult`. */
  | { type: "result"; jobId: string; result: JobResult }
  /** The job could not run at all (sandbox error, bad input, missing toolchain): the client falls back. */
  | { type: "failed"; jobId: string; reason: string };

/** Scheduler → server, over the WebSocket. */
export type SchedulerMessage =
  | { type: "welcome"; version: number; serverId: string; heartbeatMs: number }
  /** Payload as for `JobRequest` (the inputs). */
  | { type: "job"; jobId: string; request: JobRequest }
  | { type: "cancel"; jobId: string };

export class MalformedFrame extends Error {}

export function encodeFrame(header: unknown, payload: readonly Uint8Array[] = []): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const size = 4 + json.length + payload.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(size);
  new DataView(out.buffer).setUint32(0, json.length);
  out.set(json, 4);
  let at = 4 + json.length;
  for (const p of payload) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Splits a frame; throws `MalformedFrame` with the reason. The payload is a view, not a copy. */
export function decodeFrame<T>(frame: Uint8Array): { header: T; payload: Uint8Array } {
  if (frame.length < 4) throw new MalformedFrame("frame shorter than its length field");
  const len = new DataView(frame.buffer, frame.byteOffset, frame.byteLength).getUint32(0);
  if (len > LIMITS.headerBytes) throw new MalformedFrame(`header of ${len} bytes exceeds ${LIMITS.headerBytes}`);
  if (4 + len > frame.length) throw new MalformedFrame("frame shorter than its header");
  let header: T;
  try {
    header = JSON.parse(new TextDecoder().decode(frame.subarray(4, 4 + len))) as T;
  } catch {
    throw new MalformedFrame("header is not JSON");
  }
  if (typeof header !== "object" || header === null) throw new MalformedFrame("header is not an object");
  return { header, payload: frame.subarray(4 + len) };
}

/** Cuts a payload into files by the sizes in `refs`; throws `MalformedFrame` if they do not add up. */
export function splitPayload(payload: Uint8Array, sizes: readonly number[]): Uint8Array[] {
  const parts: Uint8Array[] = [];
  let at = 0;
  for (const size of sizes) {
    if (!Number.isSafeInteger(size) || size < 0 || at + size > payload.length) {
      throw new MalformedFrame("file sizes exceed the payload");
    }
    parts.push(payload.subarray(at, at + size));
    at += size;
  }
  if (at !== payload.length) throw new MalformedFrame("payload longer than its files");
  return parts;
}

/** Why `path` is not an acceptable relative path (archive entry, job input or output), or undefined. */
export function relativePathProblem(path: string): string | undefined {
  if (path === "") return "empty path";
  if (path.includes("\0")) return "NUL byte in the path";
  if (path.startsWith("/")) return "absolute path";
  if (path.length > 4096) return "path longer than 4096 characters";
  for (const part of path.split("/")) {
    if (part === "..") return "'..' in the path";
    if (part === "" || part === ".") return "empty or '.' segment in the path";
  }
  return undefined;
}

/** The longest `timeoutMs` a job may ask for. */
export const MAX_JOB_TIMEOUT_MS = 60 * 60 * 1000;

/**
 * Why a decoded `JobRequest` header (with `payloadBytes` of inputs) is unacceptable, or
 * undefined. Both the scheduler and the server check; neither trusts the sender.
 */
export function jobRequestProblem(request: JobRequest, payloadBytes: number): string | undefined {
  const r = request as unknown as Record<string, unknown>;
  if (r.version !== DIST_PROTOCOL_VERSION) {
    return `protocol version ${JSON.stringify(r.version)} is not ${DIST_PROTOCOL_VERSION}; update kiln or kiln-dist so both match`;
  }
  if (typeof r.toolchain !== "string" || !/^[0-9a-f]{64}$/.test(r.toolchain)) return "toolchain must be a SHA-256 in hex";
  if (!Array.isArray(r.argv) || r.argv.length === 0 || !r.argv.every((a) => typeof a === "string")) {
    return "argv must be a non-empty array of strings";
  }
  if (!(r.argv[0] as string).startsWith("/")) return "argv[0] must be an absolute path inside the toolchain";
  if (r.argv.some((a: string) => a.includes("\0"))) return "argv may not contain NUL bytes";
  if (typeof r.cwd !== "string" || !r.cwd.startsWith("/") || r.cwd === "/" || r.cwd.length > 4096) {
    return "cwd must be an absolute path other than /";
  }
  const cwdProblem = relativePathProblem(r.cwd.slice(1));
  if (cwdProblem) return `cwd ${JSON.stringify(r.cwd)}: ${cwdProblem}`;
  if (typeof r.env !== "object" || r.env === null || Array.isArray(r.env)) return "env must be an object of strings";
  for (const [k, v] of Object.entries(r.env)) {
    if (typeof v !== "string" || k === "" || k.includes("=") || k.includes("\0") || v.includes("\0")) {
      return `env ${JSON.stringify(k)} is not a valid variable`;
    }
  }
  if (!Array.isArray(r.inputs) || r.inputs.length > LIMITS.files) return `inputs must be an array of at most ${LIMITS.files} files`;
  if (!Array.isArray(r.outputs) || r.outputs.length > LIMITS.files) return `outputs must be an array of at most ${LIMITS.files} paths`;
  let total = 0;
  const seen = new Set<string>();
  for (const f of r.inputs as FileRef[]) {
    if (typeof f !== "object" || f === null || typeof f.path !== "string") return "each input needs a path";
    const problem = relativePathProblem(f.path);
    if (problem) return `input ${JSON.stringify(f.path)}: ${problem}`;
    if (seen.has(f.path)) return `input ${JSON.stringify(f.path)} appears twice`;
    seen.add(f.path);
    if (!Number.isSafeInteger(f.size) || f.size < 0) return `input ${JSON.stringify(f.path)}: bad size`;
    if (f.mode !== undefined && (!Number.isInteger(f.mode) || f.mode < 0)) return `input ${JSON.stringify(f.path)}: bad mode`;
    total += f.size;
  }
  if (total > LIMITS.jobInputBytes) return `inputs total ${total} bytes, more than ${LIMITS.jobInputBytes}`;
  if (total !== payloadBytes) return `inputs declare ${total} bytes but the payload has ${payloadBytes}`;
  for (const o of r.outputs) {
    if (typeof o !== "string") return "outputs must be strings";
    const problem = relativePathProblem(o);
    if (problem) return `output ${JSON.stringify(o)}: ${problem}`;
  }
  if (!Number.isSafeInteger(r.timeoutMs) || (r.timeoutMs as number) <= 0 || (r.timeoutMs as number) > MAX_JOB_TIMEOUT_MS) {
    return `timeoutMs must be a positive number of milliseconds up to ${MAX_JOB_TIMEOUT_MS}`;
  }
  return undefined;
}
