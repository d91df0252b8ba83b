// A real project, built the way its users build it: lua5.4 with make -j2.

import { describe, expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { KILN, KilnInstance, ok, run, sha256File, workload } from "./support.ts";

const objects = (dir: string) => readdirSync(join(dir, "src")).filter((f) => f.endsWith(".o")).sort();

function make(dir: string, cc: string, env: Record<string, string | undefined>, extra: string[] = []) {
  return run(["make", "-C", join(dir, "src"), "-j2", "linux", `CC=${cc}`, ...extra], { env, timeoutMs: 300_000 });
}

describe("lua5.4", () => {
  test("objects are byte-identical to a plain build; a rebuild after make clean is all hits; lua runs", () => {
    const plainDir = workload("lua5.4");
    const kilnDir = workload("lua5.4");
    const k = new KilnInstance();
    expect(make(plainDir, "gcc -std=gnu99", process.env).exitCode).toBe(0);
    const cold = make(kilnDir, `${KILN} gcc -std=gnu99`, k.env);
    expect(cold.exitCode).toBe(0);
    const names = objects(kilnDir);
    expect(names.length).toBeGreaterThan(30);
    expect(objects(plainDir)).toEqual(names);
    for (const o of names) expect(`${o} ${sha256File(join(kilnDir, "src", o))}`).toBe(`${o} ${sha256File(join(plainDir, "src", o))}`);
    const coldStats = k.stats();
    expect(coldStats.cache_misses_total).toBe(names.length);
    expect(coldStats.cache_hits_total).toBe(0);

    ok(["make", "-C", join(kilnDir, "src"), "clean"]);
    k.zero();
    expect(make(kilnDir, `${KILN} gcc -std=gnu99`, k.env).exitCode).toBe(0);
    const warm = k.stats();
    expect(warm.cache_hits).toEqual({ C: names.length });
    expect(warm.direct_hits).toBe(names.length);
    expect(warm.cache_misses_total).toBe(0);
    for (const o of names) expect(sha256File(join(kilnDir, "src", o))).toBe(sha256File(join(plainDir, "src", o)));
    const lua = run([join(kilnDir, "src", "lua"), "-e", "print(6 * 7)"]);
    expect(lua.stdout).toBe("42\n");
  }, 300_000);

  test("SIGKILL of the daemon in the middle of make -j2: the build still succeeds", async () => {
    const dir = workload("lua5.4");
    const k = new KilnInstance();
    ok([KILN, "--start-server"], { env: k.env });
    const pid = k.daemonPid()!;
    const build = Bun.spawn(["make", "-C", join(dir, "src"), "-j2", "linux", `CC=${KILN} gcc -std=gnu99`], {
      env: k.env,
      stdout: "pipe",
      stderr: "pipe",
    });
    // Let a few compiles go through the daemon, then kill it mid-build.
    for (let i = 0; i < 200 && readdirSync(join(dir, "src")).filter((f) => f.endsWith(".o")).length < 4; i++) await Bun.sleep(25);
    process.kill(pid, "SIGKILL");
    const code = await build.exited;
    expect(code).toBe(0);
    expect(run([join(dir, "src", "lua"), "-e", "print('ok')"]).stdout).toBe("ok\n");
  }, 300_000);

  test("two checkouts built with -g share every hit through KILN_BASEDIRS, and only through it", () => {
    const first = workload("lua5.4");
    const second = workload("lua5.4");
    for (const basedirs of [`${first}:${second}`, undefined]) {
      const k = new KilnInstance(basedirs ? { KILN_BASEDIRS: basedirs } : {});
      for (const dir of [first, second]) {
        ok(["make", "-C", join(dir, "src"), "clean"]);
        expect(make(dir, `${KILN} gcc -std=gnu99`, k.env, ["MYCFLAGS=-g"]).exitCode).toBe(0);
        if (dir === first) k.zero();
      }
      const s = k.stats();
      const n = objects(second).length;
      if (basedirs) {
        expect(s.cache_hits).toEqual({ C: n });
        expect(s.direct_hits).toBe(n);
        expect(run([join(second, "src", "lua"), "-e", "print(1 + 1)"]).stdout).toBe("2\n");
      } else {
        // -g records the working directory, so without basedirs the checkouts do not share.
        expect(s.cache_misses_total).toBe(n);
      }
    }
  }, 300_000);
});
