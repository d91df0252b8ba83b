// The compiler wrapper's hit path: one request to the daemon, replay its answer.
// Everything here runs on every compile, so it imports only the wire format, the paths and
// the syscall client; the rarely needed parts (starting a daemon, running the compiler
// itself) load lazily.

import { runtimePaths, type RuntimePaths } from "../ipc/paths.ts";
import {
  decodeDone,
  decodeText,
  encodeJson,
  FrameReader,
  Kind,
  PROTOCOL_VERSION,
  takeReply,
  type CompileCall,
  type Frame,
  type StderrSink,
} from "../ipc/wire.ts";
import { exchangeSync, stderrIsTerminal } from "./socket-sync.ts";

export type Exchange =
  | { ok: true; frame: Frame }
  /** "connect": nobody listens; "broken": the daemon went away mid-request. */
  | { ok: false; failure: "connect" | "broken" };

/** Sends one frame and waits for the reply (Stderr frames before it go to `onStderr`). Never throws. */
export async function exchange(socketPath: string, request: Uint8Array, onStderr?: StderrSink): Promise<Exchange> {
  return exchangeSync(socketPath, request, onStderr) ?? exchangeEvented(socketPath, request, onStderr);
}

/** The same over Bun.connect: slower to start, for where libc cannot be loaded. */
export async function exchangeEvented(socketPath: string, request: Uint8Array, onStderr?: StderrSink): Promise<Exchange> {
  const { promise, resolve } = Promise.withResolvers<Exchange>();
  const reader = new FrameReader();
  let pending = request;
  const flush = (s: { write(d: Uint8Array): number }) => {
    while (pending.length > 0) {
      const n = s.write(pending);
      if (n <= 0) return;
      pending = pending.subarray(n);
    }
  };
  try {
    await Bun.connect({
      unix: socketPath,
      socket: {
        open: flush,
        drain: flush,
        data(s, chunk) {
          let frames: Frame[];
          try {
            frames = reader.push(chunk);
          } catch {
            resolve({ ok: false, failure: "broken" });
            s.end();
            return;
          }
          const reply = takeReply(frames, onStderr);
          if (reply) {
            // Resolve before end(): end() may run the close handler synchronously.
            resolve({ ok: true, frame: reply });
            s.end();
          }
        },
        close() {
          resolve({ ok: false, failure: "broken" });
        },
        error() {
          resolve({ ok: false, failure: "broken" });
        },
      },
    });
  } catch {
    return { ok: false, failure: "connect" };
  }
  return promise;
}

/**
 * Talks to the daemon, starting it if nobody answers. When none can be had, the failed
 * exchange comes back and `onStartFailure` has heard why.
 */
export async function exchangeWithDaemon(
  paths: RuntimePaths,
  request: Uint8Array,
  env: Record<string, string | undefined>,
  onStartFailure: (message: string) => void,
  onStderr?: StderrSink,
): Promise<Exchange> {
  const first = await exchange(paths.socket, request, onStderr);
  if (first.ok || first.failure === "broken") return first;
  const { startDaemon } = await import("./start-daemon.ts");
  const started = await startDaemon(paths, env);
  if (!started.ok) {
    onStartFailure(started.message);
    return first;
  }
  return exchange(paths.socket, request, onStderr);
}

/**
 * Writes to our stderr before the next frame is read: cargo reads rustc's artifact
 * notifications from it and starts the crates that wait for that metadata.
 */
function writeStderrNow(bytes: Uint8Array): void {
  // Required here, not imported: loading node:fs costs a hit about a millisecond of start-up.
  const { writeSync } = require("node:fs") as typeof import("node:fs");
  let waits = 0;
  for (let at = 0; at < bytes.length; ) {
    try {
      at += writeSync(2, bytes, at, bytes.length - at);
    } catch (e) {
      // stderr is gone, or a non-blocking stderr stays full for a minute: nobody reads it.
      if ((e as NodeJS.ErrnoException).code !== "EAGAIN" || ++waits > 60_000) return;
      Bun.sleepSync(1);
    }
  }
}

async function writeAll(fd: 1 | 2, bytes: Uint8Array): Promise<void> {
  if (bytes.length === 0) return;
  await Bun.write(fd === 1 ? Bun.stdout : Bun.stderr, bytes);
}

/**
 * KILN_CLIENT_TRACE=1 prints, on stderr at exit, when each step of the client finished
 * (milliseconds since the process started): where a hit's time goes.
 */
function tracer(env: Record<string, string | undefined>): (label: string) => void {
  if (!env.KILN_CLIENT_TRACE) return () => {};
  const marks: string[] = [];
  process.on("exit", () => process.stderr.write(`kiln trace: ${marks.join(", ")}\n`));
  return (label) => marks.push(`${label} ${performance.now().toFixed(2)}`);
}

/** Runs one compiler call through the daemon. Resolves to the exit code to exit with. */
export async function runCompile(argv: string[], env: Record<string, string | undefined>): Promise<number> {
  const mark = tracer(env);
  mark("main");
  const paths = runtimePaths(env, process.getuid?.() ?? 0);
  const call: CompileCall = {
    argv,
    cwd: process.cwd(),
    env,
    self: process.execPath,
    umask: process.umask(),
    stderrTty: stderrIsTerminal(),
    streams: true,
  };
  let startWarning: string | undefined;
  /** What the daemon streamed (whole lines) before its reply. */
  const streamed: Uint8Array[] = [];
  const result = await exchangeWithDaemon(
    paths,
    encodeJson(Kind.Compile, call),
    env,
    (m) => {
      startWarning = m;
    },
    (chunk) => {
      writeStderrNow(chunk);
      streamed.push(chunk);
    },
  );
  mark("answer");
  if (result.ok) {
    const { frame } = result;
    if (frame.version === PROTOCOL_VERSION && frame.kind === Kind.Done) {
      const done = decodeDone(frame.payload);
      await writeAll(1, done.stdout);
      await writeAll(2, done.stderr);
      mark("replayed");
      return done.exitCode;
    }
    if (frame.version === PROTOCOL_VERSION && frame.kind === Kind.RunLocal) {
      const { runCompiler } = await import("./run-direct.ts");
      return runCompiler(decodeText(frame.payload), argv.slice(1), env);
    }
  }
  if (startWarning) await writeAll(2, new TextEncoder().encode(`kiln: warning: ${startWarning}; compiling without the cache\n`));
  // If the daemon went away while its compiler ran, run it here without repeating what it showed.
  const shown = streamed.length > 0 ? streamed.flatMap((chunk) => new TextDecoder().decode(chunk).split(/(?<=\n)/)) : undefined;
  const { runDirect } = await import("./run-direct.ts");
  return runDirect(argv, env, shown);
}
