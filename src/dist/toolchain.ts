// Packaging a compiler for build servers: the driver, the programs it runs for `-c` on
// preprocessed input (cc1/cc1plus/as for gcc; clang compiles and assembles in-process), every
// shared library `ldd` names and the dynamic loader, with the symlinks on the way to each, at
// their absolute paths. A server mounts the unpacked archive read-only as `/` in the sandbox,
// so the driver finds its helpers where it found them on the client.
//
// The archive is deterministic (sorted entries, fixed owners, times and modes), so one
// compiler always gives the same bytes and the same id, the SHA-256 of the archive.

import { existsSync, lstatSync, readlinkSync, statSync } from "node:fs";
import { dirname, isAbsolute, relative, resolve } from "node:path";
import { KilnError } from "../util/errors.ts";
import { packTarZstAsync, type TarEntry } from "./tar.ts";

export interface PackagedToolchain {
  /** SHA-256 of `archive`, hex. */
  id: string;
  /** zstd-compressed ustar. */
  archive: Uint8Array;
  /** The compiler's absolute path: argv[0] of a job that uses this toolchain. */
  compiler: string;
  /** Absolute paths of the regular files inside. */
  files: string[];
}

/** Helpers a gcc driver runs for `-c`; absent ones (no g++ installed) are left out. */
const GCC_PROGRAMS = ["cc1", "cc1plus", "as"];

export async function packageToolchain(compilerPath: string): Promise<PackagedToolchain> {
  const compiler = absoluteCompiler(compilerPath);
  const programs = [compiler];
  if (!(await isClang(compiler))) {
    for (const name of GCC_PROGRAMS) {
      const found = await printProgName(compiler, name);
      if (found) programs.push(found);
    }
  }
  return { ...(await packagePrograms(programs)), compiler };
}

/**
 * A toolchain of `programs` (absolute paths) with their shared libraries, plus `extra`
 * entries (e.g. a wrapper script); for compilers `packageToolchain` does not know.
 */
export async function packagePrograms(programs: readonly string[], extra: readonly TarEntry[] = []): Promise<Omit<PackagedToolchain, "compiler">> {
  const tree = new Tree();
  for (const program of programs) {
    await tree.add(program);
    for (const lib of await sharedLibraries(program)) await tree.add(lib);
  }
  const entries = tree.entries();
  for (const e of extra) {
    if (!entries.some((x) => x.path === e.path)) entries.push(e);
  }
  entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const archive = await packTarZstAsync(entries);
  return { id: toolchainId(archive), archive, files: entries.filter((e) => e.type === "file").map((e) => `/${e.path}`) };
}

export function toolchainId(archive: Uint8Array): string {
  return new Bun.CryptoHasher("sha256").update(archive).digest("hex");
}

function absoluteCompiler(path: string): string {
  const found = path.includes("/") ? resolve(path) : Bun.which(path);
  if (!found) {
    throw new KilnError("KILN_TOOLCHAIN_COMPILER", `compiler ${JSON.stringify(path)} is not in PATH`, {
      hint: "give the compiler's path, e.g. /usr/bin/gcc",
    });
  }
  try {
    if (!statSync(found).isFile()) throw new Error("not a file");
  } catch (e) {
    throw new KilnError("KILN_TOOLCHAIN_COMPILER", `compiler ${found} does not exist or is not a file`, {
      hint: "give the path of a gcc or clang executable",
      cause: e,
    });
  }
  return found;
}

async function output(argv: string[]): Promise<{ code: number; stdout: string }> {
  const proc = Bun.spawn(argv, { stdout: "pipe", stderr: "ignore", stdin: "ignore", env: { ...process.env, LC_ALL: "C" } });
  const [stdout, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
  return { code, stdout };
}

async function isClang(compiler: string): Promise<boolean> {
  const { code, stdout } = await output([compiler, "--version"]);
  if (code !== 0) {
    throw new KilnError("KILN_TOOLCHAIN_COMPILER", `${compiler} --version failed (exit ${code})`, {
      hint: "give the path of a gcc or clang executable",
    });
  }
  return /clang version/.test(stdout);
}

/** The path gcc would run for `name`, or undefined when it has none. */
async function printProgName(compiler: string, name: string): Promise<string | undefined> {
  const { code, stdout } = await output([compiler, `-print-prog-name=${name}`]);
  const printed = stdout.trim();
  if (code !== 0 || printed === "") return undefined;
  // A bare name means "whatever is in PATH".
  const path = isAbsolute(printed) ? printed : Bun.which(printed);
  return path && existsSync(path) ? path : undefined;
}

/** Absolute paths of the libraries and loader `ldd` lists for `program`. */
async function sharedLibraries(program: string): Promise<string[]> {
  const { code, stdout } = await output(["ldd", program]);
  if (code !== 0) return []; // static, or a script
  const libs: string[] = [];
  for (const line of stdout.split("\n")) {
    // "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
    const match = /(?:=>\s*)?(\/\S+)\s+\(0x[0-9a-f]+\)/.exec(line);
    if (match) libs.push(match[1]!);
  }
  return libs;
}

/** The files, directories and symlinks that make up a set of absolute paths. */
class Tree {
  private readonly byPath = new Map<string, TarEntry>();

  /** Adds `abs` and everything on the way to it, following (and recording) symlinks. */
  async add(abs: string, depth = 0): Promise<void> {
    if (depth > 40) throw new Error(`too many levels of symlinks resolving ${abs}`);
    const parts = abs.split("/").filter((p) => p !== "" && p !== ".");
    let dir = "/";
    for (let i = 0; i < parts.length; i++) {
      const here = dir === "/" ? `/${parts[i]}` : `${dir}/${parts[i]}`;
      if (parts[i] === "..") {
        dir = dirname(dir);
        continue;
      }
      const stat = lstatSync(here);
      const rel = here.slice(1);
      if (stat.isSymbolicLink()) {
        const target = resolve(dir, readlinkSync(here));
        this.byPath.set(rel, { type: "symlink", path: rel, target: relative(dir, target) || "." });
        const rest = parts.slice(i + 1).join("/");
        await this.add(rest ? `${target}/${rest}` : target, depth + 1);
        return;
      }
      if (stat.isDirectory()) {
        if (!this.byPath.has(rel)) this.byPath.set(rel, { type: "dir", path: rel });
      } else if (stat.isFile() && i === parts.length - 1) {
        // Read asynchronously: the daemon packages toolchains while it serves hits.
        if (!this.byPath.has(rel)) this.byPath.set(rel, { type: "file", path: rel, data: await Bun.file(here).bytes(), mode: stat.mode & 0o111 ? 0o755 : 0o644 });
      } else {
        throw new Error(`${here} is neither a file, a directory nor a symlink`);
      }
      dir = here;
    }
  }

  entries(): TarEntry[] {
    return [...this.byPath.values()];
  }
}
