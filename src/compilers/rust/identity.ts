// rustc's identity: the digest of the rustc executable, the shared libraries that hold the
// compiler (librustc_driver, LLVM, std), and the target's standard library in the sysroot,
// plus `rustc -vV`. Digests come from the daemon's stat-validated cache, so after the first
// call a hit costs one stat per file.
//
// A rustup proxy (~/.cargo/bin/rustc, a link to rustup) picks a toolchain per directory and
// RUSTUP_TOOLCHAIN; Kiln asks it for the sysroot (`--print sysroot`, remembered per
// directory and toolchain variables) and keys on the toolchain's own rustc.

import { readdirSync, realpathSync, statSync } from "node:fs";
import type { FileDigests } from "../../daemon/file-digests.ts";
import { runCaptured } from "../process.ts";

export interface RustcIdentity {
  /** sha256 hex over the executable, its libraries and the target's standard library. */
  digest: string;
  /** `rustc -vV` of the real rustc. */
  version: string;
  /** The toolchain's own rustc (the proxy resolved). */
  rustc: string;
  sysroot: string;
}

/** What a toolchain is made of, found once per (real) rustc and sysroot. */
interface Toolchain {
  rustc: string;
  sysroot: string;
  version: string;
  host: string;
}

type Env = Record<string, string | undefined>;

function realpath(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

function isFile(path: string): boolean {
  return statSync(path, { throwIfNoEntry: false })?.isFile() ?? false;
}

function list(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
}

/** rustup installs its proxies as links to itself. */
function isRustupProxy(path: string): boolean {
  const real = realpath(path);
  return /^rustup(-init)?$/.test(real.slice(real.lastIndexOf("/") + 1));
}

/** The compiler's libraries: all of a rustup sysroot's lib/, the rustc ones of a system one. */
const COMPILER_LIBRARY = /^lib(rustc_driver|LLVM|std|test)[-.].*\.so/;

export class RustcIdentities {
  /** Sysroot answers by proxy path, directory and toolchain variables. */
  private readonly proxies = new Map<string, string>();
  /** Toolchains by real rustc path and the stat of its executable. */
  private readonly toolchains = new Map<string, Toolchain>();
  /** The files an identity covers, by rustc, sysroot and target (a new toolchain has a new rustc). */
  private readonly fileLists = new Map<string, string[]>();

  constructor(private readonly digests: FileDigests) {}

  /**
   * The identity of the rustc at `path` for a call in `cwd` with `env`, for `target` (a triple
   * or spec name; the host when absent) and an explicit `--sysroot`. Throws when rustc cannot
   * be run or read.
   */
  async identify(path: string, cwd: string, env: Env, target: string | undefined, sysrootArg: string | undefined): Promise<RustcIdentity> {
    const toolchain = await this.toolchain(path, cwd, env);
    const sysroot = sysrootArg ?? toolchain.sysroot;
    const listKey = `${toolchain.rustc}\0${toolchain.version}\0${sysroot}\0${target ?? ""}`;
    let files = this.fileLists.get(listKey);
    if (!files) {
      files = [toolchain.rustc, ...this.libraryFiles(toolchain, sysroot, target)];
      if (this.fileLists.size > 100) this.fileLists.clear();
      this.fileLists.set(listKey, files);
    }
    const h = new Bun.CryptoHasher("sha256").update(toolchain.version);
    for (const file of files) {
      const digest = await this.digests.binary(file);
      if (digest === undefined) {
        this.fileLists.delete(listKey);
        throw new Error(`cannot read ${file}`);
      }
      h.update(`${file.slice(file.lastIndexOf("/") + 1)}\0${digest}\0`);
    }
    return { digest: h.digest("hex"), version: toolchain.version, rustc: toolchain.rustc, sysroot };
  }

  /** Another executable of the toolchain (clippy-driver) in place of a proxy for it. */
  async sibling(path: string, cwd: string, env: Env, rustcPath: string): Promise<string> {
    if (!isRustupProxy(path)) return path;
    const { sysroot } = await this.toolchain(rustcPath, cwd, env);
    const own = `${sysroot}/bin/${path.slice(path.lastIndexOf("/") + 1)}`;
    return isFile(own) ? own : path;
  }

  private async toolchain(path: string, cwd: string, env: Env): Promise<Toolchain> {
    let rustc = path;
    if (isRustupProxy(path)) {
      const key = [path, cwd, env.RUSTUP_TOOLCHAIN ?? "", env.RUSTUP_HOME ?? "", env.HOME ?? ""].join("\0");
      let sysroot = this.proxies.get(key);
      if (sysroot === undefined) {
        sysroot = await printSysroot(path, cwd, env);
        if (this.proxies.size > 1000) this.proxies.clear();
        this.proxies.set(key, sysroot);
      }
      const own = `${sysroot}/bin/rustc`;
      if (isFile(own)) rustc = own;
    }
    const st = statSync(rustc);
    const key = `${rustc}\0${st.ino}\0${st.size}\0${st.mtimeMs}`;
    let toolchain = this.toolchains.get(key);
    if (!toolchain) {
      const [sysroot, version] = await Promise.all([printSysroot(rustc, cwd, env), rustcOutput(rustc, ["-vV"], cwd, env)]);
      const host = /^host: (\S+)$/m.exec(version)?.[1] ?? "";
      toolchain = { rustc, sysroot, version, host };
      if (this.toolchains.size > 100) this.toolchains.clear();
      this.toolchains.set(key, toolchain);
    }
    return toolchain;
  }

  /** The shared libraries rustc loads, and the target's standard library. */
  private libraryFiles(toolchain: Toolchain, sysroot: string, target: string | undefined): string[] {
    const files: string[] = [];
    const multiarch = toolchain.host.replace(/-unknown-/, "-").replace(/^i[3-6]86-/, "i386-");
    for (const dir of [`${toolchain.sysroot}/lib`, `${toolchain.sysroot}/lib/${multiarch}`]) {
      for (const name of list(dir)) if (COMPILER_LIBRARY.test(name) && isFile(`${dir}/${name}`)) files.push(`${dir}/${name}`);
    }
    const triple = (target ?? toolchain.host).replace(/\.json$/, "").replace(/^.*\//, "");
    const libDir = `${sysroot}/lib/rustlib/${triple}/lib`;
    for (const name of list(libDir)) if (isFile(`${libDir}/${name}`)) files.push(`${libDir}/${name}`);
    return files;
  }
}

async function rustcOutput(rustc: string, args: string[], cwd: string, env: Env): Promise<string> {
  const run = await runCaptured([rustc, ...args], { cwd, env });
  if (run.exitCode !== 0) {
    throw new Error(`${rustc} ${args.join(" ")} exited ${run.exitCode}: ${new TextDecoder().decode(run.stderr).trim()}`);
  }
  return new TextDecoder().decode(run.stdout).trim();
}

function printSysroot(rustc: string, cwd: string, env: Env): Promise<string> {
  return rustcOutput(rustc, ["--print", "sysroot"], cwd, env);
}
