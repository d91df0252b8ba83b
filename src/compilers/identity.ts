// A compiler's identity: the digest of its executable's bytes, so an upgraded compiler never
// answers from entries the old one made. The digest comes from the daemon's stat-validated
// file digests, so a warm hit hashes nothing it has seen unchanged.

import type { FileDigests } from "../daemon/file-digests.ts";

export type Flavor = "gcc" | "clang";

export interface CompilerIdentity {
  /** sha256 hex of the executable. */
  digest: string;
  flavor: Flavor;
}

export class CompilerIdentities {
  /** The flavor of each executable we have asked, by its digest. */
  private readonly flavors = new Map<string, Flavor>();

  constructor(private readonly digests: FileDigests) {}

  /** Throws when the executable cannot be read. */
  async identify(path: string): Promise<CompilerIdentity> {
    const file = this.digests.file(path);
    if (!file) throw new Error(`cannot read the compiler ${path}`);
    let flavor = this.flavors.get(file.digest);
    if (!flavor) {
      flavor = await detectFlavor(path);
      this.flavors.set(file.digest, flavor);
    }
    return { digest: file.digest, flavor };
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
