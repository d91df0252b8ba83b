// kiln-dist as a user meets it: config files and their errors, a server that refuses to run
// without a working sandbox, all-in-one, `kiln --package-toolchain`, and the build server's
// toolchain cache.

import { describe, expect, test } from "bun:test";
import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { packTarZst } from "../src/dist/tar.ts";
import { toolchainId } from "../src/dist/toolchain.ts";
import { ToolchainCache } from "../src/dist/toolchain-cache.ts";
import { Child, KILN_DIST, done, runJob, startScheduler, status, uploadToolchain } from "./dist-support.ts";
import { KILN, REPO, ok, run, scratch, writeFiles } from "./support.ts";
import { loadSchedulerConfig, loadServerConfig } from "../src/dist/config.ts";

function config(text: string): string {
  const file = join(scratch("kdc-"), "dist.toml");
  writeFileSync(file, text);
  return file;
}

const AUTH = `[client_auth]\ntype = "token"\ntoken = "c"\n[server_auth]\ntype = "token"\ntoken = "s"\n`;
const SERVER_AUTH = `[scheduler_auth]\ntype = "token"\ntoken = "s"\n`;

describe("the README's examples", () => {
  const readme = readFileSync(join(REPO, "README.md"), "utf8");
  const example = (marker: string) => {
    const block = [...readme.matchAll(/```toml\n([\s\S]*?)```/g)].map((m) => m[1]!).find((b) => b.startsWith(`# ${marker}`));
    if (!block) throw new Error(`no ${marker} example in the README`);
    const file = join(scratch("kdc-"), marker);
    writeFileSync(file, block);
    return file;
  };

  test("scheduler.toml loads as documented", () => {
    const { config, notes } = loadSchedulerConfig(example("scheduler.toml"));
    expect(config).toEqual({ hostname: "0.0.0.0", port: 10600, clientToken: expect.any(String), serverToken: expect.any(String), heartbeatMs: 5000, toolchainBytes: 4 * 1024 ** 3 });
    expect(notes).toEqual([]);
  });

  test("server.toml loads as documented", () => {
    const { config, notes } = loadServerConfig(example("server.toml"), {});
    expect(config).toMatchObject({ schedulerUrl: "http://scheduler.lan:10600", cacheDir: "/var/cache/kiln-dist", toolchainCacheSize: 10 * 1024 ** 3, buildDir: "/var/tmp/kiln-dist", bwrap: "/usr/bin/bwrap" });
    expect(notes).toEqual([expect.stringContaining("kiln-dist always runs jobs in bubblewrap")]);
  });
});

describe("config errors name the file, the key and the fix", () => {
  const cases: [string, string, string, RegExp][] = [
    ["scheduler", "unknown key", `public_adr = "127.0.0.1:0"\n${AUTH}`, /scheduler\.toml|dist\.toml: unknown key `public_adr`[\s\S]*hint: remove it or check its spelling; kiln-dist knows public_addr/],
    ["scheduler", "missing client auth", `[server_auth]\ntype = "token"\ntoken = "s"\n`, /dist\.toml: \[client_auth\] is missing[\s\S]*hint: add \[client_auth\] with type = "token"/],
    ["scheduler", "sccache JWT server auth", `[client_auth]\ntype = "token"\ntoken = "c"\n[server_auth]\ntype = "jwt_hs256"\nsecret_key = "x"\n`, /\[server_auth\] type: "jwt_hs256" is not supported[\s\S]*hint: use type = "token"/],
    ["scheduler", "bad address", `public_addr = "localhost"\n${AUTH}`, /dist\.toml: public_addr: "localhost" is not an address[\s\S]*hint: write host:port/],
    ["server", "missing scheduler_url", SERVER_AUTH, /dist\.toml: scheduler_url is missing/],
    ["server", "docker builder", `scheduler_url = "http://127.0.0.1:1"\n[builder]\ntype = "docker"\n${SERVER_AUTH}`, /\[builder\] type = "docker" is not supported/],
    ["server", "bad size", `scheduler_url = "http://127.0.0.1:1"\ntoolchain_cache_size = "lots"\n${SERVER_AUTH}`, /dist\.toml: toolchain_cache_size: "lots" is not a size/],
    ["server", "TOML syntax", `scheduler_url = http://x\n`, /dist\.toml:1: invalid TOML on line 1/],
  ];
  for (const [role, name, text, expected] of cases) {
    test(`${role}: ${name}`, () => {
      const r = run([KILN_DIST, role, "--config", config(text)], { timeoutMs: 20_000 });
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toMatch(expected);
    });
  }

  test("a missing config file and a missing --config", () => {
    const r = run([KILN_DIST, "scheduler", "--config", "/nonexistent/scheduler.toml"]);
    expect([r.exitCode, r.stderr]).toEqual([1, expect.stringContaining("cannot read config file /nonexistent/scheduler.toml: ENOENT")]);
    const u = run([KILN_DIST, "server"]);
    expect([u.exitCode, u.stderr]).toEqual([2, expect.stringContaining("kiln-dist server needs --config FILE")]);
  });

  test("a misspelt option is refused, not ignored; --help after a command prints the usage", () => {
    const r = run([KILN_DIST, "all-in-one", "--lisen", "127.0.0.1:1"], { timeoutMs: 20_000 });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain("kiln-dist all-in-one does not take '--lisen' (it takes --listen,");
    const v = run([KILN_DIST, "scheduler", "--config"]);
    expect([v.exitCode, v.stderr]).toEqual([2, expect.stringContaining("--config needs a value")]);
    const h = run([KILN_DIST, "all-in-one", "--help"], { timeoutMs: 20_000 });
    expect([h.exitCode, h.stdout]).toEqual([0, expect.stringContaining("kiln-dist all-in-one [--listen HOST:PORT]")]);
  });
});

describe("the build server refuses to start without a working sandbox", () => {
  test("bwrap missing", () => {
    const file = config(`scheduler_url = "http://127.0.0.1:1"\ncache_dir = "cache"\nbwrap_path = "/nonexistent/bwrap"\n${SERVER_AUTH}`);
    const r = run([KILN_DIST, "server", "--config", file], { timeoutMs: 20_000 });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("bubblewrap (/nonexistent/bwrap) is not installed or not executable");
    expect(r.stderr).toContain("hint: install bubblewrap");
  });

  test("bwrap that cannot create namespaces", () => {
    const dir = scratch("kdc-");
    const fake = join(dir, "bwrap");
    writeFileSync(fake, "#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n");
    chmodSync(fake, 0o755);
    const file = config(`scheduler_url = "http://127.0.0.1:1"\ncache_dir = "${dir}/cache"\n[builder]\ntype = "overlay"\nbwrap_path = "${fake}"\n${SERVER_AUTH}`);
    const r = run([KILN_DIST, "server", "--config", file], { timeoutMs: 20_000 });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain(`bubblewrap (${fake}) cannot create a sandbox: bwrap: No permissions to create new namespace`);
  });

  test("sccache keys with no meaning here are explained in one line each", async () => {
    const dir = scratch("kdc-");
    const file = config(`public_addr = "10.0.0.9:10501"\nscheduler_url = "http://127.0.0.1:1"\ncache_dir = "${dir}/cache"\n[builder]\ntype = "overlay"\nbuild_dir = "${dir}/build"\n${SERVER_AUTH}`);
    const child = new Child([KILN_DIST, "server", "--config", file]);
    try {
      await child.waitFor(/public_addr: a kiln-dist server needs no public address \(it connects out to the scheduler\); ignored/);
      await child.waitFor(/\[builder\] type = "overlay": kiln-dist always runs jobs in bubblewrap/);
      // No scheduler at that address: it says so and keeps retrying.
      await child.waitFor(/cannot reach the scheduler at http:\/\/127\.0\.0\.1:1/);
      expect(child.proc.exitCode).toBeNull();
    } finally {
      await child.stop();
    }
  });
});

describe("all-in-one", () => {
  test("prints a client config whose token works, and compiles a real gcc job", async () => {
    const dir = scratch("kda-");
    const child = new Child([KILN_DIST, "all-in-one", "--listen", "127.0.0.1:0", "--cache-dir", join(dir, "cache"), "--cores", "2"]);
    try {
      const url = (await child.waitFor(/^scheduler_url = "(http:\/\/127\.0\.0\.1:\d+)"$/m))[1]!;
      const token = (await child.waitFor(/^\[dist\.auth\]\ntype = "token"\ntoken = "([0-9a-f]{64})"$/m))[1]!;
      await child.waitFor(/joined the scheduler/);
      const s = await status(url, token);
      expect([s.numServers, s.numCpus]).toEqual([1, 2]);

      writeFiles(dir, { "aio.c": "int twice(int x) { return 2 * x; }\n" });
      ok(["gcc", "-E", "aio.c", "-o", "aio.i"], { cwd: dir });
      ok(["gcc", "-c", "aio.i", "-o", "local.o"], { cwd: dir });
      const tc = ok([KILN, "--package-toolchain", "gcc", join(dir, "gcc.tar.zst")]);
      const id = /toolchain ([0-9a-f]{64})/.exec(tc.stdout)![1]!;
      const archive = readFileSync(join(dir, "gcc.tar.zst"));
      expect(toolchainId(archive)).toBe(id);
      expect(await uploadToolchain(url, token, id, archive)).toBe(201);
      const answer = done(await runJob(url, token, {
        toolchain: id, argv: ["/usr/bin/gcc", "-c", "aio.i", "-o", "aio.o"], cwd: dir, inputs: { "aio.i": readFileSync(join(dir, "aio.i")) }, outputs: ["aio.o"],
      }));
      expect(Buffer.from(answer.outputs.get("aio.o")!).equals(readFileSync(join(dir, "local.o")))).toBe(true);
    } finally {
      await child.stop();
    }
  });
});

describe("the scheduler's toolchain store", () => {
  test("keeps archives up to toolchain_cache_size, evicting the least recently used", async () => {
    const s = await startScheduler({ extra: 'toolchain_cache_size = "4K"\n' });
    try {
      const archives = ["x", "y", "z"].map((t) => Bun.zstdCompressSync(new TextEncoder().encode(t.repeat(10))));
      const padded = archives.map((a) => Buffer.concat([a, new Uint8Array(1500)])); // not valid zstd; the store does not care
      const ids = padded.map(toolchainId);
      const auth = { Authorization: `Bearer ${s.clientToken}` };
      const head = async (id: string) => (await fetch(`${s.url}/api/v1/toolchains/${id}`, { method: "HEAD", headers: auth })).status;
      expect(await uploadToolchain(s.url, s.clientToken, ids[0]!, padded[0]!)).toBe(201);
      expect(await uploadToolchain(s.url, s.clientToken, ids[1]!, padded[1]!)).toBe(201);
      // Use x, so y is the least recently used when z arrives.
      const got = await fetch(`${s.url}/api/v1/toolchains/${ids[0]}`, { headers: { Authorization: `Bearer ${s.serverToken}` } });
      expect(Buffer.from(await got.arrayBuffer()).equals(padded[0]!)).toBe(true);
      expect(await uploadToolchain(s.url, s.clientToken, ids[2]!, padded[2]!)).toBe(201);
      expect([await head(ids[0]!), await head(ids[1]!), await head(ids[2]!)]).toEqual([200, 404, 200]);
      await s.child.waitFor(new RegExp(`toolchain ${ids[1]!.slice(0, 12)} evicted from memory`));
    } finally {
      await s.child.stop();
    }
  });
});

describe("kiln --package-toolchain", () => {
  test("usage and a compiler that does not exist", () => {
    const usage = run([KILN, "--package-toolchain", "gcc"]);
    expect([usage.exitCode, usage.stderr]).toEqual([2, "kiln: error: usage: kiln --package-toolchain <compiler> <out.tar.zst>\n"]);
    const out = join(scratch("kdc-"), "x.tar.zst");
    const missing = run([KILN, "--package-toolchain", "no-such-cc", out]);
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toContain('compiler "no-such-cc" is not in PATH');
    expect(existsSync(out)).toBe(false);
  });
});

describe("the build server's toolchain cache", () => {
  const archiveOf = (size: number, tag: string) => packTarZst([{ type: "file", path: `usr/${tag}`, data: new Uint8Array(size).fill(tag.charCodeAt(0)), mode: 0o644 }]);

  test("unpacks once per id, evicts the least recently used idle toolchain past its limit, survives a restart", async () => {
    const dir = scratch("kdc-");
    const archives = new Map(["a", "b", "c"].map((t) => {
      const archive = archiveOf(600, t);
      return [toolchainId(archive), archive] as const;
    }));
    const [a, b, c] = [...archives.keys()] as [string, string, string];
    let fetches = 0;
    const fetch = async (id: string) => {
      fetches++;
      await Bun.sleep(20);
      return archives.get(id) ?? archives.get(a)!;
    };
    const evicted: string[] = [];
    const cache = new ToolchainCache(dir, 1000, (id) => evicted.push(id));
    const [x, y] = await Promise.all([cache.acquire(a, fetch), cache.acquire(a, fetch)]);
    expect(fetches).toBe(1);
    expect(readFileSync(join(x.dir, "usr/a")).length).toBe(600);
    // a is in use: fetching b exceeds the limit, but a stays.
    const holdB = await cache.acquire(b, fetch);
    expect(cache.ids().sort()).toEqual([a, b].sort());
    x.release();
    y.release();
    expect(evicted).toEqual([a]);
    expect(existsSync(join(dir, a))).toBe(false);
    holdB.release();
    (await cache.acquire(c, fetch)).release();
    expect(evicted).toEqual([a, b]);
    expect(cache.bytes).toBe(600);
    expect(new ToolchainCache(dir, 1000).ids()).toEqual([c]);
    // A wrong archive for an id is refused.
    await expect(cache.acquire("f".repeat(64), fetch)).rejects.toThrow(/SHA-256 does not match/);
  });
});
