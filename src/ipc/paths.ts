// Where the per-user daemon lives. Shared by the client (keep imports out) and the daemon.

export interface RuntimePaths {
  /** Private (0700) directory owned by this user. */
  dir: string;
  socket: string;
  /** Held with flock(2) by the running daemon; holds its pid and protocol version. */
  lock: string;
  /** Written by a daemon that could not start, read by the client that started it. */
  startError: string;
  /** Default daemon log when KILN_ERROR_LOG / [daemon] log_file is not set. */
  log: string;
}

export function runtimePaths(env: Record<string, string | undefined>, uid: number): RuntimePaths {
  const dir =
    env.KILN_RUNTIME_DIR ||
    (env.XDG_RUNTIME_DIR ? `${env.XDG_RUNTIME_DIR}/kiln` : `${env.TMPDIR || "/tmp"}/kiln-${uid}`);
  return {
    dir,
    socket: `${dir}/daemon.sock`,
    lock: `${dir}/daemon.lock`,
    startError: `${dir}/start-error`,
    log: `${dir}/daemon.log`,
  };
}
