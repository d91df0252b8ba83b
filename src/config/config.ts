// Kiln's settings: defaults, then the TOML config file, then KILN_* environment variables.
//
// The file uses sccache's layout where the two overlap ([cache.disk] dir/size, ...), so an
// sccache config works unchanged: its sections and keys that Kiln does not implement yet become
// warnings, never errors. Anything else unknown is an error, because a misspelt key that is
// silently ignored costs a user far more time than a refusal that names the key.
//
// Adding a setting is one line in SETTINGS (and a field in KilnConfig).

import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, isAbsolute, join, normalize, resolve } from "node:path";
import { KilnError, errnoCode } from "../util/errors.ts";
import { parseSize } from "./size.ts";

export { parseSize } from "./size.ts";

export type LogLevel = "debug" | "info" | "warn" | "error";

export interface KilnConfig {
  /** [cache.disk] dir | KILN_DIR */
  cacheDir: string;
  /** [cache.disk] size | KILN_CACHE_SIZE, in bytes */
  cacheSize: number;
  /** [daemon] idle_timeout | KILN_IDLE_TIMEOUT; 0 = never exit */
  idleTimeoutSec: number;
  /** [daemon] log | KILN_LOG */
  logLevel: LogLevel;
  /** [daemon] log_file | KILN_ERROR_LOG; undefined = the daemon picks its default */
  logFile: string | undefined;
  /** [cache] direct_mode (or sccache's use_preprocessor_cache_mode) | KILN_DIRECT */
  directMode: boolean;
  /** [cache] depend_mode | KILN_DEPEND */
  dependMode: boolean;
  /** basedirs | KILN_BASEDIRS (':'-separated): absolute, normalized, no trailing slash */
  basedirs: string[];
  /** The shared cache levels after local disk, in lookup order ([cache.multilevel] chain). */
  remoteLevels: RemoteLevel[];
  /** [dist] scheduler_url | KILN_DIST_SCHEDULER_URL; undefined = compile locally */
  distSchedulerUrl: string | undefined;
  /** [dist.auth] token | KILN_DIST_TOKEN (with [dist.auth] type = "token") */
  distToken: string | undefined;
  /** [dist] cache_dir | KILN_DIST_CACHE_DIR: packaged toolchains; undefined = <cacheDir>/dist-toolchains */
  distCacheDir: string | undefined;
  /** [dist] connect_timeout | KILN_DIST_CONNECT_TIMEOUT, seconds to reach the scheduler */
  distConnectTimeoutSec: number;
  /** [dist] request_timeout | KILN_DIST_REQUEST_TIMEOUT, seconds for one remote compile or upload */
  distRequestTimeoutSec: number;
  /** [dist] retry_after | KILN_DIST_RETRY_AFTER, seconds of local compiles after the scheduler was unreachable */
  distRetryAfterSec: number;
  /** The config file that was read, if any. */
  configFile: string | undefined;
}

const REMOTE_BACKENDS = ["redis", "memcached", "webdav", "s3"] as const;
export type RemoteBackend = (typeof REMOTE_BACKENDS)[number];

/** Keys every remote level has. */
export interface RemoteCommon {
  keyPrefix: string;
  readOnly: boolean;
  connectTimeoutMs: number;
  /** A whole get or put, once connected. */
  timeoutMs: number;
  /** Entries larger than this are not written to the level (counted as oversized). */
  maxEntrySize: number;
}

export interface RedisLevel extends RemoteCommon {
  backend: "redis";
  endpoint: string;
  username: string | undefined;
  password: string | undefined;
  db: number;
  /** Seconds; 0 = no expiry. */
  expiration: number;
}

export interface S3Level extends RemoteCommon {
  backend: "s3";
  bucket: string;
  endpoint: string | undefined;
  region: string | undefined;
  useSsl: boolean;
  noCredentials: boolean;
  virtualHostStyle: boolean;
  /** AWS profile for the shared credentials file; default AWS_PROFILE, then "default". */
  profile: string | undefined;
}

export interface MemcachedLevel extends RemoteCommon {
  backend: "memcached";
  endpoint: string;
  username: string | undefined;
  password: string | undefined;
  expiration: number;
  /** The server's item size limit (memcached -I); larger entries are split into chunks. */
  itemSize: number;
}

export type WebdavLayout = "subdirs" | "flat" | "bazel";

export interface WebdavLevel extends RemoteCommon {
  backend: "webdav";
  endpoint: string;
  username: string | undefined;
  password: string | undefined;
  token: string | undefined;
  layout: WebdavLayout;
}

export type RemoteLevel = RedisLevel | S3Level | MemcachedLevel | WebdavLevel;

/** Raw per-backend values as read, by camelCase property; resolved by `resolveRemoteLevels`. */
type RawRemotes = Partial<Record<RemoteBackend, Record<string, unknown>>>;

export interface LoadedConfig {
  config: KilnConfig;
  /** One line each, for the user: sccache settings that were read but are ignored. */
  warnings: string[];
}

type Settings = Omit<KilnConfig, "configFile" | "remoteLevels"> & {
  remotes: RawRemotes;
  /** [cache.multilevel] chain | KILN_CACHE_CHAIN */
  chain: string[] | undefined;
  /** [dist.auth] type: only "token" exists. */
  distAuthType: "token";
};

/** Where one value came from, for messages and for resolving relative paths. */
interface Site {
  /** `/home/me/.config/kiln/config: [cache.disk] size` or `environment variable KILN_DIR` */
  where: string;
  /** TOML key name (`size`), or undefined when the value came from the environment. */
  key: string | undefined;
  /** Environment variable name, or undefined when the value came from the file. */
  envName: string | undefined;
  /** Relative paths in the file resolve against the file's directory; the environment has none. */
  baseDir: string | undefined;
  home: string;
}

/** How to read one type of value from TOML (already typed) or from an environment string. */
interface Kind<T> {
  /** Completes "must be ...": `a size like "10G" or a byte count`. */
  expected: string;
  /** A valid TOML value, for hints: `"10G"`. */
  tomlExample: string;
  /** A valid environment value, for hints: `10G`. */
  envExample: string;
  fromToml(value: unknown, site: Site): T;
  fromEnv(text: string, site: Site): T;
}

interface Setting {
  /** Dotted TOML path: `cache.disk.size`; top-level keys have no dot. */
  path: string;
  env: string | undefined;
  /** What the setting sets, for catching two keys of one file that disagree. */
  slot: string;
  /** The value it set, if any. */
  read(from: Partial<Settings>): unknown;
  /** Parse a TOML value and store it in `into`. */
  applyToml(value: unknown, site: Site, into: Partial<Settings>): void;
  /** Parse an environment string and store it in `into`. */
  applyEnv(text: string, site: Site, into: Partial<Settings>): void;
}

function setting<F extends keyof Settings>(
  path: string,
  env: string | undefined,
  field: F,
  kind: Kind<Settings[F]>,
): Setting {
  return {
    path,
    env,
    slot: field,
    read: (from) => from[field],
    applyToml: (value, site, into) => {
      into[field] = kind.fromToml(value, site);
    },
    applyEnv: (text, site, into) => {
      into[field] = kind.fromEnv(text, site);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Value kinds

const BOOLEAN_WORDS: Record<string, boolean> = {
  "1": true, true: true, yes: true, on: true,
  "0": false, false: false, no: false, off: false,
};

const booleanKind: Kind<boolean> = {
  expected: "true or false",
  tomlExample: "true",
  envExample: "1",
  fromToml(value, site) {
    if (typeof value !== "boolean") throw wrongType(site, value, this);
    return value;
  },
  fromEnv(text, site) {
    const value = BOOLEAN_WORDS[text.trim().toLowerCase()];
    if (value === undefined) {
      throw new KilnError("KILN_CONFIG_VALUE", `${site.where}: ${quote(text)} is not a boolean`, {
        hint: `use 1/0, true/false, yes/no or on/off, e.g. ${site.envName}=1`,
      });
    }
    return value;
  },
};

const sizeKind: Kind<number> = {
  expected: 'a size like "10G" or a byte count',
  tomlExample: '"10G"',
  envExample: "10G",
  fromToml(value, site) {
    if (typeof value !== "string" && typeof value !== "number") throw wrongType(site, value, this);
    return parseSize(value, site.where);
  },
  fromEnv: (text, site) => parseSize(text, site.where),
};

// Timers in Bun and Node overflow above 2^31-1 ms and then fire at once; stay below that.
const MAX_SECONDS = Math.floor((2 ** 31 - 1) / 1000);

const secondsKind: Kind<number> = {
  expected: "a whole number of seconds",
  tomlExample: "600",
  envExample: "600",
  fromToml(value, site) {
    if (typeof value !== "number") throw wrongType(site, value, this);
    return checkSeconds(value, String(value), site);
  },
  fromEnv(text, site) {
    const trimmed = text.trim();
    return checkSeconds(/^\d+$/.test(trimmed) ? Number(trimmed) : NaN, text, site);
  },
};

function checkSeconds(value: number, shown: string, site: Site): number {
  const example = site.envName ? `${site.envName}=600` : `${site.key} = 600`;
  if (!Number.isInteger(value) || value < 0) {
    throw new KilnError(
      "KILN_CONFIG_VALUE",
      `${site.where}: ${quote(shown)} is not a whole number of seconds`,
      { hint: `write a number of seconds (0 = never), e.g. ${example}` },
    );
  }
  if (value > MAX_SECONDS) {
    throw new KilnError(
      "KILN_CONFIG_VALUE",
      `${site.where}: ${value} seconds is more than the maximum of ${MAX_SECONDS} (about 24 days)`,
      { hint: "use 0 to keep the daemon running until it is stopped" },
    );
  }
  return value;
}

/** A scheduler address: http(s), no credentials in it. */
const urlKind: Kind<string | undefined> = {
  expected: "an http:// or https:// URL",
  tomlExample: '"http://10.0.0.5:10600"',
  envExample: "http://10.0.0.5:10600",
  fromToml(value, site) {
    if (typeof value !== "string") throw wrongType(site, value, this);
    return this.fromEnv(value, site);
  },
  fromEnv(text, site) {
    let url: URL | undefined;
    try {
      url = new URL(text.trim());
    } catch {}
    if (!url || (url.protocol !== "http:" && url.protocol !== "https:") || url.username || url.password) {
      const example = site.envName ? `${site.envName}=${this.envExample}` : `${site.key} = ${this.tomlExample}`;
      throw new KilnError("KILN_CONFIG_VALUE", `${site.where}: ${quote(text)} is not an http:// or https:// URL`, {
        hint: `give the scheduler's address (the token goes in [dist.auth]), e.g. ${example}`,
      });
    }
    return url.href.replace(/\/+$/, "");
  },
};

/** A secret: any non-empty string, never repeated in a message. */
const secretKind: Kind<string | undefined> = {
  expected: "a non-empty string",
  tomlExample: '"the-token"',
  envExample: "the-token",
  fromToml(value, site) {
    if (typeof value !== "string" || value === "") {
      throw new KilnError("KILN_CONFIG_VALUE", `${site.where} must be a non-empty string`, {
        hint: `for example: ${site.key} = ${this.tomlExample}`,
      });
    }
    return value;
  },
  fromEnv: (text) => text,
};

const authTypeKind: Kind<"token"> = {
  expected: 'the string "token"',
  tomlExample: '"token"',
  envExample: "token",
  fromToml(value, site) {
    if (value !== "token") {
      throw new KilnError("KILN_CONFIG_VALUE", `${site.where}: only type = "token" is supported, not ${describeValue(value)}`, {
        hint: 'write type = "token" and the scheduler\'s client token as token = "..."',
      });
    }
    return value;
  },
  fromEnv: () => "token",
};

const LOG_LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error"];

const logLevelKind: Kind<LogLevel> = {
  expected: `one of ${LOG_LEVELS.map((l) => `"${l}"`).join(", ")}`,
  tomlExample: '"info"',
  envExample: "info",
  fromToml(value, site) {
    if (typeof value !== "string") throw wrongType(site, value, this);
    return this.fromEnv(value, site);
  },
  fromEnv(text, site) {
    const level = LOG_LEVELS.find((l) => l === text.trim().toLowerCase());
    if (!level) {
      const example = site.envName ? `${site.envName}=info` : `${site.key} = "info"`;
      throw new KilnError("KILN_CONFIG_VALUE", `${site.where}: ${quote(text)} is not a log level`, {
        hint: `use one of ${LOG_LEVELS.join(", ")}, e.g. ${example}`,
      });
    }
    return level;
  },
};

/** A file or directory path. In the file, relative paths resolve against the file's directory. */
const pathKind: Kind<string> = {
  expected: "a path string",
  tomlExample: '"/path/to/it"',
  envExample: "/path/to/it",
  fromToml(value, site) {
    if (typeof value !== "string" || value === "") throw wrongType(site, value, this);
    return resolveUserPath(value, site);
  },
  fromEnv: (text, site) => resolveUserPath(text, site),
};

/** Absolute paths only (they are prefixes that Kiln strips from paths it hashes). */
const absolutePathListKind: Kind<string[]> = {
  expected: "a list of absolute paths",
  tomlExample: '["/home/me/src"]',
  envExample: "/home/me/src:/build",
  fromToml(value, site) {
    if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
      throw wrongType(site, value, this);
    }
    return normalizeAbsolutePaths(value, site);
  },
  fromEnv: (text, site) =>
    normalizeAbsolutePaths(text.split(":").filter((p) => p !== ""), site),
};

function normalizeAbsolutePaths(paths: readonly string[], site: Site): string[] {
  const out: string[] = [];
  for (const raw of paths) {
    const expanded = expandHome(raw, site);
    if (!isAbsolute(expanded)) {
      const example = site.envName
        ? `${site.envName}="$PWD/${raw}"`
        : `${site.key} = ["/home/me/${raw}"]`;
      throw new KilnError("KILN_CONFIG_VALUE", `${site.where}: ${quote(raw)} is not an absolute path`, {
        hint: `base directories must be absolute, e.g. ${example}`,
      });
    }
    const path = stripTrailingSlash(normalize(expanded));
    if (!out.includes(path)) out.push(path);
  }
  return out;
}

function resolveUserPath(raw: string, site: Site): string {
  const expanded = expandHome(raw, site);
  if (isAbsolute(expanded)) return stripTrailingSlash(normalize(expanded));
  if (site.baseDir !== undefined) return resolve(site.baseDir, expanded);
  // The client and the daemon run in different directories, so a relative path from the
  // environment would name different places; refuse it rather than guess.
  throw new KilnError("KILN_CONFIG_VALUE", `${site.where}: ${quote(raw)} is not an absolute path`, {
    hint: `use an absolute path, e.g. ${site.envName}="$PWD/${raw}"`,
  });
}

function stripTrailingSlash(path: string): string {
  return path.length > 1 && path.endsWith("/") ? path.slice(0, -1) : path;
}

function expandHome(raw: string, site: Site): string {
  if (raw === "~") return site.home;
  if (raw.startsWith("~/")) return join(site.home, raw.slice(2));
  if (raw.startsWith("~")) {
    throw new KilnError("KILN_CONFIG_VALUE", `${site.where}: ${quote(raw)}: ~user paths are not supported`, {
      hint: "write the full path, or ~/... for your own home directory",
    });
  }
  return raw;
}

function wrongType(site: Site, value: unknown, kind: Kind<unknown>): KilnError {
  const example = site.envName ? `${site.envName}=${kind.envExample}` : `${site.key} = ${kind.tomlExample}`;
  return new KilnError(
    "KILN_CONFIG_VALUE",
    `${site.where} must be ${kind.expected}, not ${describeValue(value)}`,
    { hint: `for example: ${example}` },
  );
}

const stringKind: Kind<string> = {
  expected: "a non-empty string",
  tomlExample: '"text"',
  envExample: "text",
  fromToml(value, site) {
    if (typeof value !== "string" || value === "") throw wrongType(site, value, this);
    return value;
  },
  fromEnv: (text) => text,
};

const wholeNumberKind: Kind<number> = {
  expected: "a whole number",
  tomlExample: "0",
  envExample: "0",
  fromToml(value, site) {
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) throw wrongType(site, value, this);
    return value;
  },
  fromEnv(text, site) {
    const trimmed = text.trim();
    if (!/^\d+$/.test(trimmed)) throw wrongType(site, text, this);
    return Number(trimmed);
  },
};

const LAYOUTS: readonly WebdavLayout[] = ["subdirs", "flat", "bazel"];

const layoutKind: Kind<WebdavLayout> = {
  expected: `one of ${LAYOUTS.map((l) => `"${l}"`).join(", ")}`,
  tomlExample: '"subdirs"',
  envExample: "subdirs",
  fromToml(value, site) {
    if (typeof value !== "string") throw wrongType(site, value, this);
    return this.fromEnv(value, site);
  },
  fromEnv(text, site) {
    const layout = LAYOUTS.find((l) => l === text.trim().toLowerCase());
    if (!layout) throw wrongType(site, text, this);
    return layout;
  },
};

const CHAIN_NAMES = ["disk", ...REMOTE_BACKENDS] as const;

/** `["disk", "redis", "s3"]` in the file, `disk,redis,s3` in the environment. */
const chainKind: Kind<string[]> = {
  expected: `a list of cache levels (${CHAIN_NAMES.join(", ")})`,
  tomlExample: '["disk", "redis"]',
  envExample: "disk,redis",
  fromToml(value, site) {
    if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) throw wrongType(site, value, this);
    return checkChain(value, site);
  },
  fromEnv: (text, site) => checkChain(text.split(/[\s,]+/).filter((n) => n !== ""), site),
};

function checkChain(names: readonly string[], site: Site): string[] {
  const out: string[] = [];
  for (const raw of names) {
    const name = raw.trim().toLowerCase();
    if (!(CHAIN_NAMES as readonly string[]).includes(name)) {
      const close = nearest(name, CHAIN_NAMES);
      throw new KilnError("KILN_CONFIG_VALUE", `${site.where}: unknown cache level ${quote(raw)}`, {
        hint: `${close ? `did you mean "${close}"? ` : ""}levels are ${CHAIN_NAMES.join(", ")}`,
      });
    }
    if (out.includes(name)) {
      throw new KilnError("KILN_CONFIG_VALUE", `${site.where}: ${quote(name)} appears twice`, { hint: "name each level once" });
    }
    if (name === "disk" && out.length > 0) {
      throw new KilnError("KILN_CONFIG_VALUE", `${site.where}: "disk" must come first`, {
        hint: "local disk is always level 0; list the shared levels after it, fastest first",
      });
    }
    out.push(name);
  }
  return out;
}

/** One key of a remote backend's section: `[cache.<backend>] key` | KILN_<BACKEND>_<KEY>. */
function remoteSetting<T>(backend: RemoteBackend, key: string, prop: string, kind: Kind<T>, withEnv = true): Setting {
  const path = `cache.${backend}.${key}`;
  const store = (into: Partial<Settings>, value: T): void => {
    const remotes: RawRemotes = { ...into.remotes };
    remotes[backend] = { ...remotes[backend], [prop]: value };
    into.remotes = remotes;
  };
  return {
    path,
    env: withEnv ? `KILN_${backend.toUpperCase()}_${key.toUpperCase()}` : undefined,
    slot: `${backend}.${prop}`,
    read: (from) => from.remotes?.[backend]?.[prop],
    applyToml: (value, site, into) => store(into, kind.fromToml(value, site)),
    applyEnv: (text, site, into) => store(into, kind.fromEnv(text, site)),
  };
}

function remoteSettings(): Setting[] {
  const list: Setting[] = [];
  for (const backend of REMOTE_BACKENDS) {
    list.push(
      remoteSetting(backend, "key_prefix", "keyPrefix", { ...stringKind, fromToml: (v, site) => (v === "" ? "" : stringKind.fromToml(v, site)) }),
      remoteSetting(backend, "read_only", "readOnly", booleanKind),
      remoteSetting(backend, "connect_timeout_ms", "connectTimeoutMs", wholeNumberKind),
      remoteSetting(backend, "timeout_ms", "timeoutMs", wholeNumberKind),
      remoteSetting(backend, "max_entry_size", "maxEntrySize", sizeKind),
    );
  }
  list.push(
    remoteSetting("redis", "endpoint", "endpoint", stringKind),
    remoteSetting("redis", "url", "endpoint", stringKind, false), // sccache's older name
    remoteSetting("redis", "username", "username", stringKind),
    remoteSetting("redis", "password", "password", secretKind),
    remoteSetting("redis", "db", "db", wholeNumberKind),
    remoteSetting("redis", "expiration", "expiration", wholeNumberKind),
    remoteSetting("redis", "ttl", "expiration", wholeNumberKind, false), // sccache's older name
    remoteSetting("s3", "bucket", "bucket", stringKind),
    remoteSetting("s3", "endpoint", "endpoint", stringKind),
    remoteSetting("s3", "region", "region", stringKind),
    remoteSetting("s3", "use_ssl", "useSsl", booleanKind),
    remoteSetting("s3", "no_credentials", "noCredentials", booleanKind),
    remoteSetting("s3", "enable_virtual_host_style", "virtualHostStyle", booleanKind),
    remoteSetting("s3", "profile", "profile", stringKind),
    remoteSetting("memcached", "endpoint", "endpoint", stringKind),
    remoteSetting("memcached", "url", "endpoint", stringKind, false), // sccache's older name
    remoteSetting("memcached", "username", "username", stringKind),
    remoteSetting("memcached", "password", "password", secretKind),
    remoteSetting("memcached", "expiration", "expiration", wholeNumberKind),
    remoteSetting("memcached", "item_size", "itemSize", sizeKind),
    remoteSetting("webdav", "endpoint", "endpoint", stringKind),
    remoteSetting("webdav", "username", "username", stringKind),
    remoteSetting("webdav", "password", "password", secretKind),
    remoteSetting("webdav", "token", "token", secretKind),
    remoteSetting("webdav", "layout", "layout", layoutKind),
  );
  return list;
}

/** The key that switches each backend on. */
const REQUIRED_KEY: Record<RemoteBackend, string> = { redis: "endpoint", s3: "bucket", memcached: "endpoint", webdav: "endpoint" };

const MiB = 1024 ** 2;

/** Typed levels with defaults, in chain order; errors name what is missing. */
/** Settings of a backend without its switch (e.g. only KILN_REDIS_TIMEOUT_MS) are unused. */
function resolveRemoteLevels(remotes: RawRemotes, chain: string[] | undefined): RemoteLevel[] {
  const configured = REMOTE_BACKENDS.filter((b) => remotes[b]?.[REQUIRED_KEY[b]] !== undefined);
  const order = chain ? chain.filter((n) => n !== "disk") : configured;
  return order.map((name) => {
    const backend = name as RemoteBackend;
    const raw = remotes[backend];
    if (!raw || !configured.includes(backend)) {
      throw new KilnError("KILN_CONFIG_VALUE", `the cache chain names "${backend}", but no ${backend} cache is configured`, {
        hint: `set [cache.${backend}] ${REQUIRED_KEY[backend]} (or KILN_${backend.toUpperCase()}_${REQUIRED_KEY[backend].toUpperCase()}), or drop "${backend}" from [cache.multilevel] chain / KILN_CACHE_CHAIN`,
      });
    }
    const str = (k: string) => raw[k] as string | undefined;
    const num = (k: string, d: number) => (raw[k] as number | undefined) ?? d;
    const common: RemoteCommon = {
      keyPrefix: str("keyPrefix") ?? "",
      readOnly: (raw.readOnly as boolean | undefined) ?? false,
      connectTimeoutMs: num("connectTimeoutMs", 1000),
      timeoutMs: num("timeoutMs", 5000),
      maxEntrySize: num("maxEntrySize", 64 * MiB),
    };
    switch (backend) {
      case "redis":
        return { backend, ...common, endpoint: str("endpoint")!, username: str("username"), password: str("password"), db: num("db", 0), expiration: num("expiration", 0) };
      case "s3":
        return {
          backend, ...common, bucket: str("bucket")!, endpoint: str("endpoint"), region: str("region"),
          useSsl: (raw.useSsl as boolean | undefined) ?? true, noCredentials: (raw.noCredentials as boolean | undefined) ?? false,
          virtualHostStyle: (raw.virtualHostStyle as boolean | undefined) ?? false, profile: str("profile"),
        };
      case "memcached":
        return { backend, ...common, endpoint: str("endpoint")!, username: str("username"), password: str("password"), expiration: num("expiration", 0), itemSize: num("itemSize", MiB) };
      case "webdav":
        return { backend, ...common, endpoint: str("endpoint")!, username: str("username"), password: str("password"), token: str("token"), layout: (raw.layout as WebdavLayout | undefined) ?? "subdirs" };
    }
  });
}

// ---------------------------------------------------------------------------------------------
// The schema

const GiB = 1024 ** 3;

const SETTINGS: readonly Setting[] = [
  setting("cache.disk.dir", "KILN_DIR", "cacheDir", pathKind),
  setting("cache.disk.size", "KILN_CACHE_SIZE", "cacheSize", sizeKind),
  setting("cache.direct_mode", "KILN_DIRECT", "directMode", booleanKind),
  setting("cache.depend_mode", "KILN_DEPEND", "dependMode", booleanKind),
  setting("daemon.idle_timeout", "KILN_IDLE_TIMEOUT", "idleTimeoutSec", secondsKind),
  setting("daemon.log", "KILN_LOG", "logLevel", logLevelKind),
  setting("daemon.log_file", "KILN_ERROR_LOG", "logFile", pathKind),
  setting("basedirs", "KILN_BASEDIRS", "basedirs", absolutePathListKind),
  setting("dist.scheduler_url", "KILN_DIST_SCHEDULER_URL", "distSchedulerUrl", urlKind),
  setting("dist.auth.type", undefined, "distAuthType", authTypeKind),
  setting("dist.auth.token", "KILN_DIST_TOKEN", "distToken", secretKind),
  setting("dist.cache_dir", "KILN_DIST_CACHE_DIR", "distCacheDir", pathKind),
  setting("dist.connect_timeout", "KILN_DIST_CONNECT_TIMEOUT", "distConnectTimeoutSec", secondsKind),
  setting("dist.request_timeout", "KILN_DIST_REQUEST_TIMEOUT", "distRequestTimeoutSec", secondsKind),
  setting("dist.retry_after", "KILN_DIST_RETRY_AFTER", "distRetryAfterSec", secondsKind),
  // sccache's name for direct mode.
  setting("cache.disk.preprocessor_cache_mode.use_preprocessor_cache_mode", undefined, "directMode", booleanKind),
  setting("cache.multilevel.chain", "KILN_CACHE_CHAIN", "chain", chainKind),
  ...remoteSettings(),
];

/** sccache sections Kiln reads past with a warning, and what each one is. */
const UNSUPPORTED_SECTIONS: Record<string, string> = {
  "cache.azure": "the Azure Blob Storage cache",
  "cache.cos": "the Tencent COS cache",
  "cache.gcs": "the Google Cloud Storage cache",
  "cache.gha": "the GitHub Actions cache",
  "cache.oss": "the Alibaba OSS cache",
};

const NOT_YET = "not supported by this Kiln version yet";

/** sccache keys Kiln reads past with a warning, and why. */
const IGNORED_KEYS: Record<string, string> = {
  server_startup_timeout_ms: "sccache's server start-up timeout has no Kiln equivalent",
  cache_stats_file: NOT_YET,
  "cache.disk.rw_mode": `a read-only local cache is ${NOT_YET}`,
  "dist.toolchains": "Kiln packages gcc/clang toolchains itself; prepackaged toolchains are " + NOT_YET,
  "dist.toolchain_cache_size": "Kiln keeps one package per compiler; a size limit is " + NOT_YET,
  "dist.rewrite_includes_only": "Kiln always sends fully preprocessed source",
  "cache.disk.preprocessor_cache_mode.file_stat_matches": NOT_YET,
  "cache.disk.preprocessor_cache_mode.use_ctime_for_stat": NOT_YET,
  "cache.disk.preprocessor_cache_mode.ignore_time_macros": NOT_YET,
  "cache.disk.preprocessor_cache_mode.skip_system_headers": NOT_YET,
  "cache.disk.preprocessor_cache_mode.hash_working_directory": NOT_YET,
  "cache.redis.cluster_endpoints": `Redis Cluster is ${NOT_YET}`,
  "cache.s3.server_side_encryption": `server-side encryption settings are ${NOT_YET} (the bucket's default applies)`,
};

const SETTING_BY_PATH = new Map(SETTINGS.map((s) => [s.path, s]));

/** Every section that holds a known or ignored key: "cache", "cache.disk", "daemon", ... */
const KNOWN_SECTIONS = new Set(
  [...SETTING_BY_PATH.keys(), ...Object.keys(IGNORED_KEYS)].flatMap((path) => {
    const parts = path.split(".");
    return parts.slice(1).map((_, i) => parts.slice(0, i + 1).join("."));
  }),
);

// ---------------------------------------------------------------------------------------------
// Loading

export function loadConfig(
  env: Record<string, string | undefined>,
  opts: { homeDir?: string } = {},
): LoadedConfig {
  const home = opts.homeDir ?? (env.HOME || homedir());
  const warnings: string[] = [];
  const defaultFile = join(xdgDir(env.XDG_CONFIG_HOME, home, ".config"), "kiln", "config");

  const values: Settings = {
    cacheDir: join(xdgDir(env.XDG_CACHE_HOME, home, ".cache"), "kiln"),
    cacheSize: 10 * GiB,
    idleTimeoutSec: 600,
    logLevel: "warn",
    logFile: undefined,
    directMode: true,
    dependMode: false,
    basedirs: [],
    remotes: {},
    chain: undefined,
    distSchedulerUrl: undefined,
    distAuthType: "token",
    distToken: undefined,
    distCacheDir: undefined,
    distConnectTimeoutSec: 5,
    distRequestTimeoutSec: 600,
    distRetryAfterSec: 5,
  };

  let configFile: string | undefined;
  const named = env.KILN_CONF || undefined;
  const path = named === undefined ? defaultFile : namedConfigPath(named, home);
  const text = readConfigFile(path, named !== undefined, defaultFile);
  if (text !== undefined) {
    configFile = path;
    Object.assign(values, readFileSettings(path, text, home, warnings));
  }

  const fromEnv: Partial<Settings> = {};
  for (const s of SETTINGS) {
    // An empty variable counts as unset, so `KILN_DIR= make` does not point the cache at "".
    const text = s.env === undefined ? undefined : env[s.env];
    if (s.env === undefined || text === undefined || text === "") continue;
    const site: Site = {
      where: `environment variable ${s.env}`,
      key: undefined,
      envName: s.env,
      baseDir: undefined,
      home,
    };
    s.applyEnv(text, site, fromEnv);
  }
  const remotes: RawRemotes = { ...values.remotes };
  for (const b of REMOTE_BACKENDS) {
    if (fromEnv.remotes?.[b]) remotes[b] = { ...remotes[b], ...fromEnv.remotes[b] };
  }
  Object.assign(values, fromEnv, { remotes });
  const { remotes: _raw, chain, distAuthType: _type, ...rest } = values;
  if (rest.distSchedulerUrl !== undefined && rest.distToken === undefined) {
    warnings.push(
      `[dist] scheduler_url is set but no client token is ([dist.auth] token or KILN_DIST_TOKEN); the scheduler will refuse every job`,
    );
  }
  const remoteLevels = resolveRemoteLevels(remotes, chain);
  return { config: { ...rest, remoteLevels, configFile }, warnings };
}

/** XDG base directories must be absolute to count (XDG Base Directory spec). */
function xdgDir(value: string | undefined, home: string, fallback: string): string {
  return value && isAbsolute(value) ? value : join(home, fallback);
}

function namedConfigPath(named: string, home: string): string {
  const site: Site = { where: "environment variable KILN_CONF", key: undefined, envName: "KILN_CONF", baseDir: undefined, home };
  return resolveUserPath(named, site);
}

function readConfigFile(path: string, named: boolean, defaultFile: string): string | undefined {
  try {
    // A byte-order mark is legal in a UTF-8 file but not in TOML's grammar.
    return readFileSync(path, "utf8").replace(/^\uFEFF/, "");
  } catch (e) {
    const code = errnoCode(e);
    if (code === "ENOENT" || code === "ENOTDIR") {
      if (!named) return undefined;
      throw new KilnError("KILN_CONFIG_MISSING", `config file ${path} (named by KILN_CONF) does not exist`, {
        hint: `create it, point KILN_CONF at an existing file, or unset KILN_CONF to use ${defaultFile}`,
        cause: e,
      });
    }
    const by = named ? " (named by KILN_CONF)" : "";
    throw new KilnError("KILN_CONFIG_READ", `cannot read config file ${path}${by}: ${code ?? String(e)}`, {
      hint: code === "EISDIR" ? "the config must be a file, not a directory" : "check that the file is readable by you",
      cause: e,
    });
  }
}

function readFileSettings(file: string, text: string, home: string, warnings: string[]): Partial<Settings> {
  const doc = parseToml(file, text);
  const out: Partial<Settings> = {};
  // Which key set each field, to catch `direct_mode` and `use_preprocessor_cache_mode` disagreeing.
  const setBy = new Map<string, string>();

  const walk = (table: Record<string, unknown>, section: string): void => {
    for (const [name, value] of Object.entries(table)) {
      const path = section ? `${section}.${name}` : name;
      const where = `${file}: ${displayKey(section, name)}`;
      const unsupported = UNSUPPORTED_SECTIONS[path];
      if (unsupported !== undefined) {
        warnings.push(`${file}: [${path}] (${unsupported}) is ${NOT_YET}; ignored`);
        continue;
      }
      const ignored = IGNORED_KEYS[path];
      if (ignored !== undefined) {
        warnings.push(`${where}: ${ignored}; ignored`);
        continue;
      }
      const s = SETTING_BY_PATH.get(path);
      if (s) {
        const site: Site = { where, key: name, envName: undefined, baseDir: dirname(file), home };
        const previous = s.read(out);
        s.applyToml(value, site, out);
        const earlier = setBy.get(s.slot);
        if (earlier !== undefined && s.read(out) !== previous) {
          throw new KilnError("KILN_CONFIG_VALUE", `${where} contradicts ${earlier} in the same file`, {
            hint: "both set the same thing; keep one of them",
          });
        }
        setBy.set(s.slot, displayKey(section, name));
        continue;
      }
      if (KNOWN_SECTIONS.has(path)) {
        if (!isTable(value)) {
          throw new KilnError("KILN_CONFIG_VALUE", `${file}: \`${path}\` must be a section, not ${describeValue(value)}`, {
            hint: `write it as a table header: [${path}]`,
          });
        }
        walk(value, path);
        continue;
      }
      throw unknownEntry(file, section, name, isTable(value));
    }
  };
  walk(doc, "");
  return out;
}

export function parseToml(file: string, text: string): Record<string, unknown> {
  try {
    return Bun.TOML.parse(text) as Record<string, unknown>;
  } catch (e) {
    const raw = e instanceof Error ? e.message : String(e);
    const problem = raw.replace(/^TOML Parse error:\s*/, "");
    const line = syntaxErrorLine(text, raw);
    // The line's text is left out on purpose: it may hold a password or token.
    throw new KilnError(
      "KILN_CONFIG_SYNTAX",
      `${file}:${line}: invalid TOML on line ${line}: ${problem.charAt(0).toLowerCase()}${problem.slice(1)}`,
      { hint: syntaxHint(problem, line), cause: e },
    );
  }
}

/**
 * Bun's TOML errors carry no position in the TOML text (their line/column point at the
 * JavaScript caller), so find it: the error is on the first line from which every longer
 * prefix of the file fails with the same message. Scanning from the end keeps a multi-line
 * array or string that merely looks unfinished in a shorter prefix from being blamed.
 */
function syntaxErrorLine(text: string, message: string): number {
  const lines = text.split("\n");
  const failsTheSame = (count: number): boolean => {
    try {
      Bun.TOML.parse(lines.slice(0, count).join("\n") + "\n");
      return false;
    } catch (e) {
      return e instanceof Error && e.message === message;
    }
  };
  let line = lines.length;
  while (line > 1 && failsTheSame(line - 1)) line--;
  return line;
}

function syntaxHint(problem: string, line: number): string {
  if (/after a value|after a key\/value pair/i.test(problem)) {
    return `values with units or spaces must be quoted, e.g. size = "10G" (line ${line})`;
  }
  if (/expected a value|must be quoted/i.test(problem)) {
    return `strings must be quoted, e.g. dir = "/path/to/cache" (line ${line})`;
  }
  if (/redefine/i.test(problem)) {
    return `each key and each [section] may appear only once; remove or merge the duplicate on line ${line}`;
  }
  return `fix line ${line}; the TOML syntax is described at https://toml.io`;
}

function unknownEntry(file: string, section: string, name: string, asSection: boolean): KilnError {
  const parent = sectionLabel(section);
  if (asSection) {
    const path = section ? `${section}.${name}` : name;
    const siblings = [...KNOWN_SECTIONS, ...Object.keys(UNSUPPORTED_SECTIONS)].filter(
      (p) => parentOf(p) === section,
    );
    const close = nearest(name, siblings.map(lastPart));
    const elsewhere = [...KNOWN_SECTIONS].find((p) => p !== path && lastPart(p) === name);
    // The right name in the wrong place is a likelier mistake than a typo of a neighbour.
    const guess = elsewhere ?? (close !== undefined ? join2(section, close) : undefined);
    const known = [...KNOWN_SECTIONS].sort().map((p) => `[${p}]`).join(", ");
    return new KilnError("KILN_CONFIG_KEY", `${file}: unknown section [${path}]`, {
      hint: (guess ? `did you mean [${guess}]? ` : "") + `Kiln knows ${known}`,
    });
  }
  const here = SETTINGS.filter((s) => parentOf(s.path) === section).map((s) => lastPart(s.path));
  const close = nearest(name, here);
  const elsewhere = SETTINGS.find(
    (s) => parentOf(s.path) !== section && normalizeName(lastPart(s.path)) === normalizeName(name),
  );
  // `cache_dir` in [cache.disk] means its `dir`, not [dist] cache_dir.
  const suffix = here.find((k) => normalizeName(name).endsWith(`_${normalizeName(k)}`));
  let hint: string;
  if (suffix !== undefined) hint = `did you mean \`${suffix}\`?`;
  else if (elsewhere) hint = `did you mean \`${lastPart(elsewhere.path)}\` in ${sectionLabel(parentOf(elsewhere.path))}?`;
  else if (close !== undefined) hint = `did you mean \`${close}\`?`;
  else hint = "remove it or check its spelling.";
  if (here.length > 0) hint += ` Keys in ${parent}: ${here.join(", ")}`;
  return new KilnError("KILN_CONFIG_KEY", `${file}: unknown key \`${name}\` in ${parent}`, { hint });
}

// ---------------------------------------------------------------------------------------------
// Small helpers

function displayKey(section: string, name: string): string {
  return section ? `[${section}] ${name}` : name;
}

function sectionLabel(section: string): string {
  return section ? `[${section}]` : "the top level";
}

function parentOf(path: string): string {
  const dot = path.lastIndexOf(".");
  return dot < 0 ? "" : path.slice(0, dot);
}

function lastPart(path: string): string {
  return path.slice(path.lastIndexOf(".") + 1);
}

function join2(section: string, name: string): string {
  return section ? `${section}.${name}` : name;
}

function isTable(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) &&
    Object.getPrototypeOf(value) === Object.prototype;
}

function describeValue(value: unknown): string {
  if (typeof value === "string") return `the string ${quote(value)}`;
  if (typeof value === "number") return `the number ${value}`;
  if (typeof value === "boolean") return `the boolean ${value}`;
  if (Array.isArray(value)) return "an array";
  if (isTable(value)) return "a table";
  return "a date/time";
}

function quote(text: string): string {
  return JSON.stringify(text.length > 60 ? `${text.slice(0, 60)}...` : text);
}

function normalizeName(name: string): string {
  return name.toLowerCase().replaceAll("-", "_");
}

/** The candidate a user most plausibly meant by `name`, if any is close enough. */
function nearest(name: string, candidates: readonly string[]): string | undefined {
  const wanted = normalizeName(name);
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const c = normalizeName(candidate);
    const distance = editDistance(wanted, c);
    const close =
      distance <= Math.max(1, Math.floor(c.length / 3)) ||
      (Math.min(c.length, wanted.length) >= 3 && (wanted.includes(c) || c.includes(wanted)));
    if (close && distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

/** Edit distance counting a swap of two neighbouring letters as one edit. */
function editDistance(a: string, b: string): number {
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) {
    const row: number[] = [i];
    for (let j = 1; j <= b.length; j++) {
      if (i === 0) {
        row.push(j);
        continue;
      }
      const above = rows[i - 1]!;
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(above[j]! + 1, row[j - 1]! + 1, above[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d = Math.min(d, rows[i - 2]![j - 2]! + 1);
      }
      row.push(d);
    }
    rows.push(row);
  }
  return rows[a.length]![b.length]!;
}
