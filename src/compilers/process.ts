// Running a compiler with its output captured.

import { exitCodeOf, INNER_ENV } from "../client/run-direct.ts";

export interface Captured {
  exitCode: number;
  stdout: Uint8Array;
  /** All of it, also what went to `onStderr`. */
  stderr: Uint8Array;
  ms: number;
}

/**
 * Runs argv and collects its output. With `onStderr`, stderr also goes there as it comes, in
 * whole lines (the last one even without its newline, at the end).
 */
export async function runCaptured(
  argv: string[],
  options: { cwd: string; env: Record<string, string | undefined> },
  onStderr?: (lines: Uint8Array) => void,
): Promise<Captured> {
  const started = performance.now();
  const proc = Bun.spawn(argv, {
    cwd: options.cwd,
    env: { ...options.env, [INNER_ENV]: "1" },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr] = await Promise.all([
    new Response(proc.stdout).bytes(),
    onStderr ? readInLines(proc.stderr, onStderr) : new Response(proc.stderr).bytes(),
  ]);
  await proc.exited;
  return { exitCode: exitCodeOf(proc), stdout, stderr, ms: performance.now() - started };
}

const NEWLINE = 0x0a;

/** Reads a stream to its end, handing each run of whole lines to `onLines` as it arrives. */
async function readInLines(stream: ReadableStream<Uint8Array>, onLines: (lines: Uint8Array) => void): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let tail: Uint8Array = new Uint8Array(); // received, not yet handed on (no newline yet)
  for await (const chunk of stream) {
    chunks.push(chunk);
    const end = chunk.lastIndexOf(NEWLINE);
    if (end < 0) {
      tail = Buffer.concat([tail, chunk]);
      continue;
    }
    onLines(Buffer.concat([tail, chunk.subarray(0, end + 1)]));
    tail = chunk.slice(end + 1);
  }
  if (tail.length > 0) onLines(tail);
  return Buffer.concat(chunks);
}
