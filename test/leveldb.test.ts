// A real C++ project built with CMake and Kiln as its compiler launcher: leveldb (the library).

import { expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { KILN, KilnInstance, ok, run, scratch, sha256File, workload } from "./support.ts";

function objectFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith(".o"))
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

test("leveldb through CMake's launcher: cold objects match plain ones, the rebuild is all direct hits", () => {
  const src = workload("leveldb");
  const build = join(scratch(), "build");
  const k = new KilnInstance();
  const configure = (launcher: string[]) =>
    ok(
      [
        "cmake", "-S", src, "-B", build, "-G", "Unix Makefiles", "-DCMAKE_BUILD_TYPE=Release",
        "-DLEVELDB_BUILD_TESTS=OFF", "-DLEVELDB_BUILD_BENCHMARKS=OFF", "-DLEVELDB_INSTALL=OFF", ...launcher,
      ],
      { timeoutMs: 120_000 },
    );
  const make = () => run(["make", "-C", build, "-j2"], { env: k.env, timeoutMs: 600_000 });

  configure(["-UCMAKE_CXX_COMPILER_LAUNCHER", "-UCMAKE_C_COMPILER_LAUNCHER"]);
  expect(make().exitCode).toBe(0);
  const objects = objectFiles(build);
  expect(objects.length).toBeGreaterThan(20);
  const plain = new Map(objects.map((o) => [o, sha256File(o)]));

  configure([`-DCMAKE_C_COMPILER_LAUNCHER=${KILN}`, `-DCMAKE_CXX_COMPILER_LAUNCHER=${KILN}`]);
  ok(["make", "-C", build, "clean"]);
  expect(make().exitCode).toBe(0);
  for (const o of objects) expect(`${o} ${sha256File(o)}`).toBe(`${o} ${plain.get(o)}`);
  expect(k.stats().cache_misses_total).toBe(objects.length);

  ok(["make", "-C", build, "clean"]);
  k.zero();
  expect(make().exitCode).toBe(0);
  const s = k.stats();
  expect(s.cache_hits).toEqual({ "C++": objects.length });
  expect(s.direct_hits).toBe(objects.length);
  for (const o of objects) expect(`${o} ${sha256File(o)}`).toBe(`${o} ${plain.get(o)}`);
}, 900_000);
