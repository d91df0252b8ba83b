// `npm run build`: the two single-file executables in dist/.
//
// CommonJS output keeps each module's `node:` imports inside its lazy initialiser, so a cache
// hit never loads what only the daemon needs (an ESM bundle hoists them all to the top), and
// bytecode spares the parse on every start. Both matter: the client starts once per compile.

import { $ } from "bun";

const targets = [
  ["src/cli/kiln.ts", "dist/kiln"],
  ["src/cli/kiln-dist.ts", "dist/kiln-dist"],
] as const;

for (const [entry, out] of targets) {
  await $`bun build --compile --format=cjs --bytecode --minify ${entry} --outfile ${out}`.quiet();
  console.log(`built ${out}`);
}
