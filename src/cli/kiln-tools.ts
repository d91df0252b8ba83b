// Everything the `kiln` executable runs that is not a compile: the commands and the daemon.
// A second entry point of the executable (see scripts/build.ts), loaded by path only when
// needed, so the bytecode a compile loads holds the client alone.

export { runCli } from "./commands.ts";
export { runDaemon } from "../daemon/main.ts";
