// What a compiler module tells the daemon about one command line.

/** Why a call is run unchanged instead of cached. Shown in stats, so keep the wording stable. */
export type NotCacheableReason =
  | "linking"
  | "preprocessing only (-E)"
  | "dependencies only (-M/-MM)"
  | "assembly output (-S)"
  | "syntax check only (-fsyntax-only)"
  | "no input file"
  | "multiple input files"
  | "input from stdin"
  | "unknown source language"
  | "-save-temps"
  | "unsupported compiler option"
  | "unreadable response file"
  | "unknown compiler"
  | "cache disabled (KILN_NO_CACHE)"
  // rustc
  | "crate type bin"
  | "crate type dylib"
  | "crate type cdylib"
  | "crate type proc-macro"
  | "incremental compilation (-C incremental)"
  | "unsupported --emit"
  | "rustc query (--print, -vV)"
  | "unsupported rustc option";

export interface NotCacheable {
  cacheable: false;
  reason: NotCacheableReason;
  /** The offending argument or a short explanation, for the log. */
  detail?: string;
}

export function notCacheable(reason: NotCacheableReason, detail?: string): NotCacheable {
  return detail === undefined ? { cacheable: false, reason } : { cacheable: false, reason, detail };
}

export type OutputKind = "object" | "dep" | "dwo" | "gcno" | "su" | "ci";

export interface OutputFile {
  kind: OutputKind;
  /** As the compiler will write it: relative to the request's cwd unless absolute. */
  path: string;
}

/** gcc's `-x` names for the languages Kiln caches. */
export type Language =
  | "c"
  | "c++"
  | "objective-c"
  | "objective-c++"
  | "cpp-output"
  | "c++-cpp-output"
  | "objective-c-cpp-output"
  | "objective-c++-cpp-output"
  | "assembler"
  | "assembler-with-cpp";

/** A cacheable gcc/clang call: one source compiled with -c. */
export interface CFamilyCompile {
  cacheable: true;
  /** The source file as given on the command line. */
  source: string;
  language: Language;
  /** Every file the compile writes, the object first. */
  outputs: OutputFile[];
  /**
   * Arguments for the preprocessing run (`compiler <preprocessorArgs> -E <source>`): the
   * original arguments (response files expanded) minus -c, -o and dependency-file options,
   * keeping everything that changes what the preprocessor emits.
   */
  preprocessorArgs: string[];
  /**
   * Arguments that change the compile's outputs, stderr or exit code beyond what the
   * preprocessed text already shows: no -I/-D/-U/-include (their effect is in the text),
   * no output paths, no source path. Order preserved.
   */
  keyArgs: string[];
  /**
   * Extra strings the key must include because they end up inside an output: the dep-file
   * targets (-MT/-MQ values, or the object path when the compiler derives the target),
   * the object path when -gsplit-dwarf or coverage embeds it, the cwd when debug info or
   * coverage records it.
   */
  keyExtras: string[];
  /** Files outside the preprocessed text whose bytes change the output (-fprofile-use data). */
  extraInputs: string[];
  /** True when debug info is requested (any -g except -g0). */
  debugInfo: boolean;
  /**
   * What the dependency file lists, when one is written: "all" included files (-MD,
   * -Wp,-MD) or "user" ones only (-MMD: system headers left out).
   */
  dependencies?: "all" | "user";
  /**
   * Set when the dependency file's targets can be left out of the key: `targets` names this
   * call's targets, and `regenerate` are the options that make the compiler write the same
   * file with them in a preprocessing-only run, for a hit stored with other targets.
   */
  depTargets?: { targets: string; regenerate: string[] };
  /** The arguments after response-file expansion (for logging and later issues). */
  expandedArgs: string[];
}

export type ParsedCall = CFamilyCompile | NotCacheable;
