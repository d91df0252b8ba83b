// Real cache servers for the tests, each on a free port of 127.0.0.1 in its own directory,
// stopped by pid when the test is done (and when the test process exits).

import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { alive, REPO, scratch } from "./support.ts";

export interface Server {
  /** What KILN_<BACKEND>_* variables select this server. */
  env: Record<string, string>;
  /** Kills the server (SIGKILL: it "goes away"); idempotent. */
  kill(): void;
  stop(): void;
}

const running = new Set<Server>();
process.on("exit", () => {
  for (const s of running) s.stop();
});

/** Servers live in /usr/sbin, which a non-root PATH may lack. */
const sbin = (name: string) => Bun.which(name, { PATH: `${process.env.PATH ?? ""}:/usr/sbin:/sbin` }) ?? name;

/** A port nobody listens on right now. */
export function freePort(): number {
  const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = listener.port;
  listener.stop(true);
  return port;
}

async function waitForPort(port: number, what: string, pid?: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      const s = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
      s.end();
      return;
    } catch {}
    if (pid !== undefined && !alive(pid)) break;
    await Bun.sleep(25);
  }
  throw new Error(`${what} did not start listening on 127.0.0.1:${port}`);
}

function processServer(argv: string[], env: Record<string, string>): { pid: number; server: Server } {
  const proc = Bun.spawn(argv, { stdout: "ignore", stderr: "ignore" });
  const kill = (signal: NodeJS.Signals) => () => {
    try {
      process.kill(proc.pid, signal);
    } catch {}
  };
  const server: Server = {
    env,
    kill: kill("SIGKILL"),
    stop: () => {
      kill("SIGTERM")();
      running.delete(server);
    },
  };
  running.add(server);
  return { pid: proc.pid, server };
}

export async function startRedis(options: { password?: string; port?: number } = {}): Promise<Server & { port: number; socket: string }> {
  const port = options.port ?? freePort();
  const dir = scratch("rd-");
  const socket = join(dir, "redis.sock");
  const argv = [sbin("redis-server"), "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, "--unixsocket", socket];
  if (options.password) argv.push("--requirepass", options.password);
  const env: Record<string, string> = { KILN_REDIS_ENDPOINT: `redis://127.0.0.1:${port}` };
  if (options.password) env.KILN_REDIS_PASSWORD = options.password;
  const { pid, server } = processServer(argv, env);
  await waitForPort(port, "redis-server", pid);
  return { ...server, port, socket };
}

export async function startMemcached(options: { user?: string; password?: string; itemSize?: string } = {}): Promise<Server> {
  const port = freePort();
  const argv = [sbin("memcached"), "-l", "127.0.0.1", "-p", String(port), "-U", "0", "-m", "256"];
  if (process.getuid?.() === 0) argv.push("-u", "root");
  if (options.itemSize) argv.push("-I", options.itemSize);
  const env: Record<string, string> = { KILN_MEMCACHED_ENDPOINT: `tcp://127.0.0.1:${port}` };
  if (options.user) {
    const file = join(scratch("mc-"), "auth");
    writeFileSync(file, `${options.user}:${options.password}\n`);
    argv.push("-Y", file);
    env.KILN_MEMCACHED_USERNAME = options.user;
    env.KILN_MEMCACHED_PASSWORD = options.password!;
  }
  const { pid, server } = processServer(argv, env);
  await waitForPort(port, "memcached", pid);
  return server;
}

/** nginx with WebDAV PUT/DELETE under /cache/ (full paths created), optionally basic auth. */
export async function startWebdav(options: { user?: string; password?: string } = {}): Promise<Server & { root: string }> {
  const port = freePort();
  const dir = scratch("dav-");
  const root = join(dir, "www");
  mkdirSync(join(root, "cache"), { recursive: true });
  mkdirSync(join(dir, "tmp"), { recursive: true });
  const auth = options.user ? `auth_basic "kiln"; auth_basic_user_file ${dir}/htpasswd;` : "";
  if (options.user) writeFileSync(join(dir, "htpasswd"), `${options.user}:{PLAIN}${options.password}\n`);
  writeFileSync(
    join(dir, "nginx.conf"),
    `daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
${process.getuid?.() === 0 ? "user root;" : ""}
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${dir}/tmp;
  proxy_temp_path ${dir}/tmp; fastcgi_temp_path ${dir}/tmp; uwsgi_temp_path ${dir}/tmp; scgi_temp_path ${dir}/tmp;
  server {
    listen 127.0.0.1:${port};
    root ${root};
    client_max_body_size 0;
    location /cache/ {
      ${auth}
      dav_methods PUT DELETE;
      create_full_put_path on;
      dav_access user:rw group:r all:r;
    }
  }
}
`,
  );
  const env: Record<string, string> = { KILN_WEBDAV_ENDPOINT: `http://127.0.0.1:${port}/cache/` };
  if (options.user) {
    env.KILN_WEBDAV_USERNAME = options.user;
    env.KILN_WEBDAV_PASSWORD = options.password!;
  }
  const { pid, server } = processServer([sbin("nginx"), "-p", dir, "-c", join(dir, "nginx.conf"), "-e", join(dir, "error.log")], env);
  await waitForPort(port, `nginx (see ${dir}/error.log)`, pid);
  return { ...server, root: join(root, "cache") };
}

/** The S3 service script beside the repository (../shared/services/s3), if present. */
export const S3_SCRIPT = resolve(REPO, "..", "shared", "services", "s3");

/** A real S3 (Ceph RGW) through ../shared/services/s3; slow to start, so share one per file. */
export async function startS3(): Promise<Server & { secret: string }> {
  const dir = scratch("s3-");
  const port = freePort();
  const proc = Bun.spawn([S3_SCRIPT, "start", dir, String(port)], { stdout: "pipe", stderr: "pipe", env: { ...process.env, S3_MON_PORT: String(freePort()) } });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  // Saved now: the scratch directory (and its pid files) may be gone by the time of exit.
  const pids = ["client.rgw", "osd.0", "mon.a"].flatMap((n) => {
    try {
      return [Number(readFileSync(join(dir, "run", `${n}.pid`), "utf8"))];
    } catch {
      return [];
    }
  });
  const stop = () => {
    if (existsSync(dir)) Bun.spawnSync([S3_SCRIPT, "stop", dir]);
    for (const pid of pids) {
      try {
        if (alive(pid)) process.kill(pid, "SIGKILL");
      } catch {}
    }
    running.delete(server);
  };
  if (code !== 0) {
    Bun.spawnSync([S3_SCRIPT, "stop", dir]);
    throw new Error(`s3 start failed: ${err}`);
  }
  const vars = Object.fromEntries(out.trim().split("\n").map((l) => l.split("=", 2) as [string, string]));
  const server = {
    env: {
      KILN_S3_BUCKET: vars.S3_BUCKET!,
      KILN_S3_ENDPOINT: vars.S3_ENDPOINT!,
      KILN_S3_REGION: vars.S3_REGION!,
      AWS_ACCESS_KEY_ID: vars.S3_ACCESS_KEY!,
      AWS_SECRET_ACCESS_KEY: vars.S3_SECRET_KEY!,
    },
    secret: vars.S3_SECRET_KEY!,
    kill: () => {
      // The gateway is what answers S3; without it the port refuses connections.
      try {
        process.kill(pids[0]!, "SIGKILL");
      } catch {}
    },
    stop,
  };
  running.add(server);
  return server;
}
