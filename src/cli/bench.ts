// `kiln bench [--clean CMD] -- BUILD...`: runs a build plainly, then through Kiln with an
// empty cache, then again with the cache full, and says whether a cache (and a cluster)
// would pay off. Kiln is put in front of the compilers with masquerade links early in PATH,
// and uses a throwaway cache and daemon, so the user's own cache is not touched.

import { mkdtempSync, rmSync, symlinkSync, mkdirSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { runtimePaths } from "../ipc/paths.ts";
import type { StatsJson } from "../daemon/stats.ts";
import { sendCommand, waitForExit } from "./commands.ts";

const COMPILER_NAMES = ["cc", "c++", "gcc", "g++", "clang", "clang++"];

export const BENCH_USAGE = `Usage: kiln bench [--clean CMD] [--keep-going] -- BUILD COMMAND...

Runs BUILD three times: plainly, through Kiln with an empty cache (cold), and through Kiln
again with the cache full (warm), running CMD (e.g. "make clean") before each. Kiln goes in
front of cc, c++, gcc, g++, clang and clang++ through links early in PATH, so the build must
call its compiler by one of those names (make, autotools, a CMake configure run inside the
command). A throwaway cache and daemon are used.

Example: kiln bench --clean "make clean" -- make -j2
`;

interface BenchArgs {
  clean: string | undefined;
  build: string[];
}

function parseArgs(args: string[]): BenchArgs | string {
  let clean: string | undefined;
  let i = 0;
  for (; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--") {
      i++;
      break;
    }
    if (a === "--clean") clean = args[++i];
    else if (a.startsWith("--clean=")) clean = a.slice("--clean=".length);
    else if (a === "-h" || a === "--help") return "";
    else return `unknown option '${a}'`;
  }
  const build = args.slice(i);
  if (build.length === 0) return "no build command after --";
  return { clean, build };
}

/** A one-element build command is a shell line; several elements are an argv. */
function commandLine(build: string[]): string[] {
  return build.length === 1 ? ["sh", "-c", build[0]!] : build;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}

export async function runBench(args: string[], env: Record<string, string | undefined>): Promise<number> {
  const parsed = parseArgs(args);
  if (typeof parsed === "string") {
    process.stderr.write(parsed ? `kiln bench: ${parsed}\n\n${BENCH_USAGE}` : BENCH_USAGE);
    return parsed ? 2 : 0;
  }
  const scratch = mkdtempSync(join(tmpdir(), "kiln-bench-"));
  const bin = join(scratch, "bin");
  mkdirSync(bin);
  for (const name of COMPILER_NAMES) symlinkSync(process.execPath, join(bin, name));
  const kilnEnv = {
    ...env,
    PATH: `${bin}:${env.PATH ?? ""}`,
    KILN_DIR: join(scratch, "cache"),
    KILN_RUNTIME_DIR: join(scratch, "run"),
  };
  const paths = runtimePaths(kilnEnv, process.getuid?.() ?? 0);
  const tty = process.stderr.isTTY;
  const say = (line: string) => process.stderr.write(`${line}\n`);
  const stats = async (): Promise<StatsJson["stats"] | undefined> => {
    const r = await sendCommand(paths, { cmd: "stats" }, kilnEnv, { start: false });
    return r.ok ? (r.reply as StatsJson).stats : undefined;
  };

  /** Runs clean, then the build, with a progress line; resolves to the build's wall time. */
  const timedBuild = async (label: string, buildEnv: Record<string, string | undefined>, live: boolean) => {
    if (parsed.clean) {
      const clean = Bun.spawn(["sh", "-c", parsed.clean], { env: buildEnv, stdout: "ignore", stderr: "inherit" });
      if ((await clean.exited) !== 0) throw new Error(`the clean command failed: ${parsed.clean}`);
    }
    if (live) await sendCommand(paths, { cmd: "zero-stats" }, kilnEnv, { start: true });
    const started = performance.now();
    const proc = Bun.spawn(commandLine(parsed.build), { env: buildEnv, stdout: "ignore", stderr: "pipe" });
    const errors = new Response(proc.stderr).text();
    const ticker = setInterval(async () => {
      const elapsed = seconds(performance.now() - started);
      const s = live ? await stats() : undefined;
      const counts = s ? `, ${s.cache_hits_total} hits, ${s.cache_misses_total} misses` : "";
      if (tty) process.stderr.write(`\r\x1b[K  ${label}: ${elapsed}${counts}`);
    }, 500);
    const code = await proc.exited;
    clearInterval(ticker);
    if (tty) process.stderr.write("\r\x1b[K");
    const ms = performance.now() - started;
    if (code !== 0) throw new Error(`the build failed (exit ${code}) during the ${label}:\n${(await errors).slice(-4000)}`);
    return ms;
  };

  try {
    say(`kiln bench: ${parsed.build.join(" ")}`);
    say("  [1/3] plain build...");
    const plain = await timedBuild("plain build", env, false);
    say(`  [2/3] through kiln, empty cache...`);
    const cold = await timedBuild("cold build", kilnEnv, true);
    const coldStats = await stats();
    say(`  [3/3] through kiln, cache full...`);
    const warm = await timedBuild("warm build", kilnEnv, true);
    const warmStats = await stats();
    if (!coldStats || !warmStats) throw new Error("the Kiln daemon did not answer for its statistics");

    const ratio = (ms: number) => `${(ms / plain).toFixed(2)}x plain`;
    const compiles = coldStats.cache_misses_total + coldStats.cache_hits_total;
    const warmCompiles = warmStats.cache_hits_total + warmStats.cache_misses_total;
    const hitRate = warmCompiles > 0 ? (warmStats.cache_hits_total / warmCompiles) * 100 : 0;
    const cores = availableParallelism();
    const compileMs = coldStats.compiler_time_ms;
    const busy = compileMs / cold;
    const share = Math.min(1, compileMs / (cold * cores));
    const out = [
      "",
      `  plain build          ${seconds(plain).padStart(9)}`,
      `  kiln, empty cache    ${seconds(cold).padStart(9)}  (${ratio(cold)})  ${compiles} cacheable compiles, ${coldStats.non_cacheable_calls} other calls`,
      `  kiln, full cache     ${seconds(warm).padStart(9)}  (${ratio(warm)})  hit rate ${hitRate.toFixed(0)} % (${warmStats.direct_hits} direct, ${warmStats.preprocessed_hits} preprocessed, ${warmStats.cache_misses_total} misses)`,
      "",
      `  Compiling took ${seconds(compileMs)} summed over the cold build's compiles: ${busy.toFixed(1)} running at once on`,
      `  average on ${cores} cores, about ${(share * 100).toFixed(0)} % of what the cores could do in ${seconds(cold)}.`,
      warm < plain * 0.5
        ? `  A cache pays off: a rebuild with it takes ${((warm / plain) * 100).toFixed(0)} % of the plain build's time.`
        : `  A cache pays off little here: a rebuild with it still takes ${((warm / plain) * 100).toFixed(0)} % of the plain build's time.`,
      share > 0.6
        ? "  Compiles keep the cores busy most of the time: more cores (a build cluster) would speed up cold builds."
        : "  The cores are often idle or busy with other work: a build cluster would help cold builds little.",
    ];
    process.stdout.write(out.join("\n") + "\n");
    return 0;
  } catch (e) {
    process.stderr.write(`kiln bench: ${(e as Error).message}\n`);
    return 1;
  } finally {
    await sendCommand(paths, { cmd: "stop" }, kilnEnv, { start: false });
    await waitForExit(paths.lock, 30_000);
    rmSync(scratch, { recursive: true, force: true });
  }
}
