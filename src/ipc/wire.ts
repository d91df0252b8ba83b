// The client <-> daemon protocol over the per-user Unix socket.
//
// Every frame, both ways: u32 LE length of what follows, u16 LE protocol version, u8 kind,
// then the payload. The version sits in the same place in every version of the protocol, so a
// daemon can always recognise and refuse a client of another version (and vice versa).
//
// This module is imported by the client executable: keep it free of imports.

export const PROTOCOL_VERSION = 1;
export const HEADER_BYTES = 7;
/** Bounds a frame so a confused peer cannot make the other side buffer without limit. */
export const MAX_FRAME_BYTES = 1 << 30;

export const Kind = {
  /** client → daemon: JSON CompileCall */
  Compile: 1,
  /** client → daemon: JSON Command */
  Command: 2,
  /** daemon → client: i32 exit code, u32 stdout length, stdout, stderr */
  Done: 10,
  /** daemon → client: UTF-8 path of the real compiler; the client runs it itself */
  RunLocal: 11,
  /** daemon → client: JSON {version, pid, message}; the daemon speaks another version */
  Refused: 12,
  /** daemon → client: JSON reply to a Command */
  Reply: 13,
  /**
   * daemon → client: bytes the compiler wrote to its stderr, whole lines, as they come; the
   * client writes them to its stderr at once. Only for a CompileCall with `streams: true`,
   * only before the final Done, whose stderr then holds none of them again.
   */
  Stderr: 14,
} as const;
export type Kind = (typeof Kind)[keyof typeof Kind];

export interface CompileCall {
  /** argv[0] is the compiler as the user named it ("gcc", "/usr/bin/cc", ...). */
  argv: string[];
  cwd: string;
  env: Record<string, string | undefined>;
  /** The kiln executable, so the daemon can skip it when it looks the compiler up in PATH. */
  self: string;
  /** The caller's umask: outputs written from the cache get the mode the compiler would give. */
  umask: number;
  /** The caller's stderr is a terminal: diagnostics keep their colours. */
  stderrTty?: boolean;
  /**
   * The client takes Stderr frames before the Done frame. A daemon sends them only then, so
   * clients that predate them (and leave this out) speak the same protocol version.
   */
  streams?: boolean;
}

export type Command =
  | { cmd: "stats" }
  | { cmd: "zero-stats" }
  | { cmd: "stop" }
  | { cmd: "ping" };

export interface Frame {
  version: number;
  kind: number;
  payload: Uint8Array;
}

export function encodeFrame(kind: Kind, payload: Uint8Array, version = PROTOCOL_VERSION): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES + payload.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, payload.length + 3, true);
  view.setUint16(4, version, true);
  out[6] = kind;
  out.set(payload, HEADER_BYTES);
  return out;
}

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

export function encodeJson(kind: Kind, value: unknown): Uint8Array {
  return encodeFrame(kind, utf8.encode(JSON.stringify(value)));
}

export function decodeJson<T>(payload: Uint8Array): T {
  return JSON.parse(fromUtf8.decode(payload)) as T;
}

export function decodeText(payload: Uint8Array): string {
  return fromUtf8.decode(payload);
}

export function encodeText(kind: Kind, text: string): Uint8Array {
  return encodeFrame(kind, utf8.encode(text));
}

export function encodeDone(exitCode: number, stdout: Uint8Array, stderr: Uint8Array): Uint8Array {
  const payload = new Uint8Array(8 + stdout.length + stderr.length);
  const view = new DataView(payload.buffer);
  view.setInt32(0, exitCode, true);
  view.setUint32(4, stdout.length, true);
  payload.set(stdout, 8);
  payload.set(stderr, 8 + stdout.length);
  return encodeFrame(Kind.Done, payload);
}

export function decodeDone(payload: Uint8Array): { exitCode: number; stdout: Uint8Array; stderr: Uint8Array } {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const exitCode = view.getInt32(0, true);
  const outLen = view.getUint32(4, true);
  return {
    exitCode,
    stdout: payload.subarray(8, 8 + outLen),
    stderr: payload.subarray(8 + outLen),
  };
}

/** Where the compiler's stderr goes while the daemon streams it (Kind.Stderr). */
export type StderrSink = (chunk: Uint8Array) => void;

/**
 * The reply among frames just read: Stderr frames ahead of it go to `onStderr` (when there is
 * none, they are dropped: only a client that asked for them gets any).
 */
export function takeReply(frames: Frame[], onStderr: StderrSink | undefined): Frame | undefined {
  for (const frame of frames) {
    if (frame.version === PROTOCOL_VERSION && frame.kind === Kind.Stderr) onStderr?.(frame.payload);
    else return frame;
  }
  return undefined;
}

/**
 * Accumulates bytes from a stream socket and yields whole frames. Throws on a frame larger
 * than MAX_FRAME_BYTES.
 */
export class FrameReader {
  private chunks: Uint8Array[] = [];
  private buffered = 0;

  push(data: Uint8Array): Frame[] {
    this.chunks.push(data);
    this.buffered += data.length;
    const frames: Frame[] = [];
    for (;;) {
      if (this.buffered < 4) break;
      const head = this.peek(4);
      const length = new DataView(head.buffer, head.byteOffset, 4).getUint32(0, true);
      if (length < 3 || length > MAX_FRAME_BYTES) throw new Error(`bad frame length ${length}`);
      if (this.buffered < 4 + length) break;
      const bytes = this.take(4 + length);
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      frames.push({ version: view.getUint16(4, true), kind: bytes[6]!, payload: bytes.subarray(HEADER_BYTES) });
    }
    return frames;
  }

  private peek(n: number): Uint8Array {
    const first = this.chunks[0]!;
    if (first.length >= n) return first;
    return this.flatten().subarray(0, n);
  }

  private take(n: number): Uint8Array {
    const all = this.flatten();
    const taken = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length ? [rest] : [];
    this.buffered = rest.length;
    return taken;
  }

  private flatten(): Uint8Array {
    if (this.chunks.length === 1) return this.chunks[0]!;
    const all = new Uint8Array(this.buffered);
    let at = 0;
    for (const c of this.chunks) {
      all.set(c, at);
      at += c.length;
    }
    this.chunks = [all];
    return all;
  }
}
