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

type Stdio = "inherit" | "ignore" | number;

/**
 * The caller's stdio, plus the jobserver's file descriptors when make or cargo passed them
 * (`--jobserver-auth=R,W` in MAKEFLAGS or CARGO_MAKEFLAGS): rustc and gcc -flto=jobserver
 * warn and lose the build's job limit without them. Other descriptors stay closed.
 */
export function compilerStdio(env: Record<string, string | undefined>): Stdio[] {
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

export async function runCompiler(
  path: string,
  args: string[],
  env: Record<string, string | undefined>,
): Promise<number> {
  const proc = Bun.spawn([path, ...args], {
    stdio: compilerStdio(env) as ["inherit", "inherit", "inherit"],
    env: { ...env, [INNER_ENV]: "1" },
  });
  await proc.exited;
  return exitCodeOf(proc);
}

export async function runDirect(argv: string[], env: Record<string, string | undefined>): Promise<number> {
  const name = argv[0]!;
  const path = findCompiler(name, env.PATH, process.cwd(), process.execPath);
  if (!path) {
    await Bun.write(Bun.stderr, compilerNotFound(name));
    return 127;
  }
  return runCompiler(path, argv.slice(1), env);
}

/**
 * Runs the compiler here after the daemon went away in the middle of running it, when part
 * of its stderr has already been shown (`shown`, whole lines): those lines are left out once
 * each, so cargo never reads an artifact notification twice.
 */
export async function runDirectAfterStream(argv: string[], env: Record<string, string | undefined>, shown: string[]): Promise<number> {
  const name = argv[0]!;
  const path = findCompiler(name, env.PATH, process.cwd(), process.execPath);
  if (!path) {
    await Bun.write(Bun.stderr, compilerNotFound(name));
    return 127;
  }
  const stdio = compilerStdio(env);
  stdio[2] = "pipe" as unknown as Stdio;
  const proc = Bun.spawn([path, ...argv.slice(1)], {
    stdio: stdio as ["inherit", "inherit", "pipe"],
    env: { ...env, [INNER_ENV]: "1" },
  });
  const pending = new Map<string, number>();
  for (const line of shown) pending.set(line, (pending.get(line) ?? 0) + 1);
  const decoder = new TextDecoder();
  let partial = "";
  const pass = async (line: string) => {
    const left = pending.get(line) ?? 0;
    if (left > 0) pending.set(line, left - 1);
    else await Bun.write(Bun.stderr, line);
  };
  for await (const chunk of proc.stderr) {
    const lines = (partial + decoder.decode(chunk, { stream: true })).split(/(?<=\n)/);
    partial = lines.at(-1)!.endsWith("\n") ? "" : lines.pop()!;
    for (const line of lines) await pass(line);
  }
  if (partial !== "") await pass(partial);
  await proc.exited;
  return exitCodeOf(proc);
}
