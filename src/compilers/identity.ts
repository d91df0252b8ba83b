// A compiler's identity: the digest of its executable's bytes, so an upgraded compiler never
// answers from entries the old one made. Cached by the file's stat data: a warm hit hashes
// nothing it has seen unchanged.

import { readFileSync, statSync } from "node:fs";

export type Flavor = "gcc" | "clang";

export interface CompilerIdentity {
  /** sha256 hex of the executable. */
  digest: string;
  flavor: Flavor;
}

function statKey(path: string): string {
  const st = statSync(path);
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
}

export class CompilerIdentities {
  private readonly known = new Map<string, { key: string; identity: CompilerIdentity }>();

  async identify(path: string): Promise<CompilerIdentity> {
    const key = statKey(path);
    const cached = this.known.get(path);
    if (cached && cached.key === key) return cached.identity;
    const bytes = readFileSync(path);
    const digest = new Bun.CryptoHasher("sha256").update(bytes).digest("hex");
    const flavor = await detectFlavor(path);
    const identity = { digest, flavor };
    this.known.set(path, { key, identity });
    return identity;
  }
}

/** `cc` may be either; the driver's own --version says which (once per identity). */
async function detectFlavor(path: string): Promise<Flavor> {
  const proc = Bun.spawn([path, "--version"], { stdin: "ignore", stdout: "pipe", stderr: "ignore" });
  const text = await new Response(proc.stdout).text();
  await proc.exited;
  return /clang/i.test(text) ? "clang" : "gcc";
}

/** gcc, g++, cc, c++, clang, clang++, with target prefixes and version suffixes. */
const C_FAMILY_NAME = /(^|-)(gcc|g\+\+|cc|c\+\+|clang|clang\+\+)(-\d+(\.\d+)*)?$/;

export function isCFamilyName(name: string): boolean {
  return C_FAMILY_NAME.test(name);
}

/** g++/c++/clang++ compile .c sources as C++. */
export function isCxxDriverName(name: string): boolean {
  return /(g\+\+|c\+\+)(-\d+(\.\d+)*)?$/.test(name);
}
