// Entry point of the `kiln` executable. Compiler calls take the shortest path to the daemon;
// everything else (stats, server control, the daemon itself) loads lazily.

import { runCompile } from "../client/client.ts";
import type * as Tools from "./kiln-tools.ts";

/**
 * The commands and the daemon: a second entry point of the executable. The path is built at
 * run time so the bundler keeps that code out of this one (0.5 ms less per compile).
 */
function tools(): typeof Tools {
  return require(["./kiln-tools", "ts"].join(".")) as typeof Tools;
}

function basename(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

/** Invoked under a compiler's name through a symlink (`gcc -> kiln`)? */
function masqueradeName(argv0: string): string | undefined {
  const name = basename(argv0);
  return name.startsWith("kiln") || name === "bun" ? undefined : name;
}

/** Whether `path` names this very executable (cheap unless it is called kiln-something). */
function isSelf(path: string): boolean {
  if (!basename(path).startsWith("kiln")) return false;
  try {
    const { realpathSync } = require("node:fs") as typeof import("node:fs");
    return realpathSync(path) === realpathSync(process.execPath);
  } catch {
    return false;
  }
}

/** What the client passes when it starts the daemon; checked before any masquerade logic. */
const DAEMON_FLAG = "--internal-daemon";

async function main(): Promise<number> {
  const env = process.env;
  const args = process.argv.slice(2);
  if (args.length === 1 && args[0] === DAEMON_FLAG) {
    // Whatever name this executable has (a copy called gcc included), this is the daemon.
    return tools().runDaemon(env);
  }
  const masquerade = masqueradeName(process.argv0);
  const argv = masquerade ? [masquerade, ...args] : args;
  // RUSTC_WRAPPER=kiln and RUSTC_WORKSPACE_WRAPPER=kiln together: cargo runs `kiln kiln rustc ...`.
  while (!masquerade && argv.length > 1 && isSelf(argv[0]!)) argv.shift();
  if (!masquerade && (args.length === 0 || args[0]!.startsWith("-") || args[0] === "bench")) {
    return tools().runCli(args, env);
  }
  if (env.KILN_INNER) {
    // A compiler Kiln started found Kiln in PATH again: pass straight through.
    const { runDirect } = await import("../client/run-direct.ts");
    return runDirect(argv, env);
  }
  return runCompile(argv, env);
}

void main().then((code) => process.exit(code));
