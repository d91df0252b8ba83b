// An exclusive advisory lock (flock(2)) held for the daemon's lifetime. The kernel drops it
// when the process dies, so a crashed daemon never leaves a stale lock behind.

import { dlopen, FFIType } from "bun:ffi";
import { closeSync, ftruncateSync, openSync, writeSync } from "node:fs";

const LOCK_EX = 2;
const LOCK_NB = 4;

let libc: { symbols: { flock(fd: number, op: number): number } } | undefined;

function flock(fd: number, op: number): number {
  libc ??= dlopen("libc.so.6", { flock: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 } });
  return libc.symbols.flock(fd, op);
}

export interface HeldLock {
  /** Replaces the lock file's contents (pid, protocol version) while holding it. */
  write(text: string): void;
  release(): void;
}

/** Takes the lock without waiting; undefined when another process holds it. */
export function tryLock(path: string): HeldLock | undefined {
  const fd = openSync(path, "a+", 0o600);
  if (flock(fd, LOCK_EX | LOCK_NB) !== 0) {
    closeSync(fd);
    return undefined;
  }
  let released = false;
  return {
    write(text) {
      ftruncateSync(fd, 0);
      writeSync(fd, text, 0);
    },
    release() {
      if (released) return;
      released = true;
      closeSync(fd);
    },
  };
}
