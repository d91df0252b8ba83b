// Which digest for file contents? Times Bun's built-in SHA-256 and BLAKE2b over every header
// a C++ compile can read (/usr/include/c++/<version>), per file, the way the daemon hashes.
// BLAKE3 from npm was measured once too (see README): `bun bench/hash.ts`.

import { readdirSync, readFileSync } from "node:fs";

const root = readdirSync("/usr/include/c++").map((v) => `/usr/include/c++/${v}`)[0];
if (!root) throw new Error("no /usr/include/c++/<version> to read");
const files: Uint8Array[] = [];
function walk(dir: string): void {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory()) walk(path);
    else if (e.isFile()) files.push(readFileSync(path));
  }
}
walk(root);
const total = files.reduce((n, f) => n + f.length, 0);
const sizes = files.map((f) => f.length).sort((a, b) => a - b);
console.log(`${files.length} headers from ${root}, ${(total / 1e6).toFixed(1)} MB, median ${sizes[sizes.length >> 1]} bytes`);

const algorithms: Record<string, (b: Uint8Array) => unknown> = {
  "sha256 (CryptoHasher)": (b) => new Bun.CryptoHasher("sha256").update(b).digest(),
  "sha256 (Bun.SHA256.hash)": (b) => Bun.SHA256.hash(b),
  "blake2b256": (b) => new Bun.CryptoHasher("blake2b256").update(b).digest(),
};
for (const [name, digest] of Object.entries(algorithms)) {
  for (const f of files) digest(f);
  const runs: number[] = [];
  for (let r = 0; r < 9; r++) {
    const t = performance.now();
    for (const f of files) digest(f);
    runs.push(performance.now() - t);
  }
  const ms = runs.sort((a, b) => a - b)[4]!;
  console.log(
    `${name.padEnd(26)} median ${ms.toFixed(1)} ms: ${((ms * 1000) / files.length).toFixed(1)} us/file, ${(total / 1e6 / (ms / 1000)).toFixed(0)} MB/s`,
  );
}
