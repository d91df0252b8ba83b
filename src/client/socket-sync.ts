// The client's round trip to the daemon as four blocking system calls through bun:ffi.
// Bun.connect pays several milliseconds to set up its event-driven socket layer on the first
// connection of a process, which is every connection a compiler wrapper makes; socket(2),
// connect(2), send(2) and recv(2) cost tens of microseconds.

import { dlopen, FFIType, ptr, read } from "bun:ffi";
import { FrameReader, takeReply, type StderrSink } from "../ipc/wire.ts";
import type { Exchange } from "./client.ts";

const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_CLOEXEC = 0o2000000;
const MSG_NOSIGNAL = 0x4000;
const EINTR = 4;
/** sun_path holds 108 bytes with the terminating NUL. */
const MAX_SOCKET_PATH = 107;
// send/recv return ssize_t; read as i32 (frames stay far below 2 GiB, and -1 reads as -1).

const symbols = {
  socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  connect: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
  send: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i32 },
  recv: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i32 },
  close: { args: [FFIType.i32], returns: FFIType.i32 },
  __errno_location: { args: [], returns: FFIType.ptr },
  isatty: { args: [FFIType.i32], returns: FFIType.i32 },
} as const;

type Libc = ReturnType<typeof dlopen<typeof symbols>>["symbols"];
let libc: Libc | null | undefined;

function load(): Libc | null {
  if (libc === undefined) {
    try {
      libc = dlopen("libc.so.6", symbols).symbols;
    } catch {
      libc = null;
    }
  }
  return libc;
}

function errno(c: Libc): number {
  const p = c.__errno_location();
  return p === null ? 0 : read.i32(p, 0);
}

/**
 * Sends one frame and reads the reply back, blocking; Stderr frames before it go to
 * `onStderr` as they come. Undefined when this platform's libc cannot be loaded (the caller
 * then uses the event-driven path).
 */
export function exchangeSync(socketPath: string, request: Uint8Array, onStderr?: StderrSink): Exchange | undefined {
  const c = load();
  if (!c) return undefined;
  const path = new TextEncoder().encode(socketPath);
  if (path.length > MAX_SOCKET_PATH) return undefined;
  const addr = new Uint8Array(2 + path.length + 1);
  addr[0] = AF_UNIX; // sa_family, little-endian u16
  addr.set(path, 2);
  const fd = c.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return undefined;
  try {
    if (c.connect(fd, ptr(addr), addr.length) !== 0) return { ok: false, failure: "connect" };
    for (let sent = 0; sent < request.length; ) {
      const n = c.send(fd, ptr(request, sent), request.length - sent, MSG_NOSIGNAL);
      if (n < 0 && errno(c) === EINTR) continue;
      if (n <= 0) return { ok: false, failure: "broken" };
      sent += n;
    }
    const reader = new FrameReader();
    const chunk = new Uint8Array(64 * 1024);
    for (;;) {
      const n = c.recv(fd, ptr(chunk), chunk.length, 0);
      if (n < 0 && errno(c) === EINTR) continue;
      if (n <= 0) return { ok: false, failure: "broken" };
      const reply = takeReply(reader.push(chunk.slice(0, n)), onStderr);
      if (reply) return { ok: true, frame: reply };
    }
  } catch {
    return { ok: false, failure: "broken" };
  } finally {
    c.close(fd);
  }
}

/** Whether the client's stderr is a terminal (compilers colour their diagnostics for one). */
export function stderrIsTerminal(): boolean {
  return load()?.isatty(2) === 1;
}
