// The daemon's DistCompiler from the config, or none when [dist] is not configured.

import { join } from "node:path";
import type { KilnConfig } from "../config/config.ts";
import { SchedulerClient } from "../dist/client.ts";
import { MAX_JOB_TIMEOUT_MS } from "../dist/protocol.ts";
import { packageToolchain } from "../dist/toolchain.ts";
import { DistCompiler } from "./dist-compile.ts";
import type { Logger } from "./log.ts";
import type { Stats } from "./stats.ts";

export function distCompilerFor(config: KilnConfig, stats: Stats, log: Logger): DistCompiler | undefined {
  if (config.distSchedulerUrl === undefined) return undefined;
  const client = new SchedulerClient({
    url: config.distSchedulerUrl,
    token: config.distToken,
    connectTimeoutMs: config.distConnectTimeoutSec * 1000,
    requestTimeoutMs: config.distRequestTimeoutSec * 1000,
  });
  log.info(`dist: misses go to the scheduler at ${config.distSchedulerUrl}`);
  return new DistCompiler({
    client,
    pack: packageToolchain,
    packageDir: config.distCacheDir ?? join(config.cacheDir, "dist-toolchains"),
    retryAfterMs: config.distRetryAfterSec * 1000,
    jobTimeoutMs: Math.min(config.distRequestTimeoutSec * 1000, MAX_JOB_TIMEOUT_MS),
    stats,
    log,
  });
}
