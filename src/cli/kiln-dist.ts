// Entry point of `kiln-dist`: the distributed-compilation scheduler, the build server, and
// both in one process (all-in-one).

import { availableParallelism, hostname } from "node:os";
import { join } from "node:path";
import {
  DEFAULT_BWRAP,
  DEFAULT_HEARTBEAT_MS,
  DEFAULT_PORT,
  DEFAULT_TOOLCHAIN_CACHE_SIZE,
  defaultServerCacheDir,
  loadSchedulerConfig,
  loadServerConfig,
  parseAddr,
} from "../dist/config.ts";
import { stderrLog, type DistLog } from "../dist/log.ts";
import { Scheduler, serveScheduler } from "../dist/scheduler.ts";
import { BuildServer } from "../dist/server.ts";
import { isKilnError } from "../util/errors.ts";
import type { LogLevel } from "../config/config.ts";

const USAGE = `Usage:
  kiln-dist scheduler --config scheduler.toml
  kiln-dist server --config server.toml
  kiln-dist all-in-one [--listen HOST:PORT] [--cache-dir DIR] [--build-dir DIR]
                       [--cores N] [--bwrap PATH] [--client-token T] [--server-token T]
      a scheduler and one build server in one process, on one port (default
      127.0.0.1:${DEFAULT_PORT}); prints the client config to paste, with generated tokens

scheduler.toml: public_addr = "0.0.0.0:${DEFAULT_PORT}", [client_auth] and [server_auth] with
  type = "token" and token = "...".
server.toml: scheduler_url = "http://HOST:${DEFAULT_PORT}", [scheduler_auth] type = "token",
  token = "..." (the scheduler's [server_auth] token), cache_dir, toolchain_cache_size, build_dir,
  bwrap_path. Environment: KILN_LOG (debug|info|warn|error).
`;

function option(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i >= 0) return args[i + 1];
  return args.find((a) => a.startsWith(`${name}=`))?.slice(name.length + 1);
}

function logLevel(env: Record<string, string | undefined>): LogLevel {
  const level = env.KILN_LOG?.toLowerCase();
  return level === "debug" || level === "warn" || level === "error" ? level : "info";
}

function randomToken(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("hex");
}

/** Resolves on SIGINT/SIGTERM. */
function untilStopped(): Promise<void> {
  return new Promise((resolve) => {
    process.once("SIGINT", () => resolve());
    process.once("SIGTERM", () => resolve());
  });
}

function needConfig(args: string[], role: string): string {
  const file = option(args, "--config");
  if (!file) throw new UsageError(`kiln-dist ${role} needs --config FILE`);
  return file;
}

class UsageError extends Error {}

async function scheduler(args: string[], env: Record<string, string | undefined>): Promise<void> {
  const log = stderrLog("scheduler", logLevel(env));
  const { config, notes } = loadSchedulerConfig(needConfig(args, "scheduler"));
  for (const note of notes) log.info(note);
  const scheduler = new Scheduler({ ...config, log });
  const server = serveScheduler(scheduler, config);
  log.info(`listening on http://${config.hostname}:${server.port}`);
  await untilStopped();
  scheduler.close();
  await server.stop(true);
}

async function buildServer(args: string[], env: Record<string, string | undefined>): Promise<void> {
  const log = stderrLog("server", logLevel(env));
  const { config, notes } = loadServerConfig(needConfig(args, "server"), env);
  for (const note of notes) log.info(note);
  const server = await BuildServer.start({ ...config, log });
  log.info(`connecting to ${config.schedulerUrl} as ${config.name}`);
  await untilStopped();
  server.close();
}

async function allInOne(args: string[], env: Record<string, string | undefined>): Promise<void> {
  const level = logLevel(env);
  const listen = parseAddr(option(args, "--listen") ?? `127.0.0.1:${DEFAULT_PORT}`, "--listen");
  const clientToken = option(args, "--client-token") ?? randomToken();
  const serverToken = option(args, "--server-token") ?? randomToken();
  const cacheDir = option(args, "--cache-dir") ?? defaultServerCacheDir(env);
  const cores = Number(option(args, "--cores") ?? availableParallelism());
  if (!Number.isInteger(cores) || cores < 1) throw new UsageError("--cores must be a whole number of at least 1");
  const schedulerLog: DistLog = stderrLog("scheduler", level);
  const scheduler = new Scheduler({ clientToken, serverToken, heartbeatMs: DEFAULT_HEARTBEAT_MS, log: schedulerLog });
  const http = serveScheduler(scheduler, listen);
  const local = `http://${listen.hostname.includes(":") ? `[${listen.hostname}]` : listen.hostname}:${http.port}`;
  let server: BuildServer;
  try {
    server = await BuildServer.start({
      schedulerUrl: listen.hostname === "0.0.0.0" || listen.hostname === "::" ? `http://127.0.0.1:${http.port}` : local,
      token: serverToken,
      name: hostname(),
      cores,
      capacity: cores + 1,
      cacheDir,
      toolchainCacheSize: DEFAULT_TOOLCHAIN_CACHE_SIZE,
      buildDir: option(args, "--build-dir") ?? join(cacheDir, "build"),
      bwrap: option(args, "--bwrap") ?? DEFAULT_BWRAP,
      log: stderrLog("server", level),
    });
  } catch (e) {
    await http.stop(true);
    throw e;
  }
  const shown = listen.hostname === "0.0.0.0" || listen.hostname === "::" ? `http://${hostname()}:${http.port}` : local;
  process.stdout.write(
    `# kiln-dist all-in-one: scheduler and build server at ${shown}\n` +
      `# Paste into the client config (~/.config/kiln/config):\n` +
      `[dist]\nscheduler_url = "${shown}"\n\n[dist.auth]\ntype = "token"\ntoken = "${clientToken}"\n\n` +
      `# More build servers can join with scheduler_url = "${shown}" and\n` +
      `# [scheduler_auth] type = "token", token = "${serverToken}"\n`,
  );
  await untilStopped();
  server.close();
  scheduler.close();
  await http.stop(true);
}

/** The options each command takes, each followed by a value (`--name V` or `--name=V`). */
const OPTIONS: Record<string, readonly string[]> = {
  scheduler: ["--config"],
  server: ["--config"],
  "all-in-one": ["--listen", "--cache-dir", "--build-dir", "--cores", "--bwrap", "--client-token", "--server-token"],
};

/** Refuses what a command does not take, so a misspelt option is not silently ignored. */
function checkOptions(command: string, args: readonly string[]): void {
  const known = OPTIONS[command]!;
  for (let i = 0; i < args.length; i++) {
    const name = args[i]!.split("=")[0]!;
    if (!known.includes(name)) {
      throw new UsageError(`kiln-dist ${command} does not take '${args[i]}' (it takes ${known.join(", ")})`);
    }
    if (!args[i]!.includes("=")) {
      if (args[i + 1] === undefined) throw new UsageError(`${name} needs a value`);
      i++;
    }
  }
}

async function main(args: string[], env: Record<string, string | undefined>): Promise<number> {
  const command = args[0];
  try {
    if (command !== undefined && command in OPTIONS) {
      if (args.includes("-h") || args.includes("--help")) {
        process.stdout.write(USAGE);
        return 0;
      }
      checkOptions(command, args.slice(1));
    }
    switch (command) {
      case "scheduler":
        await scheduler(args.slice(1), env);
        return 0;
      case "server":
        await buildServer(args.slice(1), env);
        return 0;
      case "all-in-one":
        await allInOne(args.slice(1), env);
        return 0;
      case "-h":
      case "--help":
        process.stdout.write(USAGE);
        return 0;
      case "-V":
      case "--version":
        process.stdout.write("kiln-dist 0.1.0\n");
        return 0;
      default:
        process.stderr.write(command === undefined ? USAGE : `kiln-dist: error: unknown command '${command}'\n\n${USAGE}`);
        return 2;
    }
  } catch (e) {
    if (isKilnError(e)) {
      process.stderr.write(`${e.format().replace(/^kiln:/, "kiln-dist:")}\n`);
      return 1;
    }
    if (e instanceof UsageError) {
      process.stderr.write(`kiln-dist: error: ${e.message}\n\n${USAGE}`);
      return 2;
    }
    throw e;
  }
}

void main(process.argv.slice(2), process.env).then((code) => process.exit(code));
