// `kiln bench`: the plain/cold/warm comparison a user runs on their own build.

import { expect, test } from "bun:test";
import { cpSync } from "node:fs";
import { join } from "node:path";
import { KILN, REPO, run, scratch } from "./support.ts";

test("kiln bench times a plain, a cold and a warm build and reports the hit rate", () => {
  const dir = join(scratch(), "demo");
  cpSync(join(REPO, "demo"), dir, { recursive: true });
  const r = run([KILN, "bench", "--clean", "make clean", "--", "make -j2 CC=cc"], { cwd: dir, timeoutMs: 120_000 });
  expect(r.stderr).toContain("[3/3] through kiln, cache full...");
  expect(r.exitCode).toBe(0);
  expect(r.stdout).toMatch(/plain build\s+\d+\.\d\d s/);
  expect(r.stdout).toMatch(/kiln, empty cache .* 6 cacheable compiles/);
  expect(r.stdout).toContain("hit rate 100 % (6 direct, 0 preprocessed, 0 misses)");
  expect(r.stdout).toContain("A cache pays off");
});

test("kiln bench says which run failed and exits non-zero", () => {
  const dir = scratch();
  const r = run([KILN, "bench", "--", "sh -c 'echo broken >&2; exit 3'"], { cwd: dir, timeoutMs: 60_000 });
  expect(r.exitCode).toBe(1);
  expect(r.stderr).toContain("the build failed (exit 3) during the plain build");
  expect(r.stderr).toContain("broken");
  const usage = run([KILN, "bench"], { cwd: dir });
  expect(usage.exitCode).toBe(2);
  expect(usage.stderr).toContain("no build command after --");
});
