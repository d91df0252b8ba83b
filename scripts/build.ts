// `npm run build`: the two single-file executables in dist/.
//
// CommonJS output keeps each module's `node:` imports inside its lazy initialiser, so a cache
// hit never loads what only the daemon needs (an ESM bundle hoists them all to the top), and
// bytecode spares the parse on every start. Both matter: the client starts once per compile.
// No .env or bunfig.toml autoloading: Bun would read every directory from / down to the
// build's cwd looking for them on each start, and a project's .env would change Kiln's own
// environment.

import { $ } from "bun";

// kiln's commands and daemon are a second entry point of the same executable, so the code a
// compile loads is the client alone (see src/cli/kiln.ts).
const targets = [
  [["src/cli/kiln.ts", "src/cli/kiln-tools.ts"], "dist/kiln"],
  [["src/cli/kiln-dist.ts"], "dist/kiln-dist"],
] as const;

for (const [entries, out] of targets) {
  await $`bun build --compile --format=cjs --bytecode --minify --no-compile-autoload-dotenv --no-compile-autoload-bunfig ${entries} --outfile ${out}`.quiet();
  console.log(`built ${out}`);
}
