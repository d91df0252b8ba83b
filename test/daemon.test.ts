// The daemon's lifecycle as a user meets it: started on demand, one per user, refusing other
// protocol versions, stopping on request or when idle, and never in the way of a build.

import { describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { exchange, exchangeEvented } from "../src/client/client.ts";
import { encodeFrame, encodeJson, Kind, PROTOCOL_VERSION, decodeJson } from "../src/ipc/wire.ts";
import { alive, KILN, KilnInstance, ok, run, scratch } from "./support.ts";

function cSource(dir: string, name = "a.c", body = "int add(int a, int b) { return a + b; }\n"): string {
  writeFileSync(join(dir, name), body);
  return name;
}

async function waitFor(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (cond()) return true;
    await Bun.sleep(25);
  }
  return cond();
}

describe("daemon lifecycle", () => {
  test("the first compile starts the daemon; --start-server and the lockfile name it", () => {
    const k = new KilnInstance();
    const dir = scratch();
    cSource(dir);
    ok([KILN, "gcc", "-c", "a.c", "-o", "a.o"], { cwd: dir, env: k.env });
    const lock = JSON.parse(readFileSync(join(k.root, "run", "daemon.lock"), "utf8"));
    expect(lock.version).toBe(PROTOCOL_VERSION);
    expect(alive(lock.pid)).toBe(true);
    const started = k.kiln(["--start-server"]);
    expect(started.exitCode).toBe(0);
    expect(started.stdout).toContain(`pid ${lock.pid}`);
    // The runtime directory is private.
    expect(require("node:fs").statSync(join(k.root, "run")).mode & 0o777).toBe(0o700);
  });

  test("two clients racing to start the daemon end with one daemon", async () => {
    const k = new KilnInstance();
    const dir = scratch();
    for (let i = 0; i < 6; i++) cSource(dir, `f${i}.c`, `int f${i}(void) { return ${i}; }\n`);
    const procs = Array.from({ length: 6 }, (_, i) =>
      Bun.spawn([KILN, "gcc", "-c", `f${i}.c`, "-o", `f${i}.o`], { cwd: dir, env: k.env, stderr: "pipe" }),
    );
    const codes = await Promise.all(procs.map((p) => p.exited));
    expect(codes).toEqual([0, 0, 0, 0, 0, 0]);
    for (let i = 0; i < 6; i++) expect(existsSync(join(dir, `f${i}.o`))).toBe(true);
    const daemons = run(["pgrep", "-f", "--", "--internal-daemon"]).stdout.trim().split("\n").filter(Boolean);
    const ours = daemons.filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/environ`, "utf8").includes(`KILN_RUNTIME_DIR=${join(k.root, "run")}\0`);
      } catch {
        return false;
      }
    });
    expect(ours.length).toBe(1);
    expect(k.stats().compile_requests).toBe(6);
  });

  test("--stop-server prints the final stats and the daemon exits", async () => {
    const k = new KilnInstance();
    const dir = scratch();
    cSource(dir);
    ok([KILN, "gcc", "-c", "a.c"], { cwd: dir, env: k.env });
    const pid = k.daemonPid()!;
    const stopped = k.kiln(["--stop-server"]);
    expect(stopped.exitCode).toBe(0);
    expect(stopped.stdout).toMatch(/Compile requests\s+1/);
    expect(alive(pid)).toBe(false);
    expect(existsSync(join(k.root, "run", "daemon.sock"))).toBe(false);
    // Stopping again is harmless and says so.
    const again = k.kiln(["--stop-server"]);
    expect(again.exitCode).toBe(0);
    expect(again.stderr).toContain("no Kiln daemon is running");
  });

  test("--stop-server during a compile lets it finish, then the daemon exits promptly", async () => {
    const k = new KilnInstance();
    const bin = scratch("bin-");
    // A gcc that takes a second: the stop arrives while it runs.
    writeFileSync(join(bin, "gcc"), "#!/bin/sh\ncase \"$*\" in *-E*) ;; *) sleep 1 ;; esac\nexec /usr/bin/gcc \"$@\"\n", { mode: 0o755 });
    const dir = scratch();
    cSource(dir);
    const env = { ...k.env, PATH: `${bin}:${process.env.PATH}` };
    ok([KILN, "--start-server"], { env });
    const pid = k.daemonPid()!;
    const compile = Bun.spawn([KILN, "gcc", "-c", "a.c"], { cwd: dir, env, stderr: "pipe" });
    await Bun.sleep(400);
    const started = performance.now();
    const stop = Bun.spawn([KILN, "--stop-server"], { env, stdout: "pipe" });
    expect(await compile.exited).toBe(0);
    expect(await stop.exited).toBe(0);
    expect(performance.now() - started).toBeLessThan(10_000);
    expect(existsSync(join(dir, "a.o"))).toBe(true);
    expect(await waitFor(() => !alive(pid), 5000)).toBe(true);
    expect(readFileSync(k.logFile, "utf8")).toContain("stopped");
  });

  test("the daemon exits after KILN_IDLE_TIMEOUT seconds without work", async () => {
    const k = new KilnInstance({ KILN_IDLE_TIMEOUT: "1" });
    ok([KILN, "--start-server"], { env: k.env });
    const pid = k.daemonPid()!;
    expect(alive(pid)).toBe(true);
    expect(await waitFor(() => !alive(pid), 5000)).toBe(true);
    expect(readFileSync(k.logFile, "utf8")).toContain("idle for 1 s");
  });

  test("KILN_ERROR_LOG and KILN_LOG choose the log file and how much goes into it", () => {
    const log = join(scratch(), "logs", "kiln.log");
    for (const [level, expectDebug] of [["info", false], ["debug", true]] as const) {
      const k = new KilnInstance({ KILN_ERROR_LOG: log, KILN_LOG: level });
      const dir = scratch();
      cSource(dir);
      ok([KILN, "gcc", "-c", "a.c"], { cwd: dir, env: k.env });
      ok([KILN, "--stop-server"], { env: k.env });
      const text = readFileSync(log, "utf8");
      expect(text).toContain(`listening on ${join(k.root, "run", "daemon.sock")}`);
      expect(text.includes("DEBUG")).toBe(expectDebug);
      expect(existsSync(k.logFile)).toBe(false); // not the default place
      writeFileSync(log, "");
    }
  });

  test("a client of another protocol version is refused with a clear message", async () => {
    const k = new KilnInstance();
    ok([KILN, "--start-server"], { env: k.env });
    const older = encodeFrame(Kind.Command, new TextEncoder().encode('{"cmd":"ping"}'), PROTOCOL_VERSION - 1 || 0);
    const answer = await exchange(join(k.root, "run", "daemon.sock"), older);
    expect(answer.ok).toBe(true);
    if (!answer.ok) return;
    expect(answer.frame.kind).toBe(Kind.Refused);
    const body = decodeJson<{ version: number; message: string }>(answer.frame.payload);
    expect(body.version).toBe(PROTOCOL_VERSION);
    expect(body.message).toContain("speaks protocol");
    // The daemon is still serving clients of its own version.
    const ping = await exchange(join(k.root, "run", "daemon.sock"), encodeJson(Kind.Command, { cmd: "ping" }));
    expect(ping.ok && ping.frame.kind === Kind.Reply).toBe(true);
  });

  test("a newer client makes the old daemon step down; the compile still succeeds", async () => {
    const k = new KilnInstance();
    ok([KILN, "--start-server"], { env: k.env });
    const pid = k.daemonPid()!;
    const newer = encodeFrame(Kind.Command, new TextEncoder().encode('{"cmd":"ping"}'), PROTOCOL_VERSION + 1);
    const answer = await exchange(join(k.root, "run", "daemon.sock"), newer);
    expect(answer.ok && answer.frame.kind === Kind.Refused).toBe(true);
    expect(await waitFor(() => !alive(pid), 5000)).toBe(true);
    const dir = scratch();
    cSource(dir);
    ok([KILN, "gcc", "-c", "a.c"], { cwd: dir, env: k.env });
    expect(existsSync(join(dir, "a.o"))).toBe(true);
  });
});

test("the event-driven client (used where libc cannot be loaded) speaks the same protocol", async () => {
  const k = new KilnInstance();
  ok([KILN, "--start-server"], { env: k.env });
  const socket = join(k.root, "run", "daemon.sock");
  const answer = await exchangeEvented(socket, encodeJson(Kind.Command, { cmd: "ping" }));
  expect(answer.ok && decodeJson<{ pid: number }>(answer.frame.payload).pid).toBe(k.daemonPid()!);
  const nobody = await exchangeEvented(join(k.root, "nobody.sock"), encodeJson(Kind.Command, { cmd: "ping" }));
  expect(nobody).toEqual({ ok: false, failure: "connect" });
});

describe("a build never fails because of Kiln", () => {
  test("a runtime directory others can enter: the compile runs directly, with one warning", () => {
    const k = new KilnInstance();
    const runDir = join(k.root, "run");
    mkdirSync(runDir, { recursive: true });
    chmodSync(runDir, 0o777);
    const dir = scratch();
    cSource(dir);
    const r = run([KILN, "gcc", "-c", "a.c", "-o", "a.o"], { cwd: dir, env: k.env });
    expect(r.exitCode).toBe(0);
    expect(existsSync(join(dir, "a.o"))).toBe(true);
    expect(r.stderr).toContain(`the runtime directory ${runDir} is not private`);
    expect(r.stderr).toContain("compiling without the cache");
  });

  test("a malformed config: the compile still works, and kiln -s names the file and the key", () => {
    const k = new KilnInstance();
    const conf = join(k.root, "kiln.toml");
    writeFileSync(conf, '[cache.disk]\nsize = "ten gigabytes"\n');
    const env = { KILN_CONF: conf };
    const dir = scratch();
    cSource(dir);
    const r = run([KILN, "gcc", "-c", "a.c"], { cwd: dir, env: { ...k.env, ...env } });
    expect(r.exitCode).toBe(0);
    expect(existsSync(join(dir, "a.o"))).toBe(true);
    expect(r.stderr).toContain(conf);
    const s = k.kiln(["-s"], { env });
    expect(s.exitCode).toBe(1);
    expect(s.stderr).toContain(conf);
    expect(s.stderr).toContain("size");
  });

  test("a client that was meant to be a daemon never starts daemons itself (no fork loops)", () => {
    const k = new KilnInstance();
    const dir = scratch();
    cSource(dir);
    const r = run([KILN, "gcc", "-c", "a.c"], { cwd: dir, env: { ...k.env, KILN_DAEMON_CHILD: "1" } });
    expect(r.exitCode).toBe(0);
    expect(existsSync(join(dir, "a.o"))).toBe(true);
    expect(r.stderr).toContain("not starting another");
    expect(k.daemonPid()).toBeUndefined();
  });

  test("the compiler's own failure passes through unchanged when the daemon is unreachable", () => {
    const k = new KilnInstance();
    chmodSync(k.root, 0o755);
    mkdirSync(join(k.root, "run"), { mode: 0o755 });
    chmodSync(join(k.root, "run"), 0o755);
    const dir = scratch();
    cSource(dir, "bad.c", "int f(void) { return nope; }\n");
    const viaKiln = run([KILN, "gcc", "-c", "bad.c"], { cwd: dir, env: k.env });
    const plain = run(["gcc", "-c", "bad.c"], { cwd: dir });
    expect(viaKiln.exitCode).toBe(plain.exitCode);
    expect(viaKiln.stderr).toContain(plain.stderr);
  });
});
