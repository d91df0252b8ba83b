// A cache miss compiled on the build fleet: the preprocessed text goes to the scheduler with
// the compile command, the object comes back. Every failure on the way compiles locally
// instead, counted in stats by reason; the build never fails because of the fleet.

import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { posix } from "node:path";
import { runCaptured, type Captured } from "../compilers/process.ts";
import type { Flavor } from "../compilers/identity.ts";
import type { CFamilyCompile, Language } from "../compilers/types.ts";
import { DistFailure, type SchedulerClient } from "../dist/client.ts";
import { DIST_PROTOCOL_VERSION, LIMITS, type JobRequest } from "../dist/protocol.ts";
import { toolchainId } from "../dist/toolchain.ts";
import type { Logger } from "./log.ts";
import { writeOutputs } from "./outputs.ts";
import type { Stats } from "./stats.ts";

/** A toolchain package as the client keeps it: its id (SHA-256 of the archive) and its file. */
export interface ToolchainPackage {
  id: string;
  path: string;
  /** The compiler's path inside the toolchain (argv[0] of remote jobs). */
  compiler: string;
}

/** Builds the package for a compiler (gcc/clang driver, cc1, as, their libraries). */
export type PackToolchain = (compiler: string) => Promise<{ id: string; archive: Uint8Array; compiler?: string }>;

export interface DistCompilerDeps {
  client: SchedulerClient;
  pack: PackToolchain;
  /** Where packages are kept between daemon runs, one per compiler identity. */
  packageDir: string;
  /** Seconds of local compiles after the scheduler was unreachable or refused the token. */
  retryAfterMs: number;
  /** How long a server may run one job. */
  jobTimeoutMs: number;
  stats: Stats;
  log: Logger;
}

/** One miss, as the daemon hands it over. */
export interface DistCall {
  /** The real compiler on this machine. */
  compiler: string;
  /** The compiler identity's digest: one toolchain package per identity. */
  identity: string;
  flavor: Flavor;
  cwd: string;
  env: Record<string, string | undefined>;
  umask: number;
  parsed: CFamilyCompile;
  /** The preprocessed source (the -E run's stdout). */
  text: Uint8Array;
  /** Added to the command (e.g. colour forcing), as for a local compile. */
  extraArgs: string[];
}

/** What the -E output of each source language compiles as. */
const PREPROCESSED_AS: Partial<Record<Language, Language>> = {
  c: "cpp-output",
  "c++": "c++-cpp-output",
  "objective-c": "objective-c-cpp-output",
  "objective-c++": "objective-c++-cpp-output",
  "assembler-with-cpp": "assembler",
};

/** Options in `keyArgs` that only concern preprocessing or the dependency file (done locally). */
const LOCAL_ONLY = new Set(["-MD", "-MMD", "-MP", "--write-dependencies", "--write-user-dependencies"]);

/** Environment a remote compile keeps: what changes the compiler's messages, nothing else. */
const PASSED_ENV = ["LANG", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "GCC_COLORS", "GCC_URLS", "TERM"];

export interface Plan {
  argv: string[];
  /** The preprocessed source's path in the build directory (relative to cwd). */
  input: string;
  /** What goes in `input`. */
  text: Uint8Array;
  /** Outputs to fetch, relative to cwd, in `parsed.outputs` order minus the dependency file. */
  outputs: string[];
}

/** Options after which a remote compile of directives-only text would differ from a local one. */
const DEBUG_BLOCKERS = /^(-pedantic|-Wpedantic|-pedantic-errors|-gsplit-dwarf|-fdebug-prefix-map=|-ffile-prefix-map=)/;

export class DistCompiler {
  /** No calls to the scheduler before this (performance.now()), and why. */
  private downUntil = 0;
  private downReason = "";
  /** Packages by compiler identity; a failed packaging stays failed for this daemon's life. */
  private readonly packages = new Map<string, Promise<ToolchainPackage>>();
  /** Toolchains the scheduler is known to hold, by id (the upload under way, or done). */
  private readonly uploads = new Map<string, Promise<void>>();
  /** Identities whose packaging failure was logged. */
  private readonly packagingReported = new Set<string>();

  constructor(private readonly deps: DistCompilerDeps) {}

  /**
   * Options for the local -E run so it also writes the dependency file the compile would
   * write (the server sees no headers, so it cannot). Empty when the call writes none, or
   * writes one this way cannot reproduce (then `compile` compiles locally).
   */
  preprocessArgs(parsed: CFamilyCompile): string[] {
    const dep = parsed.outputs.find((o) => o.kind === "dep");
    if (!dep || !parsed.depTargets) return [];
    return [...parsed.depTargets.regenerate, "-MF", dep.path];
  }

  /** Compiles on the fleet and writes the outputs; else runs `local` and returns its result. */
  async compile(call: DistCall, local: () => Promise<Captured>): Promise<Captured> {
    const { stats, log } = this.deps;
    if (performance.now() < this.downUntil) {
      stats.distFallback(this.downReason);
      return local();
    }
    const plan = !call.parsed.debugInfo
      ? planJob(call, call.text, false)
      : call.flavor === "clang"
        ? "clang with debug info (not byte-identical remotely yet)"
        : await planDirectivesJob(call);
    if (typeof plan === "string") {
      stats.distSkipped(plan);
      log.debug(`dist: ${call.parsed.source} compiled locally: ${plan}`);
      return local();
    }
    const started = performance.now();
    let remote;
    try {
      remote = await this.run(call, plan);
    } catch (e) {
      const failure = e instanceof DistFailure ? e : undefined;
      const reason = failure?.reason ?? "toolchain packaging failed";
      stats.distFallback(reason);
      if (failure?.backOff) {
        if (performance.now() >= this.downUntil) {
          log.warn(`dist: ${failure.message}; compiling locally for the next ${this.deps.retryAfterMs / 1000} s`);
        }
        this.downUntil = performance.now() + this.deps.retryAfterMs;
        this.downReason = reason;
        // A scheduler that comes back may have lost what it held.
        this.uploads.clear();
      } else if (failure) {
        log.warn(`dist: ${call.parsed.source}: ${failure.message}; compiling locally`);
      } else if (!this.packagingReported.has(call.identity)) {
        // Stays failed for this daemon's life: say so once, not on every compile.
        this.packagingReported.add(call.identity);
        log.warn(`dist: cannot package ${call.compiler}: ${(e as Error).message}; its compiles stay local until the daemon restarts`);
      }
      return local();
    }
    const ms = performance.now() - started;
    if (remote.result.exitCode !== 0) {
      // Compile errors are the local compiler's to report; a local success means the remote
      // failure was the fleet's fault.
      const mine = await local();
      if (mine.exitCode === 0) {
        stats.distFallback("remote compile failed, local succeeded");
        log.warn(
          `dist: ${call.parsed.source} failed on ${remote.result.server} (exit ${remote.result.exitCode}) but compiles locally: ` +
            new TextDecoder().decode(remote.stderr.subarray(0, 300)).trim(),
        );
      }
      return mine;
    }
    const files = plan.outputs.map((path, i) => ({ path, data: remote.outputs[i]! }));
    if (files.some((f) => f.data.length === 0)) {
      stats.distFallback("bad outputs");
      log.warn(`dist: ${remote.result.server} returned an empty output for ${call.parsed.source}; compiling locally`);
      return local();
    }
    try {
      writeOutputs(call.cwd, files, call.umask);
    } catch (e) {
      stats.distFallback("cannot write outputs");
      log.warn(`dist: cannot write the outputs of ${call.parsed.source} in ${call.cwd}: ${(e as Error).message}; compiling locally`);
      return local();
    }
    stats.distCompiled(remote.result.server, ms);
    stats.compilerRun(ms);
    log.debug(`dist: ${call.parsed.source} compiled on ${remote.result.server} (${ms.toFixed(0)} ms)`);
    return { exitCode: 0, stdout: remote.stdout, stderr: remote.stderr, ms };
  }

  /** Package, upload if the scheduler lacks it, submit; once more if the scheduler forgot the toolchain. */
  private async run(call: DistCall, plan: Plan) {
    const toolchain = await this.toolchain(call);
    const request: JobRequest = {
      version: DIST_PROTOCOL_VERSION,
      toolchain: toolchain.id,
      argv: [toolchain.compiler, ...plan.argv],
      cwd: call.cwd,
      env: remoteEnv(call.env),
      inputs: [{ path: plan.input, size: plan.text.length }],
      outputs: plan.outputs,
      timeoutMs: this.deps.jobTimeoutMs,
    };
    for (let attempt = 0; ; attempt++) {
      await this.ensureUploaded(toolchain);
      try {
        return await this.deps.client.submit(request, [plan.text]);
      } catch (e) {
        if (!(e instanceof DistFailure) || e.reason !== "toolchain unknown to the scheduler" || attempt > 0) throw e;
        this.uploads.delete(toolchain.id);
      }
    }
  }

  private toolchain(call: DistCall): Promise<ToolchainPackage> {
    let known = this.packages.get(call.identity);
    if (!known) {
      known = this.loadOrPack(call.compiler, call.identity);
      this.packages.set(call.identity, known);
    }
    return known;
  }

  /** The package kept on disk for this identity, or a new one. */
  private async loadOrPack(compiler: string, identity: string): Promise<ToolchainPackage> {
    const dir = this.deps.packageDir;
    const path = `${dir}/${identity}.tar.zst`;
    const metaPath = `${dir}/${identity}.json`;
    try {
      const meta = JSON.parse(readFileSync(metaPath, "utf8")) as { id: string; compiler: string };
      // Read asynchronously: the daemon serves hits meanwhile.
      if (toolchainId(await Bun.file(path).bytes()) === meta.id) return { id: meta.id, path, compiler: meta.compiler };
      this.deps.log.warn(`dist: toolchain package ${path} does not match its id; packaging ${compiler} again`);
    } catch {}
    const started = performance.now();
    const packed = await this.deps.pack(compiler);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const meta = { id: packed.id, compiler: packed.compiler ?? compiler };
    const tmp = `${path}.${process.pid}.tmp`;
    try {
      writeFileSync(tmp, packed.archive);
      renameSync(tmp, path);
      writeFileSync(`${metaPath}.${process.pid}.tmp`, JSON.stringify(meta));
      renameSync(`${metaPath}.${process.pid}.tmp`, metaPath);
    } catch (e) {
      rmSync(tmp, { force: true });
      throw e;
    }
    this.deps.log.info(
      `dist: packaged ${compiler} as toolchain ${packed.id.slice(0, 12)} (${packed.archive.length} bytes, ${(performance.now() - started).toFixed(0)} ms) in ${path}`,
    );
    return { ...meta, path };
  }

  /** HEAD first; PUT only when the scheduler lacks the toolchain. One check per toolchain at a time. */
  private ensureUploaded(toolchain: ToolchainPackage): Promise<void> {
    let known = this.uploads.get(toolchain.id);
    if (!known) {
      const { client, log } = this.deps;
      known = (async () => {
        if (await client.hasToolchain(toolchain.id)) return;
        const started = performance.now();
        const archive = Bun.file(toolchain.path);
        await client.putToolchain(toolchain.id, archive);
        log.info(`dist: uploaded toolchain ${toolchain.id.slice(0, 12)} (${archive.size} bytes) to ${client.url} in ${(performance.now() - started).toFixed(0)} ms`);
      })();
      this.uploads.set(toolchain.id, known);
      known.catch(() => {
        if (this.uploads.get(toolchain.id) === known) this.uploads.delete(toolchain.id);
      });
    }
    return known;
  }
}

/**
 * With debug info, fully preprocessed text will not do: macro expansion moves the columns
 * debug info records. So the source goes preprocessed with -fdirectives-only (includes and
 * conditionals resolved, macros kept), minus the compiler's built-in macros (it defines them
 * again), and is compiled as source; -fdebug-prefix-map gives it the source's name back.
 * Objects are then byte-identical to a local compile, and so are the diagnostics.
 */
async function planDirectivesJob(call: DistCall): Promise<Plan | string> {
  const { parsed } = call;
  const blocker = parsed.expandedArgs.find((a) => DEBUG_BLOCKERS.test(a));
  if (blocker) return `${blocker.replace(/=.*/, "=")} with debug info`;
  if (parsed.preprocessorArgs.includes("-dD")) return "macro debug info (-g3)";
  if (!PREPROCESSED_AS[parsed.language] || parsed.language === "assembler-with-cpp") return "assembler source with debug info";
  const run = await runCaptured([call.compiler, ...parsed.preprocessorArgs, "-fdirectives-only", "-E", parsed.source], {
    cwd: call.cwd,
    env: call.env,
  });
  if (run.exitCode !== 0) return "preprocessing with -fdirectives-only failed";
  const text = withoutBuiltinDefines(run.stdout);
  const shown = new TextDecoder().decode(text);
  if (shown.includes("__BASE_FILE__") || shown.includes("__TIMESTAMP__")) return "uses __BASE_FILE__ or __TIMESTAMP__ with debug info";
  return planJob(call, text, true);
}

/** Drops the `#define`s under `# 0 "<built-in>"` markers that -fdirectives-only prints. */
function withoutBuiltinDefines(text: Uint8Array): Uint8Array {
  const lines = new TextDecoder().decode(text).split("\n");
  const kept: string[] = [];
  let builtin = false;
  for (const line of lines) {
    if (line.startsWith("# ")) {
      const marker = /^# \d+ "(.*?)"/.exec(line);
      if (marker) {
        builtin = marker[1] === "<built-in>";
        if (builtin) continue;
      }
    }
    if (builtin && line.startsWith("#define ")) continue;
    kept.push(line);
  }
  return new TextEncoder().encode(kept.join("\n"));
}

/**
 * The remote command: the compile's own options minus preprocessing and dependency-file
 * options, compiling `text` from a file next to the object; or why the call stays local.
 * `asSource`: the text is directives-only output, compiled in the source's own language.
 */
export function planJob(call: DistCall, text: Uint8Array, asSource: boolean): Plan | string {
  const { parsed, cwd } = call;
  const preprocessed = PREPROCESSED_AS[parsed.language];
  if (!preprocessed) return "source is not preprocessed C, C++, Objective-C or assembler";
  if (parsed.extraInputs.length > 0) return "reads extra input files";
  if (parsed.keyArgs.some((a) => a.startsWith("-B"))) return "-B directory (not in the toolchain)";
  if (text.length > LIMITS.jobInputBytes) return "preprocessed source too large";
  const dep = parsed.outputs.find((o) => o.kind === "dep");
  if (dep && !parsed.depTargets) return "dependency file options Kiln cannot reproduce (-Wp,-MD or -MG)";
  const outputs: string[] = [];
  for (const out of parsed.outputs) {
    if (out.kind === "dep") continue;
    const rel = insideCwd(out.path, cwd);
    if (rel === undefined) return "output outside the working directory";
    outputs.push(rel);
  }
  const args: string[] = [];
  const key = parsed.keyArgs;
  for (let i = 0; i < key.length; i++) {
    const a = key[i]!;
    if (a === "-x" || a === "-Xpreprocessor") i++;
    else if (a.startsWith("-x") || a.startsWith("-Wp,") || LOCAL_ONLY.has(a)) continue;
    else if (a.startsWith("-M")) return `dependency option ${a} without a dependency file`;
    else args.push(a);
  }
  const object = parsed.outputs[0]!.path;
  const input = `${outputs[0]!}.kiln-src`;
  // -nostdinc: the text already holds stdc-predef.h, which the driver would include again
  // (neither option is recorded in the object).
  const rename = asSource ? ["-nostdinc", `-fdebug-prefix-map=${input}=${parsed.source}`] : [];
  const language = asSource ? parsed.language : preprocessed;
  return { argv: [...args, ...call.extraArgs, ...rename, "-x", language, "-c", input, "-o", object], input, text, outputs };
}

/** `path` relative to `cwd`, normalised, if it lies inside it. */
function insideCwd(path: string, cwd: string): string | undefined {
  const rel = path.startsWith("/") ? posix.relative(cwd, path) : posix.normalize(path);
  if (rel === "" || rel === "." || rel.startsWith("../") || rel === ".." || rel.startsWith("/")) return undefined;
  return rel;
}

function remoteEnv(env: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = { PATH: "/usr/local/bin:/usr/bin:/bin" };
  for (const name of PASSED_ENV) {
    const value = env[name];
    if (value !== undefined) out[name] = value;
  }
  return out;
}
