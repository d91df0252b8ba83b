// How fast the kiln-dist scheduler places jobs.
//
//   bun bench/dist-placement.ts                # both parts, default sizes
//   bun bench/dist-placement.ts --quick        # smoke run (a few seconds)
//   bun bench/dist-placement.ts --servers 10,100,1000 --reps 5 --jobs 3000 --concurrency 1,32
//
// 1. In process: the placement code and its in-memory state (src/dist/state.ts) with N
//    simulated servers of 4-64 cores and 8 toolchains, held at ~70 % of the fleet's capacity
//    (each placement is followed by finishing the oldest job once that many are running).
// 2. Over real sockets: the Scheduler served on 127.0.0.1 with simulated build servers
//    connected over WebSocket that answer each job at once, and HTTP clients posting small
//    jobs concurrently: end-to-end relayed jobs per second and the scheduler's added latency
//    per job (client → scheduler → server → scheduler → client, on loopback, in one process).
//
// Output: a Markdown table on stdout, and bench/results/dist-placement-<time>.{md,json}.

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DIST_PROTOCOL_VERSION, decodeFrame, encodeFrame, type JobRequest, type SchedulerMessage } from "../src/dist/protocol.ts";
import type { DistLog } from "../src/dist/log.ts";
import { Scheduler, serveScheduler } from "../src/dist/scheduler.ts";
import { MemoryState } from "../src/dist/state.ts";
import { toolchainId } from "../src/dist/toolchain.ts";

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1]! : fallback;
}

const quick = process.argv.includes("--quick");
const serverCounts = option("--servers", quick ? "10,1000" : "10,100,1000").split(",").map(Number);
const reps = Number(option("--reps", quick ? "2" : "5"));
const placements = Number(option("--placements", quick ? "50000" : "200000"));
const socketJobs = Number(option("--jobs", quick ? "500" : "3000"));
const concurrencies = option("--concurrency", "1,32").split(",").map(Number);
const socketServers = Number(option("--socket-servers", "20"));

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const percentile = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;
const quiet: DistLog = { debug() {}, info() {}, warn() {}, error() {} };

// A fixed pseudo-random sequence, so runs compare.
let seed = 42;
const random = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);

const TOOLCHAINS = Array.from({ length: 8 }, (_, i) => toolchainId(new Uint8Array([i])));

function inProcess(servers: number): { perSec: number; spread: string } {
  const rates: number[] = [];
  let spread = "";
  for (let r = 0; r < reps; r++) {
    const state = new MemoryState();
    let capacity = 0;
    for (let i = 0; i < servers; i++) {
      const cores = 4 + Math.floor(random() * 61);
      capacity += cores + 1;
      state.addServer({ id: `s${i}`, name: `s${i}`, cores, capacity: cores + 1, toolchains: TOOLCHAINS.filter(() => random() < 0.5) }, 0);
    }
    const window = Math.floor(capacity * 0.7);
    const running: string[] = [];
    let head = 0;
    const start = performance.now();
    for (let i = 0; i < placements; i++) {
      const id = state.place(TOOLCHAINS[i % TOOLCHAINS.length]!);
      if (id === undefined) throw new Error("fleet full: the bench holds it at 70 %");
      running.push(id);
      if (running.length - head >= window) state.finish(running[head++]!, true);
    }
    const seconds = (performance.now() - start) / 1000;
    rates.push(placements / seconds);
    const loads = state.servers().map((s) => s.running / s.cores);
    spread = `${Math.min(...loads).toFixed(2)}–${Math.max(...loads).toFixed(2)}`;
  }
  return { perSec: median(rates), spread };
}

async function overSockets(concurrency: number): Promise<{ perSec: number; p50: number; p95: number; cpuMs: number; rssMb: number }> {
  const clientToken = "bench-client";
  const serverToken = "bench-server";
  const scheduler = new Scheduler({ clientToken, serverToken, heartbeatMs: 5000, log: quiet });
  const http = serveScheduler(scheduler, { hostname: "127.0.0.1", port: 0 });
  const url = `http://127.0.0.1:${http.port}`;
  const archive = new Uint8Array(1024);
  const toolchain = toolchainId(archive);
  await fetch(`${url}/api/v1/toolchains/${toolchain}`, { method: "PUT", headers: { Authorization: `Bearer ${clientToken}` }, body: archive });

  // Simulated build servers: answer every job at once with a 1 KiB "object".
  const object = new Uint8Array(1024);
  const sockets: WebSocket[] = [];
  for (let i = 0; i < socketServers; i++) {
    const ws = new WebSocket(`${url.replace("http", "ws")}/api/v1/servers/connect`, { headers: { Authorization: `Bearer ${serverToken}` } } as unknown as string[]);
    ws.binaryType = "arraybuffer";
    await new Promise((resolve) => (ws.onopen = resolve));
    const welcomed = new Promise((resolve) => {
      ws.onmessage = (event) => {
        const { header } = decodeFrame<SchedulerMessage>(new Uint8Array(event.data as ArrayBuffer));
        if (header.type === "welcome") resolve(undefined);
        if (header.type === "job") {
          ws.send(encodeFrame(
            { type: "result", jobId: header.jobId, result: { version: DIST_PROTOCOL_VERSION, exitCode: 0, stdoutSize: 0, stderrSize: 0, outputs: [{ path: "a.o", size: object.length }], server: `sim${i}` } },
            [object],
          ));
        }
      };
    });
    ws.send(encodeFrame({ type: "hello", version: DIST_PROTOCOL_VERSION, name: `sim${i}`, cores: 8, capacity: 64, toolchains: [toolchain] }));
    await welcomed;
    sockets.push(ws);
  }

  const source = new Uint8Array(16 * 1024);
  const request: JobRequest = {
    version: DIST_PROTOCOL_VERSION, toolchain, argv: ["/usr/bin/gcc", "-c", "a.i", "-o", "a.o"], cwd: "/home/bench/src", env: {},
    inputs: [{ path: "a.i", size: source.length }], outputs: ["a.o"], timeoutMs: 60_000,
  };
  const body = encodeFrame(request, [source]);
  const latencies: number[] = [];
  let next = 0;
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next++ < socketJobs) {
      const t0 = performance.now();
      const res = await fetch(`${url}/api/v1/jobs`, { method: "POST", headers: { Authorization: `Bearer ${clientToken}` }, body });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`job answered ${res.status}`);
      latencies.push(performance.now() - t0);
    }
  }));
  const seconds = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpu0);
  for (const ws of sockets) ws.close();
  scheduler.close();
  await http.stop(true);
  return {
    perSec: socketJobs / seconds,
    p50: median(latencies),
    p95: percentile(latencies, 0.95),
    cpuMs: (cpu.user + cpu.system) / 1000 / socketJobs,
    rssMb: process.resourceUsage().maxRSS / 1024,
  };
}

const rows: string[] = [];
const json: Record<string, unknown> = { date: new Date().toISOString(), placements, reps, cpus: navigator.hardwareConcurrency };
rows.push("| servers | placements/s (median of " + reps + ") | load per core after (min–max) |", "|---:|---:|---|");
for (const n of serverCounts) {
  process.stderr.write(`in process: ${n} servers...\n`);
  const r = inProcess(n);
  json[`inProcess${n}`] = r;
  rows.push(`| ${n} | ${Math.round(r.perSec).toLocaleString("en")} | ${r.spread} |`);
}
const socketRows: string[] = [];
for (const concurrency of concurrencies) {
  process.stderr.write(`over sockets: ${socketServers} simulated servers, ${concurrency} clients, ${socketJobs} jobs...\n`);
  const s = await overSockets(concurrency);
  json[`sockets${concurrency}`] = { ...s, servers: socketServers, concurrency, jobs: socketJobs };
  socketRows.push(`| ${concurrency} | ${Math.round(s.perSec).toLocaleString("en")} | ${s.p50.toFixed(2)} ms | ${s.p95.toFixed(2)} ms | ${s.cpuMs.toFixed(3)} ms | ${s.rssMb.toFixed(0)} MB |`);
}
const report =
  `## kiln-dist scheduler placement (${new Date().toISOString().slice(0, 16)}, ${navigator.hardwareConcurrency} CPUs)\n\n` +
  `In process (placement + in-memory state, fleet held at 70 % of capacity, ${placements.toLocaleString("en")} placements):\n\n` +
  rows.join("\n") +
  `\n\nOver real sockets (HTTP clients → scheduler → ${socketServers} WebSocket servers answering at once; 16 KiB in, 1 KiB out; ` +
  `${socketJobs} jobs, clients and servers in the scheduler's process):\n\n` +
  `| concurrent clients | relayed jobs/s | latency p50 | latency p95 | CPU per job (whole process) | peak RSS |\n|---:|---:|---:|---:|---:|---:|\n` +
  socketRows.join("\n") + "\n";
process.stdout.write(report);
const dir = join(import.meta.dir, "results");
mkdirSync(dir, { recursive: true });
const stamp = new Date().toISOString().replace(/[:.]/g, "-");
writeFileSync(join(dir, `dist-placement-${stamp}.md`), report);
writeFileSync(join(dir, `dist-placement-${stamp}.json`), JSON.stringify(json, null, 2));
