// Distributed compilation end to end: a real kiln-dist scheduler and build servers as
// separate processes on loopback (real bwrap, real gcc), the Kiln daemon as their client.

import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { SchedulerStatus } from "../src/dist/protocol.ts";
import { eventually, startScheduler, startServer, status, type SchedulerProcess, type ServerProcess } from "./dist-support.ts";
import { KILN, KilnInstance, ok, run, scratch, sha256File, workload, writeFiles } from "./support.ts";

/** Toolchain packages shared by every Kiln in this file: gcc is packaged once. */
const PACKAGES = scratch("kdp-");

const total = (m: Record<string, number>) => Object.values(m).reduce((a, b) => a + b, 0);

async function freePort(): Promise<number> {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

/** A scheduler on a fixed port (so it can restart there) and its build servers. */
class Fleet {
  port = 0;
  scheduler: SchedulerProcess | undefined;
  clientToken = "";
  serverToken = "";
  readonly servers = new Map<string, ServerProcess>();

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async startScheduler(): Promise<void> {
    if (this.port === 0) this.port = await freePort();
    // Heartbeats every 2 s (a server is dropped after 3 missed): a loaded 2-core machine
    // must not make a busy server look dead.
    this.scheduler = await startScheduler({ addr: `127.0.0.1:${this.port}`, heartbeatMs: 2_000, clientToken: this.clientToken || undefined, serverToken: this.serverToken || undefined });
    this.clientToken = this.scheduler.clientToken;
    this.serverToken = this.scheduler.serverToken;
  }

  async startServer(name: string, cores: number, token = this.serverToken, waitJoined = true): Promise<ServerProcess> {
    const server = await startServer(this.url, token, { name, cores, waitJoined });
    this.servers.set(name, server);
    return server;
  }

  async status(): Promise<SchedulerStatus | undefined> {
    return status(this.url, this.clientToken).catch(() => undefined);
  }

  async waitForServers(n: number, timeoutMs = 60_000): Promise<void> {
    await eventually(`${n} servers joined`, async () => (await this.status())?.numServers === n, timeoutMs);
  }

  kiln(extra: Record<string, string> = {}): KilnInstance {
    return new KilnInstance({
      KILN_DIST_SCHEDULER_URL: this.url,
      KILN_DIST_TOKEN: this.clientToken,
      KILN_DIST_RETRY_AFTER: "1",
      KILN_DIST_CACHE_DIR: PACKAGES,
      ...extra,
    });
  }

  async stop(): Promise<void> {
    for (const server of this.servers.values()) await server.child.stop("SIGKILL");
    await this.scheduler?.child.stop("SIGKILL");
  }
}

const fleets: Fleet[] = [];
afterAll(async () => {
  for (const f of fleets) await f.stop();
});

async function fleetOf(servers: [string, number][]): Promise<Fleet> {
  const fleet = new Fleet();
  fleets.push(fleet);
  await fleet.startScheduler();
  for (const [name, cores] of servers) await fleet.startServer(name, cores);
  await fleet.waitForServers(servers.length);
  return fleet;
}

const luaObjects = (dir: string) => readdirSync(join(dir, "src")).filter((f) => f.endsWith(".o")).sort();

function makeLua(dir: string, cc: string, env: Record<string, string | undefined>, extra: string[] = []) {
  return run(["make", "-C", join(dir, "src"), "-j2", "linux", `CC=${cc}`, ...extra], { env, timeoutMs: 300_000 });
}

/** lua5.4 built plainly with gcc once, for every comparison in this file. */
let plainLua: string | undefined;
function plainLuaDir(): string {
  if (!plainLua) {
    plainLua = workload("lua5.4");
    expect(makeLua(plainLua, "gcc -std=gnu99", process.env).exitCode).toBe(0);
  }
  return plainLua;
}

function expectSameObjects(dir: string, plain: string): string[] {
  const names = luaObjects(dir);
  expect(names.length).toBeGreaterThan(30);
  expect(luaObjects(plain)).toEqual(names);
  for (const o of names) expect(`${o} ${sha256File(join(dir, "src", o))}`).toBe(`${o} ${sha256File(join(plain, "src", o))}`);
  return names;
}

/** A small C and C++ project whose compiles use -g and write .d files, built in and out of tree. */
const SMALL = {
  "inc/shape.h": "#pragma once\n#define AREA(w, h) ((w) * (h))\nint area(int w, int h);\n",
  "src/shape.c": '#include "shape.h"\n#include <stdio.h>\nint area(int w, int h) {\n  int   a =   AREA(w, h); return a;\n}\nvoid show(int x) { printf("%d\\n", x); }\n',
  "src/main.cc": '#include "shape.h"\n#include <string>\nstatic std::string name() { return std::string("n") + std::to_string(AREA(2, 3)); }\nint size() { return name().size(); }\n',
};

function compileSmall(dir: string, cc: string[], cxx: string[], env: Record<string, string | undefined>): void {
  mkdirSync(join(dir, "out"), { recursive: true });
  ok([...cc, "-g", "-O1", "-Iinc", "-MD", "-MF", "out/shape.d", "-c", "src/shape.c", "-o", "out/shape.o"], { cwd: dir, env });
  ok([...cxx, "-O2", "-Iinc", "-MMD", "-MP", "-c", "src/main.cc", "-o", "out/main.o"], { cwd: dir, env });
  ok([...cxx, "-O1", "-g", "-Iinc", "-c", "src/main.cc", "-o", "out/main-g.o"], { cwd: dir, env });
  // Out of tree, as CMake does it: absolute source, cwd a build directory.
  ok([...cc, "-g", "-I../inc", "-MD", "-MT", "shape2.o", "-MF", "shape2.d", "-c", join(dir, "src/shape.c"), "-o", "shape2.o"], { cwd: join(dir, "out"), env });
}

const SMALL_OUTPUTS = ["out/shape.o", "out/shape.d", "out/main.o", "out/main.d", "out/main-g.o", "out/shape2.o", "out/shape2.d"];

describe("dist", () => {
  test("lua5.4 over a scheduler and 2 servers: objects byte-identical, compiles on both servers, --dist-status shows them", async () => {
    const fleet = await fleetOf([["alpha", 2], ["beta", 3]]);
    const plain = plainLuaDir();
    const dir = workload("lua5.4");
    const k = fleet.kiln();
    expect(makeLua(dir, `${KILN} gcc -std=gnu99`, k.env).exitCode).toBe(0);
    const names = expectSameObjects(dir, plain);
    const s = k.stats();
    expect(s.dist_fallbacks).toEqual({});
    expect(total(s.dist_compiles)).toBe(names.length);
    expect(Object.keys(s.dist_compiles).sort()).toEqual(["alpha", "beta"]);
    expect(s.dist_compiles.alpha).toBeGreaterThan(0);
    expect(s.dist_compiles.beta).toBeGreaterThan(0);
    expect(s.cache_misses_total).toBe(names.length);
    expect(run([join(dir, "src", "lua"), "-e", "print(6 * 7)"]).stdout).toBe("42\n");

    const text = k.kiln(["-s"]).stdout;
    expect(text).toMatch(new RegExp(`Distributed compiles\\s+${names.length}\\n\\s+\\w+\\s+\\d+\\n\\s+\\w+\\s+\\d+`));

    const json = k.kiln(["--dist-status", "--stats-format", "json"]);
    expect(json.exitCode).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({ SchedulerStatus: [fleet.url, { num_servers: 2, num_cpus: 5, in_progress: 0 }] });
    const table = k.kiln(["--dist-status"]);
    expect(table.exitCode).toBe(0);
    expect(table.stdout).toContain(`Scheduler ${fleet.url}: connected, 2 servers, 5 cores`);
    expect(table.stdout).toMatch(/^alpha\s+2\s+0\s+1\s+\d+\s+[\d.]+ s ago$/m);
    expect(table.stdout).toMatch(/^beta\s+3\s+0\s+1\s+\d+\s+[\d.]+ s ago$/m);

    // A rebuild is all hits: remote results were stored like local ones.
    ok(["make", "-C", join(dir, "src"), "clean"]);
    k.zero();
    expect(makeLua(dir, `${KILN} gcc -std=gnu99`, k.env).exitCode).toBe(0);
    expect(k.stats().cache_hits_total).toBe(names.length);
  }, 600_000);

  test("-g and .d files: objects and dependency files equal a local compile's, in and out of tree, C and C++", async () => {
    const fleet = await fleetOf([["gamma", 2]]);
    const local = scratch("kds-");
    const remote = scratch("kds-");
    writeFiles(local, SMALL);
    writeFiles(remote, SMALL);
    // Same absolute paths for both: -g records the working directory.
    compileSmall(local, ["gcc"], ["g++"], process.env);
    const localBytes = SMALL_OUTPUTS.map((p) => readFileSync(join(local, p)));
    const k = fleet.kiln();
    const rename = (dir: string, to: string) => ok(["mv", dir, to]);
    // Move the local build away and build the same tree at the same path through dist.
    rename(local, `${local}.local`);
    rename(remote, local);
    compileSmall(local, [KILN, "gcc"], [KILN, "g++"], k.env);
    for (const [i, p] of SMALL_OUTPUTS.entries()) {
      expect(`${p} ${Bun.hash(readFileSync(join(local, p)))}`).toBe(`${p} ${Bun.hash(localBytes[i]!)}`);
    }
    const s = k.stats();
    expect(s.dist_fallbacks).toEqual({});
    expect(s.dist_skipped).toEqual({});
    expect(s.dist_compiles).toEqual({ gamma: 4 });
  }, 300_000);

  test("clang: compiles without debug info go remote, byte-identical; with debug info they stay local, counted", async () => {
    const fleet = await fleetOf([["epsilon", 2]]);
    const k = fleet.kiln();
    const dir = scratch("kdl-");
    writeFiles(dir, SMALL);
    for (const [flags, out] of [[["-O2"], "opt"], [["-O0", "-g"], "dbg"]] as const) {
      ok(["clang", ...flags, "-Iinc", "-c", "src/shape.c", "-o", `${out}-plain.o`], { cwd: dir });
      ok([KILN, "clang", ...flags, "-Iinc", "-c", "src/shape.c", "-o", `${out}.o`], { cwd: dir, env: k.env });
      expect(sha256File(join(dir, `${out}.o`))).toBe(sha256File(join(dir, `${out}-plain.o`)));
    }
    const s = k.stats();
    expect(s.dist_compiles).toEqual({ epsilon: 1 });
    expect(s.dist_skipped).toEqual({ "clang with debug info (not byte-identical remotely yet)": 1 });
    expect(s.dist_fallbacks).toEqual({});
  }, 300_000);

  test("a remote failure the local compiler contradicts is counted and the build goes on; a real error is the local compiler's", async () => {
    const fleet = await fleetOf([["delta", 2]]);
    const k = fleet.kiln();
    const dir = scratch("kdc-");
    // The assembler reads data.bin from the working directory: the server's build directory lacks it.
    writeFiles(dir, {
      "data.bin": "0123456789abcdef",
      "blob.c": 'asm(".section .rodata\\n.globl blob\\nblob: .incbin \\"data.bin\\"\\n.previous");\nint x;\n',
      "broken.c": "int f(void) { return nope; }\n",
    });
    ok(["gcc", "-c", "blob.c", "-o", "plain.o"], { cwd: dir });
    ok([KILN, "gcc", "-c", "blob.c", "-o", "blob.o"], { cwd: dir, env: k.env });
    expect(sha256File(join(dir, "blob.o"))).toBe(sha256File(join(dir, "plain.o")));
    const broken = run([KILN, "gcc", "-c", "broken.c", "-o", "broken.o"], { cwd: dir, env: k.env });
    expect(broken.exitCode).toBe(1);
    expect(broken.stderr).toMatch(/.nope. undeclared/);
    expect(broken.stderr.match(/error:/g)).toHaveLength(1);
    const s = k.stats();
    expect(s.dist_fallbacks).toEqual({ "remote compile failed, local succeeded": 1 });
    expect(s.dist_compiles).toEqual({});
    expect(s.compile_failures).toBe(1);
    expect(readFileSync(k.logFile, "utf8")).toMatch(/blob\.c failed on delta \(exit 1\) but compiles locally/);
  }, 300_000);

  test("SIGKILL of a server mid-build: the build succeeds, byte-identical, and the lost jobs are counted", async () => {
    const fleet = await fleetOf([["one", 2], ["two", 2]]);
    const plain = plainLuaDir();
    const dir = workload("lua5.4");
    const k = fleet.kiln();
    const build = Bun.spawn(["make", "-C", join(dir, "src"), "-j2", "linux", `CC=${KILN} gcc -std=gnu99`], {
      env: k.env,
      stdout: "pipe",
      stderr: "pipe",
    });
    // Kill "one" while it runs a job.
    await eventually("server one runs a job", async () => ((await fleet.status())?.servers.find((s) => s.name === "one")?.running ?? 0) > 0, 120_000);
    await fleet.servers.get("one")!.child.stop("SIGKILL");
    const stderr = await new Response(build.stderr).text();
    expect(`${await build.exited} ${stderr.slice(-2000)}`).toBe("0 " + stderr.slice(-2000));
    const names = expectSameObjects(dir, plain);
    const s = k.stats();
    expect(total(s.dist_compiles) + total(s.dist_fallbacks)).toBe(names.length);
    expect(total(s.dist_fallbacks)).toBeGreaterThan(0);
    expect(Object.keys(s.dist_fallbacks).every((r) => ["build server failed (502)", "timeout"].includes(r))).toBe(true);
    expect(s.dist_compiles.two).toBeGreaterThan(0);
    await fleet.waitForServers(1);
  }, 600_000);

  test("scheduler stopped: builds go local and --dist-status says not connected; restarted: servers rejoin, compiles go remote", async () => {
    const fleet = await fleetOf([["s1", 2], ["s2", 2]]);
    const k = fleet.kiln();
    const dir = scratch("kdr-");
    writeFiles(dir, SMALL);
    await fleet.scheduler!.child.stop("SIGTERM");

    compileSmall(dir, [KILN, "gcc"], [KILN, "g++"], k.env);
    let s = k.stats();
    expect(s.dist_fallbacks).toEqual({ "scheduler unreachable": 4 });
    expect(total(s.dist_compiles)).toBe(0);
    const status = k.kiln(["--dist-status"]);
    expect(status.exitCode).not.toBe(0);
    expect(status.stderr).toContain(`not connected to the scheduler at ${fleet.url}`);
    const json = k.kiln(["--dist-status", "--stats-format", "json"]);
    expect(json.exitCode).not.toBe(0);
    expect(JSON.parse(json.stdout).NotConnected).toContain(fleet.url);
    expect(readFileSync(k.logFile, "utf8")).toContain("scheduler unreachable");

    await fleet.startScheduler();
    await fleet.waitForServers(2);
    await Bun.sleep(1_100); // the client's retry_after
    k.zero();
    ok(["rm", "-rf", join(dir, "out")]);
    compileSmall(dir, [KILN, "gcc"], [KILN, "g++"], { ...k.env, KILN_RECACHE: "1" });
    s = k.stats();
    expect(s.dist_fallbacks).toEqual({});
    expect(total(s.dist_compiles)).toBe(4);
    expect(k.kiln(["--dist-status"]).stdout).toContain("connected, 2 servers");
  }, 300_000);

  test("a wrong client token, then a wrong server token: clear errors, no crash, correct build", async () => {
    const fleet = await fleetOf([["good", 2]]);
    const plain = scratch("kdt-");
    writeFiles(plain, SMALL);
    compileSmall(plain, ["gcc"], ["g++"], process.env);

    const bad = fleet.kiln({ KILN_DIST_TOKEN: "not-the-token" });
    const dir = scratch("kdt-");
    writeFiles(dir, SMALL);
    compileSmall(dir, [KILN, "gcc"], [KILN, "g++"], bad.env);
    for (const p of ["out/main.o", "out/shape.d"]) expect(sha256File(join(dir, p))).toBe(sha256File(join(plain, p)));
    const s = bad.stats();
    expect(s.dist_fallbacks).toEqual({ "scheduler rejected the client token (401)": 4 });
    expect(readFileSync(bad.logFile, "utf8")).toContain("scheduler rejected the client token (401)");
    expect(bad.kiln(["-s"]).stdout).toContain("scheduler rejected the client token (401)");
    const status = bad.kiln(["--dist-status"]);
    expect(status.exitCode).not.toBe(0);
    expect(status.stderr).toContain("scheduler rejected the client token (401)");
    expect(status.stderr).not.toContain("not-the-token");

    const intruder = await fleet.startServer("intruder", 2, "wrong-server-token", false);
    await intruder.child.waitFor(/token/i, 30_000);
    expect(intruder.child.output).toMatch(/server token|401/);
    expect(intruder.child.output).not.toContain("wrong-server-token");
    expect(fleet.scheduler!.child.proc.exitCode).toBeNull();
    const st = await fleet.status();
    expect(st?.numServers).toBe(1);
    expect(st?.servers.map((x) => x.name)).toEqual(["good"]);

    // The good client still compiles remotely, correctly.
    const k = fleet.kiln();
    const again = scratch("kdt-");
    writeFiles(again, SMALL);
    compileSmall(again, [KILN, "gcc"], [KILN, "g++"], k.env);
    expect(sha256File(join(again, "out/main.o"))).toBe(sha256File(join(plain, "out/main.o")));
    expect(k.stats().dist_compiles).toEqual({ good: 4 });
  }, 300_000);
});
