// From config to storage levels: the registry of shared backends. Each backend's module is
// imported on the level's first use, so an unused one costs the daemon nothing at start-up.

import type { RemoteLevel } from "../config/config.ts";
import type { Logger } from "../daemon/log.ts";
import { TieredStorage, type LevelSpec } from "./tiered.ts";
import type { CacheStorage } from "./types.ts";

export type Env = Record<string, string | undefined>;

/** An endpoint URL without user, password or query (which may hold a token). */
function redactUrl(raw: string): string {
  try {
    const url = new URL(raw);
    url.username = "";
    url.password = "";
    url.search = "";
    return url.toString().replace(/\/$/, "");
  } catch {
    return raw.replace(/\/\/[^/@]*@/, "//");
  }
}

function locationOf(level: RemoteLevel): string {
  const prefix = level.keyPrefix ? `, prefix "${level.keyPrefix}"` : "";
  const ro = level.readOnly ? ", read-only" : "";
  switch (level.backend) {
    case "redis":
      return `Redis: ${redactUrl(level.endpoint)}${level.db ? ` db ${level.db}` : ""}${prefix}${ro}`;
    case "memcached":
      return `memcached: ${redactUrl(level.endpoint)}${prefix}${ro}`;
    case "webdav":
      return `WebDAV: ${redactUrl(level.endpoint)} (${level.layout} layout)${prefix}${ro}`;
    case "s3":
      return `S3: bucket "${level.bucket}"${level.endpoint ? ` at ${redactUrl(level.endpoint)}` : ""}${prefix}${ro}`;
  }
}

async function openBackend(level: RemoteLevel, env: Env): Promise<CacheStorage> {
  const location = locationOf(level);
  switch (level.backend) {
    case "redis":
      return new (await import("./redis.ts")).RedisStorage(level, location);
    case "memcached":
      return new (await import("./memcached.ts")).MemcachedStorage(level, location);
    case "webdav":
      return new (await import("./webdav.ts")).WebdavStorage(level, location);
    case "s3":
      return new (await import("./s3.ts")).S3Storage(level, location, env);
  }
}

export function levelSpec(level: RemoteLevel, env: Env): LevelSpec {
  return {
    name: level.backend,
    location: locationOf(level),
    readOnly: level.readOnly,
    maxEntrySize: level.maxEntrySize,
    // Timers fire at once beyond 2^31 - 1 ms: a huge setting means "very long", not "none".
    timeoutMs: Math.min(level.connectTimeoutMs + level.timeoutMs, 2 ** 31 - 1),
    open: () => openBackend(level, env),
  };
}

export function tieredStorage(
  disk: CacheStorage,
  levels: readonly RemoteLevel[],
  env: Env,
  deps: { log: Logger; track: (work: Promise<unknown>) => void },
): TieredStorage {
  return new TieredStorage(disk, levels.map((l) => levelSpec(l, env)), deps);
}
