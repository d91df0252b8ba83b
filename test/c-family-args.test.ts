// The gcc/clang command-line parser: classification and key shape (unit), and the output
// paths it predicts checked against what the real gcc 12 and clang 14 write (integration).

import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { parseCFamilyArgs, splitResponseFile, type ParseContext } from "../src/compilers/c-family/args.ts";
import type { CFamilyCompile, ParsedCall } from "../src/compilers/types.ts";

const scratchDirs: string[] = [];
function scratch(): string {
  const dir = mkdtempSync(join(tmpdir(), "kiln-args-"));
  scratchDirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of scratchDirs) rmSync(dir, { recursive: true, force: true });
});

const CWD = "/work/proj";
function ctx(over: Partial<ParseContext> = {}): ParseContext {
  return { cwd: CWD, flavor: "gcc", driverIsCxx: false, env: {}, ...over };
}

function parse(args: string[], over: Partial<ParseContext> = {}): ParsedCall {
  return parseCFamilyArgs(args, ctx(over));
}

function compile(args: string[], over: Partial<ParseContext> = {}): CFamilyCompile {
  const r = parse(args, over);
  if (!r.cacheable) throw new Error(`not cacheable: ${r.reason} (${r.detail ?? ""}) for ${args.join(" ")}`);
  return r;
}

function outputsOf(r: CFamilyCompile): string[] {
  return r.outputs.map((o) => `${o.kind}:${o.path}`);
}

describe("classification", () => {
  const cases: [string[], string, string?][] = [
    [["a.c", "-o", "a"], "linking"],
    [["-E", "a.c"], "preprocessing only (-E)"],
    [["-c", "-E", "a.c"], "preprocessing only (-E)"],
    [["-c", "-M", "a.c"], "dependencies only (-M/-MM)"],
    [["-c", "-MM", "a.c"], "dependencies only (-M/-MM)"],
    [["-c", "-M", "-MD", "a.c"], "dependencies only (-M/-MM)"],
    [["-c", "-Wp,-M", "a.c"], "dependencies only (-M/-MM)"],
    [["-c", "-S", "a.c"], "assembly output (-S)"],
    [["-S", "a.c"], "assembly output (-S)"],
    [["-c", "-fsyntax-only", "a.c"], "syntax check only (-fsyntax-only)"],
    [["-c"], "no input file"],
    [["-c", "-O2", "-o", "a.o"], "no input file"],
    [["--version"], "no input file"],
    [["-c", "a.c", "b.c"], "multiple input files"],
    [["-c", "a.c", "b.o"], "multiple input files"],
    [["-c", "a.c", "libx.a"], "multiple input files"],
    [["-c", "-x", "c", "-"], "input from stdin"],
    [["-c", "a.h"], "unknown source language"],
    [["-c", "a.txt"], "unknown source language"],
    [["-c", "a"], "unknown source language"],
    [["-c", "-x", "c-header", "a.h"], "unknown source language"],
    [["-c", "-x", "cuda", "a.cu"], "unknown source language"],
    [["-c", "-save-temps", "a.c"], "-save-temps"],
    [["-c", "-save-temps=obj", "a.c"], "-save-temps"],
    [["-c", "@/nonexistent/kiln.rsp", "a.c"], "unreadable response file", "@/nonexistent/kiln.rsp"],
    [["-c", "-fdump-tree-all", "a.c"], "unsupported compiler option", "-fdump-tree-all"],
    [["-c", "-fdump-rtl-expand", "a.c"], "unsupported compiler option", "-fdump-rtl-expand"],
    [["-c", "-aux-info", "a.info", "a.c"], "unsupported compiler option", "-aux-info a.info"],
    [["-c", "-MJ", "cc.json", "a.c"], "unsupported compiler option", "-MJ cc.json"],
    [["-c", "-MJcc.json", "a.c"], "unsupported compiler option", "-MJcc.json"],
    [["-c", "--serialize-diagnostics", "a.dia", "a.c"], "unsupported compiler option", "--serialize-diagnostics a.dia"],
    [["-c", "-ftime-trace", "a.c"], "unsupported compiler option", "-ftime-trace"],
    [["-c", "-fmodules", "a.c"], "unsupported compiler option", "-fmodules"],
    [["-c", "-fcxx-modules", "a.cc"], "unsupported compiler option", "-fcxx-modules"],
    [["-c", "-fmodules-ts", "a.cc"], "unsupported compiler option", "-fmodules-ts"],
    [["-c", "-fmodule-map-file=m.map", "a.c"], "unsupported compiler option", "-fmodule-map-file=m.map"],
    [["-c", "-fplugin=foo.so", "a.c"], "unsupported compiler option", "-fplugin=foo.so"],
    [["-c", "-fplugin-arg-foo-bar=1", "a.c"], "unsupported compiler option", "-fplugin-arg-foo-bar=1"],
    [["-c", "-frepo", "a.cc"], "unsupported compiler option", "-frepo"],
    [["-c", "-Xclang", "-load", "-Xclang", "p.so", "a.c"], "unsupported compiler option", "-Xclang -load"],
    [["-c", "-Xclang", "-add-plugin", "a.c"], "unsupported compiler option", "-Xclang -add-plugin"],
    [["-c", "-fcallgraph-info", "a.c"], "unsupported compiler option", "-fcallgraph-info"],
    [["-c", "-fcallgraph-info=su,da", "a.c"], "unsupported compiler option", "-fcallgraph-info=su,da"],
    [["-c", "-fprofile-use", "a.c"], "unsupported compiler option", "-fprofile-use"],
    [["-c", "-fprofile-use=/nonexistent/p.profdata", "a.c"], "unsupported compiler option"],
    [["-c", "-fprofile-sample-use=/nonexistent/p.prof", "a.c"], "unsupported compiler option"],
    [["-c", "-fauto-profile", "a.c"], "unsupported compiler option", "-fauto-profile"],
    [["-c", "-arch", "x86_64", "-arch", "arm64", "a.c"], "unsupported compiler option", "-arch arm64"],
    [["-c", "-Wa,-adhln=a.lst", "a.c"], "unsupported compiler option", "-Wa,-adhln=a.lst"],
    [["-c", "-Wa,--MD,a.d", "a.c"], "unsupported compiler option", "-Wa,--MD,a.d"],
    [["-c", "-Xassembler", "-al=a.lst", "a.c"], "unsupported compiler option", "-Xassembler -al=a.lst"],
    [["-c", "-fopt-info-vec=vec.txt", "a.c"], "unsupported compiler option", "-fopt-info-vec=vec.txt"],
    [["-c", "-fsave-optimization-record", "a.c"], "unsupported compiler option", "-fsave-optimization-record"],
    [["-c", "-dA", "a.c"], "unsupported compiler option", "-dA"],
    [["-c", "-v", "a.c"], "unsupported compiler option", "-v"],
    [["-c", "-###", "a.c"], "unsupported compiler option", "-###"],
    [["-c", "-gmodules", "a.c"], "unsupported compiler option", "-gmodules"],
    [["-c", "-save-stats", "a.c"], "unsupported compiler option", "-save-stats"],
    [["-c", "-fproc-stat-report=s.csv", "a.c"], "unsupported compiler option", "-fproc-stat-report=s.csv"],
    [["-c", "-fthinlto-index=/nonexistent/x.thinlto.bc", "a.c"], "unsupported compiler option"],
    [["-c", "-specs=/nonexistent/specs", "a.c"], "unsupported compiler option", "-specs=/nonexistent/specs"],
    [["-c", "a.c", "-o", "-"], "unsupported compiler option", "-o -"],
    [["-c", "a.c", "-o", "/dev/null"], "unsupported compiler option", "-o /dev/null"],
    [["-c", "-MD", "-MF", "-", "a.c"], "unsupported compiler option", "dependency output to stdout"],
    [["-c", "a.c", "-o"], "unsupported compiler option", "-o (missing argument)"],
    [["-c", "-MD", "-Wp,-MD,x.d", "a.c"], "unsupported compiler option", "-MD with -Wp,-MD"],
    [["-c", "-emit-llvm", "a.c"], "unsupported compiler option", "-emit-llvm without -o"],
    [["-c", "-g", "-gsplit-dwarf", "-dumpbase", "foo", "a.c"], "unsupported compiler option", "-dumpbase foo"],
    [["-c", "-fstack-usage", "-dumpdir", "d/", "a.c"], "unsupported compiler option", "-dumpdir d/"],
  ];
  for (const [args, reason, detail] of cases) {
    test(`${args.join(" ")} -> ${reason}`, () => {
      const r = parse(args);
      expect(r.cacheable).toBe(false);
      if (r.cacheable) return;
      expect(r.reason).toBe(reason as typeof r.reason);
      if (detail !== undefined) expect(r.detail).toBe(detail);
    });
  }

  test("dependency environment variables make the call uncacheable", () => {
    for (const name of ["DEPENDENCIES_OUTPUT", "SUNPRO_DEPENDENCIES"]) {
      const r = parse(["-c", "a.c"], { env: { [name]: "a.d" } });
      expect(r).toEqual({ cacheable: false, reason: "unsupported compiler option", detail: `${name} is set` });
    }
  });

  test("clang refuses dependency options through -Xpreprocessor and -dumpbase", () => {
    const clang = { flavor: "clang" } as const;
    expect(parse(["-c", "-Xpreprocessor", "-MD", "-Xpreprocessor", "x.d", "a.c"], clang)).toMatchObject({
      reason: "unsupported compiler option",
    });
    expect(parse(["-c", "-dumpbase", "x", "a.c"], clang)).toMatchObject({ reason: "unsupported compiler option" });
    expect(parse(["-c", "-Wp,-MD,x.d,-DX", "a.c"], clang)).toMatchObject({ reason: "unsupported compiler option" });
    expect(parse(["-c", "-Wp,-MP", "a.c"], clang)).toMatchObject({ reason: "unsupported compiler option" });
  });

  test("harmless -Xclang arguments and one -arch are accepted", () => {
    expect(compile(["-c", "-Xclang", "-fno-pch-timestamp", "a.c"], { flavor: "clang" }).keyArgs).toEqual([
      "-Xclang",
      "-fno-pch-timestamp",
    ]);
    expect(compile(["-c", "-arch", "x86_64", "a.c"]).keyArgs).toEqual(["-arch", "x86_64"]);
  });

  test("-Wa, listing to stdout and assembler debug flags are accepted", () => {
    const r = compile(["-c", "-Wa,-adhln", "a.c"]);
    expect(r.keyArgs).toEqual(["-Wa,-adhln"]);
    const g = compile(["-c", "-Wa,--gdwarf-5", "a.s"]);
    expect(g.debugInfo).toBe(true);
    expect(g.keyExtras).toEqual([`cwd=${CWD}`]);
  });
});

describe("arguments that take a value are never inputs", () => {
  const separate = [
    "-o", "-x", "-I", "-D", "-U", "-include", "-imacros", "-isystem", "-iquote", "-idirafter", "-iprefix",
    "-iwithprefix", "-iwithprefixbefore", "-isysroot", "--sysroot", "-imultilib", "-MF", "-MT", "-MQ",
    "-Xpreprocessor", "-Xassembler", "-Xlinker", "-target", "-arch", "-L", "-l", "-T", "-u", "-z", "-A",
    "-B", "--param", "-mllvm", "-gcc-toolchain", "-iframework", "-F", "-dumpbase", "-dumpdir",
  ];
  for (const option of separate) {
    test(option, () => {
      const value = option === "-x" ? "c" : option === "-o" ? "out.o" : "val.c";
      const r = compile(["-c", option, value, "-MD", "a.c"]);
      expect(r.source).toBe("a.c");
    });
  }

  test("joined and = forms", () => {
    const r = compile([
      "-c", "-Ifoo", "-DX=1", "-UY", "-xc", "-ofoo.o", "-MD", "-MFfoo.d", "-MTt", "--sysroot=/s",
      "--param=max-inline-insns-single=5", "a.c",
    ]);
    expect(r.source).toBe("a.c");
    expect(r.language).toBe("c");
    expect(outputsOf(r)).toEqual(["object:foo.o", "dep:foo.d"]);
    expect(r.keyArgs).toEqual(["-x", "c", "-MD", "--sysroot=/s", "--param=max-inline-insns-single=5"]);
    expect(r.keyExtras).toEqual([]);
    expect(r.depTargets).toEqual({ targets: '[["MT","t"]]', regenerate: ["-MD", "-MT", "t"] });
  });

  test("-include-pch names an extra input (refused when the file does not exist)", () => {
    const dir = scratch();
    writeFileSync(join(dir, "p.pch"), "pch");
    expect(compile(["-c", "-include-pch", "p.pch", "a.c"], { cwd: dir }).extraInputs).toEqual(["p.pch"]);
    expect(parse(["-c", "-include-pch", "missing.pch", "a.c"], { cwd: dir })).toMatchObject({
      reason: "unsupported compiler option",
    });
  });

  test("gcc long spellings", () => {
    const r = compile(["--compile", "--output=build/x.o", "--include-directory", "inc", "--write-dependencies", "a.c"]);
    expect(outputsOf(r)).toEqual(["object:build/x.o", "dep:build/x.d"]);
    expect(r.preprocessorArgs).toEqual(["--include-directory", "inc"]);
    expect(parse(["--preprocess", "a.c"])).toMatchObject({ reason: "preprocessing only (-E)" });
  });
});

describe("languages", () => {
  const byExtension: [string, string][] = [
    ["a.c", "c"], ["a.i", "cpp-output"], ["a.cc", "c++"], ["a.cp", "c++"], ["a.cxx", "c++"], ["a.cpp", "c++"],
    ["a.CPP", "c++"], ["a.c++", "c++"], ["a.C", "c++"], ["a.ii", "c++-cpp-output"], ["a.m", "objective-c"],
    ["a.mi", "objective-c-cpp-output"], ["a.mm", "objective-c++"], ["a.M", "objective-c++"],
    ["a.mii", "objective-c++-cpp-output"], ["a.s", "assembler"], ["a.S", "assembler-with-cpp"],
    ["a.sx", "assembler-with-cpp"],
  ];
  for (const [file, language] of byExtension) {
    test(file, () => expect(compile(["-c", file]).language).toBe(language as CFamilyCompile["language"]));
  }

  test("a C++ driver compiles .c as C++ and .i as preprocessed C++, but not .m", () => {
    expect(compile(["-c", "a.c"], { driverIsCxx: true }).language).toBe("c++");
    expect(compile(["-c", "a.i"], { driverIsCxx: true }).language).toBe("c++-cpp-output");
    expect(compile(["-c", "a.m"], { driverIsCxx: true }).language).toBe("objective-c");
    expect(compile(["-c", "-x", "c", "a.c"], { driverIsCxx: true }).language).toBe("c");
  });

  test("-x applies to later inputs and -x none resets", () => {
    expect(compile(["-c", "-x", "c++", "a.c"]).language).toBe("c++");
    expect(compile(["-c", "-x", "c++", "-x", "none", "a.c"]).language).toBe("c");
    expect(compile(["-c", "-x", "objc-cpp-output", "a.foo"]).language).toBe("objective-c-cpp-output");
  });

  test("-x is kept for the preprocessing run, after everything else", () => {
    const r = compile(["-c", "-x", "c++", "-O2", "a.h", "-x", "none"]);
    expect(r.language).toBe("c++");
    expect(r.preprocessorArgs).toEqual(["-O2", "-x", "c++"]);
    expect(r.keyArgs).toEqual(["-x", "c++", "-O2", "-x", "none"]);
    expect(r.keyExtras).toEqual(['x-after-source=["none"]']);
  });

  test("an -x after the source only shows in the key", () => {
    const r = compile(["-c", "a.c", "-x", "c"]);
    expect(r.preprocessorArgs).toEqual([]);
    expect(r.keyExtras).toEqual(['x-after-source=["c"]']);
    expect(compile(["-c", "-x", "c", "a.c"]).keyExtras).toEqual([]);
  });
});

describe("outputs", () => {
  const cases: [string[], string[], Partial<ParseContext>?][] = [
    [["-c", "src/a.c"], ["object:a.o"]],
    [["-c", "src/a.c", "-o", "build/x.o"], ["object:build/x.o"]],
    [["-c", "src/a.c", "-o", "build/x.o", "-o", "build/y.o"], ["object:build/y.o"]],
    [["-c", "-MD", "src/a.c"], ["object:a.o", "dep:a.d"]],
    [["-c", "-MMD", "src/a.c", "-o", "build/x.o"], ["object:build/x.o", "dep:build/x.d"]],
    [["-c", "-MD", "src/a.c", "-o", "build/x.o.tmp"], ["object:build/x.o.tmp", "dep:build/x.o.d"]],
    [["-c", "-MD", "src/a.c", "-o", "b.d/x"], ["object:b.d/x", "dep:b.d/x.d"]],
    [["-c", "-MD", "-MF", "deps/a.dep", "src/a.c", "-o", "x.o"], ["object:x.o", "dep:deps/a.dep"]],
    [["-c", "-MF", "deps/a.dep", "src/a.c"], ["object:a.o"]],
    [["-c", "-Wp,-MD,w.d", "src/a.c", "-o", "build/x.o"], ["object:build/x.o", "dep:w.d"]],
    [["-c", "-Wp,-MMD,w.d,-DX", "src/a.c"], ["object:a.o", "dep:w.d"]],
    [["-c", "-Xpreprocessor", "-MD", "-Xpreprocessor", "w.d", "a.c"], ["object:a.o", "dep:w.d"]],
    [["-c", "-MD", "a.s"], ["object:a.o"]],
    [["-c", "-MD", "a.S"], ["object:a.o", "dep:a.d"]],
    [["-c", "-MD", "a.i"], ["object:a.o"]],
    [["-c", "-g", "-gsplit-dwarf", "src/a.c", "-o", "build/x.o"], ["object:build/x.o", "dwo:build/x.dwo"]],
    [["-c", "-gsplit-dwarf", "a.c"], ["object:a.o", "dwo:a.dwo"]],
    [["-c", "-gsplit-dwarf", "-g0", "a.c"], ["object:a.o", "dwo:a.dwo"]],
    [["-c", "-g", "-gsplit-dwarf", "-gno-split-dwarf", "a.c"], ["object:a.o"]],
    [["-c", "-gsplit-dwarf", "a.c"], ["object:a.o"], { flavor: "clang" }],
    [["-c", "-g", "-gsplit-dwarf", "-g0", "a.c"], ["object:a.o"], { flavor: "clang" }],
    [["-c", "-gline-tables-only", "-gsplit-dwarf", "a.c"], ["object:a.o", "dwo:a.dwo"], { flavor: "clang" }],
    [["-c", "-gline-directives-only", "-gsplit-dwarf", "a.c"], ["object:a.o"], { flavor: "clang" }],
    [["-c", "-g", "-gsplit-dwarf=single", "a.c"], ["object:a.o"], { flavor: "clang" }],
    [["-c", "-gsplit-dwarf", "a.s"], ["object:a.o", "dwo:a.dwo"], { flavor: "clang" }],
    [["-c", "--coverage", "src/a.c", "-o", "build/x.o"], ["object:build/x.o", "gcno:build/x.gcno"]],
    [["-c", "-ftest-coverage", "src/a.c"], ["object:a.o", "gcno:a.gcno"]],
    [["-c", "--coverage", "-fno-test-coverage", "a.c"], ["object:a.o"]],
    [["-c", "--coverage", "-fprofile-note=n.gcno", "a.c"], ["object:a.o", "gcno:n.gcno"]],
    [["-c", "-fprofile-arcs", "a.c"], ["object:a.o"]],
    [["-c", "--coverage", "a.s"], ["object:a.o"]],
    [["-c", "-fstack-usage", "src/a.c", "-o", "build/x"], ["object:build/x", "su:build/x.su"]],
    [["-c", "-fstack-usage", "a.S"], ["object:a.o"]],
    [
      ["-c", "-g", "-gsplit-dwarf", "--coverage", "-fstack-usage", "-MMD", "/abs/a.c", "-o", "/out/x.o"],
      ["object:/out/x.o", "dep:/out/x.d", "dwo:/out/x.dwo", "gcno:/out/x.gcno", "su:/out/x.su"],
    ],
    [["-c", "-emit-llvm", "a.c", "-o", "a.bc"], ["object:a.bc"], { flavor: "clang" }],
    [["-c", "-flto", "-g", "-gsplit-dwarf", "-fstack-usage", "a.c"], ["object:a.o", "dwo:a.dwo"]],
    [["-c", "-flto=thin", "-g", "-gsplit-dwarf", "-fstack-usage", "a.c"], ["object:a.o"], { flavor: "clang" }],
  ];
  for (const [args, outputs, over] of cases) {
    test(`${over?.flavor ?? "gcc"} ${args.join(" ")}`, () => expect(outputsOf(compile(args, over))).toEqual(outputs));
  }
});

describe("key and preprocessing arguments", () => {
  test("preprocessor-only options stay out of the key; dependency options out of both", () => {
    const r = compile([
      "-c", "-O2", "-Iinc", "-I", "inc2", "-isystem", "sys", "-iquote", "q", "-idirafter", "d", "-include", "h.h",
      "-imacros", "m.h", "-DX=1", "-D", "Y", "-UZ", "-iprefix", "p/", "-iwithprefix", "w", "-iwithprefixbefore", "wb",
      "-MD", "-MP", "-MF", "a.d", "-MT", "t1", "-MQ", "t2", "-Wall", "-fPIC", "a.c", "-o", "a.o",
    ]);
    expect(r.keyArgs).toEqual(["-O2", "-MD", "-MP", "-Wall", "-fPIC"]);
    expect(r.preprocessorArgs).toEqual([
      "-O2", "-Iinc", "-I", "inc2", "-isystem", "sys", "-iquote", "q", "-idirafter", "d", "-include", "h.h",
      "-imacros", "m.h", "-DX=1", "-D", "Y", "-UZ", "-iprefix", "p/", "-iwithprefix", "w", "-iwithprefixbefore", "wb",
      "-Wall", "-fPIC",
    ]);
    // The targets stay out of the key: a hit for other targets regenerates the .d.
    expect(r.keyExtras).toEqual([]);
    expect(r.depTargets).toEqual({
      targets: '[["MT","t1"],["MQ","t2"]]',
      regenerate: ["-MD", "-MP", "-MT", "t1", "-MQ", "t2"],
    });
    expect(r.debugInfo).toBe(false);
  });

  test("-MD and -MMD are told apart; without -MT/-MQ the object names the target", () => {
    const md = compile(["-c", "-MD", "a.c", "-o", "o/a.o"]);
    const mmd = compile(["-c", "-MMD", "a.c", "-o", "o/a.o"]);
    expect(md.keyArgs).toEqual(["-MD"]);
    expect(mmd.keyArgs).toEqual(["-MMD"]);
    expect(md.dependencies).toBe("all");
    expect(mmd.dependencies).toBe("user");
    expect(md.depTargets).toEqual({ targets: '[["MQ","o/a.o"]]', regenerate: ["-MD", "-MQ", "o/a.o"] });
    expect(compile(["-c", "-MD", "a.c"]).depTargets?.targets).toBe('[["MQ","a.o"]]');
    // -MG cannot be regenerated with -E: its targets stay keyed.
    expect(compile(["-c", "-MD", "-MG", "a.c"]).keyExtras).toEqual(["dep-target-object=a.o"]);
  });

  test("-Wp,-MD is taken apart; other -Wp and -Xpreprocessor arguments stay in both", () => {
    const r = compile(["-c", "-Wp,-MD,x.d,-DFOO", "-Xpreprocessor", "-dD", "-Wp,-MP", "a.c"]);
    expect(r.preprocessorArgs).toEqual(["-Wp,-DFOO", "-Xpreprocessor", "-dD"]);
    expect(r.keyArgs).toEqual(["-Wp,-MD", "-Wp,-DFOO", "-Xpreprocessor", "-dD", "-MP"]);
    const x = compile([
      "-c", "-Xpreprocessor", "-MMD", "-Xpreprocessor", "x.d", "-Xpreprocessor", "-MT", "-Xpreprocessor", "t", "a.c",
    ]);
    expect(x.preprocessorArgs).toEqual([]);
    expect(x.keyExtras).toEqual(['dep-targets=[["MT","t"]]']);
    expect(x.depTargets).toBeUndefined();
  });

  test("stray dependency options are keyed when no dependency file is written", () => {
    const r = compile(["-c", "-MF", "a.d", "-MT", "t", "a.c"]);
    expect(r.keyArgs).toEqual(["-MF", "a.d", "-MT", "t"]);
    expect(r.preprocessorArgs).toEqual([]);
    expect(r.keyExtras).toEqual([]);
  });

  test("-g3 keys -D/-U (macros are in the debug info) and records the cwd", () => {
    const r = compile(["-c", "-g3", "-DX=1", "-Iinc", "-UY", "a.c"]);
    expect(r.keyArgs).toEqual(["-g3", "-DX=1", "-UY"]);
    expect(r.debugInfo).toBe(true);
    expect(r.keyExtras).toEqual([`cwd=${CWD}`]);
    expect(compile(["-c", "-fdebug-macro", "-g", "-DX", "a.c"], { flavor: "clang" }).keyArgs).toEqual([
      "-fdebug-macro",
      "-g",
      "-DX",
    ]);
  });

  test("debug info follows the last -g level", () => {
    const on = ["-g", "-g1", "-g2", "-ggdb", "-ggdb3", "-gdwarf-4", "-gdwarf", "-gline-tables-only", "-gbtf"];
    for (const g of on) expect(compile(["-c", g, "a.c"]).debugInfo).toBe(true);
    const off = [
      ["-g", "-g0"], ["-ggdb", "-ggdb0"], ["-gz"], ["-gsplit-dwarf"], ["-gcolumn-info"], ["-gdwarf-4", "-g0"],
    ];
    for (const g of off) {
      const r = compile(["-c", ...g, "a.c"]);
      expect(r.debugInfo).toBe(false);
      expect(r.keyExtras.some((e) => e.startsWith("cwd="))).toBe(false);
    }
    expect(compile(["-c", "-g0", "-gdwarf-5", "a.c"]).debugInfo).toBe(true);
  });

  test("split DWARF and coverage put the object (and cwd) in the key", () => {
    expect(compile(["-c", "-g", "-gsplit-dwarf", "a.c", "-o", "x.o"]).keyExtras).toEqual(["object=x.o", `cwd=${CWD}`]);
    const profiling = ["--coverage", "-ftest-coverage", "-fprofile-arcs", "-fprofile-generate", "-fprofile-generate=dir"];
    for (const flag of profiling) {
      expect(compile(["-c", flag, "a.c", "-o", "x.o"]).keyExtras).toEqual(["object=x.o", `cwd=${CWD}`]);
    }
  });

  test("-fprofile-use=FILE with an existing file becomes an extra input", () => {
    const dir = scratch();
    writeFileSync(join(dir, "app.profdata"), "profile");
    mkdirSync(join(dir, "profdir"));
    const r = compile(["-c", "-fprofile-use=app.profdata", "a.c"], { cwd: dir });
    expect(r.extraInputs).toEqual(["app.profdata"]);
    expect(r.keyArgs).toEqual(["-fprofile-use=app.profdata"]);
    expect(parse(["-c", "-fprofile-use=profdir", "a.c"], { cwd: dir })).toMatchObject({
      reason: "unsupported compiler option",
      detail: "-fprofile-use=profdir",
    });
  });

  test("-include uses a sibling precompiled header, which becomes an extra input", () => {
    const dir = scratch();
    writeFileSync(join(dir, "pre.h"), "#define X 1\n");
    writeFileSync(join(dir, "pre.h.gch"), "gch");
    expect(compile(["-c", "-include", "pre.h", "a.c"], { cwd: dir }).extraInputs).toEqual(["pre.h.gch"]);
    mkdirSync(join(dir, "multi.h.gch"));
    expect(parse(["-c", "-include", "multi.h", "a.c"], { cwd: dir })).toMatchObject({
      reason: "unsupported compiler option",
    });
  });

  test("clang's recorded command line puts every argument in the key", () => {
    const args = ["-c", "-g", "-grecord-command-line", "-DX", "a.c", "-o", "a.o"];
    expect(compile(args, { flavor: "clang" }).keyExtras).toContain(`command-line=${JSON.stringify(args)}`);
    const f = ["-c", "-frecord-command-line", "a.c"];
    expect(compile(f, { flavor: "clang" }).keyExtras).toEqual([`command-line=${JSON.stringify(f)}`]);
    // gcc leaves -D/-I/-o out of what it records.
    expect(compile(f).keyExtras).toEqual([]);
  });

  test("-P is kept out of the preprocessing run; linker options stay in the key", () => {
    const r = compile(["-c", "-P", "-lm", "-Lx", "-Wl,-z,now", "a.c"]);
    expect(r.preprocessorArgs).toEqual(["-lm", "-Lx", "-Wl,-z,now"]);
    expect(r.keyArgs).toEqual(["-P", "-lm", "-Lx", "-Wl,-z,now"]);
  });

  test("unknown options are keyed", () => {
    const r = compile(["-c", "-fsomething-new", "--weird", "-mfoo=bar", "a.c"]);
    expect(r.keyArgs).toEqual(["-fsomething-new", "--weird", "-mfoo=bar"]);
  });
});

describe("response files", () => {
  test("gcc quoting rules", () => {
    expect(splitResponseFile(` a  'b c'\t"d e"\nf\\ g 'h\\'i' "j\\"k" l""m '' \n`)).toEqual([
      "a", "b c", "d e", "f g", "h'i", 'j"k', "lm", "",
    ]);
    expect(splitResponseFile("")).toEqual([]);
  });

  test("expanded recursively, relative to the cwd", () => {
    const dir = scratch();
    mkdirSync(join(dir, "r"));
    writeFileSync(join(dir, "r", "outer.rsp"), "-c -O2 @r/inner.rsp 'src/my file.c'\n");
    writeFileSync(join(dir, "r", "inner.rsp"), '-DX="1 2" -o "build/my obj.o" -MD\n');
    const r = compile(["@r/outer.rsp", "-Wall"], { cwd: dir });
    expect(r.expandedArgs).toEqual(["-c", "-O2", "-DX=1 2", "-o", "build/my obj.o", "-MD", "src/my file.c", "-Wall"]);
    expect(r.source).toBe("src/my file.c");
    expect(outputsOf(r)).toEqual(["object:build/my obj.o", "dep:build/my obj.d"]);
    expect(r.keyArgs).toEqual(["-O2", "-MD", "-Wall"]);
  });

  test("a response file that includes itself is refused, not looped on", () => {
    const dir = scratch();
    writeFileSync(join(dir, "self.rsp"), "-c @self.rsp\n");
    expect(parse(["@self.rsp", "a.c"], { cwd: dir })).toMatchObject({ reason: "unreadable response file" });
  });
});

// ---------------------------------------------------------------------------------------
// Against the real compilers: every predicted output appears, nothing else does, and the
// preprocessing run succeeds without writing a dependency file.

const C_SOURCE = "static int f(int x) { return x + 1; }\nint g(int y) { int a[4] = {0}; return f(y) + a[y & 3]; }\n";
const ASM_SOURCE = ".text\n.globl h\nh:\n  ret\n";

function listFiles(root: string): Set<string> {
  const out = new Set<string>();
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else out.add(relative(root, full));
    }
  };
  walk(root);
  return out;
}

function project(): string {
  const dir = scratch();
  mkdirSync(join(dir, "src"));
  mkdirSync(join(dir, "build", "deps"), { recursive: true });
  writeFileSync(join(dir, "src", "a.c"), C_SOURCE);
  writeFileSync(join(dir, "src", "a.txt"), C_SOURCE);
  writeFileSync(join(dir, "src", "h.h"), "#define H 1\n");
  writeFileSync(join(dir, "src", "s.s"), ASM_SOURCE);
  writeFileSync(join(dir, "src", "S.S"), ASM_SOURCE);
  writeFileSync(join(dir, "build", "args.rsp"), "-MD -o 'build/x y.o' src/a.c\n");
  return dir;
}

async function runIn(cwd: string, argv: string[]): Promise<{ code: number; stderr: string }> {
  const proc = Bun.spawn(argv, { cwd, stdout: "ignore", stderr: "pipe", env: { ...process.env, LC_ALL: "C" } });
  const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
  return { code, stderr };
}

/** Returns a description of what went wrong, or undefined. */
async function checkAgainstCompiler(compiler: string, args: string[]): Promise<string | undefined> {
  const cwd = project();
  const flavor = compiler.startsWith("clang") ? "clang" : "gcc";
  const parsed = parseCFamilyArgs(args, { cwd, flavor, driverIsCxx: compiler.endsWith("++"), env: {} });
  const label = `${compiler} ${args.join(" ")}`;
  if (!parsed.cacheable) return `${label}: parser says not cacheable (${parsed.reason}: ${parsed.detail})`;

  const before = listFiles(cwd);
  const built = await runIn(cwd, [compiler, ...args]);
  if (built.code !== 0) return `${label}: exited ${built.code}\n${built.stderr}`;
  const appeared = [...listFiles(cwd)].filter((f) => !before.has(f)).sort();
  const predicted = parsed.outputs.map((o) => relative(cwd, resolve(cwd, o.path))).sort();
  if (JSON.stringify(appeared) !== JSON.stringify(predicted)) {
    return `${label}: predicted ${JSON.stringify(predicted)}, compiler wrote ${JSON.stringify(appeared)}`;
  }

  for (const o of parsed.outputs) rmSync(resolve(cwd, o.path));
  const pp = await runIn(cwd, [compiler, ...parsed.preprocessorArgs, "-E", parsed.source]);
  if (pp.code !== 0) return `${label}: preprocessing run exited ${pp.code}\n${pp.stderr}`;
  const ppWrote = [...listFiles(cwd)].filter((f) => !before.has(f));
  if (ppWrote.length > 0) return `${label}: preprocessing run wrote ${JSON.stringify(ppWrote)}`;
  return undefined;
}

const COMMON: string[][] = [
  ["-c", "src/a.c"],
  ["-c", "src/a.c", "-o", "build/x.o"],
  ["-c", "-MD", "src/a.c"],
  ["-c", "-MD", "src/a.c", "-o", "build/x.o"],
  ["-c", "-MMD", "-MP", "-MF", "build/deps/a.dep", "-MT", "tgt", "-MQ", "$q", "src/a.c", "-o", "build/x.o"],
  ["-c", "-MD", "src/a.c", "-o", "build/x.o.tmp"],
  ["-c", "-MD", "src/a.c", "-o", "build/x"],
  ["-c", "-Wp,-MD,build/w.d", "src/a.c", "-o", "build/x.o"],
  ["-c", "-Wp,-MMD,build/w.d", "-DX=1", "-Isrc", "-include", "src/h.h", "src/a.c", "-o", "build/x.o"],
  ["-c", "-g", "-gsplit-dwarf", "src/a.c", "-o", "build/x.o"],
  ["-c", "-g", "-gsplit-dwarf", "src/a.c"],
  ["-c", "-gsplit-dwarf", "src/a.c", "-o", "build/x.o"],
  ["-c", "-gsplit-dwarf", "-g0", "src/a.c", "-o", "build/x.o"],
  ["-c", "-gsplit-dwarf", "src/s.s", "-o", "build/s.o"],
  ["-c", "--coverage", "src/a.c", "-o", "build/x.o"],
  ["-c", "-ftest-coverage", "src/a.c"],
  ["-c", "-fprofile-arcs", "src/a.c", "-o", "build/x.o"],
  ["-c", "-fstack-usage", "src/a.c", "-o", "build/x"],
  ["-c", "-g", "-gsplit-dwarf", "--coverage", "-fstack-usage", "-MD", "src/a.c", "-o", "build/all.o.tmp"],
  ["-c", "-g", "-gsplit-dwarf", "--coverage", "-fstack-usage", "-MD", "src/S.S", "-o", "build/S.o"],
  ["-c", "-MD", "-g", "src/s.s", "-o", "build/s.o"],
  ["-c", "-x", "c", "src/a.txt", "-o", "build/t.o"],
  ["-c", "@build/args.rsp"],
  ["-c", "-flto", "-g", "-gsplit-dwarf", "--coverage", "-fstack-usage", "-MD", "src/a.c", "-o", "build/x.o"],
  ["-c", "-flto", "-fno-lto", "-fstack-usage", "src/a.c", "-o", "build/x.o"],
  ["-c", "-flto", "-gsplit-dwarf", "src/s.s", "-o", "build/s.o"],
  ["-c", "-x", "c++", "-O1", "src/h.h", "-o", "build/h.o"],
  ["-c", "src/a.c", "-x", "c"],
];

const COMPILERS: [string, string[][]][] = [
  [
    "gcc",
    [
      ...COMMON,
      ["-c", "-Xpreprocessor", "-MD", "-Xpreprocessor", "build/w.d", "src/a.c", "-o", "build/x.o"],
      ["-c", "--coverage", "-fprofile-note=build/n.gcno", "src/a.c", "-o", "build/x.o"],
      ["-c", "-g3", "-dumpbase", "foo", "-MD", "src/a.c", "-o", "build/x.o"],
    ],
  ],
  [
    "clang",
    [
      ...COMMON,
      ["-c", "-gline-tables-only", "-gsplit-dwarf", "src/a.c", "-o", "build/x.o"],
      ["-c", "-gline-directives-only", "-gsplit-dwarf", "src/a.c", "-o", "build/x.o"],
      ["-c", "-g", "-gsplit-dwarf=single", "src/a.c", "-o", "build/x.o"],
      ["-c", "-gsplit-dwarf", "-g0", "src/S.S", "-o", "build/S.o"],
      ["-c", "-emit-llvm", "src/a.c", "-o", "build/a.bc"],
      ["-c", "-emit-llvm", "-g", "-gsplit-dwarf", "-fstack-usage", "src/a.c", "-o", "build/a.bc"],
      ["-c", "-flto=thin", "-g", "-gsplit-dwarf", "-fstack-usage", "src/a.c", "-o", "build/x.o"],
    ],
  ],
  ["g++", [["-c", "-MD", "-gsplit-dwarf", "src/a.c", "-o", "build/x.o"], ["-c", "--coverage", "src/a.c"]]],
  ["clang++", [["-c", "-MD", "-g", "-gsplit-dwarf", "-Wno-deprecated", "src/a.c", "-o", "build/x.o"]]],
];

describe("against the real compilers", () => {
  for (const [compiler, cases] of COMPILERS) {
    test(`${compiler}: predicted outputs are exactly what it writes`, async () => {
      const failures: string[] = [];
      // Two at a time: the machines running this have few cores.
      for (let i = 0; i < cases.length; i += 2) {
        const results = await Promise.all(cases.slice(i, i + 2).map((args) => checkAgainstCompiler(compiler, args)));
        for (const r of results) if (r !== undefined) failures.push(r);
      }
      expect(failures).toEqual([]);
    });
  }
});
