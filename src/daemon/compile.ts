// One compiler call, end to end: parse; try direct mode (manifest, no preprocessor); else
// preprocess and key the text; on a miss compile and store; record what direct mode needs.

import { rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { compilerNotFound, findCompiler } from "../client/find-compiler.ts";
import type { CompileCall, StderrSink } from "../ipc/wire.ts";
import { PathNormalizer } from "../compilers/basedirs.ts";
import { parseCFamilyArgs, runsPreprocessor } from "../compilers/c-family/args.ts";
import { directEligible, findVariant, localDate, recordVariant, type DirectContext } from "../compilers/c-family/direct.ts";
import { hashCommon, KeyHasher } from "../compilers/c-family/key.ts";
import { decodeManifest, encodeManifest, withVariant, type Manifest, type ManifestVariant } from "../compilers/c-family/manifest.ts";
import { parseDepFile } from "../compilers/c-family/depfile.ts";
import { parseSearchDirs, pchFiles, scanPreprocessed, type SearchDirs } from "../compilers/c-family/preprocessed.ts";
import { callerWantsColor, choosesColor, FORCE_COLOR, stripColors } from "../compilers/diagnostics.ts";
import { CompilerIdentities, isCFamilyName, isCxxDriverName, type CompilerIdentity } from "../compilers/identity.ts";
import { runCaptured, type Captured } from "../compilers/process.ts";
import { isRustcName } from "../compilers/rust/args.ts";
import type { CFamilyCompile, NotCacheableReason } from "../compilers/types.ts";
import type { CacheStorage } from "../storage/types.ts";
import { decodeResult, encodeResult, entryChecksum, type ResultEntry } from "../storage/entry.ts";
import type { DistCompiler } from "./dist-compile.ts";
import { EntryStore } from "./entry-store.ts";
import { BoundedCache, FileDigests } from "./file-digests.ts";
import type { Logger } from "./log.ts";
import { absolute, outputsAreRegular, readOutputs, writeOutputs } from "./outputs.ts";
import { RustCompileService } from "./rust-compile.ts";
import type { Stats } from "./stats.ts";
import { truthy } from "../util/env.ts";

export type CompileReply =
  | { kind: "done"; exitCode: number; stdout: Uint8Array; stderr: Uint8Array }
  /** The client runs the compiler itself, with its own stdio (non-cacheable calls). */
  | { kind: "run-local"; compiler: string };

/** Stored (compressed) bytes of parsed manifests kept in memory; parsed, about ten times that. */
const MANIFEST_CACHE_BYTES = 2 * 1024 * 1024;

export interface CompileOptions {
  directMode: boolean;
  /** On a direct miss, compile at once and take the include list from a .d file (no -E run). */
  dependMode: boolean;
  basedirs: readonly string[];
}

export interface CompileServiceDeps {
  storage: CacheStorage;
  stats: Stats;
  log: Logger;
  options: CompileOptions;
  /** Work the daemon must finish before exiting (background stores). */
  track: (work: Promise<unknown>) => void;
  /** Sends misses to the build fleet when [dist] is configured. */
  dist?: DistCompiler;
}

/** Everything one cacheable compile carries from step to step. */
interface Job {
  call: CompileCall;
  compiler: string;
  parsed: CFamilyCompile;
  norm: PathNormalizer;
  started: number;
  identity: CompilerIdentity;
  /** Added to the compile so its stderr has colours (stripped again for non-terminals). */
  colorArgs: string[];
}

/** A direct-mode attempt: the manifest's key and how to read paths for this call. */
interface DirectPlan {
  key: string;
  ctx: DirectContext;
}

export class CompileService {
  readonly digests = new FileDigests();
  private readonly identities = new CompilerIdentities(this.digests);
  private readonly compilers = new Map<string, string>();
  private readonly searchLists = new Map<string, SearchDirs>();
  private readonly manifests = new BoundedCache<{ sum: bigint; manifest: Manifest }>(MANIFEST_CACHE_BYTES);
  /** Counter for temporary .d file names. */
  private tempFiles = 0;
  /** rustc calls (made on the first one). */
  private rust: RustCompileService | undefined;

  /** Entry reads and background writes, shared with the Rust path. */
  private readonly entries: EntryStore;

  constructor(private readonly deps: CompileServiceDeps) {
    this.entries = new EntryStore(deps);
  }

  /**
   * `stream`, when the client takes Stderr frames: where a compile may send its stderr while
   * it runs (rustc, for cargo's pipelining); the reply's stderr then leaves out what was sent.
   */
  async handle(call: CompileCall, stream?: StderrSink): Promise<CompileReply> {
    const colors = callerWantsColor(call.stderrTty, call.env);
    const reply = await this.handleCall(call, stream && (colors ? stream : (chunk) => stream(stripColors(chunk))));
    if (reply.kind === "done" && !colors) {
      return { ...reply, stderr: stripColors(reply.stderr) };
    }
    return reply;
  }

  private async handleCall(call: CompileCall, stream: StderrSink | undefined): Promise<CompileReply> {
    const { stats, log } = this.deps;
    const started = performance.now();
    stats.request();
    const name = call.argv[0] ?? "";
    const args = call.argv.slice(1);
    const compiler = this.resolveCompiler(name, call);
    if (!compiler) {
      return {
        kind: "done",
        exitCode: 127,
        stdout: new Uint8Array(),
        stderr: new TextEncoder().encode(compilerNotFound(name)),
      };
    }
    const notCacheable = (reason: NotCacheableReason, detail?: string): CompileReply => {
      stats.notCacheable(reason);
      log.debug(`not cacheable (${reason}${detail ? `: ${detail}` : ""}): ${call.argv.join(" ")}`);
      return { kind: "run-local", compiler };
    };
    const base = name.slice(name.lastIndexOf("/") + 1);
    if (isRustcName(base)) return (this.rust ??= new RustCompileService(this.deps, this.digests, this.entries)).handle(call, compiler, started, stream);
    if (!isCFamilyName(base)) return notCacheable("unknown compiler", base);
    if (truthy(call.env.KILN_NO_CACHE)) return notCacheable("cache disabled (KILN_NO_CACHE)");

    let identity: CompilerIdentity;
    try {
      identity = await this.identities.identify(compiler);
    } catch (e) {
      log.warn(`cannot identify ${compiler}: ${(e as Error).message}`);
      return notCacheable("unknown compiler", compiler);
    }
    const parsed = parseCFamilyArgs(args, {
      cwd: call.cwd,
      flavor: identity.flavor,
      driverIsCxx: isCxxDriverName(base),
      env: call.env,
    });
    if (!parsed.cacheable) return notCacheable(parsed.reason, parsed.detail);
    if (!outputsAreRegular(call.cwd, parsed.outputs.map((o) => o.path))) {
      return notCacheable("unsupported compiler option", "output is not a regular file");
    }

    const job: Job = {
      call,
      compiler,
      parsed,
      norm: new PathNormalizer(this.deps.options.basedirs, call.cwd, parsed.source),
      started,
      identity,
      colorArgs: choosesColor(parsed.expandedArgs) ? [] : [FORCE_COLOR],
    };
    const common = hashCommon(identity, parsed, call.env, job.norm);
    for (const input of parsed.extraInputs) {
      const d = this.digests.file(absolute(call.cwd, input));
      if (!d) return this.compileUncached(job); // The compiler will say what is missing.
      common.field("input", d.digest);
    }
    const recache = truthy(call.env.KILN_RECACHE);
    if (recache) stats.recache();

    const direct = this.deps.options.directMode && directEligible(parsed) ? this.planDirect(job, common) : undefined;
    if (direct && !recache) {
      const manifest = await this.getManifest(direct.key);
      const variant = manifest && findVariant(manifest, direct.ctx);
      if (variant) {
        const reply = await this.tryHit(job, variant.result, "direct");
        if (reply) return reply;
      }
    }
    // Depend mode takes a full dependency list from the compile: the call's own -MD file,
    // or one it asks for when the call writes none (-MMD omits system headers: not that).
    // Not with dist: a remote compile needs the preprocessed text.
    if (direct && this.deps.options.dependMode && !this.deps.dist && parsed.dependencies !== "user" && runsPreprocessor(parsed.language)) {
      return this.compileInDependMode(job, direct);
    }

    // Preprocessor mode. With direct mode on, -v makes the run print its search list.
    const preprocessStarted = Date.now();
    let text: Uint8Array;
    let preprocessed: Captured | undefined;
    if (!runsPreprocessor(parsed.language)) {
      const d = this.digests.file(absolute(call.cwd, parsed.source));
      if (!d) return this.compileUncached(job);
      text = new TextEncoder().encode(d.digest);
    } else {
      preprocessed = await runCaptured(
        [compiler, ...parsed.preprocessorArgs, ...(direct ? ["-v"] : []), ...(this.deps.dist?.preprocessArgs(parsed) ?? []), "-E", parsed.source],
        { cwd: call.cwd, env: call.env },
      );
      // A failing preprocessor means a failing compile: let it print the real diagnostics.
      if (preprocessed.exitCode !== 0) return this.compileUncached(job);
      text = preprocessed.stdout;
    }
    const resultKey = this.resultKey(job, common, text);
    if (resultKey === undefined) return this.compileUncached(job);
    const recordDirect = () => {
      if (direct && preprocessed) this.recordManifest(direct, job, preprocessed, resultKey, preprocessStarted);
    };

    if (!recache) {
      const reply = await this.tryHit(job, resultKey, "preprocessed");
      if (reply) {
        recordDirect();
        return reply;
      }
    }
    const result = this.deps.dist && preprocessed
      ? await this.deps.dist.compile(
          { compiler, identity: job.identity.digest, flavor: job.identity.flavor, cwd: call.cwd, env: call.env, umask: call.umask, parsed, text, extraArgs: job.colorArgs },
          () => this.runCompiler(job),
        )
      : await this.runCompiler(job);
    if (result.exitCode !== 0) return { kind: "done", ...result };
    stats.miss(parsed.language, performance.now() - started);
    log.debug(`miss ${resultKey} ${parsed.source} (${result.ms.toFixed(0)} ms compile)`);
    this.store(job, resultKey, result);
    recordDirect();
    return { kind: "done", ...result };
  }

  /**
   * The real compiler for a name, remembered per (name, PATH, cwd, kiln executable) while
   * the file found is still there: walking PATH costs a stat per directory.
   */
  private resolveCompiler(name: string, call: CompileCall): string | undefined {
    const key = `${name}\0${call.env.PATH ?? ""}\0${name.includes("/") || (call.env.PATH ?? "").split(":").some((d) => !d.startsWith("/")) ? call.cwd : ""}\0${call.self}`;
    const known = this.compilers.get(key);
    if (known !== undefined && statSync(known, { throwIfNoEntry: false })?.isFile()) return known;
    const found = findCompiler(name, call.env.PATH, call.cwd, call.self);
    if (found !== undefined) {
      if (this.compilers.size > 1000) this.compilers.clear();
      this.compilers.set(key, found);
    }
    return found;
  }

  private async runCompiler(job: Job, extraArgs: string[] = []): Promise<Captured> {
    const argv = [job.compiler, ...job.call.argv.slice(1), ...job.colorArgs, ...extraArgs];
    const result = await runCaptured(argv, { cwd: job.call.cwd, env: job.call.env });
    this.deps.stats.compilerRun(result.ms);
    if (result.exitCode !== 0) this.deps.stats.compileFailure();
    return result;
  }

  /** Runs the compile without the cache (inputs Kiln cannot key, failed preprocessing). */
  private async compileUncached(job: Job): Promise<CompileReply> {
    return { kind: "done", ...(await this.runCompiler(job)) };
  }

  private planDirect(job: Job, common: KeyHasher): DirectPlan | undefined {
    const { call, parsed, norm } = job;
    const source = this.digests.file(absolute(call.cwd, parsed.source));
    if (!source || source.usesTime) return undefined;
    const h = common.copy().field("mode", "direct manifest");
    for (const arg of parsed.preprocessorArgs) h.field("cpp-arg", norm.arg(arg));
    h.field("source-path", norm.path(parsed.source)).field("source", source.digest);
    if (source.usesDate) h.field("date", localDate(call.env));
    if (source.usesTimestamp) h.field("source-mtime", String(source.mtimeMs));
    return { key: `${h.hex()}m`, ctx: { cwd: call.cwd, norm, digests: this.digests, env: call.env } };
  }

  /** The result key from the preprocessed text (and the precompiled headers it names). */
  private resultKey(job: Job, common: KeyHasher, text: Uint8Array): string | undefined {
    const h = common.copy().field("mode", "preprocessed").field("text", job.norm.text(text));
    for (const pch of pchFiles(text)) {
      const d = this.digests.file(absolute(job.call.cwd, pch));
      if (!d) return undefined;
      h.field("pch", d.digest);
    }
    return `${h.hex()}r`;
  }

  /** Writes the entry's outputs if the key is stored and intact; the reply, or undefined. */
  private async tryHit(job: Job, key: string, kind: "direct" | "preprocessed"): Promise<CompileReply | undefined> {
    const entry = await this.lookup(key);
    if (!entry) return undefined;
    const { call, parsed, norm } = job;
    if (entry.outputs.length !== parsed.outputs.length || entry.outputs.some((o, i) => o.kind !== parsed.outputs[i]!.kind)) {
      this.deps.log.warn(`cache entry ${key} holds other outputs than ${parsed.source} writes; ignored`);
      return undefined;
    }
    const files: { path: string; data: Uint8Array }[] = [];
    for (const [i, out] of parsed.outputs.entries()) {
      let data: Uint8Array | undefined = entry.outputs[i]!.data;
      if (out.kind === "dep") {
        data =
          parsed.depTargets && entry.depTargets !== parsed.depTargets.targets
            ? await this.depFileForTargets(job, key)
            : norm.restoreDepFile(data);
      }
      if (!data) return undefined;
      files.push({ path: out.path, data });
    }
    try {
      writeOutputs(call.cwd, files, call.umask);
    } catch (e) {
      this.deps.log.warn(`cannot write the outputs of ${parsed.source} in ${call.cwd}: ${(e as Error).message}; compiling`);
      return undefined;
    }
    this.deps.stats.hit(parsed.language, kind, performance.now() - job.started);
    this.deps.log.debug(`${kind} hit ${key} ${parsed.source}`);
    return { kind: "done", exitCode: 0, stdout: entry.stdout, stderr: entry.stderr };
  }

  /**
   * The .d for this call's targets when the result entry holds one for other targets: kept
   * as an entry of its own (key: result + targets), made once by `regenerateDepFile`. A source
   * compiled into many targets (a test helper linked into every test) then costs one
   * preprocessing run per target, not one per build.
   */
  private async depFileForTargets(job: Job, resultKey: string): Promise<Uint8Array | undefined> {
    const { parsed, norm } = job;
    const targets = parsed.depTargets!.targets;
    const key = `${new KeyHasher().field("dep file of", resultKey).field("targets", targets).hex()}d`;
    const stored = await this.lookup(key);
    const only = stored?.outputs.length === 1 && stored.outputs[0]!.kind === "dep" ? stored.outputs[0]!.data : undefined;
    const restored = only && norm.restoreDepFile(only);
    if (restored) return restored;
    const fresh = await this.regenerateDepFile(job);
    if (fresh) {
      const none = new Uint8Array();
      this.entries.put(key, () => encodeResult({ outputs: [{ kind: "dep", data: norm.depFile(fresh) }], stdout: none, stderr: none, depTargets: targets }));
    }
    return fresh;
  }

  /**
   * The dependency file this call would write, from a preprocessing-only run: for a hit
   * stored by a compile of the same source for other targets (another object directory).
   * Undefined if the run fails (the caller then compiles).
   */
  private async regenerateDepFile(job: Job): Promise<Uint8Array | undefined> {
    const { compiler, parsed, call } = job;
    try {
      const [run, file] = await this.withTempDepFile((tmp) =>
        runCaptured(
          [compiler, ...parsed.preprocessorArgs, ...parsed.depTargets!.regenerate, "-MF", tmp, "-E", "-o", "/dev/null", parsed.source],
          { cwd: call.cwd, env: call.env },
        ),
      );
      if (run.exitCode !== 0 || !file) return undefined;
      this.deps.log.debug(`dependency file of ${parsed.source} regenerated for ${parsed.depTargets!.targets}`);
      return file;
    } catch {
      return undefined;
    }
  }

  /** Runs `use` with a fresh temporary .d path; returns its result and what the file holds, then removes it. */
  private async withTempDepFile<T>(use: (path: string) => Promise<T>): Promise<[T, Uint8Array | undefined]> {
    const path = `${tmpdir()}/kiln-${process.pid}-${++this.tempFiles}.d`;
    try {
      const value = await use(path);
      return [value, readOutputs("/", [path])?.[0]];
    } finally {
      rmSync(path, { force: true });
    }
  }

  private lookup(key: string): Promise<ResultEntry | undefined> {
    return this.entries.decode(key, decodeResult);
  }

  /**
   * Manifests are read on every direct hit; parsing one costs more than the rest of the
   * check. Parsed ones are kept while the stored blob's checksum (in its header) is the same.
   */
  private getManifest(key: string, waitForWrite = true): Promise<Manifest | undefined> {
    return this.entries.decode(
      key,
      (blob) => {
        const sum = entryChecksum(blob);
        const known = this.manifests.get(key);
        if (known && sum !== undefined && known.sum === sum) return known.manifest;
        const manifest = decodeManifest(blob);
        if (sum !== undefined) this.manifests.set(key, { sum, manifest }, blob.length);
        return manifest;
      },
      waitForWrite,
    );
  }

  /** Reads the outputs now (the build may move on with them), encodes and writes later. */
  private store(job: Job, key: string, result: Captured): void {
    const { parsed, call } = job;
    const data = readOutputs(
      call.cwd,
      parsed.outputs.map((o) => o.path),
    );
    if (!data) {
      this.deps.log.warn(`not caching ${parsed.source}: an expected output is missing (${parsed.outputs.map((o) => o.path).join(", ")})`);
      return;
    }
    this.storeOutputs(job, key, result, data);
  }

  private storeOutputs(job: Job, key: string, result: Captured, data: Uint8Array[]): void {
    const { parsed, norm } = job;
    this.entries.put(key, () =>
      encodeResult({
        outputs: parsed.outputs.map((o, i) => ({ kind: o.kind, data: o.kind === "dep" ? norm.depFile(data[i]!) : data[i]! })),
        stdout: result.stdout,
        stderr: result.stderr,
        ...(parsed.depTargets ? { depTargets: parsed.depTargets.targets } : {}),
      }),
    );
  }

  /** After the reply: adds this include set to the manifest, unless something forbids it. */
  private recordManifest(plan: DirectPlan, job: Job, preprocessed: Captured, resultKey: string, startedAtMs: number): void {
    const work = (async () => {
      const { includes } = scanPreprocessed(preprocessed.stdout, job.parsed.source);
      const pch = pchFiles(preprocessed.stdout);
      const searchDirs = parseSearchDirs(new TextDecoder().decode(preprocessed.stderr));
      const outcome = recordVariant(plan.ctx, includes, pch, searchDirs, resultKey, startedAtMs);
      if ("skipped" in outcome) {
        this.deps.log.debug(`no manifest for ${job.parsed.source}: ${outcome.skipped}`);
        return;
      }
      await this.addVariant(plan.key, outcome.variant);
    })().catch((e) => this.deps.log.warn(`recording a manifest for ${job.parsed.source}: ${(e as Error).message}`));
    this.entries.background(plan.key, work);
  }

  /**
   * Reads the manifest, adds the variant, writes it back: one update per manifest at a time,
   * each on top of the last, so concurrent compiles of one source do not drop each other's.
   */
  private addVariant(key: string, variant: ManifestVariant): Promise<void> {
    return this.entries.update(
      key,
      () => this.getManifest(key, false),
      (current) => encodeManifest(withVariant(current, variant)),
    );
  }

  /**
   * Depend mode: compile straight away, then take the include list from a dependency file
   * instead of a preprocessing run: the call's own -MD file, or, for a call that writes none,
   * one it is asked for (`-MD -MF <temporary file>` only adds that file). The result is keyed
   * by the manifest key and the digests of those files. Which file included which is not in
   * a .d file, so the shadowing check covers the source's directory and the search path,
   * not the directories of intermediate headers.
   */
  private async compileInDependMode(job: Job, plan: DirectPlan): Promise<CompileReply> {
    const { parsed, call } = job;
    const startedAtMs = Date.now();
    const [result, ownDepText] =
      parsed.dependencies === undefined
        ? await this.withTempDepFile((tmp) => this.runCompiler(job, ["-MD", "-MF", tmp]))
        : [await this.runCompiler(job), undefined];
    if (result.exitCode !== 0) return { kind: "done", ...result };
    this.deps.stats.miss(parsed.language, performance.now() - job.started);
    const data = readOutputs(call.cwd, parsed.outputs.map((o) => o.path));
    const depIndex = parsed.outputs.findIndex((o) => o.kind === "dep");
    const depText = ownDepText ?? (depIndex >= 0 ? data?.[depIndex] : undefined);
    if (!data || !depText) return { kind: "done", ...result };
    const deps = parseDepFile(new TextDecoder().decode(depText));
    const includes = deps.filter((d) => d !== parsed.source).map((path) => ({ path, includer: parsed.source }));
    const work = (async () => {
      const outcome = recordVariant(plan.ctx, includes, [], await this.searchDirs(job), "", startedAtMs);
      if ("skipped" in outcome) {
        this.deps.log.debug(`depend mode: not caching ${parsed.source}: ${outcome.skipped}`);
        return;
      }
      const h = new KeyHasher().field("mode", "depend").field("manifest", plan.key);
      for (const [path, digest] of outcome.variant.files) h.field("file", path).field("digest", digest);
      const key = `${h.hex()}r`;
      this.storeOutputs(job, key, result, data);
      await this.addVariant(plan.key, { ...outcome.variant, result: key });
    })().catch((e) => this.deps.log.warn(`depend mode for ${parsed.source}: ${(e as Error).message}`));
    this.entries.background(plan.key, work);
    return { kind: "done", ...result };
  }

  /** The compiler's include search list for this call's language and options (cached). */
  private async searchDirs(job: Job): Promise<SearchDirs | undefined> {
    const { compiler, parsed, call } = job;
    const argv = [compiler, ...parsed.preprocessorArgs, "-x", parsed.language, "-v", "-E", "/dev/null"];
    const key = `${call.cwd}\0${argv.join("\0")}`;
    const known = this.searchLists.get(key);
    if (known) return known;
    const run = await runCaptured(argv, { cwd: call.cwd, env: call.env });
    const dirs = run.exitCode === 0 ? parseSearchDirs(new TextDecoder().decode(run.stderr)) : undefined;
    if (dirs) {
      if (this.searchLists.size > 1000) this.searchLists.clear();
      this.searchLists.set(key, dirs);
    }
    return dirs;
  }
}

