// The C/C++ cache as a user sees it: the same bytes as a plain compile, hits counted, the
// right things miss, failures untouched, broken entries survived.

import { describe, expect, test } from "bun:test";
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { alive, KILN, KilnInstance, ok, run, scratch, sha256File, writeFiles } from "./support.ts";

/**
 * Compiles plainly, then through kiln, in the same directory (debug info records it), and
 * says whether kiln's outputs have the plain compile's bytes.
 */
function compileBoth(k: KilnInstance, dir: string, compiler: string, args: string[], outputs: string[]) {
  const plain = run([compiler, ...args], { cwd: dir });
  const expected = outputs.map((o) => sha256File(join(dir, o)));
  for (const o of outputs) rmSync(join(dir, o));
  const viaKiln = k.kiln([compiler, ...args], { cwd: dir });
  return {
    plain,
    viaKiln,
    same: outputs.every((o, i) => existsSync(join(dir, o)) && sha256File(join(dir, o)) === expected[i]),
  };
}

/** Entry files in a cache directory; `kind` "r" for results, "m" for manifests. */
function cacheFiles(cacheDir: string, kind?: "r" | "m"): string[] {
  return readdirSync(cacheDir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && !e.parentPath.endsWith("tmp") && (!kind || e.name.endsWith(kind)))
    .map((e) => join(e.parentPath, e.name));
}

const PROJECT = {
  "inc/config.h": "#define SCALE 3\n",
  "inc/util.h": '#include "config.h"\nstatic inline int scale(int x) { return x * SCALE; }\n',
  "inc/other.h": "int other(void);\n",
  "a.c": '#include "util.h"\n#ifndef BONUS\n#define BONUS 1\n#endif\nint a(int x) { return scale(x) + BONUS; }\n',
  "b.c": '#include "util.h"\n#include "other.h"\nint b(int x) { return scale(x) + other(); }\n',
  "c.c": '#include "other.h"\nint c(void) { return other() * 2; }\n',
};

describe("C compiles through kiln", () => {
  test("a repeated compile is a hit with byte-identical objects; stats count it", () => {
    const k = new KilnInstance();
    const dir = scratch();
    writeFiles(dir, PROJECT);
    const args = ["-O2", "-Iinc", "-c", "a.c", "-o", "a.o"];
    const first = compileBoth(k, dir, "gcc", args, ["a.o"]);
    expect(first.viaKiln.exitCode).toBe(0);
    expect(first.same).toBe(true);
    const before = sha256File(join(dir, "a.o"));
    ok(["rm", join(dir, "a.o")]);
    const second = k.kiln(["gcc", ...args], { cwd: dir });
    expect(second.exitCode).toBe(0);
    expect(sha256File(join(dir, "a.o"))).toBe(before);
    const s = k.stats();
    expect(s.cache_misses).toEqual({ C: 1 });
    expect(s.cache_hits).toEqual({ C: 1 });
    expect(s.compile_requests).toBe(2);
  });

  test("editing a header misses exactly its dependents; changing a -D misses", () => {
    const k = new KilnInstance();
    const dir = scratch();
    writeFiles(dir, PROJECT);
    const build = (extra: string[] = []) => {
      for (const f of ["a", "b", "c"]) ok([KILN, "gcc", "-Iinc", ...extra, "-c", `${f}.c`, "-o", `${f}.o`], { cwd: dir, env: k.env });
    };
    build();
    k.zero();
    writeFiles(dir, { "inc/other.h": "int other(void);\nint other2(void);\n" });
    build();
    let s = k.stats();
    expect(s.cache_misses_total).toBe(2); // b.c and c.c include other.h
    expect(s.cache_hits_total).toBe(1); // a.c does not
    k.zero();
    build(["-DBONUS=5"]); // only a.c uses BONUS
    s = k.stats();
    expect(s.cache_misses_total).toBe(1);
    expect(s.cache_hits_total).toBe(2);
  });

  test("with -g3 an unused macro is in the debug info, so changing it misses", () => {
    const k = new KilnInstance();
    const dir = scratch();
    writeFiles(dir, PROJECT);
    ok([KILN, "gcc", "-g3", "-Iinc", "-c", "a.c"], { cwd: dir, env: k.env });
    writeFiles(dir, { "inc/config.h": "#define SCALE 3\n#define UNUSED_NOTE 2\n" });
    const plain = run(["gcc", "-g3", "-Iinc", "-c", "a.c", "-o", "plain.o"], { cwd: dir });
    expect(plain.exitCode).toBe(0);
    ok([KILN, "gcc", "-g3", "-Iinc", "-c", "a.c"], { cwd: dir, env: k.env });
    expect(k.stats().cache_misses_total).toBe(2);
    // Without macro debug info the same edit changes nothing the compiler writes: a hit.
    ok([KILN, "gcc", "-g", "-Iinc", "-c", "a.c"], { cwd: dir, env: k.env });
    writeFiles(dir, { "inc/config.h": "#define SCALE 3\n#define UNUSED_NOTE 3\n" });
    ok([KILN, "gcc", "-g", "-Iinc", "-c", "a.c"], { cwd: dir, env: k.env });
    expect(k.stats().cache_hits_total).toBe(1);
  });

  test("a compile error: same stderr and exit code as plain gcc, and nothing cached", () => {
    const k = new KilnInstance();
    const dir = scratch();
    writeFiles(dir, { "bad.c": "int f(void) {\n  return undefined_thing;\n}\n" });
    const plain = run(["gcc", "-c", "bad.c", "-o", "bad.o"], { cwd: dir });
    const first = k.kiln(["gcc", "-c", "bad.c", "-o", "bad.o"], { cwd: dir });
    const second = k.kiln(["gcc", "-c", "bad.c", "-o", "bad.o"], { cwd: dir });
    expect(plain.exitCode).not.toBe(0);
    for (const r of [first, second]) {
      expect(r.exitCode).toBe(plain.exitCode);
      expect(r.stderr).toBe(plain.stderr);
      expect(r.stdout).toBe(plain.stdout);
    }
    const s = k.stats();
    expect(s.compile_failures).toBe(2);
    expect(s.cache_hits_total).toBe(0);
    expect(s.cache_misses_total).toBe(0);
  });

  test("warnings are replayed on a hit, byte for byte", () => {
    const k = new KilnInstance();
    const dir = scratch();
    writeFiles(dir, { "w.c": "int f(int x) { int unused; return x; }\n" });
    const plain = run(["gcc", "-Wall", "-c", "w.c"], { cwd: dir });
    expect(plain.stderr).toContain("unused");
    const first = k.kiln(["gcc", "-Wall", "-c", "w.c"], { cwd: dir });
    const second = k.kiln(["gcc", "-Wall", "-c", "w.c"], { cwd: dir });
    expect(first.stderr).toBe(plain.stderr);
    expect(second.stderr).toBe(plain.stderr);
    expect(k.stats().cache_hits_total).toBe(1);
  });

  test("diagnostics keep their colours on a terminal, on a miss and on a hit; none on a pipe", () => {
    const k = new KilnInstance();
    const dir = scratch();
    writeFiles(dir, { "w.c": "int f(int x) { int unused; return x; }\n" });
    // script(1) gives the command a terminal for stdout and stderr.
    const onTerminal = () =>
      run(["script", "-qec", `${KILN} gcc -Wall -c w.c`, "/dev/null"], { cwd: dir, env: k.env }).stdout;
    const plainOnTerminal = run(["script", "-qec", "gcc -Wall -c w.c", "/dev/null"], { cwd: dir }).stdout;
    expect(plainOnTerminal).toContain("\x1b[01;35m"); // gcc colours warnings on a terminal
    for (const output of [onTerminal(), onTerminal()]) {
      expect(output).toContain("\x1b[01;35m");
      expect(output).toContain("unused variable");
    }
    expect(k.stats().cache_hits_total).toBe(1);
    const piped = k.kiln(["gcc", "-Wall", "-c", "w.c"], { cwd: dir });
    expect(piped.stderr).toBe(run(["gcc", "-Wall", "-c", "w.c"], { cwd: dir }).stderr);
    expect(piped.stderr).not.toContain("\x1b");
  });

  test("KILN_RECACHE recompiles and overwrites; KILN_NO_CACHE bypasses the cache", () => {
    const k = new KilnInstance();
    const dir = scratch();
    writeFiles(dir, PROJECT);
    ok([KILN, "gcc", "-Iinc", "-c", "a.c"], { cwd: dir, env: k.env });
    ok([KILN, "gcc", "-Iinc", "-c", "a.c"], { cwd: dir, env: { ...k.env, KILN_RECACHE: "1" } });
    ok([KILN, "gcc", "-Iinc", "-c", "a.c"], { cwd: dir, env: { ...k.env, KILN_NO_CACHE: "1" } });
    const s = k.stats();
    expect(s.forced_recaches).toBe(1);
    expect(s.cache_misses_total).toBe(2);
    expect(s.cache_hits_total).toBe(0);
    expect(s.not_cacheable["cache disabled (KILN_NO_CACHE)"]).toBe(1);
  });

  test("a project's .env file does not change Kiln's settings", () => {
    const k = new KilnInstance();
    const dir = scratch();
    writeFiles(dir, { ...PROJECT, ".env": "KILN_NO_CACHE=1\nKILN_RECACHE=1\n" });
    ok([KILN, "gcc", "-Iinc", "-c", "a.c"], { cwd: dir, env: k.env });
    ok([KILN, "gcc", "-Iinc", "-c", "a.c"], { cwd: dir, env: k.env });
    const s = k.stats();
    expect(s.cache_hits_total).toBe(1);
    expect(s.forced_recaches).toBe(0);
    expect(s.non_cacheable_calls).toBe(0);
  });

  test("non-cacheable calls run unchanged and are counted under their reason", () => {
    const k = new KilnInstance();
    const dir = scratch();
    writeFiles(dir, { ...PROJECT, "main.c": "int a(int);\nint main(void) { return a(1) == 4 ? 0 : 1; }\n" });
    ok([KILN, "gcc", "-Iinc", "-c", "a.c"], { cwd: dir, env: k.env });
    ok([KILN, "gcc", "-o", "prog", "main.c", "a.o"], { cwd: dir, env: k.env });
    expect(run([join(dir, "prog")]).exitCode).toBe(0);
    const pre = k.kiln(["gcc", "-Iinc", "-E", "a.c"], { cwd: dir });
    expect(pre.stdout).toContain("int a(int x)");
    const stdin = Bun.spawnSync([KILN, "gcc", "-x", "c", "-c", "-", "-o", "stdin.o"], {
      cwd: dir,
      env: k.env,
      stdin: new TextEncoder().encode("int z;\n"),
    });
    expect(stdin.exitCode).toBe(0);
    expect(existsSync(join(dir, "stdin.o"))).toBe(true);
    ok([KILN, "gcc", "-Iinc", "-c", "a.c", "b.c"], { cwd: dir, env: k.env });
    const s = k.stats();
    expect(s.not_cacheable).toEqual({
      linking: 1,
      "preprocessing only (-E)": 1,
      "input from stdin": 1,
      "multiple input files": 1,
    });
  });

  test("a corrupt cache entry is recompiled, removed and counted; the output is right", () => {
    const k = new KilnInstance();
    const dir = scratch();
    writeFiles(dir, PROJECT);
    ok([KILN, "gcc", "-Iinc", "-c", "a.c"], { cwd: dir, env: k.env });
    const good = sha256File(join(dir, "a.o"));
    ok([KILN, "--stop-server"], { env: k.env }); // flush the write-behind store
    const cacheDir = join(k.root, "cache");
    const entries = cacheFiles(cacheDir, "r");
    expect(entries.length).toBe(1);
    const blob = readFileSync(entries[0]!);
    blob[blob.length - 5]! ^= 0xff;
    writeFileSync(entries[0]!, blob);
    ok(["rm", join(dir, "a.o")]);
    const r = k.kiln(["gcc", "-Iinc", "-c", "a.c"], { cwd: dir });
    expect(r.exitCode).toBe(0);
    expect(sha256File(join(dir, "a.o"))).toBe(good);
    const s = k.stats();
    expect(s.cache_read_errors).toBe(1);
    expect(s.cache_misses_total).toBe(1);
    expect(readFileSync(k.logFile, "utf8")).toContain("corrupt cache entry");
    // Rewritten: the next compile is a hit.
    ok([KILN, "gcc", "-Iinc", "-c", "a.c"], { cwd: dir, env: k.env });
    expect(k.stats().cache_hits_total).toBe(1);
  });

  test("a truncated cache entry is a miss, not a failed build", () => {
    const k = new KilnInstance();
    const dir = scratch();
    writeFiles(dir, PROJECT);
    ok([KILN, "gcc", "-Iinc", "-c", "b.c"], { cwd: dir, env: k.env });
    ok([KILN, "--stop-server"], { env: k.env });
    const results = cacheFiles(join(k.root, "cache"), "r");
    expect(results.length).toBe(1);
    writeFileSync(results[0]!, "KLN");
    const r = k.kiln(["gcc", "-Iinc", "-c", "b.c"], { cwd: dir });
    expect(r.exitCode).toBe(0);
    expect(k.stats().cache_read_errors).toBe(1);
  });

  test("two daemons sharing one KILN_DIR, compiling the same files at once, corrupt nothing", async () => {
    const shared = join(scratch(), "shared-cache");
    const a = new KilnInstance({ KILN_DIR: shared });
    const b = new KilnInstance({ KILN_DIR: shared });
    const dirs = [scratch(), scratch()];
    const files: Record<string, string> = {};
    for (let i = 0; i < 12; i++) files[`f${i}.c`] = `#include <stdio.h>\nint f${i}(int x) { return x * ${i + 1}; }\n`;
    for (const d of dirs) writeFiles(d, files);
    const build = (k: KilnInstance, dir: string) =>
      Promise.all(
        Object.keys(files).map((f) => Bun.spawn([KILN, "gcc", "-O2", "-c", f], { cwd: dir, env: k.env }).exited),
      );
    const codes = await Promise.all([build(a, dirs[0]!), build(b, dirs[1]!)]);
    expect(codes.flat().every((c) => c === 0)).toBe(true);
    for (const k of [a, b]) ok([KILN, "--stop-server"], { env: k.env });
    // Every entry either daemon wrote reads back intact: a third pass from each side is all hits.
    for (const [i, k] of [a, b].entries()) {
      for (const f of Object.keys(files)) ok(["rm", "-f", join(dirs[i]!, f.replace(".c", ".o"))]);
      await build(k, dirs[i]!);
      const s = k.stats();
      expect(s.cache_read_errors).toBe(0);
      expect(s.cache_hits_total).toBe(12);
      for (const f of Object.keys(files)) {
        const o = f.replace(".c", ".o");
        ok(["gcc", "-O2", "-c", f, "-o", `${o}.plain`], { cwd: dirs[i]! });
        expect(sha256File(join(dirs[i]!, o))).toBe(sha256File(join(dirs[i]!, `${o}.plain`)));
      }
    }
  });

  // A private mount namespace gives any user a tiny tmpfs to fill.
  const canMount = run(["unshare", "-rm", "true"]).exitCode === 0;
  test.skipIf(!canMount)("a full disk under KILN_DIR: writes fail and are counted, builds do not", () => {
    const k = new KilnInstance();
    const cache = join(k.root, "cache");
    mkdirSync(cache, { recursive: true });
    const dir = scratch();
    const files = Array.from({ length: 6 }, (_, i) => `big${i}.c`);
    for (const [i, f] of files.entries()) {
      // ~24 KB of incompressible data per object: the 64 KiB disk fills after two entries.
      let x = 0x2545f491 ^ (i + 1);
      const bytes = Array.from({ length: 24_000 }, () => ((x = (x * 1103515245 + 12345) >>> 0) >>> 16) & 0xff);
      writeFiles(dir, { [f]: `const unsigned char blob${i}[] = {${bytes.join(",")}};\n` });
    }
    const script = [
      `mount -t tmpfs -o size=64k tmpfs ${cache}`,
      ...files.map((f) => `${KILN} gcc -c ${f} || exit 1`),
      `${KILN} -s --stats-format json > stats.json`,
      `${KILN} --stop-server > /dev/null`,
    ].join(" && ");
    const r = run(["unshare", "-rm", "sh", "-c", script], { cwd: dir, env: k.env });
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    const s = JSON.parse(readFileSync(join(dir, "stats.json"), "utf8")).stats;
    expect(s.cache_misses_total).toBe(6);
    expect(s.cache_write_errors).toBeGreaterThan(0);
    expect(readFileSync(k.logFile, "utf8")).toContain("ENOSPC");
    for (const f of files) {
      const o = f.replace(".c", ".o");
      ok(["gcc", "-c", f, "-o", `${o}.plain`], { cwd: dir });
      expect(sha256File(join(dir, o))).toBe(sha256File(join(dir, `${o}.plain`)));
    }
  });

  test("the size limit holds: the cache stays under it and recent entries survive", async () => {
    const k = new KilnInstance({ KILN_CACHE_SIZE: "64K" });
    const dir = scratch();
    // Each object carries 6000 pseudo-random bytes that zstd cannot shrink.
    const body = (i: number) => {
      let x = 0x9e3779b9 ^ (i + 1);
      const bytes = Array.from({ length: 6000 }, () => {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        return (x >>> 0) & 0xff;
      });
      return `const unsigned char blob${i}[6000] = {${bytes.join(",")}};\n`;
    };
    for (let i = 0; i < 30; i++) writeFiles(dir, { [`s${i}.c`]: body(i) });
    for (let i = 0; i < 30; i++) ok([KILN, "gcc", "-c", `s${i}.c`], { cwd: dir, env: k.env });
    ok([KILN, "--stop-server"], { env: k.env }); // waits for stores and eviction
    const json = k.statsJson();
    expect(json.max_cache_size).toBe(64 * 1024);
    expect(json.cache_size!).toBeLessThanOrEqual(64 * 1024);
    expect(json.cache_size!).toBeGreaterThan(32 * 1024);
    k.zero();
    for (let i = 27; i < 30; i++) ok([KILN, "gcc", "-c", `s${i}.c`], { cwd: dir, env: k.env });
    expect(k.stats().cache_hits_total).toBe(3);
  });
});

describe("C++, clang, dependency files, split DWARF", () => {
  test("g++ and clang++ hit with identical objects", () => {
    for (const compiler of ["g++", "clang++"]) {
      const k = new KilnInstance();
      const dir = scratch();
      writeFiles(dir, { "v.cc": "#include <vector>\nint sum(const std::vector<int>& v) { int s = 0; for (int x : v) s += x; return s; }\n" });
      const args = ["-O1", "-std=c++17", "-c", "v.cc", "-o", "v.o"];
      expect(compileBoth(k, dir, compiler, args, ["v.o"]).same).toBe(true);
      const hash = sha256File(join(dir, "v.o"));
      ok(["rm", join(dir, "v.o")]);
      ok([KILN, compiler, ...args], { cwd: dir, env: k.env });
      expect(sha256File(join(dir, "v.o"))).toBe(hash);
      expect(k.stats().cache_hits).toEqual({ "C++": 1 });
    }
  });

  test("clang C compiles hit too", () => {
    const k = new KilnInstance();
    const dir = scratch();
    writeFiles(dir, PROJECT);
    const args = ["-Iinc", "-O2", "-c", "b.c", "-o", "b.o"];
    expect(compileBoth(k, dir, "clang", args, ["b.o"]).same).toBe(true);
    ok([KILN, "clang", ...args], { cwd: dir, env: k.env });
    expect(k.stats().cache_hits).toEqual({ C: 1 });
  });

  test("-MD -MF dep files match a plain compile, on the miss and on the hit", () => {
    for (const compiler of ["gcc", "clang"]) {
      const k = new KilnInstance();
      const dir = scratch();
      writeFiles(dir, PROJECT);
      mkdirSync(join(dir, "build"));
      const args = ["-Iinc", "-MD", "-MP", "-MF", "build/b.d", "-MT", "build/b.o", "-c", "b.c", "-o", "build/b.o"];
      const first = compileBoth(k, dir, compiler, args, ["build/b.o", "build/b.d"]);
      expect(first.same).toBe(true);
      const dep = readFileSync(join(dir, "build/b.d"), "utf8");
      expect(dep).toContain("inc/other.h");
      ok(["rm", join(dir, "build/b.d"), join(dir, "build/b.o")]);
      ok([KILN, compiler, ...args], { cwd: dir, env: k.env });
      expect(readFileSync(join(dir, "build/b.d"), "utf8")).toBe(dep);
      expect(k.stats().cache_hits_total).toBe(1);
    }
  });

  test("one source built into two object directories: a hit, with the second target's own .d", () => {
    for (const compiler of ["gcc", "clang"]) {
      const k = new KilnInstance();
      const dir = scratch();
      writeFiles(dir, PROJECT);
      // As CMake writes it for a library built twice (two targets, two object directories).
      const call = (target: string) => {
        const o = `CMakeFiles/${target}.dir/b.c.o`;
        mkdirSync(join(dir, `CMakeFiles/${target}.dir`), { recursive: true });
        return ["-Iinc", "-MD", "-MT", o, "-MF", `${o}.d`, "-c", "b.c", "-o", o];
      };
      ok([KILN, compiler, ...call("lib")], { cwd: dir, env: k.env });
      const second = call("lib_with_a_much_longer_target_name");
      const r = compileBoth(k, dir, compiler, second, [second.at(-1)!, `${second.at(-1)}.d`]);
      expect(r.viaKiln.exitCode).toBe(0);
      expect(r.same).toBe(true);
      expect(k.stats().cache_hits_total).toBe(1);
      expect(k.stats().cache_misses_total).toBe(1);
    }
  });

  test("-MMD without -MF writes the .d next to the object, with this call's target", () => {
    const k = new KilnInstance();
    const dir = scratch();
    writeFiles(dir, PROJECT);
    mkdirSync(join(dir, "out"));
    const args = ["-Iinc", "-MMD", "-c", "c.c", "-o", "out/c.o"];
    expect(compileBoth(k, dir, "gcc", args, ["out/c.o", "out/c.d"]).same).toBe(true);
    ok(["rm", join(dir, "out/c.d")]);
    ok([KILN, "gcc", ...args], { cwd: dir, env: k.env });
    expect(readFileSync(join(dir, "out/c.d"), "utf8")).toStartWith("out/c.o:");
  });

  test("-gsplit-dwarf writes the .dwo on a miss and on a hit", () => {
    const k = new KilnInstance();
    const dir = scratch();
    writeFiles(dir, PROJECT);
    const args = ["-Iinc", "-g", "-gsplit-dwarf", "-c", "a.c", "-o", "a.o"];
    const first = compileBoth(k, dir, "gcc", args, ["a.o", "a.dwo"]);
    expect(first.same).toBe(true);
    const dwo = sha256File(join(dir, "a.dwo"));
    ok(["rm", join(dir, "a.o"), join(dir, "a.dwo")]);
    ok([KILN, "gcc", ...args], { cwd: dir, env: k.env });
    expect(sha256File(join(dir, "a.dwo"))).toBe(dwo);
    expect(k.stats().cache_hits_total).toBe(1);
  });

  test("--coverage: the hit restores the .gcno and the object of one compile, as a pair", () => {
    // gcc stamps each compile's .gcno and object with the time, so a plain compile is no
    // reference here; what must hold is that the pair comes back together.
    const k = new KilnInstance();
    const dir = scratch();
    writeFiles(dir, PROJECT);
    const args = ["-Iinc", "--coverage", "-c", "a.c", "-o", "a.o"];
    ok([KILN, "gcc", ...args], { cwd: dir, env: k.env });
    const pair = [sha256File(join(dir, "a.o")), sha256File(join(dir, "a.gcno"))];
    ok(["rm", join(dir, "a.o"), join(dir, "a.gcno")]);
    ok([KILN, "gcc", ...args], { cwd: dir, env: k.env });
    expect([sha256File(join(dir, "a.o")), sha256File(join(dir, "a.gcno"))]).toEqual(pair);
    expect(k.stats().cache_hits_total).toBe(1);
  });
});

describe("masquerade", () => {
  test("a gcc -> kiln symlink early in PATH compiles through the cache and never recurses", () => {
    const k = new KilnInstance();
    const bin = scratch("bin-");
    symlinkSync(KILN, join(bin, "gcc"));
    const dir = scratch();
    writeFiles(dir, PROJECT);
    const env = { ...k.env, PATH: `${bin}:${process.env.PATH}` };
    ok(["gcc", "-Iinc", "-c", "a.c"], { cwd: dir, env });
    ok(["rm", join(dir, "a.o")]);
    const r = run(["gcc", "-Iinc", "-c", "a.c"], { cwd: dir, env, timeoutMs: 20_000 });
    expect(r.exitCode).toBe(0);
    expect(existsSync(join(dir, "a.o"))).toBe(true);
    expect(k.stats().cache_hits_total).toBe(1);
    // `kiln gcc` with the symlink first in PATH also finds the real gcc.
    const viaName = run([KILN, "gcc", "-Iinc", "-c", "a.c"], { cwd: dir, env, timeoutMs: 20_000 });
    expect(viaName.exitCode).toBe(0);
    expect(k.stats().cache_hits_total).toBe(2);
  });

  test("a copy of kiln named gcc (not a symlink) works and starts exactly one daemon", async () => {
    const k = new KilnInstance();
    const bin = scratch("bin-");
    copyFileSync(KILN, join(bin, "gcc"));
    chmodSync(join(bin, "gcc"), 0o755);
    const dir = scratch();
    writeFiles(dir, PROJECT);
    const env = { ...k.env, PATH: `${bin}:${process.env.PATH}` };
    const r = run(["gcc", "-Iinc", "-c", "a.c"], { cwd: dir, env, timeoutMs: 20_000 });
    expect(r.exitCode).toBe(0);
    expect(existsSync(join(dir, "a.o"))).toBe(true);
    await Bun.sleep(300);
    const daemons = run(["pgrep", "-f", `${bin}/gcc`]).stdout.trim().split("\n").filter(Boolean);
    expect(daemons.filter((pid) => alive(Number(pid))).length).toBe(1);
    expect(k.stats().cache_misses_total).toBe(1);
  });

  test("when only Kiln itself answers to the name, the error says so instead of looping", () => {
    const k = new KilnInstance();
    const bin = scratch("bin-");
    symlinkSync(KILN, join(bin, "gcc"));
    const dir = scratch();
    writeFiles(dir, PROJECT);
    const r = run([join(bin, "gcc"), "-c", "a.c"], { cwd: dir, env: { ...k.env, PATH: bin }, timeoutMs: 20_000 });
    expect(r.exitCode).toBe(127);
    expect(r.stderr).toContain("cannot find the compiler 'gcc'");
    expect(statSync(dir).isDirectory()).toBe(true);
  });
});
