// One rustc call from cargo, end to end. A crate compiled one way (same rustc, arguments,
// environment, crate root, --extern crates) has a manifest; each of its variants lists the
// source files and env-deps one compile's dep-info named, with their digests and values, and
// the result they produced. A hit checks those (stat-validated digests) and runs nothing; a
// miss compiles at once, streaming rustc's stderr to the client (cargo's pipelining), and
// records a variant from the dep-info the compile wrote (or, when the call writes none, from a
// dep-info-only run alongside); the output names follow from the arguments (or, for crate
// types where they may not, from `--print file-names` alongside).

import { rmSync } from "node:fs";
import { tmpdir } from "node:os";
import type { CompileCall, StderrSink } from "../ipc/wire.ts";
import { PathNormalizer } from "../compilers/basedirs.ts";
import {
  extraFilename,
  impliedOutputs,
  isClippyName,
  isRustcName,
  linkOutputNames,
  parseRustcArgs,
  type RustCompile,
} from "../compilers/rust/args.ts";
import { parseDepInfo } from "../compilers/rust/depinfo.ts";
import {
  decodeRustManifest,
  decodeRustResult,
  encodeRustManifest,
  encodeRustResult,
  withRustVariant,
  type RustManifest,
  type RustVariant,
} from "../compilers/rust/entry.ts";
import { RustcIdentities } from "../compilers/rust/identity.ts";
import { rustManifestKey, rustResultKey } from "../compilers/rust/key.ts";
import { runCaptured, type Captured } from "../compilers/process.ts";
import type { NotCacheableReason } from "../compilers/types.ts";
import type { CompileReply, CompileServiceDeps } from "./compile.ts";
import type { EntryStore } from "./entry-store.ts";
import type { FileDigests } from "./file-digests.ts";
import { absolute, outputsAreRegular, readOutputs, writeOutputs } from "./outputs.ts";
import { truthy } from "../util/env.ts";
import { CLOCK_SLACK_MS } from "../compilers/c-family/direct.ts";

/** Everything one cacheable rustc call carries from step to step. */
interface RustJob {
  call: CompileCall;
  /** What runs: rustc, a rustup proxy, or clippy-driver followed by rustc's path. */
  argv: string[];
  parsed: RustCompile;
  /** The output directory, absolute. */
  outDir: string;
  norm: PathNormalizer;
  manifestKey: string;
  started: number;
}

function basename(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

/** rustc's static library names on Unix. */
function staticLibraryFile(name: string, dirs: string[], cwd: string, digests: FileDigests): string | undefined {
  for (const dir of dirs) {
    const path = absolute(cwd, `${dir}/lib${name}.a`);
    if (digests.file(path)) return path;
  }
  return undefined;
}

export class RustCompileService {
  private readonly identities: RustcIdentities;
  private tempFiles = 0;
  /** rustc paths whose identity has been asked for (see `handle`). */
  private readonly warmed = new Set<string>();

  constructor(
    private readonly deps: CompileServiceDeps,
    private readonly digests: FileDigests,
    private readonly store: EntryStore,
  ) {
    this.identities = new RustcIdentities(digests);
  }

  /** `compiler` is argv[0] resolved; for clippy-driver, argv[1] is rustc's path. */
  async handle(call: CompileCall, compiler: string, started: number, stream?: StderrSink): Promise<CompileReply> {
    const { stats, log } = this.deps;
    const notCacheable = (reason: NotCacheableReason, detail?: string): CompileReply => {
      stats.notCacheable(reason);
      log.debug(`not cacheable (${reason}${detail ? `: ${detail}` : ""}): ${call.argv.join(" ")}`);
      return { kind: "run-local", compiler };
    };
    if (truthy(call.env.KILN_NO_CACHE)) return notCacheable("cache disabled (KILN_NO_CACHE)");
    const clippy = isClippyName(basename(call.argv[0] ?? ""));
    let args = call.argv.slice(1);
    let rustc = compiler;
    if (clippy) {
      // cargo runs `clippy-driver /path/to/rustc <args>`; the driver drops that argument.
      if (args[0] === undefined || !isRustcName(basename(args[0]))) return notCacheable("unsupported rustc option", "clippy-driver without rustc");
      rustc = absolute(call.cwd, args[0]);
      args = args.slice(1);
    }
    // The first call of a toolchain (cargo's `rustc -vV`) starts hashing it (about half a GB)
    // in the background: by the first library crate, after the build scripts, it is done.
    if (!this.warmed.has(rustc)) {
      this.warmed.add(rustc);
      const t0 = performance.now();
      this.identities
        .identify(rustc, call.cwd, call.env, undefined, undefined)
        .then(() => log.debug(`identified ${rustc} in ${(performance.now() - t0).toFixed(0)} ms`))
        .catch(() => {});
    }
    const parsed = parseRustcArgs(args, call.cwd);
    if (!parsed.cacheable) return notCacheable(parsed.reason, parsed.detail);

    let job: RustJob;
    try {
      const identity = await this.identities.identify(rustc, call.cwd, call.env, parsed.target, parsed.sysroot);
      const clippyDigest = clippy ? await this.digests.binary(await this.identities.sibling(compiler, call.cwd, call.env, rustc)) : undefined;
      if (clippy && clippyDigest === undefined) return notCacheable("unknown compiler", compiler);
      const outDir = absolute(call.cwd, parsed.outDir ?? ".");
      const norm = normalizer(this.deps.options.basedirs, call.cwd, outDir, absolute(call.cwd, parsed.input));
      const inputs = this.inputDigests(parsed, call.cwd, norm);
      if (typeof inputs === "string") return notCacheable("unsupported rustc option", inputs);
      const manifestKey = rustManifestKey({
        identity,
        ...(clippyDigest !== undefined ? { clippy: clippyDigest } : {}),
        parsed,
        cwd: call.cwd,
        outDir,
        env: call.env,
        norm,
        inputs,
      });
      job = { call, argv: [compiler, ...call.argv.slice(1)], parsed, outDir, norm, manifestKey, started };
    } catch (e) {
      log.warn(`cannot key ${call.argv.join(" ")}: ${(e as Error).message}`);
      return notCacheable("unknown compiler", rustc);
    }
    const extra = extraFilename(parsed);
    const linkNames = parsed.emit.includes("link") ? (linkOutputNames(parsed, extra) ?? []) : [];
    if (!outputsAreRegular(job.outDir, [...linkNames, ...impliedOutputs(parsed, extra)])) {
      return notCacheable("unsupported rustc option", "output is not a regular file");
    }

    const recache = truthy(call.env.KILN_RECACHE);
    if (recache) stats.recache();
    else {
      const manifest = await this.getManifest(job.manifestKey);
      const variant = manifest && this.findVariant(manifest, job);
      if (variant) {
        const reply = await this.tryHit(job, variant.result);
        if (reply) return reply;
      }
    }
    return this.compileAndRecord(job, stream);
  }

  /**
   * Digests of the crate root, each --extern crate, each `-l static=` library and the target
   * spec; a string saying what is missing when one cannot be read (rustc will say it better).
   */
  private inputDigests(parsed: RustCompile, cwd: string, norm: PathNormalizer): [string, string][] | string {
    const inputs: [string, string][] = [];
    const root = this.digests.file(absolute(cwd, parsed.input));
    if (!root) return `cannot read ${parsed.input}`;
    inputs.push(["crate root", root.digest]);
    for (const ext of parsed.externs) {
      if (ext.path === undefined) continue; // From the sysroot (in the identity) or -L (see README).
      const d = this.digests.file(absolute(cwd, ext.path));
      if (!d) return `cannot read the crate ${ext.path}`;
      inputs.push([`extern ${ext.name} ${norm.path(absolute(cwd, ext.path))}`, d.digest]);
    }
    for (const lib of parsed.staticLibs) {
      const path = staticLibraryFile(lib, parsed.nativeDirs, cwd, this.digests);
      if (!path) return `cannot find the static library ${lib}`;
      inputs.push([`static ${lib}`, this.digests.file(path)!.digest]);
    }
    if (parsed.targetSpec) {
      const d = this.digests.file(absolute(cwd, parsed.targetSpec));
      if (d) inputs.push(["target spec", d.digest]);
    }
    return inputs;
  }

  /** The first variant whose files are unchanged and whose env-deps have the same values. */
  private findVariant(m: RustManifest, job: RustJob): RustVariant | undefined {
    const { call, norm } = job;
    variants: for (const v of m.variants) {
      for (const [name, value] of v.env) {
        const now = call.env[name];
        if ((now === undefined ? null : norm.arg(now)) !== value) continue variants;
      }
      for (const [path, digest] of v.files) {
        const p = norm.expand(path);
        if (p === undefined || this.digests.file(absolute(call.cwd, p))?.digest !== digest) continue variants;
      }
      return v;
    }
    return undefined;
  }

  private async tryHit(job: RustJob, key: string): Promise<CompileReply | undefined> {
    const { call, norm, outDir } = job;
    const entry = await this.store.decode(key, decodeRustResult);
    if (!entry) return undefined;
    const files: { path: string; data: Uint8Array }[] = [];
    for (const out of entry.outputs) {
      const data = out.name.endsWith(".d") ? norm.restoreDepFile(out.data) : out.data;
      if (!data) return undefined;
      files.push({ path: `${outDir}/${out.name}`, data });
    }
    const stderr = norm.restoreDepFile(entry.stderr);
    if (!stderr) return undefined;
    try {
      writeOutputs(call.cwd, files, call.umask);
    } catch (e) {
      this.deps.log.warn(`cannot write the outputs of crate ${job.parsed.crateName} in ${outDir}: ${(e as Error).message}; compiling`);
      return undefined;
    }
    this.deps.stats.hit("rust", "direct", performance.now() - job.started);
    this.deps.log.debug(`hit ${key} crate ${job.parsed.crateName}`);
    return { kind: "done", exitCode: 0, stdout: entry.stdout, stderr };
  }

  /**
   * Runs rustc. With `stream`, its stderr goes to the client line by line as rustc writes it:
   * cargo starts the crates that need this one's metadata when it reads the artifact
   * notification (`--json=artifacts`), long before rustc is done, and rustc writes the .rmeta
   * before it prints that line. The reply then carries no stderr (it has been sent).
   */
  private async compileAndRecord(job: RustJob, stream: StderrSink | undefined): Promise<CompileReply> {
    const { call, parsed, argv } = job;
    const startedAtMs = Date.now();
    // The jobserver cargo (or make) names is a pair of file descriptors only its own children
    // have: rustc would warn that it cannot open them, and run with its own job limit.
    const opts = { cwd: call.cwd, env: { ...call.env, CARGO_MAKEFLAGS: undefined, MAKEFLAGS: undefined, MFLAGS: undefined } };
    const ownDepInfo = parsed.emit.includes("dep-info");
    const depTemp = ownDepInfo ? undefined : `${tmpdir()}/kiln-${process.pid}-${++this.tempFiles}.d`;
    const withoutEmit = argv.filter((a, i) => !a.startsWith("--emit=") && a !== "--emit" && argv[i - 1] !== "--emit");
    const extra = extraFilename(parsed);
    // The link outputs' names follow from the arguments for the crate types cargo caches;
    // rustc is asked only for the others.
    const linkNames = parsed.emit.includes("link") ? linkOutputNames(parsed, extra) : [];
    try {
      const [result, names, depRun] = await Promise.all([
        runCaptured(argv, opts, stream),
        linkNames ? undefined : runCaptured([...argv, "--print=file-names"], opts),
        depTemp ? runCaptured([...withoutEmit, `--emit=dep-info=${depTemp}`], opts) : undefined,
      ]);
      this.deps.stats.compilerRun(result.ms);
      const reply: CompileReply = { kind: "done", exitCode: result.exitCode, stdout: result.stdout, stderr: stream ? new Uint8Array() : result.stderr };
      if (result.exitCode !== 0) {
        this.deps.stats.compileFailure();
        return reply;
      }
      this.deps.stats.miss("rust", performance.now() - job.started);
      if ((names && names.exitCode !== 0) || (depRun && depRun.exitCode !== 0)) {
        this.deps.log.warn(`not caching crate ${parsed.crateName}: rustc could not name its outputs or sources`);
        return reply;
      }
      const printed = names ? new TextDecoder().decode(names.stdout).split("\n").filter((n) => n !== "") : [];
      const outNames = [...(linkNames ?? printed), ...impliedOutputs(parsed, extra)];
      const data = readOutputs(job.outDir, outNames);
      const depText = depTemp ? readOutputs("/", [depTemp])?.[0] : data?.[outNames.indexOf(`${parsed.crateName}${extra}.d`)];
      if (!data || !depText || outNames.some((n) => n.includes("/"))) {
        this.deps.log.warn(`not caching crate ${parsed.crateName}: an expected output is missing (${outNames.join(", ")} in ${job.outDir})`);
        return reply;
      }
      this.record(job, result, outNames, data, new TextDecoder().decode(depText), startedAtMs);
      return reply;
    } finally {
      if (depTemp) rmSync(depTemp, { force: true });
    }
  }

  /** After the reply: digests the sources dep-info named, stores the result, adds the variant. */
  private record(job: RustJob, result: Captured, names: string[], data: Uint8Array[], depText: string, startedAtMs: number): void {
    const { call, norm, parsed } = job;
    // File times come from the kernel's coarse clock, which can trail Date.now() by a tick.
    const since = startedAtMs - CLOCK_SLACK_MS;
    const work = (async () => {
      const dep = parseDepInfo(depText);
      const files: [string, string][] = [];
      for (const path of dep.files) {
        const d = this.digests.file(absolute(call.cwd, path));
        // A source changed while rustc read it: what the outputs hold is unknown.
        if (!d || d.mtimeMs >= since || d.ctimeMs >= since) {
          this.deps.log.debug(`not caching crate ${parsed.crateName}: ${path} ${d ? "changed during the compile" : "is gone"}`);
          return;
        }
        files.push([norm.path(absolute(call.cwd, path)), d.digest]);
      }
      const env: [string, string | null][] = [...new Set(dep.envDeps)].sort().map((name) => {
        const value = call.env[name];
        return [name, value === undefined ? null : norm.arg(value)];
      });
      const key = rustResultKey(job.manifestKey, files, env);
      await this.store.put(key, () =>
        encodeRustResult({
          outputs: names.map((name, i) => ({ name, data: name.endsWith(".d") ? norm.depFile(data[i]!) : data[i]! })),
          stdout: result.stdout,
          stderr: norm.depFile(result.stderr),
        }),
      );
      await this.addVariant(job.manifestKey, { result: key, files, env });
      this.deps.log.debug(`stored ${key} crate ${parsed.crateName}`);
    })().catch((e) => this.deps.log.warn(`recording crate ${parsed.crateName}: ${(e as Error).message}`));
    this.store.background(job.manifestKey, work);
  }

  private getManifest(key: string, waitForWrite = true): Promise<RustManifest | undefined> {
    return this.store.decode(key, decodeRustManifest, waitForWrite);
  }

  /** One update per manifest at a time, each on top of the last. */
  private addVariant(key: string, variant: RustVariant): Promise<void> {
    return this.store.update(
      key,
      () => this.getManifest(key, false),
      (current) => encodeRustManifest(withRustVariant(current, variant)),
    );
  }
}

/**
 * The base directory of a call: the one holding its cwd, else its output directory (cargo
 * compiles a registry crate in the crate's own directory, into the checkout's target/), else
 * its crate root.
 */
function normalizer(basedirs: readonly string[], cwd: string, outDir: string, input: string): PathNormalizer {
  for (const path of [outDir, input]) {
    const norm = new PathNormalizer(basedirs, cwd, path);
    if (norm.base !== undefined) return norm;
  }
  return new PathNormalizer(basedirs, cwd, input);
}
