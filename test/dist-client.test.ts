// The scheduler client's error decoding: each HTTP answer or network failure becomes the
// reason a user reads in `kiln -s`. A tiny Bun.serve stands in for the scheduler's error
// answers only; the real scheduler and servers are exercised in dist-e2e.test.ts. Also the
// remote command the daemon builds from a compile's arguments.

import { afterAll, describe, expect, test } from "bun:test";
import { parseCFamilyArgs } from "../src/compilers/c-family/args.ts";
import { planJob } from "../src/daemon/dist-compile.ts";
import { DistFailure, SchedulerClient } from "../src/dist/client.ts";
import { DIST_PROTOCOL_VERSION, encodeFrame, type JobRequest } from "../src/dist/protocol.ts";

const answers = new Map<string, () => Response | Promise<Response>>();
const seen: { auth: string | null; path: string }[] = [];
const fake = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  fetch(req) {
    const path = new URL(req.url).pathname;
    seen.push({ auth: req.headers.get("authorization"), path });
    const answer = answers.get(path);
    return answer ? answer() : new Response("no such route", { status: 404 });
  },
});
afterAll(() => fake.stop(true));

const url = `http://127.0.0.1:${fake.port}`;
const client = (over: Partial<ConstructorParameters<typeof SchedulerClient>[0]> = {}) =>
  new SchedulerClient({ url, token: "s3cr3t-tok", connectTimeoutMs: 2_000, requestTimeoutMs: 5_000, ...over });

const job: JobRequest = {
  version: DIST_PROTOCOL_VERSION,
  toolchain: "a".repeat(64),
  argv: ["/usr/bin/gcc", "-c", "x.i", "-o", "x.o"],
  cwd: "/tmp/b",
  env: {},
  inputs: [{ path: "x.i", size: 3 }],
  outputs: ["x.o"],
  timeoutMs: 1_000,
};
const enc = (s: string) => new TextEncoder().encode(s);

async function failure(p: Promise<unknown>): Promise<DistFailure> {
  try {
    await p;
  } catch (e) {
    if (e instanceof DistFailure) return e;
    throw e;
  }
  throw new Error("expected a DistFailure");
}

describe("SchedulerClient", () => {
  test("each error status becomes its reason, with the scheduler's text in the detail; the token goes as Bearer", async () => {
    const cases: [number, string, string][] = [
      [401, "client token rejected", "scheduler rejected the client token (401)"],
      [503, "no server has capacity", "no capacity (503)"],
      [502, "server vanished during the job", "build server failed (502)"],
      [502, "bwrap: cannot create namespace", "sandbox error"],
      [502, 'build server b could not run the job: output "x.o": the compiler did not write it', "bad outputs"],
      [502, "build server b could not run the job: timed out after 1000 ms", "timeout"],
      [504, "job took too long", "timeout"],
      [413, "inputs too large", "job too large (413)"],
      [400, "bad cwd", "scheduler rejected the request"],
      [412, "toolchain abc is not on the scheduler", "toolchain unknown to the scheduler"],
      [500, "oops", "scheduler error"],
    ];
    for (const [status, text, reason] of cases) {
      answers.set("/api/v1/jobs", () => new Response(text, { status }));
      const f = await failure(client().submit(job, [enc("int")]));
      expect(`${status} ${f.reason}`).toBe(`${status} ${reason}`);
      expect(f.detail).toContain(text);
      expect(f.message).not.toContain("s3cr3t");
    }
    expect(seen.at(-1)).toEqual({ auth: "Bearer s3cr3t-tok", path: "/api/v1/jobs" });
    expect((await failure(client().submit(job, [enc("int")]))).backOff).toBe(false);
  });

  test("a refused connection is 'scheduler unreachable' and asks to back off; a slow scheduler is a timeout", async () => {
    const dead = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("") });
    const port = dead.port;
    dead.stop(true);
    const f = await failure(client({ url: `http://127.0.0.1:${port}` }).submit(job, [enc("int")]));
    expect(f.reason).toBe("scheduler unreachable");
    expect(f.detail).toContain(`127.0.0.1:${port}`);
    expect(f.backOff).toBe(true);

    answers.set("/api/v1/status", async () => {
      await Bun.sleep(3_000);
      return Response.json({});
    });
    const started = performance.now();
    const slow = await failure(client({ connectTimeoutMs: 300 }).status());
    expect(slow.reason).toBe("timeout");
    expect(performance.now() - started).toBeLessThan(2_500);
  });

  test("results: a good frame decodes; outputs other than requested, or sizes that do not add up, are bad outputs", async () => {
    const result = { version: DIST_PROTOCOL_VERSION, exitCode: 0, stdoutSize: 2, stderrSize: 1, outputs: [{ path: "x.o", size: 4 }], server: "s1" };
    answers.set("/api/v1/jobs", () => new Response(encodeFrame(result, [enc("ok"), enc("!"), enc("ELF!")])));
    const r = await client().submit(job, [enc("int")]);
    expect(r.result.server).toBe("s1");
    expect(new TextDecoder().decode(r.stdout)).toBe("ok");
    expect(new TextDecoder().decode(r.outputs[0]!)).toBe("ELF!");

    const bad: [unknown, Uint8Array[]][] = [
      [{ ...result, outputs: [{ path: "../evil.o", size: 4 }] }, [enc("ok"), enc("!"), enc("ELF!")]],
      [result, [enc("ok"), enc("!"), enc("EL")]],
      [{ ...result, outputs: [] }, [enc("ok"), enc("!")]],
    ];
    for (const [header, payload] of bad) {
      answers.set("/api/v1/jobs", () => new Response(encodeFrame(header, payload)));
      expect((await failure(client().submit(job, [enc("int")]))).reason).toBe("bad outputs");
    }
    answers.set("/api/v1/jobs", () => new Response("not a frame"));
    expect((await failure(client().submit(job, [enc("int")]))).reason).toBe("bad outputs");
  });

  test("toolchain HEAD: 200 holds it, 404 lacks it, 401 is the token", async () => {
    const id = "b".repeat(64);
    answers.set(`/api/v1/toolchains/${id}`, () => new Response(null, { status: 200 }));
    expect(await client().hasToolchain(id)).toBe(true);
    answers.delete(`/api/v1/toolchains/${id}`);
    expect(await client().hasToolchain(id)).toBe(false);
    answers.set(`/api/v1/toolchains/${id}`, () => new Response("client token", { status: 401 }));
    expect((await failure(client().hasToolchain(id))).reason).toBe("scheduler rejected the client token (401)");
  });
});

describe("the remote command", () => {
  const call = (args: string[], cwd = "/b") => {
    const parsed = parseCFamilyArgs(args, { cwd, flavor: "gcc", driverIsCxx: false, env: {} });
    if (!parsed.cacheable) throw new Error(parsed.reason);
    return { compiler: "/usr/bin/gcc", identity: "x", flavor: "gcc" as const, cwd, env: {}, umask: 0o22, parsed, text: enc("int x;"), extraArgs: [] };
  };
  const plan = (args: string[], cwd = "/b", asSource = false) => planJob(call(args, cwd), enc("int x;"), asSource);

  test("keeps the compile options, drops preprocessing and dependency-file ones, compiles the text next to the object", () => {
    expect(plan(["-std=gnu99", "-O2", "-Wall", "-DX=1", "-Iinc", "-MD", "-MT", "t", "-MF", "o/a.d", "-c", "src/a.c", "-o", "o/a.o"])).toEqual({
      argv: ["-std=gnu99", "-O2", "-Wall", "-x", "cpp-output", "-c", "o/a.o.kiln-src", "-o", "o/a.o"],
      input: "o/a.o.kiln-src",
      text: enc("int x;"),
      outputs: ["o/a.o"],
    });
    const asSource = plan(["-g", "-x", "c", "-c", "/src/a.txt", "-o", "/b/a.o"], "/b", true);
    expect(typeof asSource !== "string" && asSource.argv).toEqual(["-g", "-nostdinc", "-fdebug-prefix-map=a.o.kiln-src=/src/a.txt", "-x", "c", "-c", "a.o.kiln-src", "-o", "/b/a.o"]);
  });

  test("says why a call stays local", () => {
    expect(plan(["-c", "a.c", "-o", "../elsewhere/a.o"])).toBe("output outside the working directory");
    expect(plan(["-B/opt/mytools", "-c", "a.c"])).toBe("-B directory (not in the toolchain)");
    expect(plan(["-Wp,-MD,a.d", "-c", "a.c"])).toBe("dependency file options Kiln cannot reproduce (-Wp,-MD or -MG)");
    expect(plan(["-c", "a.s"])).toBe("source is not preprocessed C, C++, Objective-C or assembler");
  });
});
