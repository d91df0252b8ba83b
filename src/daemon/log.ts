// The daemon's log: one line per event, appended with a synchronous write so a crash loses
// nothing already logged. Levels: debug < info < warn < error.

import { closeSync, mkdirSync, openSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import type { LogLevel } from "../config/config.ts";

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

export class Logger {
  private fd: number | undefined;
  private readonly min: number;

  constructor(
    readonly path: string | undefined,
    level: LogLevel,
  ) {
    this.min = RANK[level];
    if (path) {
      mkdirSync(dirname(path), { recursive: true });
      this.fd = openSync(path, "a", 0o600);
    }
  }

  enabled(level: LogLevel): boolean {
    return RANK[level] >= this.min && this.fd !== undefined;
  }

  private write(level: LogLevel, message: string): void {
    if (!this.enabled(level)) return;
    try {
      writeSync(this.fd!, `${new Date().toISOString()} ${level.toUpperCase().padEnd(5)} [${process.pid}] ${message}\n`);
    } catch {
      // A full disk must not take the daemon down with it.
    }
  }

  debug(message: string): void {
    this.write("debug", message);
  }
  info(message: string): void {
    this.write("info", message);
  }
  warn(message: string): void {
    this.write("warn", message);
  }
  error(message: string): void {
    this.write("error", message);
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}
