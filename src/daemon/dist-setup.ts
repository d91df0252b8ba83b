// The daemon's DistCompiler from the config, or none when [dist] is not configured.

import { join } from "node:path";
import type { KilnConfig } from "../config/config.ts";
import { SchedulerClient } from "../dist/client.ts";
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
    pack: async (compiler) => {
      const { packageToolchain } = await import("../dist/toolchain.ts");
      return packageToolchain(compiler);
    },
    packageDir: config.distCacheDir ?? join(config.cacheDir, "dist-toolchains"),
    retryAfterMs: config.distRetryAfterSec * 1000,
    jobTimeoutMs: config.distRequestTimeoutSec * 1000,
    stats,
    log,
  });
}
