// The gcc/clang command-line parser: decides whether a call can be cached and, if so, what
// it reads, what it writes and which arguments belong in the cache key.
//
// Output-path rules below were checked against gcc 12.2 and clang 14.0 (see
// test/c-family-args.test.ts, which runs the real compilers):
// - object: the -o value (last one wins), else the source basename with its last suffix
//   replaced by ".o", in the cwd.
// - every side file (.d without -MF, .dwo, .gcno, .su) sits next to the object and is named
//   after it: the object path with the last suffix of its basename replaced (build/x.o ->
//   build/x.dwo, build/x.o.tmp -> build/x.o.dwo, build/x -> build/x.dwo).
// - .d: only for languages that run the preprocessor (not .s, not .i/.ii). -MF overrides
//   the path; -Wp,-MD,f writes f.
// - .dwo: gcc writes it whenever -gsplit-dwarf is in effect, whatever the -g level; clang
//   only with a debug level above -g0 (and not -gline-directives-only), except that for
//   assembler input clang writes it whenever -gsplit-dwarf is in effect.
// - .gcno and .su: never for assembler input. gcc's -fprofile-note=F moves the .gcno to F.

import { readFileSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { notCacheable, type CFamilyCompile, type Language, type OutputFile, type ParsedCall } from "../types.ts";

export interface ParseContext {
  /** The caller's working directory (for @file and relative paths). */
  cwd: string;
  /** Which driver family. */
  flavor: "gcc" | "clang";
  /** g++/clang++/c++: a .c source compiles as C++ (and .i as preprocessed C++). */
  driverIsCxx: boolean;
  env: Record<string, string | undefined>;
}

/** How deep @file may nest inside @file before we give up. */
const MAX_RESPONSE_FILE_DEPTH = 16;
/** Guards against a response file that expands to something absurd (or includes itself). */
const MAX_EXPANDED_ARGS = 200_000;

/** What happens to an option's tokens. */
type Role =
  | "both" // preprocessorArgs and keyArgs
  | "pp" // preprocessorArgs only: the effect shows in the preprocessed text
  | "define" // -D/-U: like "pp", but keyed too when macro debug info is on
  | "output" // -o
  | "lang" // -x
  | "dep" // -MF/-MT/-MQ
  | "refuse"; // too hard: writes extra files or reads hidden inputs

/** Options whose value may be the next argument. */
const SEPARATE: Record<string, Role> = {
  "-o": "output",
  "-x": "lang",
  "-I": "pp",
  "-isystem": "pp",
  "-iquote": "pp",
  "-idirafter": "pp",
  "-iprefix": "pp",
  "-iwithprefix": "pp",
  "-iwithprefixbefore": "pp",
  "-include": "pp",
  "-imacros": "pp",
  "-isystem-after": "pp",
  "-iwithsysroot": "pp",
  "-cxx-isystem": "pp",
  "-D": "define",
  "-U": "define",
  "-MF": "dep",
  "-MT": "dep",
  "-MQ": "dep",
  "-isysroot": "both",
  "--sysroot": "both",
  "-imultilib": "both",
  "-Xpreprocessor": "both",
  "-Xassembler": "both",
  "-Xlinker": "both",
  "-Xclang": "both",
  "-target": "both",
  "--target": "both",
  "-arch": "both",
  "-L": "both",
  "-l": "both",
  "-T": "both",
  "-u": "both",
  "-z": "both",
  "-A": "both",
  "-B": "both",
  "--param": "both",
  "-mllvm": "both",
  "-dumpbase": "both",
  "-dumpbase-ext": "both",
  "-dumpdir": "both",
  "-include-pch": "both",
  "-gcc-toolchain": "both",
  "--gcc-toolchain": "both",
  "-iframework": "both",
  "-F": "both",
  "-specs": "both",
  "-aux-info": "refuse",
  "--serialize-diagnostics": "refuse",
  "-MJ": "refuse",
  "-wrapper": "refuse",
  "-ivfsoverlay": "refuse",
  "-working-directory": "refuse",
  "--config": "refuse",
  "-Xanalyzer": "refuse",
};

/** Options that also accept their value glued on (`-Ifoo`), longest first so that
 * `-iwithprefixbefore` is not read as `-iwithprefix` + "before". */
const JOINED = [
  "-iwithprefixbefore",
  "-iwithprefix",
  "-idirafter",
  "-iframework",
  "-imultilib",
  "-isysroot",
  "-isystem",
  "-imacros",
  "-include",
  "-iprefix",
  "-iquote",
  "-MF",
  "-MT",
  "-MQ",
  "-MJ",
  "-o",
  "-x",
  "-I",
  "-D",
  "-U",
  "-L",
  "-l",
  "-T",
  "-u",
  "-A",
  "-B",
  "-F",
];

/** Options whose value may follow an "=". */
const EQUALS_JOINED = [
  "--sysroot",
  "--param",
  "--target",
  "--gcc-toolchain",
  "-specs",
  "--serialize-diagnostics",
  "--config",
  "-working-directory",
];

/** gcc's long spellings of options that change how we classify the call. */
const LONG_WITH_VALUE: Record<string, string> = {
  "--output": "-o",
  "--language": "-x",
  "--include-directory": "-I",
  "--include-directory-after": "-idirafter",
  "--include-prefix": "-iprefix",
  "--include-with-prefix": "-iwithprefix",
  "--include-with-prefix-after": "-iwithprefix",
  "--include-with-prefix-before": "-iwithprefixbefore",
  "--define-macro": "-D",
  "--undefine-macro": "-U",
  "--include": "-include",
  "--imacros": "-imacros",
  "--specs": "-specs",
  "--assert": "-A",
  "--library-directory": "-L",
  "--prefix": "-B",
  "--for-linker": "-Xlinker",
  "--force-link": "-u",
  "--dumpbase": "-dumpbase",
  "--dumpdir": "-dumpdir",
};

const LONG_FLAGS: Record<string, string> = {
  "--compile": "-c",
  "--preprocess": "-E",
  "--assemble": "-S",
  "--dependencies": "-M",
  "--user-dependencies": "-MM",
  "--write-dependencies": "-MD",
  "--write-user-dependencies": "-MMD",
  "--print-missing-file-dependencies": "-MG",
  "--save-temps": "-save-temps",
  "--debug": "-g",
  "--verbose": "-v",
  "--no-line-commands": "-P",
};

/** Flags that print something instead of compiling, or that we will not cache. */
const REFUSED_FLAGS = new Set([
  "-v",
  "-###",
  "--version",
  "--help",
  "--target-help",
  "-dumpversion",
  "-dumpfullversion",
  "-dumpmachine",
  "-dumpspecs",
  "--analyze",
  "-frepo",
  "-gmodules",
]);

/** -f options (with any suffix) that write extra files or load code or hidden inputs. */
const REFUSED_F_PREFIXES = [
  "-fdump-",
  "-fcallgraph-info",
  "-ftime-trace",
  "-fplugin",
  "-fpass-plugin",
  "-fmodules",
  "-fmodule-",
  "-fcxx-modules",
  "-fimplicit-module-maps",
  "-fbuiltin-module-map",
  "-fprebuilt-module-path",
  "-fprebuilt-implicit-modules",
  "-fsave-optimization-record",
  "-foptimization-record-file",
  "-fcompare-debug",
  "-fproc-stat-report",
];

/** -fFOO=FILE options whose file the compile reads: cacheable when FILE is one regular file. */
const FILE_INPUT_PREFIXES = [
  "-fprofile-use=",
  "-fprofile-instr-use=",
  "-fprofile-sample-use=",
  "-fauto-profile=",
  "-fprofile-remapping-file=",
  "-fprofile-list=",
  "-fsanitize-ignorelist=",
  "-fsanitize-blacklist=",
  "-fsanitize-system-ignorelist=",
  "-fbasic-block-sections=list=",
  "-fthinlto-index=",
  "-fsanitize-coverage-allowlist=",
  "-fsanitize-coverage-whitelist=",
  "-fsanitize-coverage-ignorelist=",
  "-fsanitize-coverage-blocklist=",
  "-fsanitize-coverage-blacklist=",
  "-fxray-always-instrument=",
  "-fxray-never-instrument=",
  "-fxray-attr-list=",
];

/** The same options without a file: the data is looked up by a name we cannot pin. */
const BARE_PROFILE_USE = new Set([
  "-fprofile-use",
  "-fprofile-instr-use",
  "-fprofile-sample-use",
  "-fauto-profile",
]);

/** Debug-level options that turn debug info on (and record the cwd). */
const DEBUG_ON = new RegExp(
  "^-g(|[1-3]|gdb[1-3]?|dwarf(-\\d+|32|64)?|stabs\\+?[1-3]?|xcoff\\+?[1-3]?|vms[1-3]?|btf|ctf[12]?" +
    "|line-tables-only|mlt|lldb|sce|dbx|full|used)$",
);
const DEBUG_OFF = /^-g(0|gdb0|stabs\+?0|xcoff\+?0|vms0)$/;
/** Levels that carry macro definitions into the debug info. */
const DEBUG_MACRO = /^-g(3|gdb3|stabs\+?3|xcoff\+?3|vms3)$/;

/** -Xclang arguments we know only change diagnostics or codegen in ways keyArgs captures. */
const XCLANG_ALLOWED = new Set([
  "-fcolor-diagnostics",
  "-fno-color-diagnostics",
  "-fno-pch-timestamp",
  "-fno-validate-pch",
  "-disable-O0-optnone",
  "-disable-llvm-passes",
  "-disable-llvm-optzns",
  "-fexperimental-new-pass-manager",
  "-fno-experimental-new-pass-manager",
]);
/** Warning switches and the recorded compilation directory (the cwd is keyed anyway). */
const XCLANG_ALLOWED_PATTERN = /^(-W(no-)?[A-Za-z][\w=+-]*|-f(debug|coverage|file)-compilation-dir=.*)$/;

const BY_EXTENSION = new Map<string, Language>(Object.entries({
  c: "c",
  i: "cpp-output",
  cc: "c++",
  cp: "c++",
  cxx: "c++",
  cpp: "c++",
  CPP: "c++",
  "c++": "c++",
  C: "c++",
  ii: "c++-cpp-output",
  m: "objective-c",
  mi: "objective-c-cpp-output",
  mm: "objective-c++",
  M: "objective-c++",
  mii: "objective-c++-cpp-output",
  s: "assembler",
  S: "assembler-with-cpp",
  sx: "assembler-with-cpp",
} satisfies Record<string, Language>));

const BY_X_VALUE = new Map<string, Language>(Object.entries({
  c: "c",
  "c++": "c++",
  "objective-c": "objective-c",
  "objective-c++": "objective-c++",
  "cpp-output": "cpp-output",
  "c++-cpp-output": "c++-cpp-output",
  "objective-c-cpp-output": "objective-c-cpp-output",
  "objc-cpp-output": "objective-c-cpp-output",
  "objective-c++-cpp-output": "objective-c++-cpp-output",
  "objc++-cpp-output": "objective-c++-cpp-output",
  assembler: "assembler",
  "assembler-with-cpp": "assembler-with-cpp",
} satisfies Record<string, Language>));

/** Languages whose compile runs the preprocessor (and so can write a .d). */
const PREPROCESSED: ReadonlySet<Language> = new Set<Language>([
  "c",
  "c++",
  "objective-c",
  "objective-c++",
  "assembler-with-cpp",
]);

/** Whether a compile of this language runs the preprocessor (.s, .i, .ii do not). */
export function runsPreprocessor(language: Language): boolean {
  return PREPROCESSED.has(language);
}


// ---------------------------------------------------------------------------------------
// Response files

type Expansion = { ok: true; args: string[] } | { ok: false; detail: string };

/** Expands every `@file` argument in place, recursively, as gcc's libiberty and clang do. */
export function expandResponseFiles(args: string[], cwd: string): Expansion {
  const out: string[] = [];
  const failure = expandInto(args, cwd, 0, out);
  return failure === undefined ? { ok: true, args: out } : { ok: false, detail: failure };
}

function expandInto(args: string[], cwd: string, depth: number, out: string[]): string | undefined {
  for (const arg of args) {
    if (!arg.startsWith("@") || arg.length === 1) {
      out.push(arg);
      if (out.length > MAX_EXPANDED_ARGS) return `${arg}: more than ${MAX_EXPANDED_ARGS} arguments`;
      continue;
    }
    if (depth >= MAX_RESPONSE_FILE_DEPTH) return `${arg}: nested more than ${MAX_RESPONSE_FILE_DEPTH} deep`;
    let text: string;
    try {
      text = readFileSync(resolve(cwd, arg.slice(1)), "utf8");
    } catch {
      return arg;
    }
    const failure = expandInto(splitResponseFile(text), cwd, depth + 1, out);
    if (failure !== undefined) return failure;
  }
  return undefined;
}

/**
 * gcc's (libiberty buildargv) rules, which clang's GNU tokenizer shares: whitespace
 * separates arguments; single and double quotes group; a backslash makes the next character
 * literal, inside quotes too.
 */
export function splitResponseFile(text: string): string[] {
  const out: string[] = [];
  let current = "";
  let inArg = false;
  let single = false;
  let double = false;
  let escaped = false;
  for (const ch of text) {
    if (!single && !double && !escaped && " \t\n\v\f\r".includes(ch)) {
      if (inArg) out.push(current);
      current = "";
      inArg = false;
      continue;
    }
    inArg = true;
    if (escaped) {
      escaped = false;
      current += ch;
    } else if (ch === "\\") {
      escaped = true;
    } else if (single) {
      if (ch === "'") single = false;
      else current += ch;
    } else if (double) {
      if (ch === '"') double = false;
      else current += ch;
    } else if (ch === "'") {
      single = true;
    } else if (ch === '"') {
      double = true;
    } else {
      current += ch;
    }
  }
  if (inArg) out.push(current);
  return out;
}

// ---------------------------------------------------------------------------------------
// Scanning

interface Input {
  path: string;
  /** Position in the expanded arguments. */
  index: number;
  /** The -x value in force for this input, if any. */
  x: string | undefined;
}

type DepTarget = ["MT" | "MQ", string];

/** A key entry: -D/-U entries are dropped again unless macro debug info is on. */
interface KeyEntry {
  tokens: string[];
  define: boolean;
}

class Scan {
  readonly inputs: Input[] = [];
  readonly key: KeyEntry[] = [];
  readonly pp: string[] = [];
  readonly extraInputs: string[] = [];
  /** -x options: where they were and what they said. */
  readonly xOptions: { index: number; value: string }[] = [];
  currentX: string | undefined;

  compile = false;
  preprocessOnly = false;
  assemblyOnly = false;
  syntaxOnly = false;
  depsOnly: string | undefined;
  saveTemps: string | undefined;
  unsupported: string | undefined;

  output: string | undefined;
  emitLlvm = false;
  /** -flto in effect: code generation is left to the link. */
  lto = false;

  /** Driver-level -MD/-MMD, last one wins. */
  driverDep: "-MD" | "-MMD" | undefined;
  /** cc1-level -MD/-MMD FILE via -Wp, or -Xpreprocessor. */
  ppDep: { kind: "-MD" | "-MMD"; file: string } | undefined;
  depFile: string | undefined;
  readonly depTargets: DepTarget[] = [];
  /** -MP, -MG, -MV given as driver options, in order. */
  readonly depShape: string[] = [];
  /** Dependency options as written, for the key when no dependency file is written. */
  readonly strayDepTokens: string[] = [];

  debugLevel: "off" | "on" | "directives" = "off";
  debugToggled = false;
  assemblerDebug = false;
  macroDebug = false;
  splitDwarf = false;
  testCoverage = false;
  profileArcs = false;
  coverageMapping = false;
  profileNote: string | undefined;
  stackUsage = false;
  recordCommandLineF = false;
  recordCommandLineG = false;
  archCount = 0;
  dumpOption: string | undefined;

  constructor(
    readonly argv: string[],
    readonly ctx: ParseContext,
  ) {}

  refuse(detail: string): void {
    this.unsupported ??= detail;
  }

  both(...tokens: string[]): void {
    this.pp.push(...tokens);
    this.key.push({ tokens, define: false });
  }

  keyOnly(...tokens: string[]): void {
    this.key.push({ tokens, define: false });
  }

  run(): void {
    const argv = this.argv;
    for (let i = 0; i < argv.length; i++) {
      const arg = argv[i]!;
      if (arg === "-" || !arg.startsWith("-")) {
        this.inputs.push({ path: arg, index: i, x: this.currentX });
        continue;
      }
      const withValue = matchValueOption(arg);
      if (withValue !== undefined) {
        const tokens = [arg];
        let value = withValue.value;
        if (value === undefined) {
          const next = argv[i + 1];
          if (next === undefined) {
            this.refuse(`${arg} (missing argument)`);
            return;
          }
          value = next;
          tokens.push(next);
          i++;
        }
        if (withValue.name === "-Xpreprocessor") {
          i = this.xpreprocessor(value, tokens, i);
        } else {
          this.valueOption(withValue.name, value, tokens, i);
        }
        continue;
      }
      this.flag(arg, LONG_FLAGS[arg] ?? arg);
    }
  }

  private valueOption(name: string, value: string, tokens: string[], index: number): void {
    const role = SEPARATE[name] ?? "both";
    switch (role) {
      case "output":
        this.output = value;
        return;
      case "lang":
        this.xOptions.push({ index, value });
        this.currentX = value === "none" ? undefined : value;
        this.keyOnly("-x", value);
        return;
      case "pp":
        this.pp.push(...tokens);
        if (name === "-include") this.implicitPch(value);
        return;
      case "define":
        this.pp.push(...tokens);
        this.key.push({ tokens, define: true });
        return;
      case "dep":
        this.depOption(name, value);
        this.strayDepTokens.push(...tokens);
        return;
      case "refuse":
        this.refuse(tokens.join(" "));
        return;
      case "both":
        break;
    }
    switch (name) {
      case "-Xassembler":
        this.assemblerItems([value], tokens.join(" "));
        break;
      case "-Xclang":
        if (!XCLANG_ALLOWED.has(value) && !XCLANG_ALLOWED_PATTERN.test(value)) this.refuse(tokens.join(" "));
        break;
      case "-arch":
        this.archCount++;
        if (this.archCount > 1) this.refuse(tokens.join(" "));
        break;
      case "-dumpbase":
      case "-dumpbase-ext":
      case "-dumpdir":
        // gcc renames side files after these; clang 14 does not take them at all.
        if (this.ctx.flavor === "clang") this.refuse(tokens.join(" "));
        this.dumpOption ??= tokens.join(" ");
        break;
      case "-include-pch":
        this.fileInput(value, tokens.join(" "));
        break;
      case "-specs":
        this.fileInput(value, tokens.join(" "));
        break;
    }
    this.both(...tokens);
  }

  /** -Xpreprocessor VALUE; a dependency option takes its file from the next -Xpreprocessor. */
  private xpreprocessor(value: string, tokens: string[], i: number): number {
    if (!value.startsWith("-M")) {
      this.both(...tokens);
      return i;
    }
    if (this.ctx.flavor === "clang") {
      // clang hands these to cc1, which rejects them.
      this.refuse(tokens.join(" "));
      return i;
    }
    const needsValue = value === "-MD" || value === "-MMD" || value === "-MF" || value === "-MT" || value === "-MQ";
    if (!needsValue) {
      this.ppItems([value], tokens.join(" "));
      return i;
    }
    const next = this.argv[i + 1];
    const nextValue = this.argv[i + 2];
    if (next !== "-Xpreprocessor" || nextValue === undefined) {
      this.refuse(tokens.join(" "));
      return i;
    }
    this.ppItems([value, nextValue], [...tokens, next, nextValue].join(" "));
    return i + 2;
  }

  private flag(original: string, arg: string): void {
    switch (arg) {
      case "-c":
        this.compile = true;
        return;
      case "-E":
        this.preprocessOnly = true;
        return;
      case "-S":
        this.assemblyOnly = true;
        return;
      case "-fsyntax-only":
        this.syntaxOnly = true;
        this.both(original);
        return;
      case "-M":
      case "-MM":
        this.depsOnly ??= original;
        return;
      case "-MD":
      case "-MMD":
        this.driverDep = arg;
        this.keyOnly(arg);
        return;
      case "-MP":
        this.depShape.push(arg);
        this.keyOnly(arg);
        return;
      case "-MG":
      case "-MV":
        // They shape the .d; the -E run must not see them (gcc rejects -MG there).
        this.depShape.push(arg);
        this.keyOnly(arg);
        return;
      case "-P":
        // Only matters for -E, where dropping line markers would hide the file names that
        // debug info and diagnostics record: keep it out of the preprocessing run.
        this.keyOnly(original);
        return;
      case "-emit-llvm":
        this.emitLlvm = true;
        this.both(original);
        return;
      case "--coverage":
        this.testCoverage = true;
        this.profileArcs = true;
        this.both(original);
        return;
    }
    if (
      REFUSED_FLAGS.has(arg) ||
      arg.startsWith("-print-") ||
      arg.startsWith("--print-") ||
      arg.startsWith("-save-stats") ||
      arg.startsWith("--save-stats")
    ) {
      this.refuse(original);
      return;
    }
    if (arg.startsWith("-M")) {
      this.refuse(original);
      return;
    }
    if (arg === "-save-temps" || arg.startsWith("-save-temps=")) {
      this.saveTemps ??= original;
      return;
    }
    if (arg.startsWith("-Wp,")) {
      this.ppItems(arg.slice(4).split(","), original, true);
      return;
    }
    if (arg.startsWith("-Wa,")) this.assemblerItems(arg.slice(4).split(","), original);
    else if (arg.startsWith("-g")) this.debugFlag(arg);
    else if (arg.startsWith("-f")) this.fFlag(arg);
    else if (/^-d[A-Za-z]{1,5}$/.test(arg) && arg !== "-dylib") this.refuse(original); // -dA, -dD, -dM...: dumps
    this.both(original);
  }

  private depOption(name: string, value: string): void {
    if (name === "-MF") this.depFile = value;
    else this.depTargets.push([name === "-MT" ? "MT" : "MQ", value]);
  }

  /**
   * Preprocessor arguments from -Wp,A,B or -Xpreprocessor. Dependency options are taken out
   * (cc1 spells them `-MD FILE`); the rest stays, in preprocessorArgs and keyArgs.
   */
  private ppItems(items: string[], original: string, fromWp = false): void {
    const rest: string[] = [];
    for (let j = 0; j < items.length; j++) {
      const item = items[j]!;
      if (!item.startsWith("-M")) {
        rest.push(item);
        continue;
      }
      if (this.ctx.flavor === "clang" && (!fromWp || items.length !== 2 || (item !== "-MD" && item !== "-MMD"))) {
        // clang's driver understands exactly -Wp,-MD,FILE and -Wp,-MMD,FILE; anything else
        // with a dependency option goes elsewhere (-Wp,-MD,f,-DX writes the default .d).
        this.refuse(original);
        return;
      }
      if (item === "-M" || item === "-MM") {
        this.depsOnly ??= original;
        return;
      }
      if (item === "-MP" || item === "-MG" || item === "-MV") {
        this.keyOnly(item);
        continue;
      }
      const joined = /^-M[FTQ]./.test(item) ? item.slice(3) : undefined;
      const name = joined === undefined ? item : item.slice(0, 3);
      if (name !== "-MD" && name !== "-MMD" && name !== "-MF" && name !== "-MT" && name !== "-MQ") {
        this.refuse(original);
        return;
      }
      const value = joined ?? items[++j];
      if (value === undefined || value === "") {
        this.refuse(original);
        return;
      }
      if (name === "-MD" || name === "-MMD") {
        if (this.ppDep !== undefined) this.refuse(original);
        this.ppDep = { kind: name, file: value };
        this.keyOnly(`-Wp,${name}`);
      } else {
        this.depOption(name, value);
        this.strayDepTokens.push(original);
      }
    }
    if (rest.length === 0) return;
    if (fromWp) this.both(`-Wp,${rest.join(",")}`);
    else for (const item of rest) this.both("-Xpreprocessor", item);
  }

  /** -Wa,... and -Xassembler: refuse listings and dependency files written by the assembler. */
  private assemblerItems(items: string[], original: string): void {
    for (const item of items) {
      if ((item.startsWith("-a") && item.includes("=")) || item.startsWith("--MD") || item === "-o") {
        this.refuse(original);
      }
      if (/^(-g$|--gen-debug|--gdwarf|-gdwarf|--gstabs|--gcodeview)/.test(item)) this.assemblerDebug = true;
    }
  }

  private debugFlag(arg: string): void {
    if (DEBUG_ON.test(arg)) {
      this.debugLevel = "on";
      if (DEBUG_MACRO.test(arg)) this.macroDebug = true;
    } else if (DEBUG_OFF.test(arg)) {
      this.debugLevel = "off";
    } else if (arg === "-gline-directives-only") {
      this.debugLevel = "directives";
    } else if (arg === "-gtoggle") {
      this.debugToggled = true;
    } else if (arg === "-gsplit-dwarf" || arg === "-gsplit-dwarf=split") {
      this.splitDwarf = true;
    } else if (arg === "-gno-split-dwarf" || arg === "-gsplit-dwarf=single") {
      this.splitDwarf = false;
    } else if (arg === "-grecord-command-line" || arg === "-grecord-gcc-switches") {
      this.recordCommandLineG = true;
    } else if (arg === "-gno-record-command-line" || arg === "-gno-record-gcc-switches") {
      this.recordCommandLineG = false;
    }
  }

  private fFlag(arg: string): void {
    if (REFUSED_F_PREFIXES.some((p) => arg.startsWith(p))) {
      this.refuse(arg);
      return;
    }
    if (arg.startsWith("-fopt-info") && arg.includes("=")) {
      this.refuse(arg); // -fopt-info...=FILE writes a file
      return;
    }
    if (BARE_PROFILE_USE.has(arg)) {
      this.refuse(arg);
      return;
    }
    const fileInput = FILE_INPUT_PREFIXES.find((p) => arg.startsWith(p));
    if (fileInput !== undefined) {
      this.fileInput(arg.slice(fileInput.length), arg);
      return;
    }
    if (arg === "-flto" || arg.startsWith("-flto=")) this.lto = true;
    else if (arg === "-fno-lto") this.lto = false;
    else if (arg === "-fstack-usage") this.stackUsage = true;
    else if (arg === "-fno-stack-usage") this.stackUsage = false;
    else if (arg === "-ftest-coverage") this.testCoverage = true;
    else if (arg === "-fno-test-coverage") this.testCoverage = false;
    else if (
      arg === "-fprofile-arcs" ||
      arg === "-fprofile-generate" ||
      arg.startsWith("-fprofile-generate=") ||
      arg === "-fcs-profile-generate" ||
      arg.startsWith("-fcs-profile-generate=") ||
      arg === "-fprofile-instr-generate" ||
      arg.startsWith("-fprofile-instr-generate=")
    ) {
      this.profileArcs = true;
    } else if (arg === "-fcoverage-mapping") this.coverageMapping = true;
    else if (arg.startsWith("-fprofile-note=") && this.ctx.flavor === "gcc") this.profileNote = arg.slice(15);
    else if (arg === "-frecord-command-line" || arg === "-frecord-gcc-switches") this.recordCommandLineF = true;
    else if (arg === "-fno-record-command-line" || arg === "-fno-record-gcc-switches") this.recordCommandLineF = false;
    else if (arg === "-fdebug-macro") this.macroDebug = true;
  }

  /** A file the compile reads that the preprocessed text does not show. */
  private fileInput(path: string, original: string): void {
    if (path !== "" && isRegularFile(resolve(this.ctx.cwd, path))) this.extraInputs.push(path);
    else this.refuse(original);
  }

  /**
   * `-include foo.h` silently uses foo.h.gch (and, for clang, foo.h.pch) when it exists;
   * that file then matters as much as the header text.
   */
  private implicitPch(header: string): void {
    const suffixes = this.ctx.flavor === "clang" ? [".pch", ".gch"] : [".gch"];
    for (const suffix of suffixes) {
      const candidate = header + suffix;
      let stat;
      try {
        stat = statSync(resolve(this.ctx.cwd, candidate));
      } catch {
        continue;
      }
      if (stat.isFile()) this.extraInputs.push(candidate);
      else this.refuse(`-include ${header} (precompiled header ${candidate} is not one file)`);
      return;
    }
  }
}

function matchValueOption(arg: string): { name: string; value: string | undefined } | undefined {
  if (arg.startsWith("--")) {
    const eq = arg.indexOf("=");
    const long = eq < 0 ? arg : arg.slice(0, eq);
    const short = LONG_WITH_VALUE[long];
    if (short !== undefined) return { name: short, value: eq < 0 ? undefined : arg.slice(eq + 1) };
  }
  if (SEPARATE[arg] !== undefined) return { name: arg, value: undefined };
  for (const name of EQUALS_JOINED) {
    if (arg.startsWith(name + "=")) return { name, value: arg.slice(name.length + 1) };
  }
  // Not -u/-o with a glued value: -undef, clang's -objcmt-* migrator flags.
  if (arg === "-undef" || arg.startsWith("-objcmt") || arg.startsWith("-object")) return undefined;
  for (const name of JOINED) {
    if (arg.startsWith(name)) return { name, value: arg.slice(name.length) };
  }
  return undefined;
}

function isRegularFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------
// Paths

function splitPath(path: string): { dir: string; base: string } {
  const slash = path.lastIndexOf("/");
  return { dir: path.slice(0, slash + 1), base: path.slice(slash + 1) };
}

function stripSuffix(base: string): string {
  const dot = base.lastIndexOf(".");
  return dot > 0 ? base.slice(0, dot) : base;
}

/** `build/x.o` + ".dwo" -> `build/x.dwo`: the name gcc and clang give side files. */
function sidePath(object: string, suffix: string): string {
  const { dir, base } = splitPath(object);
  return dir + stripSuffix(base) + suffix;
}

function languageOf(input: Input, ctx: ParseContext): Language | undefined {
  if (input.x !== undefined) return BY_X_VALUE.get(input.x);
  const { base } = splitPath(input.path);
  const dot = base.lastIndexOf(".");
  if (dot < 0) return undefined;
  const language = BY_EXTENSION.get(base.slice(dot + 1));
  if (ctx.driverIsCxx && language === "c") return "c++";
  if (ctx.driverIsCxx && language === "cpp-output") return "c++-cpp-output";
  return language;
}

// ---------------------------------------------------------------------------------------

/** Parses a gcc/clang command line (without the compiler name) and decides cacheability. */
export function parseCFamilyArgs(args: string[], ctx: ParseContext): ParsedCall {
  const expansion = expandResponseFiles(args, ctx.cwd);
  if (!expansion.ok) return notCacheable("unreadable response file", expansion.detail);
  const argv = expansion.args;
  const s = new Scan(argv, ctx);
  s.run();

  if (s.inputs.length === 0) return notCacheable("no input file");
  if (s.preprocessOnly) return notCacheable("preprocessing only (-E)");
  if (s.depsOnly !== undefined) return notCacheable("dependencies only (-M/-MM)", s.depsOnly);
  if (s.assemblyOnly) return notCacheable("assembly output (-S)");
  if (s.syntaxOnly) return notCacheable("syntax check only (-fsyntax-only)");
  if (!s.compile) return notCacheable("linking");
  if (s.saveTemps !== undefined) return notCacheable("-save-temps", s.saveTemps);
  if (s.unsupported !== undefined) return notCacheable("unsupported compiler option", s.unsupported);
  for (const name of ["DEPENDENCIES_OUTPUT", "SUNPRO_DEPENDENCIES"]) {
    if (ctx.env[name] !== undefined) return notCacheable("unsupported compiler option", `${name} is set`);
  }
  if (s.inputs.length > 1) {
    return notCacheable("multiple input files", s.inputs.map((input) => input.path).join(" "));
  }
  const input = s.inputs[0]!;
  if (input.path === "-") return notCacheable("input from stdin");
  const language = languageOf(input, ctx);
  if (language === undefined) {
    return notCacheable("unknown source language", input.x === undefined ? input.path : `-x ${input.x}`);
  }

  // The object and the files named after it.
  if (s.output === undefined && s.emitLlvm) return notCacheable("unsupported compiler option", "-emit-llvm without -o");
  const object = s.output ?? stripSuffix(splitPath(input.path).base) + ".o";
  if (object === "-" || object.startsWith("/dev/")) return notCacheable("unsupported compiler option", `-o ${object}`);
  const outputs: OutputFile[] = [{ kind: "object", path: object }];
  const isAssembler = language === "assembler" || language === "assembler-with-cpp";

  let depPath: string | undefined;
  if (PREPROCESSED.has(language)) {
    if (s.ppDep !== undefined) {
      // Both at once: gcc keeps only one of them, clang both; not worth predicting.
      const other = s.driverDep ?? (s.depFile !== undefined ? "-MF" : undefined);
      if (other !== undefined) return notCacheable("unsupported compiler option", `${other} with -Wp,${s.ppDep.kind}`);
      depPath = s.ppDep.file;
    } else if (s.driverDep !== undefined) {
      depPath = s.depFile ?? sidePath(object, ".d");
    }
  }
  if (depPath === "-") return notCacheable("unsupported compiler option", "dependency output to stdout");
  if (depPath !== undefined) outputs.push({ kind: "dep", path: depPath });

  // No machine code is generated now for LTO (or clang's bitcode) objects, so no stack
  // usage; clang then writes no .dwo either, while gcc still writes a (nearly empty) one.
  const bitcode = s.lto || (ctx.flavor === "clang" && s.emitLlvm);
  const dwo =
    s.splitDwarf &&
    (ctx.flavor === "gcc" || isAssembler || (s.debugLevel === "on" && !bitcode));
  if (dwo) outputs.push({ kind: "dwo", path: sidePath(object, ".dwo") });
  if (s.testCoverage && !isAssembler) outputs.push({ kind: "gcno", path: s.profileNote ?? sidePath(object, ".gcno") });
  if (s.stackUsage && !isAssembler && !bitcode) outputs.push({ kind: "su", path: sidePath(object, ".su") });
  if (s.dumpOption !== undefined && outputs.some((o) => o.kind === "dwo" || o.kind === "gcno" || o.kind === "su")) {
    return notCacheable("unsupported compiler option", s.dumpOption);
  }

  const debugInfo = s.debugLevel !== "off" || s.debugToggled || s.assemblerDebug;

  const keyArgs: string[] = [];
  for (const entry of s.key) {
    if (!entry.define || s.macroDebug) keyArgs.push(...entry.tokens);
  }
  // Without a dependency file, -MF/-MT/-MQ still change diagnostics (gcc rejects them,
  // clang warns that they are unused).
  if (depPath === undefined) keyArgs.push(...s.strayDepTokens);

  const keyExtras: string[] = [];
  // The .d starts with its targets: this call's -MT/-MQ, or the object path quoted as by -MQ.
  const targets: DepTarget[] = s.depTargets.length > 0 ? s.depTargets : [["MQ", object]];
  const regenerable = s.ppDep === undefined && s.driverDep !== undefined && s.depShape.every((f) => f === "-MP");
  if (depPath !== undefined && !regenerable) {
    keyExtras.push(
      s.depTargets.length > 0 ? `dep-targets=${JSON.stringify(s.depTargets)}` : `dep-target-object=${object}`,
    );
  }
  const profiling = s.testCoverage || s.profileArcs;
  if (dwo || profiling) keyExtras.push(`object=${object}`);
  if (debugInfo || profiling || s.coverageMapping) keyExtras.push(`cwd=${ctx.cwd}`);
  const xAfterSource = s.xOptions.filter((x) => x.index > input.index).map((x) => x.value);
  if (xAfterSource.length > 0) keyExtras.push(`x-after-source=${JSON.stringify(xAfterSource)}`);
  if (ctx.flavor === "clang" && (s.recordCommandLineF || (s.recordCommandLineG && debugInfo))) {
    // clang records the whole command line, -I/-D/-o and the source included.
    keyExtras.push(`command-line=${JSON.stringify(argv)}`);
  }

  const preprocessorArgs = [...s.pp];
  // Macro debug info records every #define, used or not; -dD puts them in the text we hash.
  if (s.macroDebug) preprocessorArgs.push("-dD");
  if (input.x !== undefined) preprocessorArgs.push("-x", input.x);

  const result: CFamilyCompile = {
    cacheable: true,
    source: input.path,
    language,
    outputs,
    preprocessorArgs,
    keyArgs,
    keyExtras,
    extraInputs: s.extraInputs,
    debugInfo,
    expandedArgs: argv,
  };
  if (depPath !== undefined) {
    result.dependencies = (s.ppDep?.kind ?? s.driverDep) === "-MMD" ? "user" : "all";
    if (regenerable) {
      result.depTargets = {
        targets: JSON.stringify(targets),
        regenerate: [s.driverDep!, ...s.depShape, ...targets.flatMap(([kind, value]) => [`-${kind}`, value])],
      };
    }
  }
  return result;
}
