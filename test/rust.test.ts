// Rust through cargo (RUSTC_WRAPPER=kiln), with real cargo and rustc and Debian's packaged
// crates (offline). One workspace (two library crates, a build script writing OUT_DIR, a
// binary; regex, serde_json, clap with derive) is built cold once and shared by the cases
// below, which run in order; the cheaper cases use a one-crate package.

import { describe, expect, test } from "bun:test";
import { cpSync, existsSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { OFFLINE_CARGO_CONFIG, RUST_WORKSPACE } from "../scripts/rust-workspace.ts";
import { exchange } from "../src/client/client.ts";
import { decodeDone, encodeJson, Kind, type CompileCall } from "../src/ipc/wire.ts";
import { KILN, KilnInstance, ok, run, scratch, sha256File, writeFiles } from "./support.ts";

function cargoBin(): string {
  const found = Bun.which("cargo");
  if (!found) throw new Error("cargo is not in PATH (.ci/run puts rustup's or Debian's there)");
  return found;
}

function workspace(dir: string): string {
  writeFiles(dir, RUST_WORKSPACE); // (and waits a little: see writeFiles)
  return dir;
}

/** cargo with Kiln as the wrapper; the build's own output is kept for the failure message. */
function cargo(k: KilnInstance, dir: string, args: string[], env: Record<string, string | undefined> = {}) {
  return ok([cargoBin(), ...args], {
    cwd: dir,
    env: { ...k.env, RUSTC_WRAPPER: KILN, CARGO_INCREMENTAL: "0", CARGO_TERM_COLOR: "never", ...env },
    timeoutMs: 110_000,
  });
}

/** The library outputs of a build: every .rlib, .rmeta and .d in target/debug/deps, with digests. */
function libraryOutputs(dir: string): Record<string, string> {
  const deps = join(dir, "target", "debug", "deps");
  const out: Record<string, string> = {};
  for (const name of readdirSync(deps).sort()) {
    if (/\.(rlib|rmeta|d)$/.test(name)) out[name] = sha256File(join(deps, name));
  }
  return out;
}

const rlibCount = (outputs: Record<string, string>) => Object.keys(outputs).filter((n) => n.endsWith(".rlib")).length;

describe("cargo workspace with registry crates", () => {
  const root = scratch("krs-");
  const first = join(root, "one");
  const second = join(root, "two");
  // Both checkouts are base directories from the start: the daemon reads its settings once.
  const k = new KilnInstance({ KILN_BASEDIRS: `${first}:${second}` });
  const state: { outputs?: Record<string, string>; libs?: number; printed?: string; warm?: boolean } = {};

  // The cold build and the warm one are separate tests, so each has the whole timeout.
  test("a cold build misses every library crate and counts the rest by reason", () => {
    workspace(first);
    cargo(k, first, ["build"]);
    const cold = k.stats();
    const outputs = libraryOutputs(first);
    const libs = rlibCount(outputs);
    expect(libs).toBeGreaterThan(15); // regex, serde_json, clap and their dependencies, util, greet
    // The .rlib of every library crate compiled (proc-macros are .so: not cached).
    expect(cold.cache_misses).toEqual({ Rust: libs });
    expect(cold.cache_hits_total).toBe(0);
    expect(cold.not_cacheable["crate type bin"]).toBeGreaterThan(0); // build scripts and app
    expect(cold.not_cacheable["crate type proc-macro"]).toBeGreaterThan(0); // clap_derive
    const printed = ok([join(first, "target", "debug", "app"), "--text", "one two"]).stdout;
    expect(printed).toBe(`{"gen":"from build.rs","words":2}\n`);
    Object.assign(state, { outputs, libs, printed });
  }, 120_000);

  test("a build after cargo clean hits every library crate; outputs and the binary are the same", () => {
    const { outputs, libs, printed } = state;
    expect(libs).toBeDefined();
    ok([cargoBin(), "clean"], { cwd: first });
    k.zero();
    cargo(k, first, ["build"]);
    const warm = k.stats();
    expect(warm.cache_hits).toEqual({ Rust: libs! });
    expect(warm.cache_misses_total).toBe(0);
    expect(warm.compile_failures).toBe(0);
    // Restored .rlib, .rmeta and .d files are byte for byte what rustc wrote.
    expect(libraryOutputs(first)).toEqual(outputs!);
    expect(ok([join(first, "target", "debug", "app"), "--text", "one two"]).stdout).toBe(printed!);
    state.warm = true;
  }, 120_000);

  test("editing one crate's source misses that crate and its dependents only", () => {
    expect(state.warm).toBe(true);
    writeFiles(first, { "util/src/lib.rs": `pub fn words(s: &str) -> usize { 10 * regex::Regex::new(r"\\w+").unwrap().find_iter(s).count() }\n` });
    ok([cargoBin(), "clean"], { cwd: first });
    k.zero();
    cargo(k, first, ["build"]);
    const s = k.stats();
    expect(s.cache_misses).toEqual({ Rust: 2 }); // util, and greet which depends on it
    expect(s.cache_hits).toEqual({ Rust: state.libs! - 2 });
    expect(ok([join(first, "target", "debug", "app"), "--text", "one two"]).stdout).toBe(`{"gen":"from build.rs","words":20}\n`);
  }, 120_000);

  test("a feature flag changes the key", () => {
    expect(state.libs).toBeDefined();
    k.zero();
    cargo(k, first, ["build", "--features", "greet/loud"]);
    const s = k.stats();
    expect(s.cache_misses).toEqual({ Rust: 1 }); // greet with the feature
    expect(s.cache_hits_total).toBe(0);
    expect(ok([join(first, "target", "debug", "app"), "--text", "a"]).stdout).toBe(`{"GEN":"FROM BUILD.RS","WORDS":10}\n`);
  }, 120_000);

  test("a second checkout in another directory hits every library crate with KILN_BASEDIRS", () => {
    expect(state.libs).toBeDefined();
    cpSync(first, second, { recursive: true, filter: (src) => !src.startsWith(join(first, "target")) });
    k.zero();
    cargo(k, second, ["build"]);
    const s = k.stats();
    expect(s.cache_hits).toEqual({ Rust: state.libs! });
    expect(s.cache_misses_total).toBe(0);
    expect(ok([join(second, "target", "debug", "app"), "--text", "one two"]).stdout).toBe(`{"gen":"from build.rs","words":20}\n`);
    // The restored dependency files name this checkout, never the first one.
    const deps = join(second, "target", "debug", "deps");
    const greetDep = readdirSync(deps).find((n) => /^greet-.*\.d$/.test(n))!;
    const text = readFileSync(join(deps, greetDep), "utf8");
    expect(text).toContain(`${realpathSync(second)}/target/debug/build/greet-`);
    for (const name of readdirSync(deps).filter((n) => n.endsWith(".d"))) {
      expect(readFileSync(join(deps, name), "utf8")).not.toContain(`${first}/`);
    }
    // cargo takes the restored files as up to date: nothing to compile.
    k.zero();
    cargo(k, second, ["build"]);
    expect(k.stats().compile_requests).toBe(0);
    // A fresh checkout without KILN_BASEDIRS misses (sccache's behaviour, issue #2870).
    rmSync(join(second, "target"), { recursive: true, force: true });
    const other = new KilnInstance({ KILN_DIR: k.env.KILN_DIR });
    cargo(other, second, ["build", "-p", "util"]);
    const without = other.stats(); // util, regex and its dependencies: the output directory differs
    expect(without.cache_hits_total).toBe(0);
    expect(without.cache_misses.Rust).toBeGreaterThanOrEqual(3);
    other.stop();
  }, 120_000);
});

/** A package with a library (reads TINY_WHO through env!, has a clippy lint) and a binary. */
function tinyPackage(dir: string): string {
  writeFiles(dir, {
    ".cargo/config.toml": OFFLINE_CARGO_CONFIG,
    "Cargo.toml": `[package]\nname = "tiny"\nversion = "0.1.0"\nedition = "2021"\n`,
    "src/lib.rs": `pub const WHO: &str = env!("TINY_WHO");\npub fn total(v: &Vec<i32>) -> i32 { v.iter().sum() }\n`,
    "src/main.rs": `fn main() { println!("{} {}", tiny::WHO, tiny::total(&vec![1, 2])); }\n`,
  });
  return dir;
}

describe("one package", () => {
  const k = new KilnInstance();
  const dir = tinyPackage(scratch("krt-"));
  const bin = join(dir, "target", "debug", "tiny");
  /** cargo clean, then a build; the stats of that build. */
  const rebuild = (env: Record<string, string | undefined>, args = ["build"]) => {
    ok([cargoBin(), "clean"], { cwd: dir });
    k.zero();
    const r = cargo(k, dir, args, { TINY_WHO: "ann", ...env });
    return { stats: k.stats(), stderr: r.stderr };
  };

  test("a RUSTFLAGS value is in the key", () => {
    expect(rebuild({ RUSTFLAGS: "-C opt-level=1" }).stats.cache_misses).toEqual({ Rust: 1 });
    expect(rebuild({ RUSTFLAGS: "-C opt-level=1" }).stats.cache_hits).toEqual({ Rust: 1 });
    expect(rebuild({ RUSTFLAGS: "-C opt-level=2" }).stats.cache_misses).toEqual({ Rust: 1 });
    expect(rebuild({ RUSTFLAGS: "-C opt-level=1" }).stats.cache_hits).toEqual({ Rust: 1 });
  }, 120_000);

  test("an env! variable whose value changes is a miss", () => {
    expect(rebuild({ TINY_WHO: "bob" }).stats.cache_misses).toEqual({ Rust: 1 });
    expect(ok([bin]).stdout).toBe("bob 3\n");
    expect(rebuild({ TINY_WHO: "bob" }).stats.cache_hits).toEqual({ Rust: 1 });
    expect(rebuild({ TINY_WHO: "cy" }).stats.cache_misses).toEqual({ Rust: 1 });
    expect(ok([bin]).stdout).toBe("cy 3\n");
  }, 120_000);

  test("CARGO_INCREMENTAL=1: nothing claimed as a hit, the reason counted, the build right", () => {
    for (const who of ["dee", "dee"]) {
      const { stats } = rebuild({ TINY_WHO: who, CARGO_INCREMENTAL: "1" });
      expect(stats.cache_hits_total).toBe(0);
      expect(stats.cache_misses_total).toBe(0);
      expect(stats.not_cacheable["incremental compilation (-C incremental)"]).toBe(1); // the library
      expect(stats.not_cacheable["crate type bin"]).toBe(1);
      expect(ok([bin]).stdout).toBe("dee 3\n");
    }
  }, 120_000);

  test("RUSTC_WORKSPACE_WRAPPER=kiln caches the package's own crates", () => {
    const env = { RUSTC_WRAPPER: undefined, RUSTC_WORKSPACE_WRAPPER: KILN, TINY_WHO: "eve" };
    expect(rebuild(env).stats.cache_misses).toEqual({ Rust: 1 });
    expect(rebuild(env).stats.cache_hits).toEqual({ Rust: 1 });
    expect(ok([bin]).stdout).toBe("eve 3\n");
  }, 120_000);

  test("RUSTC_WRAPPER and RUSTC_WORKSPACE_WRAPPER both kiln (cargo runs `kiln kiln rustc`)", () => {
    const env = { RUSTC_WORKSPACE_WRAPPER: KILN, TINY_WHO: "gus" };
    expect(rebuild(env).stats.cache_misses).toEqual({ Rust: 1 });
    expect(rebuild(env).stats.cache_hits).toEqual({ Rust: 1 });
    expect(ok([bin]).stdout).toBe("gus 3\n");
  }, 120_000);

  test("cargo clippy (clippy-driver) is cached and its lints come back on a hit", () => {
    const clippy = run([cargoBin(), "clippy", "--version"], { cwd: dir });
    if (clippy.exitCode !== 0) {
      console.warn("cargo clippy is not installed; skipping");
      return;
    }
    const cold = rebuild({ TINY_WHO: "fay" }, ["clippy"]);
    expect(cold.stats.cache_misses).toEqual({ Rust: 1 }); // the library, under clippy-driver
    expect(cold.stderr).toContain("clippy::ptr_arg");
    const warm = rebuild({ TINY_WHO: "fay" }, ["clippy"]);
    expect(warm.stats.cache_hits).toEqual({ Rust: 1 });
    expect(warm.stderr).toContain("clippy::ptr_arg");
    // A plain check is keyed apart from clippy's: no lint from a clippy entry.
    expect(rebuild({ TINY_WHO: "fay" }, ["check"]).stderr).not.toContain("clippy::");
  }, 120_000);
});

describe("rustc called directly", () => {
  const k = new KilnInstance();
  const dir = scratch("krd-");
  writeFiles(dir, { "m.rs": `pub fn answer() -> u32 { 42 }\n`, "out/.keep": "" });
  const rustupRustc = join(process.env.HOME ?? "/root", ".cargo", "bin", "rustc");
  const toolchainRustc = ok(["rustc", "--print", "sysroot"]).stdout.trim() + "/bin/rustc";
  const args = ["--crate-name", "m", "--crate-type", "lib", "--emit=dep-info,metadata,link", "-C", "extra-filename=-x", "--out-dir", "out", "m.rs"];
  const outs = ["out/libm-x.rlib", "out/libm-x.rmeta", "out/m-x.d"];

  test("kiln /abs/path/rustc: cached; a rustup proxy is keyed on the toolchain's rustc", () => {
    const cold = k.kiln([toolchainRustc, ...args], { cwd: dir });
    expect(cold.exitCode).toBe(0);
    const digests = outs.map((o) => sha256File(join(dir, o)));
    for (const o of outs) rmSync(join(dir, o));
    // The same rustc by its name in PATH (a proxy under rustup): the same entry.
    const warm = k.kiln(["rustc", ...args], { cwd: dir });
    expect(warm.exitCode).toBe(0);
    expect(outs.map((o) => sha256File(join(dir, o)))).toEqual(digests);
    if (existsSync(rustupRustc)) {
      for (const o of outs) rmSync(join(dir, o));
      expect(k.kiln([rustupRustc, ...args], { cwd: dir }).exitCode).toBe(0);
      expect(outs.map((o) => sha256File(join(dir, o)))).toEqual(digests);
    }
    const s = k.stats();
    expect(s.cache_misses).toEqual({ Rust: 1 });
    expect(s.cache_hits).toEqual({ Rust: existsSync(rustupRustc) ? 2 : 1 });
  }, 120_000);

  test("a staticlib crate: the .a comes back", () => {
    const lib = ["--crate-name", "m", "--crate-type", "staticlib", "-C", "extra-filename=-s", "--out-dir", "out", "m.rs"];
    expect(k.kiln([toolchainRustc, ...lib], { cwd: dir }).exitCode).toBe(0);
    const digest = sha256File(join(dir, "out", "libm-s.a"));
    rmSync(join(dir, "out", "libm-s.a"));
    k.zero();
    expect(k.kiln([toolchainRustc, ...lib], { cwd: dir }).exitCode).toBe(0);
    expect(sha256File(join(dir, "out", "libm-s.a"))).toBe(digest);
    expect(k.stats().cache_hits).toEqual({ Rust: 1 });
  }, 60_000);

  test("a -l static= library is in the key (it is bundled into the rlib)", () => {
    const archive = (value: number) => {
      writeFiles(dir, { "native/cf.c": `int cf(void) { return ${value}; }\n` });
      ok(["gcc", "-c", "native/cf.c", "-o", "native/cf.o"], { cwd: dir });
      rmSync(join(dir, "native", "libcf.a"), { force: true });
      ok(["ar", "rcs", "native/libcf.a", "native/cf.o"], { cwd: dir });
    };
    const lib = ["--crate-name", "m", "--crate-type", "rlib", "-C", "extra-filename=-l", "--out-dir", "out", "-L", "native=native", "-l", "static=cf", "m.rs"];
    archive(1);
    k.zero();
    for (let i = 0; i < 2; i++) expect(k.kiln([toolchainRustc, ...lib], { cwd: dir }).exitCode).toBe(0);
    archive(2);
    expect(k.kiln([toolchainRustc, ...lib], { cwd: dir }).exitCode).toBe(0);
    const s = k.stats();
    expect(s.cache_misses).toEqual({ Rust: 2 });
    expect(s.cache_hits).toEqual({ Rust: 1 });
  }, 60_000);

  test("without --emit=dep-info: a dep-info-only run finds the modules, and editing one is a miss", () => {
    writeFiles(dir, { "n.rs": `mod sub;\npub use sub::f;\n`, "sub.rs": `pub fn f() -> u32 { 1 }\n` });
    const lib = ["--crate-name", "n", "--crate-type", "lib", "--emit=link,metadata", "--out-dir", "out", "n.rs"];
    k.zero();
    for (let i = 0; i < 2; i++) expect(k.kiln([toolchainRustc, ...lib], { cwd: dir }).exitCode).toBe(0);
    expect(existsSync(join(dir, "out", "n.d"))).toBe(false); // nothing the call did not ask for
    writeFiles(dir, { "sub.rs": `pub fn f() -> u32 { 2 }\n` });
    expect(k.kiln([toolchainRustc, ...lib], { cwd: dir }).exitCode).toBe(0);
    const s = k.stats();
    expect(s.cache_misses).toEqual({ Rust: 2 });
    expect(s.cache_hits).toEqual({ Rust: 1 });
  }, 60_000);

  test("rustc's own errors come through; failed compiles are not cached", () => {
    k.zero();
    writeFiles(dir, { "bad.rs": `pub fn f() -> u32 { "no" }\n` });
    const bad = ["--crate-name", "bad", "--crate-type", "lib", "--out-dir", "out", "bad.rs"];
    for (let i = 0; i < 2; i++) {
      const r = k.kiln([toolchainRustc, ...bad], { cwd: dir });
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain("mismatched types");
    }
    const s = k.stats();
    expect(s.compile_failures).toBe(2);
    expect(s.cache_hits_total).toBe(0);
  }, 60_000);

  test("calls Kiln does not cache run rustc unchanged and are counted by reason", () => {
    k.zero();
    expect(k.kiln([toolchainRustc, "-vV"], { cwd: dir }).stdout).toContain("rustc ");
    writeFiles(dir, { "main.rs": `fn main() { println!("hi"); }\n` });
    expect(k.kiln([toolchainRustc, "--crate-type", "bin", "-o", "out/hi", "main.rs"], { cwd: dir }).exitCode).toBe(0);
    expect(ok([join(dir, "out", "hi")]).stdout).toBe("hi\n");
    expect(k.kiln([toolchainRustc, ...args, "--emit=asm"], { cwd: dir }).exitCode).toBe(0);
    expect(k.stats().not_cacheable).toEqual({ "rustc query (--print, -vV)": 1, "crate type bin": 1, "unsupported --emit": 1 });
  }, 60_000);
});

describe("rustc's stderr streams to the client on a miss (cargo's pipelining)", () => {
  const k = new KilnInstance();
  const dir = scratch("krp-");
  const gate = join(dir, "gate");
  const realRustc = ok(["rustc", "--print", "sysroot"]).stdout.trim() + "/bin/rustc";
  // A rustc that, after compiling a crate, waits until the test opens the gate: what the
  // client shows before then, it got while the compile was still running.
  writeFiles(dir, {
    "bin/rustc": [
      "#!/bin/sh",
      `"${realRustc}" "$@"; status=$?`,
      `case " $* " in *" --print"*) ;; *" --crate-name "*) i=0; while [ ! -e "${gate}" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done ;; esac`,
      "exit $status",
      "",
    ].join("\n"),
    "m.rs": "pub fn answer() -> u32 { 42 }\n",
    "out/.keep": "",
  });
  ok(["chmod", "+x", join(dir, "bin", "rustc")]);
  const rustc = join(dir, "bin", "rustc");
  // As cargo calls it: JSON diagnostics and artifact notifications.
  const args = ["--crate-name", "m", "--edition=2021", "m.rs", "--error-format=json", "--json=diagnostic-rendered-ansi,artifacts", "--crate-type", "lib", "--emit=dep-info,metadata,link", "-C", "extra-filename=-p", "--out-dir", join(dir, "out")];
  const rmeta = join(dir, "out", "libm-p.rmeta");
  const artifactLine = (ext: string) => new RegExp(`^\\{"\\$message_type":"artifact","artifact":"[^"]*/out/libm-p\\.${ext}","emit":"${ext === "rmeta" ? "metadata" : "link"}"\\}$`, "m");

  /**
   * Runs `kiln rustc args` with the gate shut; once the .rmeta line is on the client's stderr
   * (within a minute), `whenShown` runs and the gate opens. Resolves to the exit code and all
   * of stderr.
   */
  async function compileThroughGate(callArgs: string[], whenShown: (proc: Bun.Subprocess) => void) {
    rmSync(gate, { force: true });
    const proc = Bun.spawn([KILN, rustc, ...callArgs], { cwd: dir, env: k.env, stdout: "pipe", stderr: "pipe" });
    let stderr = "";
    try {
      const reader = proc.stderr.getReader();
      const decoder = new TextDecoder();
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline) {
        const next = await Promise.race([reader.read(), Bun.sleep(deadline - Date.now()).then(() => undefined)]);
        if (!next || next.done) break;
        stderr += decoder.decode(next.value, { stream: true });
        if (/"emit":"metadata"/.test(stderr)) {
          whenShown(proc);
          break;
        }
      }
      writeFileSync(gate, "");
      for (;;) {
        const next = await reader.read();
        if (next.done) break;
        stderr += decoder.decode(next.value, { stream: true });
      }
    } finally {
      writeFileSync(gate, "");
    }
    return { exitCode: await proc.exited, stderr };
  }

  test("the .rmeta artifact line reaches the client's stderr before rustc is done, once, with the .rmeta complete", async () => {
    let runningThen: boolean | undefined;
    let rmetaThen: string | undefined;
    const { exitCode, stderr } = await compileThroughGate(args, (proc) => {
      runningThen = proc.exitCode === null && !existsSync(gate);
      rmetaThen = sha256File(rmeta);
    });
    expect(exitCode).toBe(0);
    expect(runningThen).toBe(true);
    // The file cargo starts the dependent crates on was whole when its line arrived.
    expect(rmetaThen).toBe(sha256File(rmeta));
    // Every line once: the final reply does not repeat what was streamed.
    expect(stderr.match(/"emit":/g)).toEqual([`"emit":`, `"emit":`, `"emit":`]); // dep-info, metadata, link
    expect(stderr).toMatch(artifactLine("rlib"));
    expect(k.stats().cache_misses).toEqual({ Rust: 1 });
  }, 120_000);

  test("a hit replays the same lines, naming this directory's files", () => {
    const first = readFileSync(rmeta);
    for (const name of ["libm-p.rlib", "libm-p.rmeta", "m-p.d"]) rmSync(join(dir, "out", name));
    k.zero();
    const r = k.kiln([rustc, ...args], { cwd: dir });
    expect(r.exitCode).toBe(0);
    expect(k.stats().cache_hits).toEqual({ Rust: 1 });
    expect(r.stderr).toMatch(artifactLine("rmeta"));
    expect(r.stderr).toContain(`"artifact":"${join(dir, "out")}/libm-p.rlib"`);
    expect(readFileSync(rmeta)).toEqual(first);
  }, 60_000);

  test("protocol: Stderr frames only for a client that asks; otherwise one Done with all of stderr", async () => {
    writeFileSync(gate, "");
    const socket = join(k.root, "run", "daemon.sock");
    const results: { streamed: string; done: string }[] = [];
    for (const [i, streams] of [[1, true], [2, false]] as const) {
      // A new crate each time (different extra-filename): both are misses.
      const call: CompileCall = {
        argv: [rustc, ...args.map((a) => (a === "extra-filename=-p" ? `extra-filename=-q${i}` : a))],
        cwd: dir,
        env: k.env,
        self: KILN,
        umask: 0o022,
        ...(streams ? { streams } : {}),
      };
      let streamed = "";
      const answer = await exchange(socket, encodeJson(Kind.Compile, call), (chunk) => (streamed += new TextDecoder().decode(chunk)));
      if (!answer.ok || answer.frame.kind !== Kind.Done) throw new Error(`no Done frame: ${JSON.stringify(answer)}`);
      const done = decodeDone(answer.frame.payload);
      expect(done.exitCode).toBe(0);
      results.push({ streamed, done: new TextDecoder().decode(done.stderr) });
    }
    expect(results[0]!.streamed).toMatch(/"emit":"metadata"[^]*"emit":"link"/);
    expect(results[0]!.done).toBe("");
    expect(results[1]!.streamed).toBe("");
    expect(results[1]!.done).toMatch(/"emit":"metadata"[^]*"emit":"link"/);
  }, 60_000);

  test("the daemon going away after streaming: the client compiles itself and shows no line twice", async () => {
    const own = args.map((a) => (a === "extra-filename=-p" ? "extra-filename=-k" : a));
    const { exitCode, stderr } = await compileThroughGate(own, () => process.kill(k.daemonPid()!, "SIGKILL"));
    expect(exitCode).toBe(0);
    expect(stderr.match(/"emit":"[a-z-]+"/g)).toEqual([`"emit":"dep-info"`, `"emit":"metadata"`, `"emit":"link"`]);
    expect(existsSync(join(dir, "out", "libm-k.rlib"))).toBe(true);
  }, 120_000);
});
