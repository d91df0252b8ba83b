// Finding the real compiler: the first executable of that name in PATH that is not Kiln.
// Used by the client (masquerade and fallback) and by the daemon.

import { accessSync, constants, realpathSync, statSync } from "node:fs";

function realpathOrUndefined(path: string): string | undefined {
  try {
    return realpathSync(path);
  } catch {
    return undefined;
  }
}

function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Resolves `name` as the shell would, skipping every candidate that resolves to `self` (the
 * Kiln executable), so `gcc -> kiln` symlinks earlier in PATH never make Kiln call itself.
 * Returns the path as found (not its realpath: clang and gcc look at their argv[0]).
 */
export function findCompiler(
  name: string,
  pathVar: string | undefined,
  cwd: string,
  self: string,
): string | undefined {
  const selfReal = realpathOrUndefined(self) ?? self;
  if (name.includes("/")) {
    const path = name.startsWith("/") ? name : `${cwd}/${name}`;
    if (realpathOrUndefined(path) !== selfReal) return isExecutableFile(path) ? path : undefined;
    name = name.slice(name.lastIndexOf("/") + 1);
  }
  for (const entry of (pathVar ?? "/usr/local/bin:/usr/bin:/bin").split(":")) {
    const dir = entry === "" ? cwd : entry.startsWith("/") ? entry : `${cwd}/${entry}`;
    const candidate = `${dir}/${name}`;
    if (!isExecutableFile(candidate)) continue;
    if (realpathOrUndefined(candidate) === selfReal) continue;
    return candidate;
  }
  return undefined;
}

/** What the user sees when only Kiln itself answers to a compiler's name. */
export function compilerNotFound(name: string): string {
  return `kiln: error: cannot find the compiler '${name}' in PATH (other than Kiln itself)\n`;
}
