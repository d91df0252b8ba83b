// Starting the per-user daemon when no one answers on its socket. Two clients may race here;
// the daemon's lock makes sure only one of the daemons they start keeps running.

import { readFileSync, rmSync } from "node:fs";
import type { RuntimePaths } from "../ipc/paths.ts";
import { ensurePrivateDir } from "../ipc/private-dir.ts";
import { KilnError } from "../util/errors.ts";
import { exchange } from "./client.ts";
import { encodeJson, Kind } from "../ipc/wire.ts";

/** How to run this executable again: a compiled one embeds its script under /$bunfs. */
function selfCommand(): string[] {
  const script = process.argv[1];
  return script && !script.startsWith("/$bunfs/") ? [process.execPath, script] : [process.execPath];
}

/**
 * Set in the environment of a daemon being started. A process that has it and still ends
 * up as a client (a wrapper that lost the daemon flag) must not start daemons in turn.
 */
export const DAEMON_CHILD_ENV = "KILN_DAEMON_CHILD";

const START_TIMEOUT_MS = 10_000;
const LOCK_HOLDER_GRACE_MS = 2_000;

export async function startDaemon(
  paths: RuntimePaths,
  env: Record<string, string | undefined>,
): Promise<{ ok: true } | { ok: false; message: string }> {
  try {
    ensurePrivateDir(paths.dir);
  } catch (e) {
    return { ok: false, message: e instanceof KilnError ? e.message : String(e) };
  }
  if (env[DAEMON_CHILD_ENV]) {
    return { ok: false, message: "kiln was started as a daemon but did not run as one; not starting another" };
  }
  rmSync(paths.startError, { force: true });
  const child = Bun.spawn([...selfCommand(), "--internal-daemon"], {
    cwd: "/",
    env: { ...env, [DAEMON_CHILD_ENV]: "1" },
    stdio: ["ignore", "ignore", "ignore"],
    detached: true,
  });
  child.unref();
  let exited = false;
  let deadline = Date.now() + START_TIMEOUT_MS;
  void child.exited.then(() => {
    exited = true;
    // Exit 0 means another daemon holds the lock: it should answer very soon.
    if (child.exitCode === 0) deadline = Math.min(deadline, Date.now() + LOCK_HOLDER_GRACE_MS);
  });
  const ping = encodeJson(Kind.Command, { cmd: "ping" });
  for (let delay = 1; Date.now() < deadline; delay = Math.min(delay * 2, 50)) {
    const answer = await exchange(paths.socket, ping);
    if (answer.ok) return { ok: true };
    if (exited && child.exitCode !== 0) {
      let message = `the Kiln daemon failed to start (exit ${child.exitCode})`;
      try {
        message = readFileSync(paths.startError, "utf8").trim() || message;
      } catch {}
      return { ok: false, message };
    }
    await Bun.sleep(delay);
  }
  let holder = "";
  try {
    holder = ` (the lock ${paths.lock} says: ${readFileSync(paths.lock, "utf8").trim()})`;
  } catch {}
  return {
    ok: false,
    message: `no Kiln daemon answered on ${paths.socket}${holder}; if that process hangs, kill it`,
  };
}
