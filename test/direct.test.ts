// Direct mode: hits without running the preprocessor, and never a stale one.

import { describe, expect, test } from "bun:test";
import { mkdirSync, readdirSync, readFileSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { KILN, KilnInstance, ok, run, scratch, sha256File, writeFiles } from "./support.ts";

/** Compiles through kiln and returns the object's digest. */
function compile(k: KilnInstance, dir: string, args: string[], compiler = "gcc"): string {
  ok([KILN, compiler, ...args], { cwd: dir, env: k.env });
  const o = args[args.indexOf("-o") + 1]!;
  return sha256File(join(dir, o));
}

/** What a plain compile of the same call writes. */
function plain(dir: string, args: string[], compiler = "gcc"): string {
  const o = args[args.indexOf("-o") + 1]!;
  const p = [...args];
  p[p.indexOf("-o") + 1] = `${o}.plain`;
  ok([compiler, ...p], { cwd: dir });
  return sha256File(join(dir, `${o}.plain`));
}

/** A `gcc` early in PATH that logs each call, so a test can see which runs happened. */
function loggingGcc(): { bin: string; log: string } {
  const bin = scratch("bin-");
  const log = join(bin, "calls.log");
  writeFileSync(join(bin, "gcc"), `#!/bin/sh\necho "$*" >> ${log}\nexec /usr/bin/gcc "$@"\n`, { mode: 0o755 });
  return { bin, log };
}
const calls = (log: string) => readFileSync(log, "utf8").trim().split("\n");

describe("direct mode", () => {
  test("a repeated compile is a direct hit; the object matches a plain compile", () => {
    for (const compiler of ["gcc", "clang++"]) {
      const k = new KilnInstance();
      const dir = scratch();
      writeFiles(dir, {
        "inc/h.h": "#define H 3\n",
        "a.c": '#include "h.h"\n#include <stdio.h>\nint a(void) { return H; }\n',
      });
      const args = ["-Iinc", "-O2", "-c", "a.c", "-o", "a.o"];
      compile(k, dir, args, compiler);
      const obj = compile(k, dir, args, compiler);
      expect(obj).toBe(plain(dir, args, compiler));
      const s = k.stats();
      expect(s.direct_hits).toBe(1);
      expect(s.preprocessed_hits).toBe(0);
      expect(s.cache_misses_total).toBe(1);
    }
  });

  test("touching a header keeps the hit; changing it misses once, then hits again", () => {
    const k = new KilnInstance();
    const dir = scratch();
    writeFiles(dir, { "inc/h.h": "#define H 3\n", "a.c": '#include "h.h"\nint a(void) { return H; }\n' });
    const args = ["-Iinc", "-c", "a.c", "-o", "a.o"];
    compile(k, dir, args);
    const later = new Date(Date.now() + 5000);
    utimesSync(join(dir, "inc/h.h"), later, later);
    compile(k, dir, args);
    expect(k.stats().direct_hits).toBe(1);

    writeFiles(dir, { "inc/h.h": "#define H 4\n" });
    const changed = compile(k, dir, args);
    expect(changed).toBe(plain(dir, args));
    let s = k.stats();
    expect(s.cache_misses_total).toBe(2);
    expect(s.direct_hits).toBe(1);
    // The new include set went into the manifest: the next compile is direct again.
    compile(k, dir, args);
    s = k.stats();
    expect(s.direct_hits).toBe(2);
    // And going back to the old header finds the old variant, still without preprocessing.
    writeFiles(dir, { "inc/h.h": "#define H 3\n" });
    compile(k, dir, args);
    expect(k.stats().direct_hits).toBe(3);
  });

  test("a header that shadows the one used, earlier on the include path, is a miss", () => {
    const k = new KilnInstance();
    const dir = scratch();
    writeFiles(dir, {
      "inc2/h.h": "#define H 2\n",
      "src/a.c": '#include "h.h"\nint a(void) { return H; }\n',
    });
    const args = ["-Iinc1", "-Iinc2", "-c", "src/a.c", "-o", "a.o"];
    mkdirSync(join(dir, "inc1"));
    compile(k, dir, args);
    compile(k, dir, args);
    expect(k.stats().direct_hits).toBe(1);

    writeFiles(dir, { "inc1/h.h": "#define H 1\n" }); // earlier -I directory
    expect(compile(k, dir, args)).toBe(plain(dir, args));
    expect(k.stats().direct_hits).toBe(1);
    expect(k.stats().cache_misses_total).toBe(2);

    writeFiles(dir, { "src/h.h": "#define H 0\n" }); // the includer's own directory comes first for "h.h"
    expect(compile(k, dir, args)).toBe(plain(dir, args));
    expect(k.stats().direct_hits).toBe(1);
    expect(k.stats().cache_misses_total).toBe(3);
  });

  test("a shadowing directory that did not exist yet is a miss too", () => {
    const k = new KilnInstance();
    const dir = scratch();
    writeFiles(dir, { "inc2/h.h": "#define H 2\n", "a.c": '#include "h.h"\nint a(void) { return H; }\n' });
    const args = ["-Inot-yet", "-Iinc2", "-c", "a.c", "-o", "a.o"];
    compile(k, dir, args);
    writeFiles(dir, { "not-yet/h.h": "#define H 9\n" });
    expect(compile(k, dir, args)).toBe(plain(dir, args));
    expect(k.stats().direct_hits).toBe(0);
  });

  test("a file using __TIME__ is never served by direct mode; __DATE__ is, on the same day", () => {
    const k = new KilnInstance();
    const dir = scratch();
    writeFiles(dir, {
      "t.h": "static const char *built_at = __TIME__;\n",
      "t.c": '#include "t.h"\nconst char *when(void) { return built_at; }\n',
      "d.c": "const char *day(void) { return __DATE__; }\n",
    });
    for (let i = 0; i < 3; i++) compile(k, dir, ["-c", "t.c", "-o", "t.o"]);
    expect(k.stats().direct_hits).toBe(0);
    compile(k, dir, ["-c", "d.c", "-o", "d.o"]);
    compile(k, dir, ["-c", "d.c", "-o", "d.o"]);
    expect(k.stats().direct_hits).toBe(1);
  });

  test("a header modified after the compile started is not recorded", () => {
    const k = new KilnInstance();
    const dir = scratch();
    writeFiles(dir, { "h.h": "#define H 1\n", "a.c": '#include "h.h"\nint a(void) { return H; }\n' });
    // An mtime in the future is what a header written during the compile looks like.
    const future = new Date(Date.now() + 3_600_000);
    utimesSync(join(dir, "h.h"), future, future);
    compile(k, dir, ["-c", "a.c", "-o", "a.o"]);
    compile(k, dir, ["-c", "a.c", "-o", "a.o"]);
    const s = k.stats();
    expect(s.direct_hits).toBe(0);
    expect(s.preprocessed_hits).toBe(1);
    expect(readFileSync(k.logFile, "utf8")).toContain("h.h changed during the compile");
  });

  test("-Wp, and -Xpreprocessor arguments turn direct mode off for that call", () => {
    const k = new KilnInstance();
    const dir = scratch();
    writeFiles(dir, { "a.c": "int a(void) { return X; }\n" });
    for (let i = 0; i < 2; i++) compile(k, dir, ["-Wp,-DX=4", "-c", "a.c", "-o", "a.o"]);
    const s = k.stats();
    expect(s.direct_hits).toBe(0);
    expect(s.preprocessed_hits).toBe(1);
  });

  test("a precompiled header is part of what direct mode checks", () => {
    const k = new KilnInstance();
    const dir = scratch();
    writeFiles(dir, { "pch.h": "#define P 1\n", "a.c": "int a(void) { return P; }\n" });
    ok(["gcc", "-x", "c-header", "pch.h", "-o", "pch.h.gch"], { cwd: dir });
    const args = ["-include", "pch.h", "-c", "a.c", "-o", "a.o"];
    compile(k, dir, args);
    compile(k, dir, args);
    expect(k.stats().direct_hits).toBe(1);
    // A new .gch built from a different header: the old result must not come back.
    writeFiles(dir, { "other.h": "#define P 2\n" });
    ok(["gcc", "-x", "c-header", "other.h", "-o", "pch.h.gch"], { cwd: dir });
    const obj = compile(k, dir, args);
    expect(obj).toBe(plain(dir, args));
    expect(k.stats().direct_hits).toBe(1);
  });

  test("a header under a subdirectory that shadows the one used is a miss", () => {
    const k = new KilnInstance();
    const dir = scratch();
    mkdirSync(join(dir, "inc1"), { recursive: true });
    writeFiles(dir, { "inc2/sub/h.h": "#define H 2\n", "a.c": '#include "sub/h.h"\nint a(void) { return H; }\n' });
    const args = ["-Iinc1", "-Iinc2", "-c", "a.c", "-o", "a.o"];
    compile(k, dir, args);
    compile(k, dir, args);
    expect(k.stats().direct_hits).toBe(1);
    writeFiles(dir, { "inc1/sub/h.h": "#define H 1\n" });
    expect(compile(k, dir, args)).toBe(plain(dir, args));
    expect(k.stats().direct_hits).toBe(1);
  });

  test("a .d for another target is made once, then kept: the next build runs no preprocessor", () => {
    const { bin, log } = loggingGcc();
    const k = new KilnInstance();
    const env = { ...k.env, PATH: `${bin}:${process.env.PATH}` };
    const dir = scratch();
    writeFiles(dir, { "h.h": "#define H 1\n", "t.c": '#include "h.h"\nint t(void) { return H; }\n' });
    const call = (target: string) => ["-MD", "-MT", `${target}/t.o`, "-MF", `${target}/t.o.d`, "-c", "t.c", "-o", `${target}/t.o`];
    for (const t of ["one", "two"]) mkdirSync(join(dir, t));
    ok([KILN, "gcc", ...call("one")], { cwd: dir, env });
    writeFileSync(log, "");
    ok([KILN, "gcc", ...call("two")], { cwd: dir, env }); // a hit; its .d is regenerated
    expect(calls(log).filter((c) => c.includes(" -E ")).length).toBe(1);
    const dep = readFileSync(join(dir, "two/t.o.d"), "utf8");
    writeFileSync(log, "");
    ok(["rm", join(dir, "two/t.o"), join(dir, "two/t.o.d")]);
    ok([KILN, "gcc", ...call("two")], { cwd: dir, env });
    expect(readFileSync(log, "utf8")).toBe("");
    expect(readFileSync(join(dir, "two/t.o.d"), "utf8")).toBe(dep);
    expect(k.stats().direct_hits).toBe(2);
  });

  test("KILN_DIRECT=0 turns direct mode off: hits are preprocessed ones", () => {
    const k = new KilnInstance({ KILN_DIRECT: "0" });
    const dir = scratch();
    writeFiles(dir, { "a.c": "int a(void) { return 1; }\n" });
    compile(k, dir, ["-c", "a.c", "-o", "a.o"]);
    compile(k, dir, ["-c", "a.c", "-o", "a.o"]);
    const s = k.stats();
    expect(s.direct_hits).toBe(0);
    expect(s.preprocessed_hits).toBe(1);
  });

  test("dep files from a direct hit are byte-identical to a plain compile's", () => {
    const k = new KilnInstance();
    const dir = scratch();
    writeFiles(dir, { "inc/h.h": "#define H 3\n", "a.c": '#include "h.h"\n#include <stdlib.h>\nint a(void) { return H; }\n' });
    const args = ["-Iinc", "-MD", "-MP", "-c", "a.c", "-o", "a.o"];
    ok(["gcc", ...args], { cwd: dir });
    const dep = readFileSync(join(dir, "a.d"), "utf8");
    compile(k, dir, args);
    compile(k, dir, args);
    expect(k.stats().direct_hits).toBe(1);
    expect(readFileSync(join(dir, "a.d"), "utf8")).toBe(dep);
  });
});

describe("depend mode (KILN_DEPEND=1)", () => {
  test("with -MD a miss runs only the compile; hits and misses stay right", () => {
    const { bin, log } = loggingGcc();
    const k = new KilnInstance({ KILN_DEPEND: "1" });
    const env = { ...k.env, PATH: `${bin}:${process.env.PATH}` };
    const dir = scratch();
    writeFiles(dir, { "inc/h.h": "#define H 3\n", "a.c": '#include "h.h"\n#include <stdio.h>\nint a(void) { return H; }\n' });
    const args = ["-Iinc", "-MD", "-c", "a.c", "-o", "a.o"];
    // Runs that touch the source (the daemon also asks the compiler for its search list).
    const sourceRuns = () => calls(log).filter((c) => c.includes("a.c"));
    ok([KILN, "gcc", ...args], { cwd: dir, env });
    expect(sourceRuns()).toEqual(["-Iinc -MD -c a.c -o a.o -fdiagnostics-color=always"]); // no -E run on the miss
    ok([KILN, "gcc", ...args], { cwd: dir, env });
    expect(k.stats().direct_hits).toBe(1);
    expect(sourceRuns().length).toBe(1); // a hit runs nothing

    writeFiles(dir, { "inc/h.h": "#define H 4\n" });
    ok([KILN, "gcc", ...args], { cwd: dir, env });
    expect(sourceRuns().length).toBe(2);
    expect(sha256File(join(dir, "a.o"))).toBe(plain(dir, args));
    ok([KILN, "gcc", ...args], { cwd: dir, env });
    expect(sourceRuns().length).toBe(2); // the new variant is a direct hit
    const s = k.stats();
    expect(s.direct_hits).toBe(2);
    expect(s.cache_misses_total).toBe(2);
  });

  test("a call that writes no .d gets one for Kiln alone: no preprocessing run, same object", () => {
    const { bin, log } = loggingGcc();
    const k = new KilnInstance({ KILN_DEPEND: "1" });
    const env = { ...k.env, PATH: `${bin}:${process.env.PATH}` };
    const dir = scratch();
    writeFiles(dir, { "inc/h.h": "#define H 3\n", "a.c": '#include "h.h"\n#include <stdio.h>\nint a(void) { return H; }\n' });
    const args = ["-Iinc", "-O2", "-c", "a.c", "-o", "a.o"];
    ok([KILN, "gcc", ...args], { cwd: dir, env });
    const runs = calls(log).filter((c) => c.includes("a.c"));
    expect(runs.length).toBe(1);
    expect(runs[0]).toStartWith("-Iinc -O2 -c a.c -o a.o -fdiagnostics-color=always -MD -MF ");
    expect(readdirSync(dir).sort()).toEqual(["a.c", "a.o", "inc"]); // no .d left behind
    expect(sha256File(join(dir, "a.o"))).toBe(plain(dir, args));
    ok([KILN, "gcc", ...args], { cwd: dir, env });
    expect(k.stats().direct_hits).toBe(1);
  });

  test("a shadowing header in the source's directory is still a miss", () => {
    const k = new KilnInstance({ KILN_DEPEND: "1" });
    const dir = scratch();
    writeFiles(dir, { "inc/h.h": "#define H 3\n", "src/a.c": '#include "h.h"\nint a(void) { return H; }\n' });
    const args = ["-Iinc", "-MD", "-c", "src/a.c", "-o", "a.o"];
    compile(k, dir, args);
    writeFiles(dir, { "src/h.h": "#define H 7\n" });
    expect(compile(k, dir, args)).toBe(plain(dir, args));
    expect(k.stats().direct_hits).toBe(0);
  });

  test("-MMD lists no system headers, so such calls keep the preprocessing run", () => {
    const { bin, log } = loggingGcc();
    const k = new KilnInstance({ KILN_DEPEND: "1" });
    const dir = scratch();
    writeFiles(dir, { "a.c": "#include <stdio.h>\nint a(void) { return 1; }\n" });
    ok([KILN, "gcc", "-MMD", "-c", "a.c", "-o", "a.o"], { cwd: dir, env: { ...k.env, PATH: `${bin}:${process.env.PATH}` } });
    expect(calls(log).some((c) => c.includes(" -E "))).toBe(true);
  });
});

describe("KILN_BASEDIRS", () => {
  test("two checkouts with absolute paths and debug info share hits only with basedirs", () => {
    const copies = [scratch("co-a-"), scratch("co-b-")];
    for (const c of copies) {
      writeFiles(c, {
        "include/h.h": "#define H 3\n",
        "src/a.c": '#include "h.h"\n#include <stdio.h>\nint a(void) { return H; }\n',
      });
      mkdirSync(join(c, "build"));
    }
    // As CMake writes it: absolute include path and source, -g, a dep file.
    const argsFor = (c: string) => ["-g", `-I${c}/include`, "-MD", "-c", `${c}/src/a.c`, "-o", "a.o"];
    for (const basedirs of [undefined, copies.join(":")]) {
      const k = new KilnInstance(basedirs ? { KILN_BASEDIRS: basedirs } : {});
      for (const c of copies) ok([KILN, "gcc", ...argsFor(c)], { cwd: join(c, "build"), env: k.env });
      const s = k.stats();
      if (basedirs) {
        expect(s.cache_misses_total).toBe(1);
        expect(s.direct_hits).toBe(1);
        // The second checkout's dependency file names its own files.
        const dep = readFileSync(join(copies[1]!, "build", "a.d"), "utf8");
        expect(dep).toContain(`${copies[1]}/include/h.h`);
        expect(dep).not.toContain(copies[0]!);
      } else {
        expect(s.cache_misses_total).toBe(2);
      }
    }
  });
});

test("with -ffile-prefix-map, a hit from another checkout is byte-identical to compiling there", () => {
  const copies = [scratch("co-a-"), scratch("co-b-")];
  for (const c of copies) {
    writeFiles(c, {
      "include/h.h": "#define H 3\n",
      "src/a.c": '#include "h.h"\n#include <stdio.h>\nconst char *where(void) { return __FILE__; }\nint a(void) { return H; }\n',
    });
    mkdirSync(join(c, "build"));
  }
  const argsFor = (c: string) => ["-g", `-ffile-prefix-map=${c}=.`, `-I${c}/include`, "-c", `${c}/src/a.c`, "-o", "a.o"];
  const k = new KilnInstance({ KILN_BASEDIRS: copies.join(":") });
  for (const c of copies) ok([KILN, "gcc", ...argsFor(c)], { cwd: join(c, "build"), env: k.env });
  expect(k.stats().direct_hits).toBe(1);
  const b = copies[1]!;
  ok(["gcc", ...argsFor(b).slice(0, -1), "plain.o"], { cwd: join(b, "build") });
  expect(sha256File(join(b, "build", "a.o"))).toBe(sha256File(join(b, "build", "plain.o")));
});

test("an include path that fails to preprocess compiles for real, with the compiler's error", () => {
  const k = new KilnInstance();
  const dir = scratch();
  writeFiles(dir, { "a.c": '#include "missing.h"\nint a;\n' });
  const viaKiln = k.kiln(["gcc", "-c", "a.c", "-o", "a.o"], { cwd: dir });
  const direct = run(["gcc", "-c", "a.c", "-o", "a.o"], { cwd: dir });
  expect(viaKiln.exitCode).toBe(direct.exitCode);
  expect(viaKiln.stderr).toBe(direct.stderr);
});
