// kiln-dist logs one line per event to stderr (a service manager or container runtime keeps
// it). Tokens never appear in a line.

import type { LogLevel } from "../config/config.ts";

export interface DistLog {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

export function stderrLog(role: string, level: LogLevel = "info"): DistLog {
  const write = (at: LogLevel, message: string): void => {
    if (RANK[at] < RANK[level]) return;
    process.stderr.write(`${new Date().toISOString()} ${at.toUpperCase().padEnd(5)} kiln-dist ${role}: ${message}\n`);
  };
  return {
    debug: (m) => write("debug", m),
    info: (m) => write("info", m),
    warn: (m) => write("warn", m),
    error: (m) => write("error", m),
  };
}
