// Servers and schedulers that die, stall and come back: a client never hangs, a vanished
// server loses its jobs at once, and servers rejoin a restarted scheduler by themselves.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import {
  done,
  eventually,
  evilToolchain,
  runJob,
  startScheduler,
  startServer,
  status,
  uploadToolchain,
  type JobAnswer,
  type SchedulerProcess,
} from "./dist-support.ts";
import { scratch } from "./support.ts";

let evil: { id: string; archive: Uint8Array };

beforeAll(async () => {
  evil = await evilToolchain();
});

const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

async function scheduled(options: Parameters<typeof startScheduler>[0] = {}): Promise<SchedulerProcess> {
  const s = await startScheduler(options);
  cleanups.push(() => s.child.stop());
  expect(await uploadToolchain(s.url, s.clientToken, evil.id, evil.archive)).toBe(201);
  return s;
}

function sleepJob(s: SchedulerProcess, seconds: string): Promise<JobAnswer> {
  return runJob(s.url, s.clientToken, {
    toolchain: evil.id,
    argv: ["/usr/bin/evilcc", "sleep", seconds],
    cwd: scratch("kdj-"),
    inputs: {},
    outputs: ["out.o"],
  });
}

/**
 * Pids of processes whose command line starts with `text`. The sandboxed `sleep` itself, not
 * bwrap (whose arguments contain the same words): it exists only once bwrap has set itself up,
 * including --die-with-parent, which a kill during bwrap's first instants would escape.
 */
function processesWith(text: string): number[] {
  const found: number[] = [];
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, "utf8").startsWith(text)) found.push(Number(pid));
    } catch {
      // gone
    }
  }
  return found;
}

describe("failover", () => {
  test("a server SIGKILLed mid-job: the client gets 502 at once, the server is dropped, its sandbox dies", async () => {
    const s = await scheduled();
    const server = await startServer(s.url, s.serverToken, { name: "doomed", cores: 1 });
    cleanups.push(() => server.child.stop("SIGKILL"));
    const marker = "41.25"; // a sleep nobody else runs
    const job = sleepJob(s, marker);
    await eventually("the job to run", () => processesWith(`sleep\0${marker}`).length > 0);
    const started = Date.now();
    server.child.proc.kill("SIGKILL");
    const answer = await job;
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(answer.status).toBe(502);
    expect(!answer.ok && answer.text).toContain("build server doomed vanished mid-job");
    expect((await status(s.url, s.clientToken)).numServers).toBe(0);
    await eventually("the sandboxed sleep to die with its server", () => processesWith(`sleep\0${marker}`).length === 0, 10_000);
    // With no server left, a job is refused at once rather than queued.
    const none = await sleepJob(s, "0");
    expect([none.status, !none.ok && none.text]).toEqual([503, "no capacity: no build servers are connected\n"]);
    // The killed server left its job's directory; its successor removes it.
    const left = `server-${server.child.proc.pid}`;
    expect(readdirSync(join(server.dir, "build"))).toContain(left);
    const successor = await startServer(s.url, s.serverToken, { name: "successor", dir: server.dir });
    cleanups.push(() => successor.child.stop());
    expect(readdirSync(join(server.dir, "build"))).toEqual([`server-${successor.child.proc.pid}`]);
  });

  test("a stalled server (SIGSTOP) misses heartbeats, is dropped with its job, and rejoins when it resumes", async () => {
    const s = await scheduled({ heartbeatMs: 200 });
    const server = await startServer(s.url, s.serverToken, { name: "stalled", cores: 1 });
    cleanups.push(() => server.child.stop("SIGKILL"));
    const job = sleepJob(s, "30");
    await eventually("the job to be placed", async () => (await status(s.url, s.clientToken)).inProgress === 1);
    server.child.proc.kill("SIGSTOP");
    try {
      const answer = await job;
      expect(answer.status).toBe(502);
      expect(!answer.ok && answer.text).toContain("missed 3 heartbeats");
      expect((await status(s.url, s.clientToken)).numServers).toBe(0);
    } finally {
      server.child.proc.kill("SIGCONT");
    }
    await eventually("the server to rejoin", async () => (await status(s.url, s.clientToken)).numServers === 1);
    expect(done(await sleepJob(s, "0")).result.server).toBe("stalled");
  });

  test("a job past its timeout is killed and answered 502 with the reason; the server stays", async () => {
    const s = await scheduled();
    const server = await startServer(s.url, s.serverToken, { name: "patient", cores: 1 });
    cleanups.push(() => server.child.stop());
    const marker = "37.75";
    const answer = await runJob(s.url, s.clientToken, {
      toolchain: evil.id, argv: ["/usr/bin/evilcc", "sleep", marker], cwd: scratch("kdj-"), inputs: {}, outputs: ["out.o"], timeoutMs: 500,
    });
    expect([answer.status, !answer.ok && answer.text]).toEqual([502, expect.stringContaining("timed out after 500 ms")]);
    expect(processesWith(`sleep\0${marker}`)).toEqual([]);
    expect((await status(s.url, s.clientToken)).servers).toMatchObject([{ name: "patient", running: 0 }]);
  });

  test("a full fleet answers 503 no capacity; jobs are placed by running jobs per core", async () => {
    const s = await scheduled();
    const small = await startServer(s.url, s.serverToken, { name: "small", cores: 1 });
    const big = await startServer(s.url, s.serverToken, { name: "big", cores: 3 });
    cleanups.push(() => small.child.stop(), () => big.child.stop());
    // Capacity is cores + 1: 2 + 4 = 6 jobs at once.
    const jobs = Array.from({ length: 6 }, () => sleepJob(s, "3"));
    await eventually("6 running jobs", async () => (await status(s.url, s.clientToken)).inProgress === 6);
    const st = await status(s.url, s.clientToken);
    expect(Object.fromEntries(st.servers.map((x) => [x.name, x.running]))).toEqual({ small: 2, big: 4 });
    const refused = await sleepJob(s, "0");
    expect([refused.status, !refused.ok && refused.text]).toEqual([503, "no capacity: all 2 build servers are full\n"]);
    for (const answer of await Promise.all(jobs)) expect(done(answer).result.exitCode).toBe(0);
  });

  test("servers rejoin a restarted scheduler by themselves", async () => {
    const first = await scheduled({ heartbeatMs: 200 });
    const port = new URL(first.url).port;
    const servers = [
      await startServer(first.url, first.serverToken, { name: "one", cores: 1, extra: "" }),
      await startServer(first.url, first.serverToken, { name: "two", cores: 1 }),
    ];
    for (const sv of servers) cleanups.push(() => sv.child.stop());
    await first.child.stop();
    for (const sv of servers) await sv.child.waitFor(/lost the scheduler/);
    const again = await scheduled({ heartbeatMs: 200, addr: `127.0.0.1:${port}`, clientToken: first.clientToken, serverToken: first.serverToken });
    await eventually("both servers to rejoin", async () => (await status(again.url, again.clientToken)).numServers === 2, 30_000);
    // They kept the toolchain they had and say so.
    expect(done(await sleepJob(again, "0")).result.exitCode).toBe(0);
  });
});
