// One compile in bubblewrap. The new root is an empty tmpfs; each top-level entry of the
// unpacked toolchain is bound read-only onto it (a top-level symlink such as lib -> usr/lib
// is recreated, not followed on the host), then /dev, /proc, a tmpfs /tmp and the job's
// build directory at its `cwd`, and finally the root itself is made read-only. Binding the
// toolchain over `/` directly would leave no way to create the mount point for `cwd`.
// Every namespace is unshared (no network), all capabilities are dropped, the environment is
// exactly the job's, and the sandbox dies with the server.

import { lstatSync, readdirSync, readlinkSync } from "node:fs";
import { join } from "node:path";

export interface SandboxRun {
  bwrap: string;
  /** The unpacked toolchain, becomes `/`. */
  toolchainDir: string;
  /** Writable, becomes `cwd`. */
  buildDir: string;
  cwd: string;
  argv: string[];
  env: Record<string, string>;
  timeoutMs: number;
}

export interface SandboxResult {
  exitCode: number;
  stdout: Uint8Array;
  stderr: Uint8Array;
  timedOut: boolean;
}

/** Top-level names a job's cwd may not be under: the sandbox's own mounts. */
const RESERVED = new Set(["dev", "proc"]);

/** Why `cwd` cannot be a job's working directory with this toolchain, or undefined. */
export function cwdProblem(cwd: string, toolchainDir: string | undefined): string | undefined {
  if (!cwd.startsWith("/")) return "cwd must be absolute";
  const parts = cwd.split("/").slice(1);
  if (parts.some((p) => p === "" || p === "." || p === "..")) return "cwd must be normalised (no '.', '..' or '//')";
  if (cwd.includes("\0") || cwd.length > 4096) return "cwd is not a usable path";
  if (RESERVED.has(parts[0]!)) return `cwd may not be under /${parts[0]}`;
  if (toolchainDir !== undefined && topLevel(toolchainDir).some((t) => t.name === parts[0])) {
    return `cwd may not be under /${parts[0]}, which the toolchain provides`;
  }
  return undefined;
}

interface TopLevelEntry {
  name: string;
  symlink: string | undefined;
}

function topLevel(toolchainDir: string): TopLevelEntry[] {
  return readdirSync(toolchainDir).sort().map((name) => {
    const path = join(toolchainDir, name);
    return { name, symlink: lstatSync(path).isSymbolicLink() ? readlinkSync(path) : undefined };
  });
}

export function bwrapArgs(run: Omit<SandboxRun, "timeoutMs">): string[] {
  const args = [
    run.bwrap,
    "--unshare-all",
    "--die-with-parent",
    "--new-session",
    "--cap-drop", "ALL",
    "--clearenv",
  ];
  for (const [key, value] of Object.entries(run.env)) args.push("--setenv", key, value);
  for (const entry of topLevel(run.toolchainDir)) {
    if (entry.symlink !== undefined) args.push("--symlink", entry.symlink, `/${entry.name}`);
    else args.push("--ro-bind", join(run.toolchainDir, entry.name), `/${entry.name}`);
  }
  args.push(
    "--dev", "/dev",
    "--proc", "/proc",
    "--tmpfs", "/tmp",
    "--bind", run.buildDir, run.cwd,
    "--chdir", run.cwd,
    "--remount-ro", "/",
    "--",
    ...run.argv,
  );
  return args;
}

export async function runSandboxed(run: SandboxRun, signal?: AbortSignal): Promise<SandboxResult> {
  const proc = Bun.spawn(bwrapArgs(run), { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: {} });
  let timedOut = false;
  const kill = (): void => {
    proc.kill("SIGKILL");
  };
  const timer = setTimeout(() => {
    timedOut = true;
    kill();
  }, run.timeoutMs);
  signal?.addEventListener("abort", kill, { once: true });
  try {
    const [stdout, stderr, exitCode] = await Promise.all([
      new Response(proc.stdout).bytes(),
      new Response(proc.stderr).bytes(),
      proc.exited,
    ]);
    return { exitCode, stdout, stderr, timedOut };
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", kill);
  }
}

/**
 * Checks that bwrap exists and can create the namespaces a job needs; the reason when not.
 * Runs the same mount set a job gets, with the host's /usr as the toolchain.
 */
export async function probeSandbox(bwrap: string): Promise<string | undefined> {
  if (!Bun.which(bwrap)) return `bubblewrap (${bwrap}) is not installed or not executable`;
  const proc = Bun.spawn(
    [bwrap, "--unshare-all", "--die-with-parent", "--cap-drop", "ALL", "--clearenv",
      "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib",
      "--symlink", "usr/lib64", "/lib64", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
      "--remount-ro", "/", "--", "/bin/true"],
    { stdin: "ignore", stdout: "ignore", stderr: "pipe", env: {} },
  );
  const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
  if (code === 0) return undefined;
  return `bubblewrap (${bwrap}) cannot create a sandbox: ${stderr.trim() || `exit ${code}`}`;
}
