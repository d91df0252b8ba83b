// `kiln --dist-status`: asks the scheduler named in [dist] for its fleet, with the client
// token, straight from the CLI (no daemon needed).

import { loadConfig } from "../config/config.ts";
import { DistFailure, SchedulerClient } from "../dist/client.ts";
import type { SchedulerStatus } from "../dist/protocol.ts";
import { isKilnError } from "../util/errors.ts";

export async function distStatus(
  format: "text" | "json",
  env: Record<string, string | undefined>,
  out: (text: string) => void,
  err: (text: string) => void,
): Promise<number> {
  let config;
  try {
    ({ config } = loadConfig(env));
  } catch (e) {
    if (!isKilnError(e)) throw e;
    err(e.format() + "\n");
    return 2;
  }
  const url = config.distSchedulerUrl;
  if (url === undefined) {
    const message = "distributed compilation is not configured";
    if (format === "json") out(JSON.stringify({ Disabled: message }) + "\n");
    else err(`kiln: ${message}\n  hint: set [dist] scheduler_url and [dist.auth] token in the config, or KILN_DIST_SCHEDULER_URL and KILN_DIST_TOKEN\n`);
    return 1;
  }
  const client = new SchedulerClient({
    url,
    token: config.distToken,
    connectTimeoutMs: config.distConnectTimeoutSec * 1000,
    requestTimeoutMs: config.distRequestTimeoutSec * 1000,
  });
  let status: SchedulerStatus;
  try {
    status = await client.status();
  } catch (e) {
    const why = e instanceof DistFailure ? e.message : String(e);
    if (format === "json") out(JSON.stringify({ NotConnected: `${url}: ${why}` }) + "\n");
    else err(`kiln: not connected to the scheduler at ${url}: ${why}\n`);
    return 1;
  }
  if (format === "json") {
    const summary = { num_servers: status.numServers, num_cpus: status.numCpus, in_progress: status.inProgress };
    out(JSON.stringify({ SchedulerStatus: [url, summary] }) + "\n");
    return 0;
  }
  out(formatDistStatus(url, status, Date.now()));
  return 0;
}

export function formatDistStatus(url: string, s: SchedulerStatus, now: number): string {
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;
  const lines = [
    `Scheduler ${url}: connected, ${plural(s.numServers, "server")}, ${plural(s.numCpus, "core")}, ${plural(s.inProgress, "job")} in progress`,
  ];
  if (s.servers.length === 0) return lines.join("\n") + "\n  (no build servers connected)\n";
  const rows = [["SERVER", "CORES", "RUNNING", "TOOLCHAINS", "JOBS DONE", "LAST HEARTBEAT"]];
  for (const server of [...s.servers].sort((a, b) => a.name.localeCompare(b.name))) {
    // An epoch time, or already an age in milliseconds.
    const age = server.lastHeartbeatMs > 1e12 ? now - server.lastHeartbeatMs : server.lastHeartbeatMs;
    rows.push([
      server.name,
      String(server.cores),
      String(server.running),
      String(server.toolchains),
      String(server.jobsDone),
      `${(Math.max(0, age) / 1000).toFixed(1)} s ago`,
    ]);
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  for (const r of rows) lines.push(r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join("  "));
  return lines.join("\n") + "\n";
}
