// rustc command lines as cargo writes them: which calls can be cached, and what the key and
// the outputs need from them. Anything not understood runs rustc unchanged.

import { readFileSync } from "node:fs";
import { notCacheable, type NotCacheable, type NotCacheableReason } from "../types.ts";

/** Crate types whose output is an archive rustc writes itself (no linker run). */
const CACHEABLE_CRATE_TYPES = new Set(["lib", "rlib", "staticlib"]);
const LINKING_CRATE_TYPES = new Set(["bin", "dylib", "cdylib", "proc-macro"]);
const CACHEABLE_EMITS = new Set(["link", "metadata", "dep-info"]);

/** Options that take a value, as a separate argument or joined (`--opt=value`, `-Cvalue`). */
const VALUE_OPTIONS = new Set([
  "--crate-name",
  "--crate-type",
  "--emit",
  "--out-dir",
  "-o",
  "-C",
  "--codegen",
  "-L",
  "-l",
  "--extern",
  "--cfg",
  "--check-cfg",
  "--target",
  "--sysroot",
  "--edition",
  "--error-format",
  "--json",
  "--cap-lints",
  "-W",
  "-A",
  "-D",
  "-F",
  "--warn",
  "--allow",
  "--deny",
  "--forbid",
  "--force-warn",
  "--print",
  "-Z",
  "--remap-path-prefix",
  "--remap-path-scope",
  "--diagnostic-width",
  "--color",
  "--explain",
]);

/** Flags without a value that change nothing Kiln must know beyond being keyed. */
const PLAIN_FLAGS = new Set(["-g", "-O", "-v", "--verbose"]);

/** `-C` options that write files Kiln does not restore, or read inputs it cannot see. */
const UNSUPPORTED_CODEGEN = /^(save-temps|profile-use|profile-generate)(=|$)|^split-debuginfo=(packed|unpacked)$/;

export interface ExternCrate {
  name: string;
  /** The file cargo passes (an .rlib or .rmeta); absent for `--extern name` alone. */
  path?: string;
}

/** A cacheable rustc call: one library crate, outputs in one directory. */
export interface RustCompile {
  cacheable: true;
  crateName: string;
  /** The crate root as given. */
  input: string;
  crateTypes: string[];
  /** `--emit` kinds (link when none is given). */
  emit: string[];
  /** Where the outputs go: --out-dir, else the working directory (as given, may be relative). */
  outDir: string | undefined;
  externs: ExternCrate[];
  /** `-l static=NAME` (and `-l static:+bundle=NAME`): bundled into an rlib, so keyed. */
  staticLibs: string[];
  /** `-L` directories a static library may be found in (every kind but dependency/crate). */
  nativeDirs: string[];
  /** A `--target` naming a .json target spec file. */
  targetSpec?: string;
  /** `--target` as given, to find the target's libraries in the sysroot. */
  target?: string;
  sysroot?: string;
  /**
   * The arguments for the key: everything after response-file expansion, with `--cfg` and
   * `--check-cfg` values sorted into one group each (their order does not matter to rustc).
   */
  keyArgs: string[];
  /** After response-file expansion. */
  expandedArgs: string[];
}

export type ParsedRustCall = RustCompile | NotCacheable;


/** rustc's `@file`: one argument per line. Undefined when a file cannot be read. */
function expandResponseFiles(args: readonly string[], cwd: string): string[] | undefined {
  const out: string[] = [];
  for (const arg of args) {
    if (!arg.startsWith("@") || arg.length === 1) {
      out.push(arg);
      continue;
    }
    const path = arg.slice(1);
    try {
      const text = readFileSync(path.startsWith("/") ? path : `${cwd}/${path}`, "utf8");
      out.push(...text.split("\n").filter((line, i, all) => line !== "" || i < all.length - 1));
    } catch {
      return undefined;
    }
  }
  return out;
}

/** Splits `--opt=value`, `--opt value`, `-Cvalue`, `-C value` into [option, value]. */
function splitOption(args: readonly string[], i: number): { option: string; value: string | undefined; next: number } {
  const arg = args[i]!;
  if (arg.startsWith("--")) {
    const eq = arg.indexOf("=");
    if (eq > 0 && VALUE_OPTIONS.has(arg.slice(0, eq))) return { option: arg.slice(0, eq), value: arg.slice(eq + 1), next: i + 1 };
    if (VALUE_OPTIONS.has(arg)) return { option: arg, value: args[i + 1], next: i + 2 };
    return { option: arg, value: undefined, next: i + 1 };
  }
  const short = arg.slice(0, 2);
  if (VALUE_OPTIONS.has(short)) {
    return arg.length > 2 ? { option: short, value: arg.slice(2), next: i + 1 } : { option: short, value: args[i + 1], next: i + 2 };
  }
  return { option: arg, value: undefined, next: i + 1 };
}

export function parseRustcArgs(args: readonly string[], cwd: string): ParsedRustCall {
  const expanded = expandResponseFiles(args, cwd);
  if (!expanded) return notCacheable("unreadable response file");
  const inputs: string[] = [];
  const crateTypes: string[] = [];
  const emit: string[] = [];
  const externs: ExternCrate[] = [];
  const staticLibs: string[] = [];
  const nativeDirs: string[] = [];
  const cfgs: string[] = [];
  const checkCfgs: string[] = [];
  const keyArgs: string[] = [];
  let crateName: string | undefined;
  let outDir: string | undefined;
  let target: string | undefined;
  let sysroot: string | undefined;
  let test = false;
  // The reasons found along the way; the crate type, when it is one, is the one counted.
  let incremental = false;
  let unsupported: NotCacheable | undefined;
  const reject = (reason: NotCacheableReason, detail: string) => {
    unsupported ??= notCacheable(reason, detail);
  };

  for (let i = 0; i < expanded.length; ) {
    const arg = expanded[i]!;
    if (arg === "-" || !arg.startsWith("-")) {
      inputs.push(arg);
      keyArgs.push(arg);
      i += 1;
      continue;
    }
    const { option, value, next } = splitOption(expanded, i);
    i = next;
    if (VALUE_OPTIONS.has(option) && value === undefined) {
      reject("unsupported rustc option", `${option} without a value`);
      continue;
    }
    const v = value ?? "";
    switch (option) {
      case "--print":
      case "--explain":
        return notCacheable("rustc query (--print, -vV)", option);
      case "--crate-name":
        crateName = v;
        break;
      case "--crate-type":
        crateTypes.push(...v.split(","));
        break;
      case "--emit":
        for (const kind of v.split(",")) {
          if (!CACHEABLE_EMITS.has(kind)) reject("unsupported --emit", kind);
          emit.push(kind);
        }
        break;
      case "--out-dir":
        outDir = v;
        continue; // keyed through the output paths (see the key)
      case "-o":
        reject("unsupported rustc option", "-o");
        break;
      case "-C":
      case "--codegen":
        if (/^incremental(=|$)/.test(v)) incremental = true;
        if (UNSUPPORTED_CODEGEN.test(v)) reject("unsupported rustc option", `-C ${v}`);
        keyArgs.push(`-C${v}`);
        continue;
      case "-Z":
        reject("unsupported rustc option", `-Z ${v}`);
        break;
      case "-L": {
        const eq = v.indexOf("=");
        const kind = eq > 0 && /^(dependency|crate|native|framework|all)$/.test(v.slice(0, eq)) ? v.slice(0, eq) : "all";
        const dir = kind === "all" && !v.startsWith("all=") ? v : v.slice(eq + 1);
        if (kind !== "dependency" && kind !== "crate") nativeDirs.push(dir);
        break;
      }
      case "-l": {
        const m = /^([a-z-]+)(:[^=]*)?=(.*)$/.exec(v);
        if (m && m[1] === "static") staticLibs.push(m[3]!.split(":")[0]!);
        break;
      }
      case "--extern": {
        const eq = v.indexOf("=");
        const name = (eq >= 0 ? v.slice(0, eq) : v).replace(/^[a-z-]+(,[a-z-]+)*:/, "");
        externs.push(eq >= 0 ? { name, path: v.slice(eq + 1) } : { name });
        break;
      }
      case "--cfg":
        cfgs.push(v);
        continue;
      case "--check-cfg":
        checkCfgs.push(v);
        continue;
      case "--target":
        target = v;
        break;
      case "--sysroot":
        sysroot = v;
        break;
      case "--test":
        test = true;
        break;
      case "-V":
      case "--version":
      case "-vV":
      case "-h":
      case "--help":
        return notCacheable("rustc query (--print, -vV)", option);
      default:
        if (!VALUE_OPTIONS.has(option) && !PLAIN_FLAGS.has(option)) reject("unsupported rustc option", option);
    }
    keyArgs.push(value === undefined ? option : `${option}=${value}`);
  }

  if (inputs.length === 0) return notCacheable("no input file");
  if (inputs.length > 1) return notCacheable("multiple input files", inputs.join(" "));
  if (inputs[0] === "-") return notCacheable("input from stdin");
  if (test) return notCacheable("crate type bin", "--test");
  if (crateTypes.length === 0) return notCacheable("crate type bin", "no --crate-type");
  for (const type of crateTypes) {
    if (LINKING_CRATE_TYPES.has(type)) return notCacheable(`crate type ${type}` as NotCacheableReason);
    if (!CACHEABLE_CRATE_TYPES.has(type)) return notCacheable("unsupported rustc option", `--crate-type ${type}`);
  }
  if (incremental) return notCacheable("incremental compilation (-C incremental)");
  if (unsupported) return unsupported;
  if (crateName === undefined) return notCacheable("unsupported rustc option", "no --crate-name");
  if (emit.length === 0) emit.push("link");
  keyArgs.push(...cfgs.sort().map((c) => `--cfg=${c}`), ...checkCfgs.sort().map((c) => `--check-cfg=${c}`));
  return {
    cacheable: true,
    crateName,
    input: inputs[0]!,
    crateTypes,
    emit,
    outDir,
    externs,
    staticLibs,
    nativeDirs,
    ...(target?.endsWith(".json") ? { targetSpec: target } : {}),
    ...(target !== undefined ? { target } : {}),
    ...(sysroot !== undefined ? { sysroot } : {}),
    keyArgs,
    expandedArgs: expanded,
  };
}

/** The file names rustc writes beside the link outputs `--print file-names` lists. */
export function impliedOutputs(parsed: RustCompile, extraFilename: string): string[] {
  const names: string[] = [];
  if (parsed.emit.includes("metadata")) names.push(`lib${parsed.crateName}${extraFilename}.rmeta`);
  if (parsed.emit.includes("dep-info")) names.push(`${parsed.crateName}${extraFilename}.d`);
  return names;
}

/**
 * The names `--print file-names` gives for the link outputs, where rustc's rule is certain:
 * crate type lib or rlib is always `lib<crate><extra>.rlib`; staticlib is `lib<crate><extra>.a`
 * on a Unix target. Undefined otherwise (rustc is asked).
 */
export function linkOutputNames(parsed: RustCompile, extra: string): string[] | undefined {
  const names = new Set<string>();
  for (const type of parsed.crateTypes) {
    if (type === "lib" || type === "rlib") names.add(`lib${parsed.crateName}${extra}.rlib`);
    else if (type === "staticlib" && unixTarget(parsed.target)) names.add(`lib${parsed.crateName}${extra}.a`);
    else return undefined;
  }
  return [...names];
}

/** Targets whose static libraries are `lib*.a`; no --target means this (Unix) host. */
function unixTarget(target: string | undefined): boolean {
  if (target === undefined) return process.platform !== "win32";
  return !target.endsWith(".json") && /-(linux|darwin|freebsd|netbsd|openbsd|dragonfly|illumos|solaris)(-|$)/.test(target);
}

/** `-C extra-filename=X` as given (the last one wins). */
export function extraFilename(parsed: RustCompile): string {
  let found = "";
  for (const arg of parsed.keyArgs) if (arg.startsWith("-Cextra-filename=")) found = arg.slice("-Cextra-filename=".length);
  return found;
}

/** rustc, rustc-1.63 (Debian), and clippy-driver, which cargo runs in rustc's place. */
export function isRustcName(name: string): boolean {
  return /^rustc(-\d+(\.\d+)*)?$/.test(name) || isClippyName(name);
}

export function isClippyName(name: string): boolean {
  return name === "clippy-driver";
}
