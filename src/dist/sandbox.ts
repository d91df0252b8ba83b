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
  /** stdout and stderr together; past it the job is killed. */
  maxOutputBytes: number;
}

export interface SandboxResult {
  exitCode: number;
  stdout: Uint8Array;
  stderr: Uint8Array;
  timedOut: boolean;
  /** stdout + stderr passed `maxOutputBytes`; the job was killed. */
  overflowed: boolean;
}

/** Top-level names a job's cwd may not be under: the sandbox's own mounts. */
const RESERVED = new Set(["dev", "proc"]);

/**
 * Why `cwd` (already checked to be absolute and normalised) cannot be a job's working
 * directory with this toolchain, or undefined: it may not be under the sandbox's own mounts
 * or under a top-level directory the toolchain provides (its mount point would have to be
 * created inside the read-only toolchain).
 */
export function cwdProblem(cwd: string, toolchainDir: string | undefined): string | undefined {
  const top = cwd.split("/")[1]!;
  if (RESERVED.has(top)) return `cwd may not be under /${top}`;
  if (toolchainDir !== undefined && topLevel(toolchainDir).some((t) => t.name === top)) {
    return `cwd may not be under /${top}, which the toolchain provides`;
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

/** Bytes a job may put in its private /tmp (a tmpfs, so memory). */
const TMP_BYTES = 1024 * 1024 * 1024;

/**
 * Isolation every job gets, and the start-up probe too: all namespaces (so no network), no
 * nested user namespaces, no capabilities, a new session (no terminal injection), an empty
 * environment, death with the server.
 */
const ISOLATION = [
  "--unshare-all",
  "--unshare-user",
  "--disable-userns",
  "--die-with-parent",
  "--new-session",
  "--cap-drop", "ALL",
  "--clearenv",
];

function bwrapArgs(run: Omit<SandboxRun, "timeoutMs" | "maxOutputBytes">): string[] {
  const args = [run.bwrap, ...ISOLATION];
  for (const [key, value] of Object.entries(run.env)) args.push("--setenv", key, value);
  for (const entry of topLevel(run.toolchainDir)) {
    if (entry.symlink !== undefined) args.push("--symlink", entry.symlink, `/${entry.name}`);
    else args.push("--ro-bind", join(run.toolchainDir, entry.name), `/${entry.name}`);
  }
  args.push(
    "--dev", "/dev",
    "--proc", "/proc",
    "--size", String(TMP_BYTES), "--tmpfs", "/tmp",
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
  let overflowed = false;
  let budget = run.maxOutputBytes;
  const kill = (): void => {
    proc.kill("SIGKILL");
  };
  const timer = setTimeout(() => {
    timedOut = true;
    kill();
  }, run.timeoutMs);
  signal?.addEventListener("abort", kill, { once: true });
  // A compiler that floods its output is killed, not buffered without end.
  const drain = async (stream: ReadableStream<Uint8Array>): Promise<Uint8Array> => {
    const chunks: Uint8Array[] = [];
    for await (const chunk of stream) {
      budget -= chunk.length;
      if (budget < 0) {
        overflowed = true;
        kill();
        break;
      }
      chunks.push(chunk);
    }
    return Buffer.concat(chunks);
  };
  try {
    const [stdout, stderr, exitCode] = await Promise.all([drain(proc.stdout), drain(proc.stderr), proc.exited]);
    return { exitCode, stdout, stderr, timedOut, overflowed };
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
    [bwrap, ...ISOLATION,
      "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib",
      "--symlink", "usr/lib64", "/lib64", "--dev", "/dev", "--proc", "/proc",
      "--size", String(TMP_BYTES), "--tmpfs", "/tmp", "--remount-ro", "/", "--", "/bin/true"],
    { stdin: "ignore", stdout: "ignore", stderr: "pipe", env: {} },
  );
  const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
  if (code === 0) return undefined;
  return `bubblewrap (${bwrap}) cannot create a sandbox: ${stderr.trim() || `exit ${code}`}`;
}
