// `npm test`: type-check, build the executables the integration tests run, then bun's test
// runner; ends with one line `N passed, N failed`.

import { $ } from "bun";

await $`tsc -p .`;
await $`bun scripts/build.ts`;

const proc = Bun.spawn(["bun", "test", "--timeout", "120000", ...process.argv.slice(2)], {
  stdout: "inherit",
  stderr: "pipe",
  env: { ...process.env, FORCE_COLOR: "0" },
});
let tail = "";
const decoder = new TextDecoder();
for await (const chunk of proc.stderr) {
  process.stderr.write(chunk);
  tail = (tail + decoder.decode(chunk, { stream: true })).slice(-4000);
}
const code = await proc.exited;
const passed = Number(/^\s*(\d+) pass$/m.exec(tail)?.[1] ?? 0);
const failed = Number(/^\s*(\d+) fail$/m.exec(tail)?.[1] ?? 0);
console.log(`${passed} passed, ${failed} failed`);
process.exit(code !== 0 || failed > 0 ? 1 : 0);
