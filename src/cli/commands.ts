// `kiln --flag ...` and `kiln bench`: stats, daemon control, help. Part of the executable's
// second entry point (kiln-tools.ts), so compiler calls never load it.

import { readFileSync, writeFileSync } from "node:fs";
import { exchange, exchangeWithDaemon } from "../client/client.ts";
import { runtimePaths, type RuntimePaths } from "../ipc/paths.ts";
import { decodeJson, encodeJson, Kind, PROTOCOL_VERSION, type Command } from "../ipc/wire.ts";
import { formatStats, type StatsJson } from "../daemon/stats.ts";
import { tryLock } from "../daemon/lock.ts";
import { isKilnError } from "../util/errors.ts";

const USAGE = `Usage:
  kiln <compiler> <args...>        compile through the cache (e.g. CC="kiln gcc")
  kiln -s, --show-stats            show cache statistics [--stats-format text|json]
  kiln -z, --zero-stats            zero the statistics
  kiln --start-server              start the background daemon
  kiln --stop-server               stop the daemon and print its final statistics
  kiln --dist-status               show the dist scheduler and its build servers
                                   [--stats-format text|json]
  kiln --version                   print the version
  kiln --package-toolchain <compiler> <out.tar.zst>
                                   package a gcc/clang toolchain for distributed compiles
  kiln bench [--clean CMD] -- BUILD...
                                   time BUILD plainly, then through kiln cold and warm

Environment: KILN_DIR (cache directory), KILN_CACHE_SIZE (e.g. 10G), KILN_CONF (config file),
KILN_DIRECT=0 (no direct mode), KILN_DEPEND=1 (depend mode), KILN_BASEDIRS (checkout roots,
':'-separated), KILN_IDLE_TIMEOUT (seconds, 0 = never), KILN_LOG (debug|info|warn|error),
KILN_ERROR_LOG (log file), KILN_RECACHE=1 (recompile and overwrite), KILN_NO_CACHE=1 (bypass
the cache), KILN_CLIENT_TRACE=1 (print where a compile's milliseconds went).
Shared caches: KILN_REDIS_ENDPOINT, KILN_S3_BUCKET, KILN_MEMCACHED_ENDPOINT, KILN_WEBDAV_ENDPOINT
(and KILN_<BACKEND>_<KEY> for each config key), KILN_CACHE_CHAIN=disk,redis,s3 (lookup order).
Distributed compilation: KILN_DIST_SCHEDULER_URL and KILN_DIST_TOKEN.
Symlink a compiler's name to kiln (gcc -> kiln) to use it as that compiler.
`;

const VERSION = "0.1.0";

function out(text: string): void {
  process.stdout.write(text);
}

function err(text: string): void {
  process.stderr.write(text);
}

function option(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i >= 0) return args[i + 1];
  const joined = args.find((a) => a.startsWith(`${name}=`));
  return joined?.slice(name.length + 1);
}

/** Waits until the daemon holding `lockPath` has exited; false on timeout. */
export async function waitForExit(lockPath: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const lock = tryLock(lockPath);
    if (lock) {
      lock.release();
      return true;
    }
    await Bun.sleep(20);
  }
  return false;
}

/** Sends a command (stats, stop, ...) to the daemon. */
export async function sendCommand(
  paths: RuntimePaths,
  command: Command,
  env: Record<string, string | undefined>,
  options: { start: boolean },
): Promise<{ ok: true; reply: unknown } | { ok: false; message: string }> {
  let startError = "";
  const request = encodeJson(Kind.Command, command);
  const result = options.start
    ? await exchangeWithDaemon(paths, request, env, (m) => (startError = m))
    : await exchange(paths.socket, request);
  if (!result.ok) {
    if (startError) return { ok: false, message: startError };
    return {
      ok: false,
      message:
        result.failure === "connect"
          ? `no Kiln daemon is running (socket ${paths.socket})`
          : `the Kiln daemon at ${paths.socket} closed the connection`,
    };
  }
  const { frame } = result;
  if (frame.kind === Kind.Refused || frame.version !== PROTOCOL_VERSION) {
    const info = frame.kind === Kind.Refused ? decodeJson<{ message: string }>(frame.payload).message : "";
    return {
      ok: false,
      message: `the Kiln daemon at ${paths.socket} speaks protocol ${frame.version}, this kiln speaks ${PROTOCOL_VERSION}. ${info}`.trim(),
    };
  }
  return { ok: true, reply: decodeJson<unknown>(frame.payload) };
}

export async function runCli(args: string[], env: Record<string, string | undefined>): Promise<number> {
  const paths = runtimePaths(env, process.getuid?.() ?? 0);
  const first = args[0];
  switch (first) {
    case undefined:
    case "-h":
    case "--help":
      out(USAGE);
      return first === undefined ? 1 : 0;
    case "bench": {
      const { runBench } = await import("./bench.ts");
      return runBench(args.slice(1), env);
    }
    case "--package-toolchain":
      return packageToolchainCommand(args.slice(1));
    case "-V":
    case "--version":
      out(`kiln ${VERSION}\n`);
      return 0;
    case "--start-server": {
      const result = await sendCommand(paths, { cmd: "ping" }, env, { start: true });
      if (!result.ok) {
        err(`kiln: error: ${result.message}\n`);
        return 1;
      }
      const { pid } = result.reply as { pid: number };
      out(`kiln: daemon running (pid ${pid}, socket ${paths.socket})\n`);
      return 0;
    }
    case "--stop-server": {
      const result = await sendCommand(paths, { cmd: "stop" }, env, { start: false });
      if (!result.ok) {
        err(`kiln: ${result.message}\n`);
        return 0;
      }
      out(formatStats(result.reply as StatsJson));
      if (!(await waitForExit(paths.lock, 60_000))) {
        err(`kiln: warning: the daemon has not exited yet (lock ${paths.lock}: ${readLock(paths.lock)})\n`);
      }
      return 0;
    }
    case "--dist-status": {
      const format = option(args, "--stats-format") ?? "text";
      if (format !== "text" && format !== "json") {
        err(`kiln: error: --stats-format must be 'text' or 'json', not '${format}'\n`);
        return 2;
      }
      const { distStatus } = await import("./dist-status.ts");
      return distStatus(format, env, out, err);
    }
    case "-s":
    case "--show-stats":
    case "-z":
    case "--zero-stats": {
      const zero = first === "-z" || first === "--zero-stats";
      const format = option(args, "--stats-format") ?? "text";
      if (format !== "text" && format !== "json") {
        err(`kiln: error: --stats-format must be 'text' or 'json', not '${format}'\n`);
        return 2;
      }
      const result = await sendCommand(paths, { cmd: zero ? "zero-stats" : "stats" }, env, { start: true });
      if (!result.ok) {
        err(`kiln: error: ${result.message}\n`);
        return 1;
      }
      if (zero && format === "text") out("Statistics zeroed.\n");
      else out(format === "json" ? JSON.stringify(result.reply, null, 2) + "\n" : formatStats(result.reply as StatsJson));
      return 0;
    }
    default:
      err(`kiln: error: unknown option '${first}'\n\n${USAGE}`);
      return 2;
  }
}

async function packageToolchainCommand(args: string[]): Promise<number> {
  const [compiler, outFile] = args;
  if (!compiler || !outFile || args.length > 2) {
    err("kiln: error: usage: kiln --package-toolchain <compiler> <out.tar.zst>\n");
    return 2;
  }
  const { packageToolchain } = await import("../dist/toolchain.ts");
  try {
    const toolchain = await packageToolchain(compiler);
    writeFileSync(outFile, toolchain.archive);
    out(`kiln: toolchain ${toolchain.id} for ${toolchain.compiler} (${toolchain.files.length} files, ${toolchain.archive.length} bytes) written to ${outFile}\n`);
    return 0;
  } catch (e) {
    if (isKilnError(e)) err(`${e.format()}\n`);
    else err(`kiln: error: cannot write the toolchain to ${outFile}: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}

function readLock(path: string): string {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return "unreadable";
  }
}
