// rustc command lines: what is cacheable, under which reason, and what the key sees.

import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { extraFilename, linkOutputNames, parseRustcArgs, isRustcName, type RustCompile } from "../src/compilers/rust/args.ts";
import { parseDepInfo } from "../src/compilers/rust/depinfo.ts";
import { ok, scratch, writeFiles } from "./support.ts";

const LIB = ["--crate-name", "foo", "--edition=2021", "src/lib.rs", "--crate-type", "lib", "--emit=dep-info,metadata,link"];

function cacheable(args: string[]): RustCompile {
  const p = parseRustcArgs(args, "/w");
  if (!p.cacheable) throw new Error(`not cacheable: ${p.reason} ${p.detail ?? ""}`);
  return p;
}

const reason = (args: string[]) => {
  const p = parseRustcArgs(args, "/w");
  return p.cacheable ? "cacheable" : p.reason;
};

describe("parseRustcArgs", () => {
  test("a cargo library call: crate, outputs, inputs", () => {
    const p = cacheable([
      ...LIB,
      "-C", "extra-filename=-abc",
      "--out-dir", "/w/target/debug/deps",
      "-L", "dependency=/w/target/debug/deps",
      "-L", "native=/w/native",
      "-l", "static=z",
      "--extern", "regex=/w/target/debug/deps/libregex-1.rmeta",
      "--extern", "noprelude:alloc",
      "--target", "specs/x.json",
    ]);
    expect(p.crateName).toBe("foo");
    expect(p.input).toBe("src/lib.rs");
    expect(p.emit).toEqual(["dep-info", "metadata", "link"]);
    expect(p.outDir).toBe("/w/target/debug/deps");
    expect(p.externs).toEqual([{ name: "regex", path: "/w/target/debug/deps/libregex-1.rmeta" }, { name: "alloc" }]);
    expect(p.staticLibs).toEqual(["z"]);
    expect(p.nativeDirs).toEqual(["/w/native"]);
    expect(p.targetSpec).toBe("specs/x.json");
  });

  test("--cfg and --check-cfg order does not change the key arguments; their values do", () => {
    const a = cacheable([...LIB, "--cfg", 'feature="a"', "--cfg", 'feature="b"', "--check-cfg", "cfg(x)", "--check-cfg", "cfg(y)"]);
    const b = cacheable([...LIB, "--check-cfg", "cfg(y)", "--cfg", 'feature="b"', "--check-cfg=cfg(x)", "--cfg=feature=\"a\""]);
    expect(b.keyArgs).toEqual(a.keyArgs);
    const c = cacheable([...LIB, "--cfg", 'feature="a"', "--cfg", 'feature="c"', "--check-cfg", "cfg(x)", "--check-cfg", "cfg(y)"]);
    expect(c.keyArgs).not.toEqual(a.keyArgs);
  });

  test("each crate type that links, incremental, and other --emit kinds have their own reason", () => {
    expect(reason(LIB)).toBe("cacheable");
    expect(reason([...LIB, "--crate-type", "staticlib"])).toBe("cacheable");
    expect(reason([...LIB.slice(0, 4), "--crate-type", "rlib"])).toBe("cacheable");
    for (const type of ["bin", "dylib", "cdylib", "proc-macro"]) {
      expect(reason(["--crate-name", "foo", "src/lib.rs", "--crate-type", type, "-C", "prefer-dynamic"])).toBe(`crate type ${type}`);
    }
    expect(reason(["--crate-name", "foo", "src/main.rs"])).toBe("crate type bin");
    expect(reason([...LIB, "--test"])).toBe("crate type bin");
    expect(reason([...LIB, "-C", "incremental=/w/target/debug/incremental"])).toBe("incremental compilation (-C incremental)");
    expect(reason([...LIB, "-Cincremental=/w/inc"])).toBe("incremental compilation (-C incremental)");
    expect(reason([...LIB, "--emit=asm"])).toBe("unsupported --emit");
    expect(reason([...LIB, "--emit", "llvm-ir"])).toBe("unsupported --emit");
    expect(reason(["-vV"])).toBe("rustc query (--print, -vV)");
    expect(reason(["-", "--crate-name", "___", "--print=file-names", "--crate-type", "lib"])).toBe("rustc query (--print, -vV)");
    expect(reason([...LIB, "-Z", "unpretty=expanded"])).toBe("unsupported rustc option");
    expect(reason([...LIB, "-C", "save-temps"])).toBe("unsupported rustc option");
    expect(reason([...LIB, "-C", "split-debuginfo=unpacked"])).toBe("unsupported rustc option");
    expect(reason([...LIB, "--frobnicate"])).toBe("unsupported rustc option");
    expect(reason([...LIB, "other.rs"])).toBe("multiple input files");
  });

  test("@file arguments are read, one per line", () => {
    const dir = scratch("kra-");
    writeFiles(dir, { "args": ["--crate-type", "lib", "--cfg", "x"].join("\n") + "\n" });
    const p = parseRustcArgs(["--crate-name", "foo", "src/lib.rs", `@${join(dir, "args")}`], "/w");
    expect(p.cacheable && p.keyArgs).toContain("--cfg=x");
    expect(reason(["--crate-name", "foo", "src/lib.rs", "@/nonexistent/args"])).toBe("unreadable response file");
  });

  test("names: rustc, versioned rustc and clippy-driver", () => {
    expect(["rustc", "rustc-1.63", "clippy-driver"].map(isRustcName)).toEqual([true, true, true]);
    expect(["rustdoc", "rustc-wrapper", "gcc"].map(isRustcName)).toEqual([false, false, false]);
  });
});

test("parseDepInfo: the sources of the first rule and the env-deps", () => {
  const text = [
    "/w/target/debug/deps/foo-1.d: src/lib.rs src/a\\ b.rs /w/target/debug/build/foo-2/out/gen.rs",
    "",
    "/w/target/debug/deps/libfoo-1.rlib: src/lib.rs src/a\\ b.rs /w/target/debug/build/foo-2/out/gen.rs",
    "",
    "src/lib.rs:",
    "src/a\\ b.rs:",
    "",
    "# env-dep:OUT_DIR=/w/target/debug/build/foo-2/out",
    "# env-dep:UNSET_ONE",
    "",
  ].join("\n");
  expect(parseDepInfo(text)).toEqual({
    files: ["src/lib.rs", "src/a b.rs", "/w/target/debug/build/foo-2/out/gen.rs"],
    envDeps: ["OUT_DIR", "UNSET_ONE"],
  });
});

test("linkOutputNames: the names rustc's --print file-names gives, or undefined where unsure", () => {
  const dir = scratch("kra-");
  writeFiles(dir, { "src/lib.rs": "pub fn f() {}\n" });
  const host = /^host: (.*)$/m.exec(ok(["rustc", "-vV"]).stdout)![1]!;
  const calls = [
    ["--crate-type", "lib"],
    ["--crate-type", "rlib", "-C", "extra-filename=-0123abcd"],
    ["--crate-type", "staticlib", "-Cextra-filename=-x"],
    ["--crate-type", "rlib,staticlib", "-C", "extra-filename=-a", "-C", "extra-filename=-b"],
    ["--crate-type", "lib", "--crate-type", "rlib"],
    ["--crate-type", "staticlib", "--target", host],
  ];
  for (const extra of calls) {
    const args = ["--crate-name", "foo_bar", "--edition=2021", "src/lib.rs", "--emit=dep-info,metadata,link", ...extra];
    const p = parseRustcArgs(args, dir);
    if (!p.cacheable) throw new Error(`not cacheable: ${args.join(" ")}`);
    const printed = ok(["rustc", ...args, "--print=file-names"], { cwd: dir }).stdout.split("\n").filter(Boolean);
    expect({ args, names: linkOutputNames(p, extraFilename(p))?.sort() }).toEqual({ args, names: printed.sort() });
  }
  // Targets whose library names Kiln does not assume: rustc is asked.
  const staticlib = ["--crate-name", "foo", "src/lib.rs", "--crate-type", "staticlib"];
  expect(linkOutputNames(cacheable([...staticlib, "--target", "x86_64-pc-windows-msvc"]), "")).toBeUndefined();
  expect(linkOutputNames(cacheable([...staticlib, "--target", "x86_64-unknown-linux-gnu"]), "")).toEqual(["libfoo.a"]);
  expect(linkOutputNames(cacheable([...LIB, "--crate-type", "staticlib", "--target", "my-target.json"]), "")).toBeUndefined();
});
