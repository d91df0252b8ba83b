// kiln-dist end to end: a scheduler and build servers as separate processes on loopback,
// real bwrap, real gcc, jobs sent the way the Kiln daemon sends them.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { packageToolchain, type PackagedToolchain } from "../src/dist/toolchain.ts";
import {
  done,
  eventually,
  runJob,
  startScheduler,
  startServer,
  status,
  uploadToolchain,
  type SchedulerProcess,
  type ServerProcess,
} from "./dist-support.ts";
import { ok, scratch, writeFiles } from "./support.ts";

let gcc: PackagedToolchain;
let scheduler: SchedulerProcess;
const servers: ServerProcess[] = [];

beforeAll(async () => {
  gcc = await packageToolchain("gcc");
  scheduler = await startScheduler();
  servers.push(await startServer(scheduler.url, scheduler.serverToken, { name: "alpha", cores: 2 }));
  servers.push(await startServer(scheduler.url, scheduler.serverToken, { name: "beta", cores: 3 }));
  expect(await uploadToolchain(scheduler.url, scheduler.clientToken, gcc.id, gcc.archive)).toBe(201);
});

afterAll(async () => {
  for (const s of servers) await s.child.stop();
  await scheduler?.child.stop();
});

/** A preprocessed C file and the object a local `gcc -c` makes of it in the same cwd. */
function preprocessed(name = "hello", body = 'int main(void) { printf("hi\\n"); return 0; }'): { dir: string; source: Uint8Array; local: Uint8Array } {
  const dir = scratch("kdj-");
  writeFiles(dir, { [`${name}.c`]: `#include <stdio.h>\n${body}\n` });
  ok(["gcc", "-E", `${name}.c`, "-o", `${name}.i`], { cwd: dir });
  ok(["gcc", "-g", "-O2", "-c", `${name}.i`, "-o", `${name}.local.o`], { cwd: dir });
  return { dir, source: readFileSync(join(dir, `${name}.i`)), local: readFileSync(join(dir, `${name}.local.o`)) };
}

describe("scheduler and two build servers", () => {
  test("status shows both servers and their cores", async () => {
    const s = await status(scheduler.url, scheduler.clientToken);
    expect(s.numServers).toBe(2);
    expect(s.numCpus).toBe(5);
    expect(s.servers.map((x) => x.name).sort()).toEqual(["alpha", "beta"]);
  });

  test("a real gcc job gives an object byte-identical to a local gcc -c in the same cwd (output in a subdirectory)", async () => {
    const { dir, source, local } = preprocessed();
    const answer = done(await runJob(scheduler.url, scheduler.clientToken, {
      toolchain: gcc.id,
      argv: [gcc.compiler, "-g", "-O2", "-c", "hello.i", "-o", "obj/hello.o"],
      cwd: dir,
      inputs: { "hello.i": source },
      outputs: ["obj/hello.o"],
    }));
    expect(answer.result.exitCode).toBe(0);
    expect(["alpha", "beta"]).toContain(answer.result.server);
    expect(Buffer.from(answer.outputs.get("obj/hello.o")!).equals(Buffer.from(local))).toBe(true);
  });

  for (const [compiler, ext, body] of [
    ["g++", "cc", "#include <vector>\nint total(const std::vector<int>& v) { int t = 0; for (int x : v) t += x; return t; }"],
    ["clang", "c", '#include <stdio.h>\nint main(void) { printf("clang\\n"); return 0; }'],
  ] as const) {
    test.skipIf(!Bun.which(compiler))(`${compiler}: the object is byte-identical to a local compile`, async () => {
      const toolchain = await packageToolchain(compiler);
      expect(await uploadToolchain(scheduler.url, scheduler.clientToken, toolchain.id, toolchain.archive)).toBe(201);
      const dir = scratch("kdj-");
      const pre = ext === "cc" ? "x.ii" : "x.i";
      writeFiles(dir, { [`x.${ext}`]: `${body}\n` });
      ok([compiler, "-E", `x.${ext}`, "-o", pre], { cwd: dir });
      ok([compiler, "-g", "-O2", "-c", pre, "-o", "local.o"], { cwd: dir });
      const answer = done(await runJob(scheduler.url, scheduler.clientToken, {
        toolchain: toolchain.id,
        argv: [toolchain.compiler, "-g", "-O2", "-c", pre, "-o", "x.o"],
        cwd: dir,
        inputs: { [pre]: readFileSync(join(dir, pre)) },
        outputs: ["x.o"],
      }));
      expect(answer.stderr).toBe("");
      expect(Buffer.from(answer.outputs.get("x.o")!).equals(readFileSync(join(dir, "local.o")))).toBe(true);
    });
  }

  test("a compile error comes back as the compiler's exit code and stderr, without outputs", async () => {
    const dir = scratch("kdj-");
    const answer = done(await runJob(scheduler.url, scheduler.clientToken, {
      toolchain: gcc.id,
      argv: [gcc.compiler, "-c", "bad.i", "-o", "bad.o"],
      cwd: dir,
      inputs: { "bad.i": "int main(void) { return nope; }\n" },
      outputs: ["bad.o"],
    }));
    expect(answer.result.exitCode).toBe(1);
    expect(answer.stderr).toContain("'nope' undeclared");
    expect(answer.result.outputs).toEqual([]);
  });

  test("concurrent jobs are spread by load over both servers", async () => {
    const { dir, source } = preprocessed("spread");
    const jobs = Array.from({ length: 6 }, (_, i) =>
      runJob(scheduler.url, scheduler.clientToken, {
        toolchain: gcc.id,
        argv: [gcc.compiler, "-O2", "-c", "spread.i", "-o", `spread${i}.o`],
        cwd: dir,
        inputs: { "spread.i": source },
        outputs: [`spread${i}.o`],
      }),
    );
    const answers = (await Promise.all(jobs)).map(done);
    const by = new Map<string, number>();
    for (const a of answers) {
      by.set(a.result.server, (by.get(a.result.server) ?? 0) + 1);
    }
    expect(by.get("alpha")).toBeGreaterThan(0);
    expect(by.get("beta")).toBeGreaterThan(0);
    await eventually("jobs to finish", async () => (await status(scheduler.url, scheduler.clientToken)).inProgress === 0);
    const s = await status(scheduler.url, scheduler.clientToken);
    expect(s.servers.reduce((n, x) => n + x.jobsDone, 0)).toBeGreaterThanOrEqual(6);
    // Both fetched the gcc toolchain for their share of the jobs.
    expect(s.servers.every((x) => x.toolchains >= 1)).toBe(true);
  });
});
