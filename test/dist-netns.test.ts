// A job that really crosses a network hop: the scheduler in one network namespace, a build
// server in another, joined by a veth pair with private addresses that exist only inside the
// two namespaces this test creates. Skipped, with the reason printed, where namespaces are
// forbidden.

import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { packageToolchain } from "../src/dist/toolchain.ts";
import { startScheduler, startServer, type SchedulerProcess, type ServerProcess } from "./dist-support.ts";
import { ok, REPO, run, scratch, writeFiles } from "./support.ts";

const tag = `${process.pid % 10000}`;
const nsA = `kdA${tag}`;
const nsB = `kdB${tag}`;
// 10.213.x.0/24 with x from the pid, so parallel runs do not collide.
const subnet = `10.213.${process.pid % 250}`;

function netnsProblem(): string | undefined {
  if (!Bun.which("ip")) return "the ip command (iproute2) is not installed";
  const r = run(["ip", "netns", "add", `kdP${tag}`]);
  if (r.exitCode !== 0) return `ip netns add failed: ${r.stderr.trim()}`;
  run(["ip", "netns", "del", `kdP${tag}`]);
  return undefined;
}

const problem = netnsProblem();
if (problem) console.warn(`dist-netns.test.ts: skipped: network namespaces are not available here (${problem})`);

let scheduler: SchedulerProcess;
let server: ServerProcess;

beforeAll(async () => {
  if (problem) return;
  const sh = (...argv: string[]) => ok(argv);
  sh("ip", "netns", "add", nsA);
  sh("ip", "netns", "add", nsB);
  sh("ip", "link", "add", `kva${tag}`, "type", "veth", "peer", "name", `kvb${tag}`);
  sh("ip", "link", "set", `kva${tag}`, "netns", nsA);
  sh("ip", "link", "set", `kvb${tag}`, "netns", nsB);
  sh("ip", "-n", nsA, "addr", "add", `${subnet}.1/24`, "dev", `kva${tag}`);
  sh("ip", "-n", nsB, "addr", "add", `${subnet}.2/24`, "dev", `kvb${tag}`);
  for (const [ns, dev] of [[nsA, `kva${tag}`], [nsB, `kvb${tag}`]] as const) {
    sh("ip", "-n", ns, "link", "set", dev, "up");
    sh("ip", "-n", ns, "link", "set", "lo", "up");
  }
  scheduler = await startScheduler({ addr: `${subnet}.1:0`, wrap: ["ip", "netns", "exec", nsA] });
  server = await startServer(scheduler.url, scheduler.serverToken, { name: "remote", cores: 1, wrap: ["ip", "netns", "exec", nsB] });
});

afterAll(async () => {
  if (problem) return;
  await server?.child.stop();
  await scheduler?.child.stop();
  run(["ip", "netns", "del", nsA]);
  run(["ip", "netns", "del", nsB]);
});

test.skipIf(problem !== undefined)("a gcc job crosses from namespace A (client, scheduler) to a server in namespace B", async () => {
  expect(scheduler.url).toBe(`http://${subnet}.1:${new URL(scheduler.url).port}`);
  // The scheduler is not reachable from the test's own namespace: the hop is real.
  const fromHere = await fetch(`${scheduler.url}/api/v1/status`, { signal: AbortSignal.timeout(1500) }).catch((e: unknown) => e);
  expect(fromHere).toBeInstanceOf(Error);

  const dir = scratch("kdn-");
  writeFiles(dir, { "net.c": '#include <stdio.h>\nint main(void) { puts("across"); return 0; }\n' });
  ok(["gcc", "-E", "net.c", "-o", "net.i"], { cwd: dir });
  ok(["gcc", "-O2", "-c", "net.i", "-o", "local.o"], { cwd: dir });
  const gcc = await packageToolchain("gcc");
  writeFileSync(join(dir, "toolchain.tar.zst"), gcc.archive);
  const spec = {
    url: scheduler.url,
    token: scheduler.clientToken,
    toolchainFile: join(dir, "toolchain.tar.zst"),
    toolchain: gcc.id,
    job: { toolchain: gcc.id, argv: [gcc.compiler, "-O2", "-c", "net.i", "-o", "net.o"], cwd: dir, inputs: { "net.i": "@net.i" }, outputs: ["net.o"] },
    out: join(dir, "remote.o"),
  };
  writeFileSync(join(dir, "spec.json"), JSON.stringify(spec));
  const r = ok(["ip", "netns", "exec", nsA, process.execPath, join(REPO, "test", "dist-netns-client.ts"), join(dir, "spec.json")], { timeoutMs: 120_000 });
  expect(JSON.parse(r.stdout)).toEqual({ status: 200, server: "remote", exitCode: 0 });
  expect(readFileSync(join(dir, "remote.o")).equals(readFileSync(join(dir, "local.o")))).toBe(true);
});
