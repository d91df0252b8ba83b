// Writing a cached compile's outputs into the caller's tree, and reading a fresh compile's.

import { chmodSync, lstatSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { errnoCode } from "../util/errors.ts";

export function absolute(cwd: string, path: string): string {
  return path.startsWith("/") ? path : `${cwd}/${path}`;
}

/** True when every path is absent or a regular file: the only kinds Kiln replaces by rename. */
export function outputsAreRegular(cwd: string, paths: string[]): boolean {
  for (const p of paths) {
    try {
      if (!lstatSync(absolute(cwd, p)).isFile()) return false;
    } catch (e) {
      if (errnoCode(e) !== "ENOENT") return false;
    }
  }
  return true;
}

let tmpCounter = 0;

/**
 * Writes each file next to its destination under a unique name, then renames it into place,
 * so a reader never sees half an object file. Mode is 0666 minus the caller's umask, as the
 * compiler would have made it. Throws when any write fails (after removing its temp file).
 *
 * The old file is removed before the rename: ext4 flushes a file renamed over an existing
 * one to disk at once (auto_da_alloc), which made the rename most of a hit's cost.
 */
export function writeOutputs(cwd: string, files: { path: string; data: Uint8Array }[], umask: number): void {
  const mode = 0o666 & ~umask;
  for (const file of files) {
    const dest = absolute(cwd, file.path);
    const slash = dest.lastIndexOf("/");
    const tmp = `${dest.slice(0, slash)}/.${dest.slice(slash + 1)}.kiln-${process.pid}-${++tmpCounter}`;
    try {
      writeFileSync(tmp, file.data, { mode });
      chmodSync(tmp, mode);
      rmSync(dest, { force: true });
      renameSync(tmp, dest);
    } catch (e) {
      rmSync(tmp, { force: true });
      throw e;
    }
  }
}

/** Reads what a compile wrote; undefined if any expected output is missing. */
export function readOutputs(cwd: string, paths: string[]): Uint8Array[] | undefined {
  const out: Uint8Array[] = [];
  for (const p of paths) {
    try {
      out.push(readFileSync(absolute(cwd, p)));
    } catch {
      return undefined;
    }
  }
  return out;
}
