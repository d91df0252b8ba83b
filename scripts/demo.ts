// `npm run demo`: builds Kiln, then the bundled demo/ C project twice through `kiln gcc`,
// and shows the statistics: all misses on the first build, all hits on the second.
// Uses a throwaway cache and daemon so the result is the same on every run.

import { $ } from "bun";
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const repo = resolve(import.meta.dir, "..");
await $`bun ${join(repo, "scripts/build.ts")}`.quiet();
const kiln = join(repo, "dist", "kiln");

const scratch = mkdtempSync(join(tmpdir(), "kiln-demo-"));
const project = join(scratch, "demo");
cpSync(join(repo, "demo"), project, { recursive: true });
const env = {
  ...process.env,
  KILN_DIR: join(scratch, "cache"),
  KILN_RUNTIME_DIR: join(scratch, "run"),
  KILN_CONF: join(repo, "demo", "kiln.toml"),
};

async function build(label: string): Promise<void> {
  await $`make -C ${project} clean`.env(env).quiet();
  await $`${kiln} -z`.env(env).quiet();
  const started = performance.now();
  await $`make -C ${project} -j2 CC=${`${kiln} gcc`}`.env(env).quiet();
  const seconds = ((performance.now() - started) / 1000).toFixed(2);
  const stats = JSON.parse(await $`${kiln} -s --stats-format json`.env(env).text()).stats;
  console.log(`${label}: ${seconds} s, ${stats.cache_hits_total} hits, ${stats.cache_misses_total} misses`);
}

try {
  console.log(`kiln demo: building ${project} twice with CC="kiln gcc" (cache in ${env.KILN_DIR})\n`);
  await build("build 1 (empty cache)");
  await build("build 2 (after make clean)");
  console.log(`\n${project}/calc "2^10 / 4":`, (await $`${join(project, "calc")} "2^10 / 4"`.text()).trim());
  console.log("\nkiln --stop-server (statistics of build 2; the link step is never cached):");
  process.stdout.write(await $`${kiln} --stop-server`.env(env).text());
} finally {
  await $`${kiln} --stop-server`.env(env).quiet().nothrow();
  rmSync(scratch, { recursive: true, force: true });
}
