// Redis through Bun's built-in client. One connection, auto-pipelined; after it drops (or a
// call times out) the next call connects afresh. Bun reports a refused AUTH only as a closed
// connection, so a failed connect asks the server directly what it thinks of our credentials.

import { RedisClient } from "bun";
import type { RedisLevel } from "../config/config.ts";
import { KilnError } from "../util/errors.ts";
import { firstLine, parseSocketAddress } from "./socket.ts";
import { RemoteAuthError, type CacheStorage } from "./types.ts";

const AUTH_HINT = "check [cache.redis] username and password (KILN_REDIS_USERNAME, KILN_REDIS_PASSWORD)";

export class RedisStorage implements CacheStorage {
  private readonly url: string;
  private client: RedisClient | undefined;
  private connecting: Promise<RedisClient> | undefined;

  constructor(
    private readonly cfg: RedisLevel,
    readonly location: string,
  ) {
    this.url = redisUrl(cfg);
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    const value = await (await this.connection()).getBuffer(this.cfg.keyPrefix + key);
    return value ?? undefined;
  }

  async put(key: string, blob: Uint8Array): Promise<void> {
    const c = await this.connection();
    if (this.cfg.expiration > 0) await c.set(this.cfg.keyPrefix + key, blob, "EX", this.cfg.expiration);
    else await c.set(this.cfg.keyPrefix + key, blob);
  }

  async remove(key: string): Promise<void> {
    await (await this.connection()).del(this.cfg.keyPrefix + key);
  }

  reset(): void {
    this.client?.close();
    this.client = undefined;
  }

  async close(): Promise<void> {
    this.reset();
  }

  private connection(): Promise<RedisClient> {
    if (this.client?.connected) return Promise.resolve(this.client);
    this.connecting ??= this.connect().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  private async connect(): Promise<RedisClient> {
    this.reset();
    const c = new RedisClient(this.url, {
      connectionTimeout: this.cfg.connectTimeoutMs,
      autoReconnect: false,
      enableOfflineQueue: false,
    });
    try {
      await c.connect();
      if (this.url.startsWith("redis+unix") && this.cfg.db) await c.send("SELECT", [String(this.cfg.db)]);
    } catch (e) {
      c.close();
      throw await this.explain(e);
    }
    this.client = c;
    return c;
  }

  /** Why a connect failed, in words a user can act on. */
  private async explain(e: unknown): Promise<Error> {
    const address = parseSocketAddress(this.cfg.endpoint, 6379);
    const { username, password } = credentials(this.cfg);
    const request = password === undefined ? "PING\r\n" : `AUTH ${username ? `${resp(username)} ` : ""}${resp(password)}\r\n`;
    // A TLS endpoint cannot be asked in plain text.
    const line = this.cfg.endpoint.startsWith("rediss") ? undefined : await firstLine(address, request, this.cfg.connectTimeoutMs);
    if (line !== undefined && /^-(WRONGPASS|NOAUTH|NOPERM|ERR (invalid (username|password)|AUTH|Client sent AUTH))/i.test(line)) {
      return new RemoteAuthError(`${this.location} refused the credentials: ${line.slice(1)}`, AUTH_HINT);
    }
    if (line === undefined) {
      return new KilnError("KILN_REMOTE_CONNECT", `cannot connect to ${this.location}: ${(e as Error).message}`);
    }
    return new KilnError("KILN_REMOTE_CONNECT", `${this.location}: ${(e as Error).message} (server said: ${line})`);
  }
}

/** A RESP inline argument: quoted, so spaces in a password survive. */
function resp(text: string): string {
  return `"${text.replace(/["\\]/g, "\\$&")}"`;
}

function credentials(cfg: RedisLevel): { username: string | undefined; password: string | undefined } {
  let username = cfg.username;
  let password = cfg.password;
  try {
    const url = new URL(cfg.endpoint);
    username ??= url.username ? decodeURIComponent(url.username) : undefined;
    password ??= url.password ? decodeURIComponent(url.password) : undefined;
  } catch {}
  return { username, password };
}

/** The URL Bun's client takes: credentials and db from config, `unix://` as `redis+unix://`. */
function redisUrl(cfg: RedisLevel): string {
  const unix = /^(?:unix|redis\+unix):\/\/(\/.*)$/.exec(cfg.endpoint);
  if (unix) {
    if (cfg.password !== undefined || cfg.username !== undefined) {
      throw new KilnError("KILN_CONFIG_VALUE", `Redis over a Unix socket (${cfg.endpoint}) cannot use a username or password with Bun's client`, {
        hint: "use a TCP endpoint (redis://host:port) for a server that requires a password",
      });
    }
    return `redis+unix://${unix[1]}`;
  }
  const url = new URL(/^[a-z]+:\/\//i.test(cfg.endpoint) ? cfg.endpoint : `redis://${cfg.endpoint}`);
  if (cfg.username !== undefined) url.username = encodeURIComponent(cfg.username);
  if (cfg.password !== undefined) url.password = encodeURIComponent(cfg.password);
  if (cfg.db) url.pathname = `/${cfg.db}`;
  return url.toString();
}
