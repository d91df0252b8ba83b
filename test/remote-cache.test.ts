// Shared cache levels in real builds: a teammate's (or CI's) compile becomes my hit, and a
// shared level that dies or hangs never breaks or stalls a build.

import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { StatsJson } from "../src/daemon/stats.ts";
import { KILN, KilnInstance, ok, run, scratch, sha256File, workload, writeFiles } from "./support.ts";
import { S3_SCRIPT, startMemcached, startRedis, startS3, startWebdav, type Server } from "./servers.ts";

const objects = (dir: string) => readdirSync(join(dir, "src")).filter((f) => f.endsWith(".o")).sort();

function make(dir: string, env: Record<string, string | undefined>) {
  return run(["make", "-C", join(dir, "src"), "-j2", "linux", `CC=${KILN} gcc -std=gnu99`], { env, timeoutMs: 300_000 });
}

/** Entries in a disk cache directory. */
function diskEntries(dir: string): number {
  if (!existsSync(dir)) return 0;
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile() && !e.parentPath.endsWith("tmp")).length;
}

function levels(k: KilnInstance): NonNullable<StatsJson["cache_levels"]> {
  return k.statsJson().cache_levels!;
}

const servers: Server[] = [];
afterAll(() => {
  for (const s of servers) s.stop();
});

describe("shared levels in a lua5.4 build", () => {
  test("empty local disk, populated shared level: all hits, identical objects, local disk backfilled (each backend)", async () => {
    const withS3 = existsSync(S3_SCRIPT);
    const started = await Promise.all([startRedis(), startMemcached(), startWebdav(), ...(withS3 ? [startS3()] : [])]);
    servers.push(...started);
    const all = Object.assign({}, ...started.map((s) => s.env)) as Record<string, string>;
    const names = ["redis", "memcached", "webdav", ...(withS3 ? ["s3"] : [])];

    // CI's build writes every level.
    const ciDir = workload("lua5.4");
    const ci = new KilnInstance({ ...all, KILN_CACHE_CHAIN: ["disk", ...names].join(",") });
    expect(make(ciDir, ci.env).exitCode).toBe(0);
    ci.stop(); // waits for the background writes to the shared levels
    const built = objects(ciDir);
    expect(built.length).toBeGreaterThan(30);

    for (const [i, name] of names.entries()) {
      const dir = workload("lua5.4");
      const me = new KilnInstance({ ...started[i]!.env, KILN_CACHE_CHAIN: `disk,${name}` });
      expect(make(dir, me.env).exitCode).toBe(0);
      const s = me.stats();
      expect(`${name}: ${s.cache_hits_total} hits, ${s.cache_misses_total} misses`).toBe(`${name}: ${built.length} hits, 0 misses`);
      expect(s.direct_hits).toBe(built.length); // the manifests came from the shared level too
      for (const o of built) expect(`${name} ${o} ${sha256File(join(dir, "src", o))}`).toBe(`${name} ${o} ${sha256File(join(ciDir, "src", o))}`);
      const [disk, remote] = levels(me);
      expect(disk!.hits).toBe(0);
      expect(remote!.name).toBe(name);
      expect(remote!.hits).toBe(2 * built.length); // a manifest and a result per object
      expect(remote!.errors).toBe(0);
      me.stop();
      // Backfilled: the same compiles now hit local disk alone.
      expect(diskEntries(me.env.KILN_DIR!)).toBe(2 * built.length);
      const local = new KilnInstance({ KILN_DIR: me.env.KILN_DIR });
      ok(["make", "-C", join(dir, "src"), "clean"]);
      expect(make(dir, local.env).exitCode).toBe(0);
      expect(local.stats().cache_hits_total).toBe(built.length);
      local.stop();
    }
    expect(run([join(ciDir, "src", "lua"), "-e", "print(6 * 7)"]).stdout).toBe("42\n");
  }, 600_000);

  test("redis-server killed in the middle of make -j2: the build succeeds, the errors are counted", async () => {
    const redis = await startRedis();
    servers.push(redis);
    const dir = workload("lua5.4");
    const k = new KilnInstance({ ...redis.env, KILN_REDIS_TIMEOUT_MS: "1000" });
    ok([KILN, "--start-server"], { env: k.env });
    const build = Bun.spawn(["make", "-C", join(dir, "src"), "-j2", "linux", `CC=${KILN} gcc -std=gnu99`], { env: k.env, stdout: "pipe", stderr: "pipe" });
    for (let i = 0; i < 400 && objects(dir).length < 6; i++) await Bun.sleep(25);
    redis.kill();
    expect(await build.exited).toBe(0);
    expect(run([join(dir, "src", "lua"), "-e", "print('ok')"]).stdout).toBe("ok\n");
    const [disk, remote] = levels(k);
    expect(remote!.name).toBe("redis");
    expect(remote!.writes).toBeGreaterThan(0); // it was in use before it died
    expect(remote!.errors).toBeGreaterThan(0);
    expect(disk!.errors).toBe(0);
    const s = k.stats();
    expect(s.cache_misses_total).toBe(objects(dir).length);
    expect(s.cache_read_errors).toBe(0); // a dead shared level is a miss, not a read error
    k.stop();
  }, 300_000);
});

describe("a shared level that accepts connections but never answers", () => {
  test("each compile waits at most the timeout, the breaker opens (logged once), later compiles do not wait", async () => {
    // A separate process, so it keeps accepting while this one waits for compiles.
    const silent = Bun.spawn(["bun", "-e", "const l = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } }); console.log(l.port); setInterval(() => {}, 1e6);"], { stdout: "pipe" });
    const reader = silent.stdout.getReader();
    const port = Number(new TextDecoder().decode((await reader.read()).value).trim());
    try {
      const timeout = 400;
      const k = new KilnInstance({ KILN_REDIS_ENDPOINT: `redis://127.0.0.1:${port}`, KILN_REDIS_CONNECT_TIMEOUT_MS: "200", KILN_REDIS_TIMEOUT_MS: "200" });
      const dir = scratch();
      const files: Record<string, string> = {};
      for (let i = 0; i < 6; i++) files[`f${i}.c`] = `int f${i}(int x) { return x * ${i + 2}; }\n`;
      writeFiles(dir, files);
      ok([KILN, "--start-server"], { env: k.env });
      const times: number[] = [];
      for (let i = 0; i < 6; i++) {
        const t = performance.now();
        const c = Bun.spawn([KILN, "gcc", "-c", `f${i}.c`, "-o", `f${i}.o`], { cwd: dir, env: k.env, stdout: "pipe", stderr: "pipe" });
        expect(await c.exited).toBe(0);
        times.push(performance.now() - t);
      }
      const plain = Bun.spawnSync(["gcc", "-c", "f0.c", "-o", "plain.o"], { cwd: dir });
      expect(plain.exitCode).toBe(0);
      expect(readFileSync(join(dir, "f0.o")).equals(readFileSync(join(dir, "plain.o")))).toBe(true);
      // A miss reads two keys (manifest, result): at most two timeouts, plus the compile.
      for (const t of times) expect(t).toBeLessThan(2 * timeout + 1500);
      const [, remote] = levels(k);
      expect(remote!.breaker).toBe("open");
      expect(remote!.errors).toBeGreaterThanOrEqual(3); // calls already under way when it opened fail too
      expect(remote!.skipped).toBeGreaterThan(0);
      // Once open, compiles no longer wait for it.
      expect(times.at(-1)!).toBeLessThan(timeout);
      k.stop();
      const log = readFileSync(k.logFile, "utf8");
      expect(log.match(/failed 3 times in a row/g)).toHaveLength(1);
      expect(log).toContain(`no answer from Redis: redis://127.0.0.1:${port} within ${timeout} ms`);
    } finally {
      silent.kill("SIGKILL");
    }
  }, 120_000);
});

// Kept apart from the tests above: a read-only level is never written, even on a miss.
describe("read-only levels", () => {
  test("a developer's read-only level gets hits from CI's writes and receives no writes", async () => {
    const dav = await startWebdav();
    servers.push(dav);
    const dir = scratch();
    writeFiles(dir, { "a.c": "int a(void) { return 1; }\n", "b.c": "int b(void) { return 2; }\n" });
    const ci = new KilnInstance({ ...dav.env });
    ok([KILN, "gcc", "-c", "a.c", "-o", "a.o"], { cwd: dir, env: ci.env });
    ci.stop();
    const dev = new KilnInstance({ ...dav.env, KILN_WEBDAV_READ_ONLY: "1" });
    ok([KILN, "gcc", "-c", "a.c", "-o", "a.o"], { cwd: dir, env: dev.env });
    ok([KILN, "gcc", "-c", "b.c", "-o", "b.o"], { cwd: dir, env: dev.env });
    const [, remote] = levels(dev);
    expect(remote!.hits).toBe(2);
    expect(remote!.read_only).toBe(true);
    expect(remote!.writes).toBe(0);
    expect(dev.stats().cache_hits_total).toBe(1);
    const text = dev.kiln(["-s"]).stdout;
    expect(text).toContain("Cache levels:");
    expect(text).toContain(`WebDAV: http://127.0.0.1:`);
    expect(text).toContain("read-only");
    dev.stop();
    const stored = readdirSync(dav.root, { recursive: true }).filter((f) => /[0-9a-f]{60,}/.test(String(f)));
    expect(stored).toHaveLength(2); // a.c's manifest and result; nothing of b.c
    writeFileSync(join(dir, "done"), "");
  }, 120_000);
});
