// scheduler.toml and server.toml, with sccache-dist's key names where they exist, so an
// sccache scheduler.conf or server.conf mostly works unchanged. Keys that mean nothing here
// (a server's public_addr: servers dial out) are accepted and explained in one line; unknown
// keys are errors that name the file, the key and the fix.

import { readFileSync } from "node:fs";
import { availableParallelism, homedir, hostname } from "node:os";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { parseSize, parseToml } from "../config/config.ts";
import { KilnError, errnoCode } from "../util/errors.ts";

export interface SchedulerConfig {
  hostname: string;
  port: number;
  clientToken: string;
  serverToken: string;
  heartbeatMs: number;
  /** Bytes of toolchain archives the scheduler keeps in memory. */
  toolchainBytes: number;
}

export interface ServerConfig {
  /** http(s)://host:port of the scheduler. */
  schedulerUrl: string;
  token: string;
  name: string;
  cores: number;
  /** Jobs run at once. */
  capacity: number;
  /** Toolchains are kept in `<cacheDir>/toolchains`. */
  cacheDir: string;
  toolchainCacheSize: number;
  /** Each job gets a fresh directory below this. */
  buildDir: string;
  bwrap: string;
}

export interface Loaded<T> {
  config: T;
  /** One line each: keys read and explained (no meaning here) rather than used. */
  notes: string[];
}

const GiB = 1024 ** 3;

/** A build server's defaults, the same for server.toml and `kiln-dist all-in-one`. */
export const DEFAULT_TOOLCHAIN_CACHE_SIZE = 10 * GiB;
export const DEFAULT_BWRAP = "/usr/bin/bwrap";
export function defaultServerCacheDir(env: Record<string, string | undefined>): string {
  return join(env.XDG_CACHE_HOME || join(env.HOME || homedir(), ".cache"), "kiln-dist");
}
export const DEFAULT_PORT = 10600;
export const DEFAULT_HEARTBEAT_MS = 5000;

/** Reads values out of a parsed TOML file, naming file and key in every error. */
class Reader {
  readonly notes: string[] = [];
  private readonly seen = new Set<string>();

  constructor(
    readonly file: string,
    private readonly doc: Record<string, unknown>,
  ) {}

  private where(path: string): string {
    const dot = path.lastIndexOf(".");
    return dot < 0 ? `${this.file}: ${path}` : `${this.file}: [${path.slice(0, dot)}] ${path.slice(dot + 1)}`;
  }

  private raw(path: string): unknown {
    this.seen.add(path);
    let at: unknown = this.doc;
    for (const part of path.split(".")) {
      if (typeof at !== "object" || at === null || Array.isArray(at)) return undefined;
      at = (at as Record<string, unknown>)[part];
    }
    return at;
  }

  string(path: string, example: string): string | undefined {
    const value = this.raw(path);
    if (value === undefined) return undefined;
    if (typeof value !== "string" || value === "") {
      throw new KilnError("KILN_CONFIG_VALUE", `${this.where(path)} must be a non-empty string`, { hint: `for example: ${lastPart(path)} = ${example}` });
    }
    return value;
  }

  path(path: string): string | undefined {
    const value = this.string(path, '"/var/cache/kiln-dist"');
    if (value === undefined) return undefined;
    const expanded = value === "~" || value.startsWith("~/") ? join(homedir(), value.slice(1)) : value;
    return isAbsolute(expanded) ? resolve(expanded) : resolve(dirname(this.file), expanded);
  }

  size(path: string): number | undefined {
    const value = this.raw(path);
    if (value === undefined) return undefined;
    if (typeof value !== "string" && typeof value !== "number") {
      throw new KilnError("KILN_CONFIG_VALUE", `${this.where(path)} must be a size like "10G"`, { hint: `for example: ${lastPart(path)} = "10G"` });
    }
    return parseSize(value, this.where(path));
  }

  int(path: string, min: number, max: number): number | undefined {
    const value = this.raw(path);
    if (value === undefined) return undefined;
    if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
      throw new KilnError("KILN_CONFIG_VALUE", `${this.where(path)} must be a whole number from ${min} to ${max}`, {
        hint: `for example: ${lastPart(path)} = ${min}`,
      });
    }
    return value;
  }

  /** `[section] type = "token", token = "..."`, the one auth type Kiln has. */
  token(section: string): string | undefined {
    const table = this.raw(section);
    if (table === undefined) return undefined;
    const type = this.string(`${section}.type`, '"token"');
    if (type !== "token") {
      throw new KilnError("KILN_CONFIG_VALUE", `${this.where(`${section}.type`)}: ${JSON.stringify(type ?? "")} is not supported`, {
        hint: `use type = "token" with token = "<a long random string>" (JWT and other sccache auth types are not supported)`,
      });
    }
    const token = this.string(`${section}.token`, '"<a long random string>"');
    if (token === undefined) {
      throw new KilnError("KILN_CONFIG_VALUE", `${this.file}: [${section}] has type = "token" but no token`, {
        hint: `add token = "<a long random string>" to [${section}]`,
      });
    }
    return token;
  }

  /** A key sccache has that means nothing here: read, and explained once. */
  explain(path: string, why: string): void {
    if (this.raw(path) !== undefined) this.notes.push(`${this.where(path)}: ${why}; ignored`);
  }

  /** Everything not read so far is unknown: an error naming it. */
  rejectUnknown(known: string): void {
    const walk = (table: Record<string, unknown>, prefix: string): void => {
      for (const [name, value] of Object.entries(table)) {
        const path = prefix ? `${prefix}.${name}` : name;
        if (this.seen.has(path)) continue;
        if (typeof value === "object" && value !== null && !Array.isArray(value) && [...this.seen].some((s) => s.startsWith(`${path}.`))) {
          walk(value as Record<string, unknown>, path);
          continue;
        }
        throw new KilnError("KILN_CONFIG_KEY", `${this.file}: unknown key \`${path}\``, {
          hint: `remove it or check its spelling; kiln-dist knows ${known}`,
        });
      }
    };
    walk(this.doc, "");
  }
}

function lastPart(path: string): string {
  return path.slice(path.lastIndexOf(".") + 1);
}

function readToml(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, "utf8").replace(/^\uFEFF/, "");
  } catch (e) {
    throw new KilnError("KILN_CONFIG_READ", `cannot read config file ${file}: ${errnoCode(e) ?? String(e)}`, {
      hint: errnoCode(e) === "ENOENT" ? "create it, or give another file with --config" : "check that the file is readable",
      cause: e,
    });
  }
  return parseToml(file, text);
}

/** "host:port" (IPv6 as "[::1]:port"). */
export function parseAddr(text: string, where: string): { hostname: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(text);
  const port = match ? Number(match[3]) : NaN;
  if (!match || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new KilnError("KILN_CONFIG_VALUE", `${where}: ${JSON.stringify(text)} is not an address`, {
      hint: `write host:port, e.g. public_addr = "0.0.0.0:${DEFAULT_PORT}"`,
    });
  }
  return { hostname: match[1] ?? match[2]!, port };
}

export function loadSchedulerConfig(file: string): Loaded<SchedulerConfig> {
  const r = new Reader(file, readToml(file));
  const addr = r.string("public_addr", `"0.0.0.0:${DEFAULT_PORT}"`) ?? `127.0.0.1:${DEFAULT_PORT}`;
  const { hostname, port } = parseAddr(addr, `${file}: public_addr`);
  const clientToken = r.token("client_auth");
  const serverToken = r.token("server_auth");
  const heartbeatMs = r.int("heartbeat_interval_ms", 100, 600_000) ?? DEFAULT_HEARTBEAT_MS;
  const toolchainBytes = r.size("toolchain_cache_size") ?? 4 * GiB;
  for (const [section, key] of [["client_auth", clientToken], ["server_auth", serverToken]] as const) {
    if (key === undefined) {
      throw new KilnError("KILN_CONFIG_VALUE", `${file}: [${section}] is missing`, {
        hint: `add [${section}] with type = "token" and token = "<a long random string>" (e.g. from: openssl rand -hex 32)`,
      });
    }
  }
  r.rejectUnknown("public_addr, heartbeat_interval_ms, toolchain_cache_size, [client_auth] and [server_auth]");
  return { config: { hostname, port, clientToken: clientToken!, serverToken: serverToken!, heartbeatMs, toolchainBytes }, notes: r.notes };
}

export function loadServerConfig(file: string, env: Record<string, string | undefined>): Loaded<ServerConfig> {
  const r = new Reader(file, readToml(file));
  const schedulerUrl = r.string("scheduler_url", `"http://scheduler.example:${DEFAULT_PORT}"`);
  if (schedulerUrl === undefined) {
    throw new KilnError("KILN_CONFIG_VALUE", `${file}: scheduler_url is missing`, {
      hint: `add scheduler_url = "http://<scheduler host>:${DEFAULT_PORT}"`,
    });
  }
  if (!/^https?:\/\/[^/]+\/?$/.test(schedulerUrl)) {
    throw new KilnError("KILN_CONFIG_VALUE", `${file}: scheduler_url ${JSON.stringify(schedulerUrl)} is not an http(s) URL of a host`, {
      hint: `write it as http://host:port, e.g. scheduler_url = "http://10.0.0.5:${DEFAULT_PORT}"`,
    });
  }
  const token = r.token("scheduler_auth");
  if (token === undefined) {
    throw new KilnError("KILN_CONFIG_VALUE", `${file}: [scheduler_auth] is missing`, {
      hint: `add [scheduler_auth] with type = "token" and the token of the scheduler's [server_auth]`,
    });
  }
  const builderType = r.string("builder.type", '"overlay"');
  if (builderType !== undefined && builderType !== "overlay") {
    throw new KilnError("KILN_CONFIG_VALUE", `${file}: [builder] type = ${JSON.stringify(builderType)} is not supported`, {
      hint: 'use type = "overlay" (kiln-dist runs every job in bubblewrap) or leave [builder] out',
    });
  }
  if (builderType !== undefined) r.notes.push(`${file}: [builder] type = "overlay": kiln-dist always runs jobs in bubblewrap; noted`);
  r.explain("public_addr", "a kiln-dist server needs no public address (it connects out to the scheduler)");
  r.explain("bind_address", "a kiln-dist server listens on no port (it connects out to the scheduler)");
  const cacheDir = r.path("cache_dir") ?? defaultServerCacheDir(env);
  const cores = r.int("cores", 1, 65_536) ?? availableParallelism();
  const config: ServerConfig = {
    schedulerUrl: schedulerUrl.replace(/\/$/, ""),
    token,
    name: r.string("name", '"builder-1"') ?? hostname(),
    cores,
    capacity: r.int("capacity", 1, 1_000_000) ?? cores + 1,
    cacheDir,
    toolchainCacheSize: r.size("toolchain_cache_size") ?? DEFAULT_TOOLCHAIN_CACHE_SIZE,
    buildDir: r.path("build_dir") ?? r.path("builder.build_dir") ?? join(cacheDir, "build"),
    bwrap: r.path("bwrap_path") ?? r.path("builder.bwrap_path") ?? DEFAULT_BWRAP,
  };
  r.rejectUnknown("scheduler_url, cache_dir, toolchain_cache_size, build_dir, bwrap_path, name, cores, capacity, [builder] and [scheduler_auth]");
  return { config, notes: r.notes };
}
