// The client's half of the dist protocol: HTTP calls to the scheduler (status, toolchain
// HEAD/PUT, job POST), each bounded in time, each failure decoded into a `DistFailure` whose
// `reason` is a short stable phrase for stats and logs.

import {
  decodeFrame,
  DIST_PROTOCOL_VERSION,
  encodeFrame,
  LIMITS,
  MalformedFrame,
  splitPayload,
  type JobRequest,
  type JobResult,
  type SchedulerStatus,
} from "./protocol.ts";

/** Why a call to the scheduler did not give an answer. Shown in stats: keep the wording stable. */
export type FailureReason =
  | "scheduler unreachable"
  | "scheduler rejected the client token (401)"
  | "no capacity (503)"
  | "build server failed (502)"
  | "sandbox error"
  | "timeout"
  | "job too large (413)"
  | "scheduler rejected the request"
  | "toolchain unknown to the scheduler"
  | "bad outputs"
  | "scheduler error";

export class DistFailure extends Error {
  constructor(
    readonly reason: FailureReason,
    /** The detail for the log: the scheduler's text, the network error. Never a token. */
    readonly detail: string,
  ) {
    super(`${reason}: ${detail}`);
    this.name = "DistFailure";
  }

  /** The scheduler could not be reached or will refuse every call: stop calling it for a while. */
  get backOff(): boolean {
    return this.reason === "scheduler unreachable" || this.reason === "scheduler rejected the client token (401)";
  }
}

export interface SchedulerClientOptions {
  /** `http://host:port`, no trailing slash. */
  url: string;
  token: string | undefined;
  /** Bound on reaching the scheduler, and on the quick calls (status, HEAD). */
  connectTimeoutMs: number;
  /** Bound on a job or a toolchain upload. */
  requestTimeoutMs: number;
}

export interface RemoteResult {
  result: JobResult;
  stdout: Uint8Array;
  stderr: Uint8Array;
  /** In the order of `result.outputs`. */
  outputs: Uint8Array[];
}

/** After this long without an answer from the scheduler, the next call first checks it can connect. */
const PROBE_AFTER_MS = 10_000;

export class SchedulerClient {
  /** When the scheduler last answered (performance.now()); 0 = never. */
  private lastAnswer = 0;

  constructor(readonly options: SchedulerClientOptions) {}

  get url(): string {
    return this.options.url;
  }

  async status(): Promise<SchedulerStatus> {
    const res = await this.request("GET", "/api/v1/status", {}, this.options.connectTimeoutMs);
    if (res.status !== 200) throw await failureOf(res);
    const body = await bodyWithin(res, LIMITS.headerBytes, this.options.connectTimeoutMs);
    try {
      return JSON.parse(new TextDecoder().decode(body)) as SchedulerStatus;
    } catch {
      throw new DistFailure("scheduler error", "the status is not JSON");
    }
  }

  /** True if the scheduler holds the toolchain. */
  async hasToolchain(id: string): Promise<boolean> {
    const res = await this.request("HEAD", `/api/v1/toolchains/${id}`, {}, this.options.connectTimeoutMs);
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    throw await failureOf(res);
  }

  /** Uploads the archive; a `Blob` (e.g. `Bun.file`) is streamed from disk. */
  async putToolchain(id: string, archive: Uint8Array | Blob): Promise<void> {
    const res = await this.request(
      "PUT",
      `/api/v1/toolchains/${id}`,
      { body: archive, headers: { "content-type": "application/zstd" } },
      this.options.requestTimeoutMs,
    );
    if (res.status !== 200 && res.status !== 201 && res.status !== 204) throw await failureOf(res);
    await res.arrayBuffer().catch(() => {});
  }

  /** Runs a job; throws `DistFailure` unless the scheduler returns a well-formed result. */
  async submit(request: JobRequest, inputs: readonly Uint8Array[]): Promise<RemoteResult> {
    const body = encodeFrame(request, inputs);
    const timeoutMs = request.timeoutMs + this.options.connectTimeoutMs;
    const res = await this.request(
      "POST",
      "/api/v1/jobs",
      { body, headers: { "content-type": "application/octet-stream" } },
      timeoutMs,
    );
    if (res.status !== 200) throw await failureOf(res);
    const frame = await bodyWithin(res, LIMITS.jobOutputBytes + LIMITS.headerBytes, timeoutMs);
    return decodeResult(frame, request.outputs);
  }

  /**
   * One HTTP call within `timeoutMs`. A scheduler not heard from lately is first probed with
   * a bare TCP connect bounded by the connect timeout, so a host that drops packets costs
   * seconds, not a job timeout.
   */
  private async request(
    method: string,
    path: string,
    init: { body?: Uint8Array | Blob; headers?: Record<string, string> },
    timeoutMs: number,
  ): Promise<Response> {
    // Never heard from (0), or not for a while: a bare connect first, bounded by connect_timeout.
    if (this.lastAnswer === 0 || performance.now() - this.lastAnswer > PROBE_AFTER_MS) await this.probe();
    const headers: Record<string, string> = { ...init.headers };
    if (this.options.token !== undefined) headers.authorization = `Bearer ${this.options.token}`;
    let res: Response;
    try {
      res = await fetch(`${this.options.url}${path}`, {
        method,
        headers,
        body: init.body,
        signal: AbortSignal.timeout(timeoutMs),
        redirect: "manual",
        keepalive: true,
      });
    } catch (e) {
      throw networkFailure(e, this.options.url, timeoutMs);
    }
    this.lastAnswer = performance.now();
    return res;
  }

  private async probe(): Promise<void> {
    const url = new URL(this.options.url);
    const port = Number(url.port || (url.protocol === "https:" ? 443 : 80));
    const hostname = url.hostname.replace(/^\[(.*)\]$/, "$1");
    const ms = this.options.connectTimeoutMs;
    let timer: Timer | undefined;
    try {
      const connected = Bun.connect({ hostname, port, socket: { data() {}, error() {} } });
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new DistFailure("scheduler unreachable", `no connection to ${this.options.url} within ${ms} ms`)), ms);
      });
      const socket = await Promise.race([connected, timeout]);
      socket.end();
    } catch (e) {
      if (e instanceof DistFailure) throw e;
      throw networkFailure(e, this.options.url, ms);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Decodes a job's answer; anything that does not add up is "bad outputs". */
export function decodeResult(frame: Uint8Array, wanted: readonly string[]): RemoteResult {
  try {
    const { header, payload } = decodeFrame<JobResult>(frame);
    if (header.version !== DIST_PROTOCOL_VERSION) {
      throw new DistFailure("scheduler error", `the scheduler speaks dist protocol ${header.version}, this Kiln ${DIST_PROTOCOL_VERSION}`);
    }
    if (!Number.isInteger(header.exitCode) || !Array.isArray(header.outputs) || typeof header.server !== "string") {
      throw new MalformedFrame("the result header is incomplete");
    }
    const outputs = header.exitCode === 0 ? header.outputs : [];
    if (header.exitCode === 0) {
      const names = outputs.map((o) => o?.path);
      if (names.length !== wanted.length || names.some((n, i) => n !== wanted[i])) {
        throw new MalformedFrame(`outputs ${JSON.stringify(names)} are not the requested ${JSON.stringify(wanted)}`);
      }
    }
    const parts = splitPayload(payload, [header.stdoutSize, header.stderrSize, ...outputs.map((o) => o.size)]);
    return { result: header, stdout: parts[0]!, stderr: parts[1]!, outputs: parts.slice(2) };
  } catch (e) {
    if (e instanceof DistFailure) throw e;
    throw new DistFailure("bad outputs", (e as Error).message);
  }
}

/** Classifies a non-success answer by its status; the text body says why. */
async function failureOf(res: Response): Promise<DistFailure> {
  let text = "";
  try {
    text = new TextDecoder().decode(await bodyWithin(res, 4096, 2_000)).trim();
  } catch {}
  const detail = text ? `${res.status}: ${text.slice(0, 300)}` : `HTTP ${res.status}`;
  switch (res.status) {
    case 401:
    case 403:
      return new DistFailure("scheduler rejected the client token (401)", detail);
    case 503:
      return new DistFailure("no capacity (503)", detail);
    case 502:
      // The scheduler's text says what the server reported.
      if (/timed out after/i.test(text)) return new DistFailure("timeout", detail);
      if (/did not write it|symlink|not a regular file|not a directory|outputs? exceed|allowed for outputs|bad result/i.test(text)) {
        return new DistFailure("bad outputs", detail);
      }
      return new DistFailure(/sandbox|bwrap|bubblewrap|namespace/i.test(text) ? "sandbox error" : "build server failed (502)", detail);
    case 504:
      return new DistFailure("timeout", detail);
    case 413:
      return new DistFailure("job too large (413)", detail);
    case 404:
    case 412:
      return new DistFailure("toolchain unknown to the scheduler", detail);
    default:
      return new DistFailure(res.status >= 400 && res.status < 500 ? "scheduler rejected the request" : "scheduler error", detail);
  }
}

function networkFailure(e: unknown, url: string, timeoutMs: number): DistFailure {
  const name = (e as Error)?.name;
  if (name === "TimeoutError" || name === "AbortError") return new DistFailure("timeout", `no answer from ${url} within ${timeoutMs} ms`);
  const code = typeof e === "object" && e !== null && "code" in e ? String(e.code) : "";
  return new DistFailure("scheduler unreachable", `${url}: ${code || (e as Error)?.message || String(e)}`);
}

/** Reads a body, refusing one longer than `limit` bytes or slower than `timeoutMs`. */
async function bodyWithin(res: Response, limit: number, timeoutMs: number): Promise<Uint8Array> {
  const declared = Number(res.headers.get("content-length") ?? NaN);
  if (declared > limit) throw new DistFailure("bad outputs", `the answer of ${declared} bytes exceeds ${limit}`);
  if (!res.body) return new Uint8Array();
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  let expired = false;
  const timer = setTimeout(() => {
    expired = true;
    void reader.cancel().catch(() => {});
  }, timeoutMs);
  try {
    for (;;) {
      let next: Awaited<ReturnType<typeof reader.read>>;
      try {
        next = await reader.read();
      } catch (e) {
        throw networkFailure(e, res.url, timeoutMs); // a reset or a timeout in mid-body
      }
      const { done, value } = next;
      if (done) break;
      size += value.length;
      if (size > limit) {
        await reader.cancel().catch(() => {});
        throw new DistFailure("bad outputs", `the answer exceeds ${limit} bytes`);
      }
      chunks.push(value);
    }
  } finally {
    clearTimeout(timer);
  }
  // A cancelled reader reports "done": what arrived is cut short, not an answer.
  if (expired) throw new DistFailure("timeout", `the answer of ${res.url} took longer than ${timeoutMs} ms`);
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
}
