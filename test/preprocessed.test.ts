// What direct mode reads out of a preprocessing run, checked on real gcc and clang output.

import { describe, expect, test } from "bun:test";
import { BASE_MARK, PathNormalizer } from "../src/compilers/basedirs.ts";
import { parseSearchDirs, scanPreprocessed, shadowCandidates } from "../src/compilers/c-family/preprocessed.ts";
import { run, scratch, writeFiles } from "./support.ts";

function project(): string {
  const dir = scratch();
  writeFiles(dir, {
    "inc/a.h": '#include "b.h"\n#include <stddef.h>\n',
    "inc/b.h": "#define B 1\n",
    "src/main.c": '#include "a.h"\nint x = B;\n',
  });
  return dir;
}

describe("scanPreprocessed and parseSearchDirs on real output", () => {
  for (const compiler of ["gcc", "clang"]) {
    test(`${compiler}: included files with their includers, and the search list`, () => {
      const dir = project();
      const r = run([compiler, "-Iinc", "-Imissing", "-v", "-E", "src/main.c"], { cwd: dir });
      expect(r.exitCode).toBe(0);
      const { includes } = scanPreprocessed(new TextEncoder().encode(r.stdout), "src/main.c");
      const byPath = new Map(includes.map((i) => [i.path, i.includer]));
      expect(byPath.get("inc/a.h")).toBe("src/main.c");
      expect(byPath.get("inc/b.h")).toBe("inc/a.h");
      const stddef = includes.find((i) => i.path.endsWith("/stddef.h"));
      expect(stddef?.includer).toBe("inc/a.h");
      const dirs = parseSearchDirs(r.stderr)!;
      expect(dirs.bracket[0]).toBe("inc");
      expect(dirs.bracket.some((d) => d === "/usr/include")).toBe(true);
      expect(dirs.missing).toContain("missing");
    });
  }
});

describe("shadowCandidates", () => {
  const dirs = { quote: ["q"], bracket: ["i1", "i2", "/usr/include"], missing: ["gone"] };

  test("names every earlier place on the search path, the includer's directory first", () => {
    const c = shadowCandidates([{ path: "i2/x.h", includer: "src/a.c" }], dirs, () => false);
    expect(Object.fromEntries([...c].map(([d, n]) => [d, [...n]]))).toEqual({
      src: ["x.h"],
      q: ["x.h"],
      i1: ["x.h"],
      gone: ["x.h"],
    });
  });

  test("readings that name an existing file are dropped: the preprocessor would have used it", () => {
    const c = shadowCandidates(
      [{ path: "/usr/include/stdio.h", includer: "/usr/include/foo.h" }],
      dirs,
      (dir) => dir === "/usr/include",
    );
    expect(c.has("/usr/include")).toBe(false);
    expect([...c.get("i1")!]).toEqual(["stdio.h"]);
  });

  test("a file under no search directory has nothing before it", () => {
    expect(shadowCandidates([{ path: "/opt/x.h", includer: undefined }], dirs, () => false).size).toBe(0);
  });
});

describe("PathNormalizer", () => {
  const norm = new PathNormalizer(["/home/a/proj", "/home/b/proj"], "/home/a/proj/build", "../src/x.c");

  test("paths and arguments inside the checkout lose its directory; others are kept", () => {
    expect(norm.base).toBe("/home/a/proj");
    expect(norm.path("/home/a/proj/include/x.h")).toBe(`${BASE_MARK}/include/x.h`);
    expect(norm.path("/usr/include/stdio.h")).toBe("/usr/include/stdio.h");
    expect(norm.arg("-I/home/a/proj/include")).toBe(`-I${BASE_MARK}/include`);
    expect(norm.arg("-fdebug-prefix-map=/home/a/proj=.")).toBe(`-fdebug-prefix-map=${BASE_MARK}=.`);
    expect(norm.arg("-I/home/a/project-other")).toBe("-I/home/a/project-other");
  });

  test("a stored dependency file comes back with the other checkout's directory", () => {
    const other = new PathNormalizer(["/home/a/proj", "/home/b/proj"], "/home/b/proj/build", "../src/x.c");
    const stored = norm.depFile(new TextEncoder().encode("x.o: /home/a/proj/src/x.c /usr/include/stdio.h\n"));
    expect(new TextDecoder().decode(other.restoreDepFile(stored)!)).toBe("x.o: /home/b/proj/src/x.c /usr/include/stdio.h\n");
    const outside = new PathNormalizer(["/home/a/proj"], "/tmp", "/tmp/x.c");
    expect(outside.restoreDepFile(stored)).toBeUndefined();
  });

  test("a base directory that needs escaping is not used", () => {
    expect(new PathNormalizer(["/home/a/my proj"], "/home/a/my proj", "x.c").base).toBeUndefined();
  });
});
