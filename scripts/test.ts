// `npm test`: type-check, build the executables the integration tests run, then bun's test
// runner; ends with one line `N passed, N failed`.

import { $ } from "bun";
import { existsSync, readdirSync } from "node:fs";

// rustup's cargo and rustc may be installed but off PATH (CI installs them for root).
for (const dir of [`${process.env.HOME ?? "/root"}/.cargo/bin`, "/root/.cargo/bin"]) {
  if (!Bun.which("cargo") && existsSync(`${dir}/cargo`)) process.env.PATH = `${dir}:${process.env.PATH ?? ""}`;
}

// The tests run real compilers and tools; say up front which are missing and how to get them.
const needed: [command: string, debianPackage: string][] = [
  ["gcc", "gcc"], ["g++", "g++"], ["clang", "clang"], ["clang++", "clang"], ["make", "make"], ["cmake", "cmake"],
  ["pgrep", "procps"], ["xz", "xz-utils"], ["script", "bsdutils"], ["unshare", "util-linux"],
  ["redis-server", "redis-server"], ["memcached", "memcached"], ["nginx", "nginx-light"],
  ["cargo", "cargo"], ["rustc", "rustc"],
  ["bwrap", "bubblewrap"], ["ip", "iproute2"],
];
const sbin = `${process.env.PATH ?? ""}:/usr/sbin:/sbin`;
const missing = needed.filter(([command]) => !Bun.which(command, { PATH: sbin }));
// The cargo tests build against Debian's packaged crates.
const registry = (() => {
  try {
    return readdirSync("/usr/share/cargo/registry");
  } catch {
    return [];
  }
})();
for (const [crate, pkg] of [["regex", "librust-regex-dev"], ["serde_json", "librust-serde-json-dev"], ["clap", "librust-clap-dev"]]) {
  if (!registry.some((d) => d.startsWith(`${crate}-`))) missing.push([`${crate} in /usr/share/cargo/registry`, pkg!]);
}
if (missing.length > 0) {
  const packages = [...new Set(missing.map(([, p]) => p))].join(" ");
  console.error(`npm test: missing ${missing.map(([c]) => c).join(", ")}.`);
  console.error(`  Install them with: sudo apt-get install -y ${packages}   (or run: bash .ci/run, which does it)`);
  process.exit(1);
}

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
