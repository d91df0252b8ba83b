// Running the real compiler from the client: for calls the daemon hands back, and whenever no
// daemon can be reached. A build never fails because of Kiln.

import { fstatSync } from "node:fs";
import { compilerNotFound, findCompiler } from "./find-compiler.ts";
import { constants } from "node:os";

/** Marks a compiler process started by Kiln, so a Kiln found in its PATH passes straight through. */
export const INNER_ENV = "KILN_INNER";

/** The shell's convention: a process killed by signal N exits 128 + N. */
export function exitCodeOf(proc: { exitCode: number | null; signalCode: number | string | null }): number {
  if (proc.exitCode !== null) return proc.exitCode;
  const { signalCode } = proc;
  const signal =
    typeof signalCode === "number"
      ? signalCode
      : signalCode
        ? constants.signals[signalCode as keyof typeof constants.signals]
        : undefined;
  return 128 + (signal ?? 1);
}

type Stdio = "inherit" | "ignore" | "pipe" | number;

/**
 * The caller's stdio, plus the jobserver's file descriptors when make or cargo passed them
 * (`--jobserver-auth=R,W` in MAKEFLAGS or CARGO_MAKEFLAGS): rustc and gcc -flto=jobserver
 * warn and lose the build's job limit without them. Other descriptors stay closed.
 */
function compilerStdio(env: Record<string, string | undefined>): Stdio[] {
  const stdio: Stdio[] = ["inherit", "inherit", "inherit"];
  for (const flags of [env.CARGO_MAKEFLAGS, env.MAKEFLAGS]) {
    const m = flags && /--jobserver-(?:auth|fds)=(\d+),(\d+)/.exec(flags);
    if (!m) continue;
    for (const fd of [Number(m[1]), Number(m[2])]) {
      if (fd < 3 || fd > 1024) continue;
      try {
        fstatSync(fd);
      } catch {
        continue;
      }
      while (stdio.length <= fd) stdio.push("ignore");
      stdio[fd] = fd;
    }
  }
  return stdio;
}

/**
 * `shown`: when the daemon went away in the middle of running the compiler, the stderr lines
 * it had already passed on (whole lines). Those are left out, once each, so cargo never reads
 * an artifact notification twice.
 */
export async function runCompiler(
  path: string,
  args: string[],
  env: Record<string, string | undefined>,
  shown?: string[],
): Promise<number> {
  const stdio = compilerStdio(env);
  if (shown) stdio[2] = "pipe";
  const proc = Bun.spawn([path, ...args], {
    stdio: stdio as ["inherit", "inherit", "inherit" | "pipe"],
    env: { ...env, [INNER_ENV]: "1" },
  });
  if (shown && proc.stderr instanceof ReadableStream) await passLeavingOut(proc.stderr, shown);
  await proc.exited;
  return exitCodeOf(proc);
}

async function passLeavingOut(stderr: ReadableStream<Uint8Array>, shown: string[]): Promise<void> {
  const left = new Map<string, number>();
  for (const line of shown) left.set(line, (left.get(line) ?? 0) + 1);
  const pass = async (line: string) => {
    const n = left.get(line) ?? 0;
    if (n > 0) left.set(line, n - 1);
    else await Bun.write(Bun.stderr, line);
  };
  const decoder = new TextDecoder();
  let partial = "";
  for await (const chunk of stderr) {
    const lines = (partial + decoder.decode(chunk, { stream: true })).split(/(?<=\n)/);
    partial = lines.at(-1)!.endsWith("\n") ? "" : lines.pop()!;
    for (const line of lines) await pass(line);
  }
  if (partial !== "") await pass(partial);
}

export async function runDirect(argv: string[], env: Record<string, string | undefined>, shown?: string[]): Promise<number> {
  const name = argv[0]!;
  const path = findCompiler(name, env.PATH, process.cwd(), process.execPath);
  if (!path) {
    await Bun.write(Bun.stderr, compilerNotFound(name));
    return 127;
  }
  return runCompiler(path, argv.slice(1), env, shown);
}
