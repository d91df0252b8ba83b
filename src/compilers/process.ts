// Running a compiler with its output captured.

import { exitCodeOf, INNER_ENV } from "../client/run-direct.ts";

export interface Captured {
  exitCode: number;
  stdout: Uint8Array;
  stderr: Uint8Array;
  ms: number;
}

export async function runCaptured(
  argv: string[],
  options: { cwd: string; env: Record<string, string | undefined> },
): Promise<Captured> {
  const started = performance.now();
  const proc = Bun.spawn(argv, {
    cwd: options.cwd,
    env: { ...options.env, [INNER_ENV]: "1" },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr] = await Promise.all([new Response(proc.stdout).bytes(), new Response(proc.stderr).bytes()]);
  await proc.exited;
  return { exitCode: exitCodeOf(proc), stdout, stderr, ms: performance.now() - started };
}
