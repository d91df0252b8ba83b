// `npm run build`: the two single-file executables in dist/.

import { $ } from "bun";

const targets = [
  ["src/cli/kiln.ts", "dist/kiln"],
  ["src/cli/kiln-dist.ts", "dist/kiln-dist"],
] as const;

for (const [entry, out] of targets) {
  await $`bun build --compile --minify --sourcemap=none ${entry} --outfile ${out}`.quiet();
  console.log(`built ${out}`);
}
