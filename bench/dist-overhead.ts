// What one remote compile costs over a local one, without the Kiln client: lua5.4's sources,
// preprocessed once, each compiled with `gcc -O2 -c` locally and as a job through a real
// `kiln-dist all-in-one` (scheduler + build server in bwrap) on loopback, interleaved.
// The difference is the dist path's own overhead per job: HTTP to the scheduler, the
// WebSocket relay, writing the inputs, starting the sandbox, reading the outputs back.
//
//   bun bench/dist-overhead.ts            # 3 rounds over lua's ~35 files
//   bun bench/dist-overhead.ts --rounds 1 # smoke run
//
// Needs dist/kiln-dist (npm run build), gcc, bwrap, and scripts/workload.sh lua5.4.
// Output: a Markdown table on stdout, and bench/results/dist-overhead-<time>.{md,json}.

import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { $ } from "bun";
import { DIST_PROTOCOL_VERSION, decodeFrame, encodeFrame, type JobRequest, type JobResult } from "../src/dist/protocol.ts";
import { packageToolchain } from "../src/dist/toolchain.ts";

const rounds = Number(process.argv[process.argv.indexOf("--rounds") + 1] || 3) || 3;
const repo = join(import.meta.dir, "..");
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const src = (await $`${join(repo, "scripts", "workload.sh")} lua5.4`.text()).trim();
const work = mkdtempSync(join(tmpdir(), "kiln-dist-overhead-"));
const dir = join(work, "src");
mkdirSync(dir);
const files = readdirSync(join(src, "src")).filter((f) => f.endsWith(".c") && f !== "lua.c" && f !== "luac.c");
for (const f of files) {
  await $`gcc -std=gnu99 -DLUA_COMPAT_5_3 -DLUA_USE_LINUX -E ${join(src, "src", f)} -o ${join(dir, f.replace(/\.c$/, ".i"))}`.quiet();
}

const aio = Bun.spawn([join(repo, "dist", "kiln-dist"), "all-in-one", "--listen", "127.0.0.1:0", "--cache-dir", join(work, "cache"), "--cores", "1"], {
  stdout: "pipe",
  stderr: process.env.KILN_LOG ? "inherit" : "ignore",
});
try {
  let printed = "";
  const decoder = new TextDecoder();
  for await (const chunk of aio.stdout) {
    printed += decoder.decode(chunk, { stream: true });
    if (/token = "[0-9a-f]{64}"/.test(printed)) break;
  }
  const url = /scheduler_url = "(\S+)"/.exec(printed)![1]!;
  const token = /\[dist\.auth\]\ntype = "token"\ntoken = "([0-9a-f]{64})"/.exec(printed)![1]!;
  const auth = { Authorization: `Bearer ${token}` };
  for (let i = 0; i < 100 && (await (await fetch(`${url}/api/v1/status`, { headers: auth })).json() as { numServers: number }).numServers === 0; i++) await Bun.sleep(50);
  const gcc = await packageToolchain("gcc");
  await fetch(`${url}/api/v1/toolchains/${gcc.id}`, { method: "PUT", headers: auth, body: gcc.archive });

  const remote = async (input: string): Promise<number> => {
    const source = readFileSync(join(dir, input));
    const output = input.replace(/\.i$/, ".o");
    const request: JobRequest = {
      version: DIST_PROTOCOL_VERSION, toolchain: gcc.id, argv: [gcc.compiler, "-O2", "-c", input, "-o", output], cwd: dir, env: { LC_ALL: "C" },
      inputs: [{ path: input, size: source.length }], outputs: [output], timeoutMs: 60_000,
    };
    const t0 = performance.now();
    const res = await fetch(`${url}/api/v1/jobs`, { method: "POST", headers: auth, body: encodeFrame(request, [source]) });
    const bytes = new Uint8Array(await res.arrayBuffer());
    const ms = performance.now() - t0;
    if (res.status !== 200 || decodeFrame<JobResult>(bytes).header.exitCode !== 0) throw new Error(`${input}: ${res.status} ${new TextDecoder().decode(bytes).slice(0, 300)}`);
    return ms;
  };
  const local = async (input: string): Promise<number> => {
    const t0 = performance.now();
    await $`gcc -O2 -c ${input} -o local.o`.cwd(dir).quiet();
    return performance.now() - t0;
  };

  await remote(files[0]!.replace(/\.c$/, ".i")); // the server fetches and unpacks the toolchain
  const localMs: number[] = [];
  const remoteMs: number[] = [];
  const overheads: number[] = [];
  for (let r = 0; r < rounds; r++) {
    for (const f of files) {
      const input = f.replace(/\.c$/, ".i");
      const l = await local(input);
      const d = await remote(input);
      localMs.push(l);
      remoteMs.push(d);
      overheads.push(d - l);
    }
    process.stderr.write(`round ${r + 1}/${rounds} done\n`);
  }
  const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
  const report =
    `## kiln-dist: remote compile overhead (${new Date().toISOString().slice(0, 16)}, ${navigator.hardwareConcurrency} CPUs)\n\n` +
    `lua5.4, ${files.length} preprocessed files, \`gcc -O2 -c\`, ${rounds} rounds, local and remote interleaved, one at a time; ` +
    `remote = HTTP job through \`kiln-dist all-in-one\` on 127.0.0.1, compiled in bwrap.\n\n` +
    `| local per file (median) | remote per file (median) | overhead per job (median) | overhead per job (mean) | all files local | all files remote |\n` +
    `|---:|---:|---:|---:|---:|---:|\n` +
    `| ${median(localMs).toFixed(1)} ms | ${median(remoteMs).toFixed(1)} ms | ${median(overheads).toFixed(1)} ms | ${(sum(overheads) / overheads.length).toFixed(1)} ms | ${(sum(localMs) / rounds / 1000).toFixed(2)} s | ${(sum(remoteMs) / rounds / 1000).toFixed(2)} s |\n`;
  process.stdout.write(report);
  const results = join(import.meta.dir, "results");
  mkdirSync(results, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  writeFileSync(join(results, `dist-overhead-${stamp}.md`), report);
  writeFileSync(join(results, `dist-overhead-${stamp}.json`), JSON.stringify({ files, rounds, localMs, remoteMs }, null, 2));
} finally {
  aio.kill();
  await aio.exited;
  rmSync(work, { recursive: true, force: true });
}
