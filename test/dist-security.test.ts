// What a hostile client or server can and cannot do to kiln-dist: tokens, malformed requests
// and messages, a "compiler" that tries to reach the network and the host's files, and
// outputs that try to lead out of the build directory.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Socket } from "bun";
import { DIST_PROTOCOL_VERSION, decodeFrame, encodeFrame } from "../src/dist/protocol.ts";
import {
  EVILCC,
  done,
  evilToolchain,
  eventually,
  postJob,
  runJob,
  startScheduler,
  startServer,
  status,
  uploadToolchain,
  type JobSpec,
  type SchedulerProcess,
  type ServerProcess,
} from "./dist-support.ts";
import { run, scratch } from "./support.ts";

let scheduler: SchedulerProcess;
let server: ServerProcess;
let evil: { id: string; archive: Uint8Array };

beforeAll(async () => {
  evil = await evilToolchain();
  scheduler = await startScheduler();
  server = await startServer(scheduler.url, scheduler.serverToken, { name: "victim", cores: 2 });
  expect(await uploadToolchain(scheduler.url, scheduler.clientToken, evil.id, evil.archive)).toBe(201);
});

afterAll(async () => {
  await server?.child.stop();
  await scheduler?.child.stop();
});

function evilJob(args: string[], outputs = ["out.o"], cwd = scratch("kdj-")) {
  return runJob(scheduler.url, scheduler.clientToken, {
    toolchain: evil.id,
    argv: ["/usr/bin/evilcc", ...args],
    cwd,
    inputs: { "in.i": "int x;\n" },
    outputs,
  });
}

async function stillServes(): Promise<void> {
  expect((await status(scheduler.url, scheduler.clientToken)).numServers).toBe(1);
}

describe("the sandbox", () => {
  test("a compiler cannot open a TCP connection, read the host's /etc/hostname or write outside its build dir", async () => {
    let connections = 0;
    const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { open: (s: Socket) => { connections++; s.end(); }, data() {} } });
    try {
      // The same probe on the host does connect and read: it can tell.
      const script = join(scratch("kde-"), "evilcc");
      await Bun.write(script, EVILCC);
      const host = run(["bash", script, "netread", "127.0.0.1", String(listener.port)], { cwd: dirname(script) });
      expect(host.stdout).toContain("tcp: connected");
      if (existsSync("/etc/hostname")) expect(host.stdout).toContain(`hostname: ${readFileSync("/etc/hostname", "utf8").trim()}`);
      // spawnSync blocked the event loop; the listener sees the host's connection now.
      await eventually("the host's connection", () => connections > 0, 5000);
      connections = 0;

      const cwd = scratch("kdj-");
      const answer = done(await evilJob(["probe", "127.0.0.1", String(listener.port)], ["out.o"], cwd));
      expect(answer.result.exitCode).toBe(0);
      expect(answer.stdout).toContain("tcp: refused");
      expect(answer.stdout).toContain("hostname: unreadable");
      expect(answer.stdout).not.toContain("wrote /pwned");
      expect(answer.stdout).not.toContain("wrote /usr/pwned");
      expect(connections).toBe(0);
      expect(existsSync("/pwned")).toBe(false);
      expect(existsSync(join(dirname(cwd), "pwned"))).toBe(false);
      expect(existsSync(join(server.dir, "pwned"))).toBe(false);
      expect(existsSync(join(server.dir, "build", "pwned"))).toBe(false);
    } finally {
      listener.stop(true);
    }
  });

  test("an output that is a symlink is refused with the reason; nothing of the host leaks", async () => {
    const answer = await evilJob(["symlink", "/etc/hostname"]);
    expect(answer.ok).toBe(false);
    expect(answer.status).toBe(502);
    expect(!answer.ok && answer.text).toContain('output "out.o": is a symlink');
  });

  test("an output directory the compiler replaced with a symlink is refused", async () => {
    const answer = await evilJob(["dirlink"], ["linkdir/out.o"]);
    expect(!answer.ok && answer.text).toContain('output "linkdir/out.o": goes through a symlink');
  });

  test("a missing output with exit code 0 is a failure, not an empty file", async () => {
    const answer = await evilJob(["none"]);
    expect(!answer.ok && answer.text).toContain('output "out.o": the compiler did not write it');
  });

  test("hostile output and input paths and cwds are refused before anything runs", async () => {
    const cases: [Partial<JobSpec>, string][] = [
      [{ outputs: ["../../etc/passwd"] }, `output "../../etc/passwd": '..' in the path`],
      [{ outputs: ["/etc/passwd"] }, `output "/etc/passwd": absolute path`],
      [{ inputs: { "../x.i": "x" } }, `input "../x.i": '..' in the path`],
      [{ cwd: "relative/dir" }, "cwd must be an absolute path"],
      [{ cwd: "/tmp/../etc" }, `cwd "/tmp/../etc": '..' in the path`],
    ];
    for (const [spec, reason] of cases) {
      const answer = await runJob(scheduler.url, scheduler.clientToken, {
        toolchain: evil.id,
        argv: ["/usr/bin/evilcc", "none"],
        cwd: "/tmp/kd-ok",
        inputs: { "in.i": "x" },
        outputs: ["out.o"],
        ...spec,
      });
      expect([answer.status, !answer.ok && answer.text]).toEqual([400, expect.stringContaining(reason)]);
    }
    // A cwd under a directory the toolchain provides is refused by the server.
    const answer = await runJob(scheduler.url, scheduler.clientToken, {
      toolchain: evil.id, argv: ["/usr/bin/evilcc", "none"], cwd: "/usr/src/x", inputs: {}, outputs: [],
    });
    expect(!answer.ok && answer.text).toContain("cwd may not be under /usr, which the toolchain provides");
    await stillServes();
  });
});

describe("tokens", () => {
  test("a wrong client token gets 401 naming the client token, on every client route", async () => {
    const wrong = { Authorization: "Bearer not-the-token" };
    for (const [method, path] of [["GET", "/api/v1/status"], ["POST", "/api/v1/jobs"], ["PUT", `/api/v1/toolchains/${evil.id}`], ["HEAD", `/api/v1/toolchains/${evil.id}`]]) {
      const res = await fetch(`${scheduler.url}${path}`, { method, headers: wrong, body: method === "POST" || method === "PUT" ? "x" : undefined });
      expect(res.status).toBe(401);
      if (method !== "HEAD") expect(await res.text()).toContain("rejected the client token");
    }
    const none = await fetch(`${scheduler.url}/api/v1/jobs`, { method: "POST", body: "x" });
    expect(none.status).toBe(401);
    await stillServes();
  });

  test("a server with a wrong token says so clearly, is not admitted, and the scheduler keeps serving", async () => {
    const impostor = await startServer(scheduler.url, "wrong-server-token", { name: "impostor", waitJoined: false });
    try {
      await impostor.child.waitFor(/rejected the server token \(401\)/);
      const s = await status(scheduler.url, scheduler.clientToken);
      expect(s.servers.map((x) => x.name)).toEqual(["victim"]);
      // The client token is not a server token either.
      const res = await fetch(`${scheduler.url}/api/v1/toolchains/${evil.id}`, { headers: { Authorization: `Bearer ${scheduler.clientToken}` } });
      expect(res.status).toBe(401);
      expect(await res.text()).toContain("rejected the server token");
    } finally {
      await impostor.child.stop();
    }
  });
});

describe("malformed requests get 4xx and the scheduler keeps serving", () => {
  const post = (body: Uint8Array | string) => postJob(scheduler.url, scheduler.clientToken, body);

  test("job bodies", async () => {
    const header = (h: unknown) => encodeFrame(h);
    const good = {
      version: DIST_PROTOCOL_VERSION, toolchain: evil.id, argv: ["/usr/bin/evilcc"], cwd: "/tmp/x", env: {}, inputs: [], outputs: [], timeoutMs: 1000,
    };
    const cases: [Uint8Array | string, number, string][] = [
      ["", 400, "frame shorter than its length field"],
      ["\0\0\0\x05{nope", 400, "header is not JSON"],
      ["\xff\xff\xff\xff", 400, "exceeds"],
      [header([1, 2]), 400, "protocol version"],
      [header({ ...good, version: 99 }), 400, "protocol version 99"],
      [header({ ...good, toolchain: "../../etc" }), 400, "toolchain must be a SHA-256"],
      [header({ ...good, argv: [] }), 400, "argv must be a non-empty array"],
      [header({ ...good, argv: ["gcc"] }), 400, "argv[0] must be an absolute path"],
      [header({ ...good, inputs: [{ path: "a", size: 10 }] }), 400, "inputs declare 10 bytes but the payload has 0"],
      [header({ ...good, inputs: [{ path: "a", size: -1 }] }), 400, "bad size"],
      [header({ ...good, env: { "A=B": "x" } }), 400, "not a valid variable"],
      [header({ ...good, timeoutMs: 1e12 }), 400, "timeoutMs"],
      [header({ ...good, toolchain: "0".repeat(64) }), 412, "is not on the scheduler; PUT it"],
    ];
    for (const [body, code, reason] of cases) {
      const answer = await post(body);
      expect([answer.status, !answer.ok && answer.text.includes(reason) ? reason : (answer as { text: string }).text]).toEqual([code, reason]);
    }
    await stillServes();
  });

  test("routes, methods, sizes and toolchain uploads", async () => {
    const auth = { Authorization: `Bearer ${scheduler.clientToken}` };
    expect((await fetch(`${scheduler.url}/nope`, { headers: auth })).status).toBe(404);
    expect((await fetch(`${scheduler.url}/api/v1/jobs`, { headers: auth })).status).toBe(405);
    const huge = await fetch(`${scheduler.url}/api/v1/jobs`, { method: "POST", headers: { ...auth, "content-length": String(4 * 1024 ** 3) }, body: "x" }).catch(() => undefined);
    if (huge) expect([400, 413]).toContain(huge.status);
    const mismatch = await fetch(`${scheduler.url}/api/v1/toolchains/${"a".repeat(64)}`, { method: "PUT", headers: auth, body: "not it" });
    expect(mismatch.status).toBe(400);
    expect(await mismatch.text()).toContain("SHA-256 is not");
    const badId = await fetch(`${scheduler.url}/api/v1/toolchains/..%2f..%2fetc`, { method: "PUT", headers: auth, body: "x" });
    expect(badId.status).toBe(400);
    await stillServes();
  });

  test("a server speaking garbage over the WebSocket is cut off; the others keep working", async () => {
    const url = `${scheduler.url.replace(/^http/, "ws")}/api/v1/servers/connect`;
    for (const garbage of ["text frame", new Uint8Array([0, 0, 0, 200, 1]), encodeFrame({ type: "result", jobId: "1" }), encodeFrame({ type: "hello", version: 1, name: "x", cores: -1, capacity: 1, toolchains: [] })]) {
      const ws = new WebSocket(url, { headers: { Authorization: `Bearer ${scheduler.serverToken}` } } as unknown as string[]);
      const closed = new Promise<number>((resolve) => (ws.onclose = (e) => resolve(e.code)));
      await new Promise((resolve) => (ws.onopen = resolve));
      ws.send(garbage);
      expect(await closed).toBe(4400);
    }
    await stillServes();
    expect(done(await evilJob(["probe", "127.0.0.1", "9"])).result.exitCode).toBe(0);
  });

  test("a hostile build server's bad results are refused with 502, and it cannot crash the scheduler", async () => {
    const s = await startScheduler();
    try {
      expect(await uploadToolchain(s.url, s.clientToken, evil.id, evil.archive)).toBe(201);
      const ws = new WebSocket(`${s.url.replace(/^http/, "ws")}/api/v1/servers/connect`, { headers: { Authorization: `Bearer ${s.serverToken}` } } as unknown as string[]);
      ws.binaryType = "arraybuffer";
      await new Promise((resolve) => (ws.onopen = resolve));
      const bad = [
        (jobId: string) => encodeFrame({ type: "result", jobId, result: { version: 1, exitCode: 0, stdoutSize: 0, stderrSize: 0, outputs: [{ path: "../../etc/passwd", size: 1 }], server: "x" } }, [new Uint8Array(1)]),
        (jobId: string) => {
          // First an answer to a job it was never given (dropped), then a real one that lies.
          ws.send(encodeFrame({ type: "result", jobId: "no-such-job", result: {} }));
          return encodeFrame({ type: "result", jobId, result: { version: 1, exitCode: 0, stdoutSize: 5, stderrSize: 0, outputs: [{ path: "out.o", size: 1 }], server: "x" } }, [new Uint8Array(1)]);
        },
      ];
      let round = 0;
      ws.onmessage = (event) => {
        const { header } = decodeFrame<{ type: string; jobId: string }>(new Uint8Array(event.data as ArrayBuffer));
        if (header.type === "job") ws.send(bad[round++]!(header.jobId));
      };
      ws.send(encodeFrame({ type: "hello", version: DIST_PROTOCOL_VERSION, name: "liar", cores: 1, capacity: 1, toolchains: [] }));
      await eventually("the liar to join", async () => (await status(s.url, s.clientToken)).numServers === 1);
      const spec = { toolchain: evil.id, argv: ["/usr/bin/evilcc", "none"], cwd: "/tmp/kd-liar", inputs: {}, outputs: ["out.o"] };
      const first = await runJob(s.url, s.clientToken, spec);
      expect([first.status, !first.ok && first.text]).toEqual([502, "build server liar sent a bad result: outputs other than the ones asked for\n"]);
      const second = await runJob(s.url, s.clientToken, spec);
      expect([second.status, !second.ok && second.text]).toEqual([502, "build server liar sent a bad result: sizes add up to 6, payload has 1\n"]);
      expect((await status(s.url, s.clientToken)).servers).toMatchObject([{ name: "liar", running: 0 }]);
      ws.close();
    } finally {
      await s.child.stop();
    }
  });
});
