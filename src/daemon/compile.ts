// One compiler call, end to end: parse, key, look up, and on a miss compile and store.

import { readFileSync } from "node:fs";
import { findCompiler } from "../client/find-compiler.ts";
import type { CompileCall } from "../ipc/wire.ts";
import { parseCFamilyArgs } from "../compilers/c-family/args.ts";
import { hashCommon, KeyHasher } from "../compilers/c-family/key.ts";
import { CompilerIdentities, isCFamilyName, isCxxDriverName, type CompilerIdentity } from "../compilers/identity.ts";
import { runCaptured, type Captured } from "../compilers/process.ts";
import type { CFamilyCompile, Language, NotCacheableReason } from "../compilers/types.ts";
import type { CacheStorage } from "../storage/types.ts";
import { CorruptEntry, decodeResult, encodeResult, type ResultEntry } from "../storage/entry.ts";
import type { Logger } from "./log.ts";
import { absolute, outputsAreRegular, readOutputs, writeOutputs } from "./outputs.ts";
import type { Stats } from "./stats.ts";

export type CompileReply =
  | { kind: "done"; exitCode: number; stdout: Uint8Array; stderr: Uint8Array }
  /** The client runs the compiler itself, with its own stdio (non-cacheable calls). */
  | { kind: "run-local"; compiler: string };

/** Languages whose source is already the compiler's input: no preprocessing to do. */
const NO_PREPROCESSING: ReadonlySet<Language> = new Set([
  "assembler",
  "cpp-output",
  "c++-cpp-output",
  "objective-c-cpp-output",
  "objective-c++-cpp-output",
]);

const PCH_PRAGMA = "#pragma GCC pch_preprocess ";

function truthy(value: string | undefined): boolean {
  return value !== undefined && value !== "" && !/^(0|false|no|off)$/i.test(value);
}

export interface CompileServiceDeps {
  storage: CacheStorage;
  stats: Stats;
  log: Logger;
  /** Work the daemon must finish before exiting (background stores). */
  track: (work: Promise<unknown>) => void;
}

export class CompileService {
  private readonly identities = new CompilerIdentities();

  constructor(private readonly deps: CompileServiceDeps) {}

  async handle(call: CompileCall): Promise<CompileReply> {
    const { stats, log } = this.deps;
    const started = performance.now();
    stats.request();
    const name = call.argv[0] ?? "";
    const args = call.argv.slice(1);
    const compiler = findCompiler(name, call.env.PATH, call.cwd, call.self);
    if (!compiler) {
      return {
        kind: "done",
        exitCode: 127,
        stdout: new Uint8Array(),
        stderr: new TextEncoder().encode(`kiln: error: cannot find the compiler '${name}' in PATH (other than Kiln itself)\n`),
      };
    }
    const notCacheable = (reason: NotCacheableReason, detail?: string): CompileReply => {
      stats.notCacheable(reason);
      log.debug(`not cacheable (${reason}${detail ? `: ${detail}` : ""}): ${call.argv.join(" ")}`);
      return { kind: "run-local", compiler };
    };
    const base = name.slice(name.lastIndexOf("/") + 1);
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
    const outputPaths = parsed.outputs.map((o) => o.path);
    if (!outputsAreRegular(call.cwd, outputPaths)) return notCacheable("unsupported compiler option", "output is not a regular file");

    const compile = () => runCaptured([compiler, ...args], { cwd: call.cwd, env: call.env });
    const key = await this.resultKey(compiler, identity, parsed, call);
    if (key.kind === "failed") {
      // The preprocessor failed: the compile will fail the same way, with the right messages.
      const result = await compile();
      stats.compilerRun(result.ms);
      if (result.exitCode !== 0) stats.compileFailure();
      return { kind: "done", ...result };
    }

    const recache = truthy(call.env.KILN_RECACHE);
    if (recache) stats.recache();
    else {
      const entry = await this.lookup(key.key);
      if (entry) {
        try {
          writeOutputs(
            call.cwd,
            parsed.outputs.map((o, i) => ({ path: o.path, data: entry.outputs[i]!.data })),
            call.umask,
          );
          stats.hit(parsed.language, "preprocessed", performance.now() - started);
          log.debug(`hit ${key.key} ${parsed.source}`);
          return { kind: "done", exitCode: 0, stdout: entry.stdout, stderr: entry.stderr };
        } catch (e) {
          log.warn(`cannot write the outputs of ${parsed.source} in ${call.cwd}: ${(e as Error).message}; compiling`);
        }
      }
    }

    const result = await compile();
    stats.compilerRun(result.ms);
    if (result.exitCode !== 0) {
      stats.compileFailure();
      return { kind: "done", ...result };
    }
    stats.miss(parsed.language, performance.now() - started);
    log.debug(`miss ${key.key} ${parsed.source} (${result.ms.toFixed(0)} ms compile)`);
    this.store(key.key, parsed, call.cwd, result);
    return { kind: "done", ...result };
  }

  /** A valid entry from storage, or undefined (a corrupt one is removed and counted). */
  private async lookup(key: string): Promise<ResultEntry | undefined> {
    const { storage, stats, log } = this.deps;
    let blob: Uint8Array | undefined;
    try {
      blob = await storage.get(key);
    } catch (e) {
      stats.readError();
      log.warn(`cache read of ${key} from ${storage.location} failed: ${(e as Error).message}`);
      return undefined;
    }
    if (!blob) return undefined;
    try {
      return decodeResult(blob);
    } catch (e) {
      if (!(e instanceof CorruptEntry)) throw e;
      stats.readError();
      log.warn(`corrupt cache entry ${key} in ${storage.location} (${e.message}); removed`);
      await storage.remove(key).catch(() => {});
      return undefined;
    }
  }

  /** Reads the outputs now (the build may move on with them), encodes and writes later. */
  private store(key: string, parsed: CFamilyCompile, cwd: string, result: Captured): void {
    const { storage, stats, log } = this.deps;
    const data = readOutputs(
      cwd,
      parsed.outputs.map((o) => o.path),
    );
    if (!data) {
      log.warn(`not caching ${parsed.source}: an expected output is missing (${parsed.outputs.map((o) => o.path).join(", ")})`);
      return;
    }
    const work = (async () => {
      try {
        const blob = encodeResult({
          outputs: parsed.outputs.map((o, i) => ({ kind: o.kind, data: data[i]! })),
          stdout: result.stdout,
          stderr: result.stderr,
        });
        await storage.put(key, blob);
      } catch (e) {
        stats.writeError();
        log.warn(`cache write of ${key} to ${storage.location} failed: ${(e as Error).message}`);
      }
    })();
    this.deps.track(work);
  }

  private async resultKey(
    compiler: string,
    identity: CompilerIdentity,
    parsed: CFamilyCompile,
    call: CompileCall,
  ): Promise<{ kind: "ok"; key: string } | { kind: "failed" }> {
    const h = hashCommon(new KeyHasher(), identity, parsed, call.env);
    for (const input of parsed.extraInputs) h.field("input", readFileSync(absolute(call.cwd, input)));
    let text: Uint8Array;
    if (NO_PREPROCESSING.has(parsed.language)) {
      try {
        text = readFileSync(absolute(call.cwd, parsed.source));
      } catch {
        return { kind: "failed" };
      }
    } else {
      const pre = await runCaptured([compiler, ...parsed.preprocessorArgs, "-E", parsed.source], {
        cwd: call.cwd,
        env: call.env,
      });
      if (pre.exitCode !== 0) return { kind: "failed" };
      text = pre.stdout;
      hashPchFiles(h, text, call.cwd);
    }
    h.field("source", text);
    return { kind: "ok", key: `${h.hex()}r` };
  }
}

/** gcc leaves `#pragma GCC pch_preprocess "x.gch"` where a precompiled header was used. */
function hashPchFiles(h: KeyHasher, text: Uint8Array, cwd: string): void {
  const buf = Buffer.from(text.buffer, text.byteOffset, text.byteLength);
  let at = buf.indexOf(PCH_PRAGMA);
  while (at >= 0) {
    const end = buf.indexOf(10, at);
    const line = buf.toString("utf8", at + PCH_PRAGMA.length, end < 0 ? undefined : end).trim();
    const path = line.replace(/^"|"$/g, "");
    h.field("pch", readFileSync(absolute(cwd, path)));
    at = buf.indexOf(PCH_PRAGMA, at + 1);
  }
}
