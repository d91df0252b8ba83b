// One conformance suite, run against every shared backend on a real server: Redis
// (redis-server), memcached, WebDAV (nginx) and S3 (Ceph RGW via ../shared/services/s3).
// Each backend is configured the way a user does it, through KILN_<BACKEND>_* variables.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { loadConfig, type RemoteLevel } from "../src/config/config.ts";
import { Logger } from "../src/daemon/log.ts";
import { levelSpec } from "../src/storage/levels.ts";
import { TieredStorage } from "../src/storage/tiered.ts";
import { RemoteAuthError, type CacheStorage } from "../src/storage/types.ts";
import { scratch } from "./support.ts";
import { S3_SCRIPT, startMemcached, startRedis, startS3, startWebdav, type Server } from "./servers.ts";

interface Backend {
  name: string;
  /** A running server with the right credentials. */
  start(): Promise<Server>;
  /** Environment overrides that give wrong credentials for `server`. */
  wrongCredentials(server: Server): Promise<{ env: Record<string, string>; secret: string; cleanup?: () => void }>;
}

const BACKENDS: Backend[] = [
  {
    name: "redis",
    start: () => startRedis({ password: "redis-pass-1" }),
    wrongCredentials: async (s) => ({ env: { ...s.env, KILN_REDIS_PASSWORD: "not-the-password" }, secret: "not-the-password" }),
  },
  {
    name: "memcached",
    start: () => startMemcached({ user: "kiln", password: "mc-pass-1" }),
    wrongCredentials: async (s) => ({ env: { ...s.env, KILN_MEMCACHED_PASSWORD: "not-the-password" }, secret: "not-the-password" }),
  },
  {
    name: "webdav",
    start: () => startWebdav({ user: "kiln", password: "dav-pass-1" }),
    wrongCredentials: async (s) => ({ env: { ...s.env, KILN_WEBDAV_PASSWORD: "not-the-password" }, secret: "not-the-password" }),
  },
  {
    name: "webdav (bazel layout)",
    start: async () => {
      const s = await startWebdav({ user: "kiln", password: "dav-pass-1" });
      return { ...s, env: { ...s.env, KILN_WEBDAV_LAYOUT: "bazel" } };
    },
    wrongCredentials: async (s) => ({ env: { ...s.env, KILN_WEBDAV_PASSWORD: "not-the-password" }, secret: "not-the-password" }),
  },
  {
    name: "s3",
    start: () => startS3(),
    wrongCredentials: async (s) => ({ env: { ...s.env, AWS_SECRET_ACCESS_KEY: "not-the-secret-key-0123456789abcdefghijk" }, secret: "not-the-secret-key-0123456789abcdefghijk" }),
  },
];

function levelFrom(env: Record<string, string>): RemoteLevel {
  const { config } = loadConfig({ HOME: scratch(), ...env, KILN_REDIS_TIMEOUT_MS: "3000", KILN_S3_TIMEOUT_MS: "10000" });
  expect(config.remoteLevels).toHaveLength(1);
  return config.remoteLevels[0]!;
}

function open(env: Record<string, string>): Promise<CacheStorage> {
  return levelSpec(levelFrom(env), env).open();
}

function bytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

const key = (n: number) => `${new Bun.CryptoHasher("sha256").update(String(n) + Math.random()).digest("hex")}r`;

const same = (a: Uint8Array | undefined, b: Uint8Array) => a !== undefined && Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;

for (const backend of BACKENDS) {
  const needsS3 = backend.name === "s3";
  describe.skipIf(needsS3 && !existsSync(S3_SCRIPT))(`${backend.name} storage`, () => {
    let server: Server;
    let storage: CacheStorage;
    beforeAll(async () => {
      server = await backend.start();
      storage = await open(server.env);
    }, 180_000);
    afterAll(async () => {
      await storage?.close?.();
      server?.stop();
    });

    test("round trip; a missing key is a miss; an overwrite replaces the entry", async () => {
      const k = key(1);
      const first = bytes(3000, 1);
      await storage.put(k, first);
      expect(same(await storage.get(k), first)).toBe(true);
      expect(await storage.get(key(2))).toBeUndefined();
      const second = bytes(2000, 2);
      await storage.put(k, second);
      expect(same(await storage.get(k), second)).toBe(true);
      await storage.remove(k);
      expect(await storage.get(k)).toBeUndefined();
    });

    test("a large entry (5 MiB) round-trips byte for byte", async () => {
      const k = key(3);
      const big = bytes(5 * 1024 * 1024 + 17, 3);
      await storage.put(k, big);
      expect(same(await storage.get(k), big)).toBe(true);
    }, 60_000);

    test("concurrent writers: every key ends up holding one whole value that was written", async () => {
      const shared = key(4);
      const values = Array.from({ length: 8 }, (_, i) => bytes(1500 * 1024 + i * 1000, 10 + i));
      const own = values.map((_, i) => key(100 + i));
      const writers = [await open(server.env), await open(server.env)];
      await Promise.all(values.flatMap((v, i) => [writers[i % 2]!.put(shared, v), writers[i % 2]!.put(own[i]!, v)]));
      const got = await storage.get(shared);
      expect(values.some((v) => same(got, v))).toBe(true);
      for (const [i, k] of own.entries()) expect(same(await storage.get(k), values[i]!)).toBe(true);
      for (const w of writers) await w.close?.();
    }, 60_000);

    test("wrong credentials: a clear auth error that names the server and not the secret", async () => {
      const wrong = await backend.wrongCredentials(server);
      let error: unknown;
      const s = await open(wrong.env).catch((e) => {
        error = e;
        return undefined;
      });
      if (s) {
        error = await s.get(key(5)).then(() => undefined, (e: unknown) => e);
        await s.close?.();
      }
      expect(error).toBeInstanceOf(RemoteAuthError);
      const e = error as RemoteAuthError;
      expect(e.message).toContain("refused the credentials");
      expect(e.message).toContain("127.0.0.1");
      expect(e.hint).toBeTruthy();
      expect(`${e.message} ${e.hint}`).not.toContain(wrong.secret);
    }, 60_000);

    test("the server going away mid-run: reads become counted misses, then the breaker skips it", async () => {
      const k = key(6);
      const blob = bytes(4000, 6);
      await storage.put(k, blob);
      const level = levelFrom({ ...server.env, [`KILN_${backend.name.split(" ")[0]!.toUpperCase()}_TIMEOUT_MS`]: "1500" });
      const log = new Logger(`${scratch()}/log`, "debug");
      const tiers = new TieredStorage({ location: "memory", get: async () => undefined, put: async () => {}, remove: async () => {} }, [levelSpec(level, server.env)], { log, track: () => {} });
      expect(same(await tiers.get(k), blob)).toBe(true);
      server.kill();
      await Bun.sleep(200);
      for (let i = 0; i < 5; i++) {
        const started = performance.now();
        expect(await tiers.get(k)).toBeUndefined();
        expect(performance.now() - started).toBeLessThan(level.connectTimeoutMs + level.timeoutMs + 500);
      }
      const [, remote] = tiers.levelStats();
      expect(remote!.hits).toBe(1);
      expect(remote!.errors).toBe(3);
      expect(remote!.breaker).toBe("open");
      expect(remote!.skipped).toBe(2);
      await tiers.close();
    }, 60_000);
  });
}

describe("redis details", () => {
  test("a corrupt entry is removed from the levels it was read through, not from the others", async () => {
    const redis = await startRedis();
    try {
      const local = new Map<string, Uint8Array>();
      const disk: CacheStorage = {
        location: "memory",
        get: async (k) => local.get(k),
        put: async (k, b) => void local.set(k, b),
        remove: async (k) => void local.delete(k),
      };
      const log = new Logger(`${scratch()}/log`, "debug");
      const tiers = new TieredStorage(disk, [levelSpec(levelFrom(redis.env), redis.env)], { log, track: () => {} });
      // Found on local disk (say, corrupt there): the shared copy stays.
      const a = key(20);
      await tiers.put(a, bytes(100, 20));
      await Bun.sleep(100); // the shared write runs in the background
      expect(await tiers.get(a)).toBeDefined();
      await tiers.remove(a);
      await Bun.sleep(100);
      expect(local.has(a)).toBe(false);
      expect(same(await tiers.get(a), bytes(100, 20))).toBe(true); // from redis
      // Found in redis (and copied to disk): both copies go.
      await tiers.remove(a);
      await Bun.sleep(100);
      expect(local.has(a)).toBe(false);
      expect(await tiers.get(a)).toBeUndefined();
      await tiers.close();
    } finally {
      redis.kill();
    }
  }, 60_000);

  test("the breaker closes again once the server is back (one trial call after the pause)", async () => {
    const redis = await startRedis();
    const port = redis.port;
    let again: Server | undefined;
    try {
      const env = { ...redis.env, KILN_REDIS_CONNECT_TIMEOUT_MS: "300", KILN_REDIS_TIMEOUT_MS: "300" };
      const logFile = `${scratch()}/log`;
      const log = new Logger(logFile, "info");
      const tiers = new TieredStorage({ location: "memory", get: async () => undefined, put: async () => {}, remove: async () => {} }, [levelSpec(levelFrom(env), env)], { log, track: () => {}, breakerOpenMs: 1000 });
      const k = key(10);
      await tiers.put(k, bytes(100, 10));
      await Bun.sleep(100);
      redis.kill();
      await Bun.sleep(100);
      for (let i = 0; i < 4; i++) expect(await tiers.get(k)).toBeUndefined();
      expect(tiers.levelStats()[1]).toMatchObject({ breaker: "open", errors: 3, skipped: 1 });
      again = await startRedis({ port });
      await Bun.sleep(1100);
      const k2 = key(11);
      expect(await tiers.get(k2)).toBeUndefined(); // the trial call: a plain miss, so the level works
      expect(tiers.levelStats()[1]).toMatchObject({ breaker: "closed", errors: 3, misses: 1 });
      log.close();
      const text = await Bun.file(logFile).text();
      expect(text.match(/failed 3 times in a row/g)).toHaveLength(1);
      expect(text).toContain("answers again");
      await tiers.close();
    } finally {
      redis.stop();
      again?.stop();
    }
  });

  test("a unix:// endpoint and db select the socket and the database", async () => {
    const redis = await startRedis();
    try {
      const viaSocket = await open({ KILN_REDIS_ENDPOINT: `unix://${redis.socket}`, KILN_REDIS_DB: "3" });
      const viaTcp = await open({ KILN_REDIS_ENDPOINT: `redis://127.0.0.1:${redis.port}`, KILN_REDIS_DB: "3" });
      const otherDb = await open({ KILN_REDIS_ENDPOINT: `redis://127.0.0.1:${redis.port}` });
      const k = key(7);
      const blob = bytes(10_000, 7);
      await viaSocket.put(k, blob);
      expect(same(await viaTcp.get(k), blob)).toBe(true);
      expect(await otherDb.get(k)).toBeUndefined();
      for (const s of [viaSocket, viaTcp, otherDb]) await s.close?.();
    } finally {
      redis.stop();
    }
  });

  test("entries above max_entry_size are not written and are counted as oversized", async () => {
    const redis = await startRedis();
    try {
      const env = { ...redis.env, KILN_REDIS_MAX_ENTRY_SIZE: "1000" };
      const log = new Logger(`${scratch()}/log`, "debug");
      const tiers = new TieredStorage({ location: "memory", get: async () => undefined, put: async () => {}, remove: async () => {} }, [levelSpec(levelFrom(env), env)], { log, track: () => {} });
      const small = key(8);
      const large = key(9);
      await tiers.put(small, bytes(1000, 8));
      await tiers.put(large, bytes(1001, 9));
      await Bun.sleep(100); // the shared level's writes run in the background
      expect(await tiers.get(small)).toBeDefined();
      expect(await tiers.get(large)).toBeUndefined();
      const [, remote] = tiers.levelStats();
      expect(remote).toMatchObject({ oversized: 1, writes: 1, hits: 1, misses: 1, errors: 0 });
      await tiers.close();
    } finally {
      redis.stop();
    }
  });
});

describe("webdav layouts on the server", () => {
  test("subdirs and flat as ccache lays them out; bazel as bazel-remote's /ac (ActionResult) and /cas (sha256)", async () => {
    const dav = await startWebdav();
    try {
      const k = key(12);
      const blob = bytes(5000, 12);
      const sha = (d: string | Uint8Array) => new Bun.CryptoHasher("sha256").update(d).digest("hex");
      for (const layout of ["subdirs", "flat", "bazel"]) {
        const s = await open({ ...dav.env, KILN_WEBDAV_LAYOUT: layout, KILN_WEBDAV_KEY_PREFIX: layout });
        await s.put(k, blob);
        expect(same(await s.get(k), blob)).toBe(true);
        await s.close?.();
      }
      expect(readFileSync(join(dav.root, "subdirs", k.slice(0, 2), k.slice(2))).equals(Buffer.from(blob))).toBe(true);
      expect(readFileSync(join(dav.root, "flat", k)).equals(Buffer.from(blob))).toBe(true);
      const cas = readFileSync(join(dav.root, "bazel", "cas", sha(blob)));
      expect(cas.equals(Buffer.from(blob))).toBe(true);
      const ac = readFileSync(join(dav.root, "bazel", "ac", sha(k)));
      // ActionResult.output_files[0].digest = { hash: sha256(blob), size_bytes: 5000 }
      expect(ac.includes(Buffer.from(sha(blob)))).toBe(true);
      expect(ac[0]).toBe((2 << 3) | 2);
    } finally {
      dav.stop();
    }
  });
});

describe("memcached details", () => {
  test("an item the server refuses as too large is a clean error, and the connection goes on", async () => {
    const mc = await startMemcached(); // -I 1m, but Kiln is told 4m: chunks of ~4 MB are refused
    try {
      const s = await open({ ...mc.env, KILN_MEMCACHED_ITEM_SIZE: "4m" });
      const k = key(13);
      const error = await s.put(k, bytes(3_000_000, 13)).then(() => undefined, (e: unknown) => e);
      expect(String(error)).toContain("SERVER_ERROR object too large for cache");
      expect(await s.get(k)).toBeUndefined();
      const small = bytes(100, 14);
      await s.put(k, small);
      expect(same(await s.get(k), small)).toBe(true);
      await s.close?.();
    } finally {
      mc.stop();
    }
  });
});
