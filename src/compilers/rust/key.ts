// The manifest key of a rustc call: everything that changes its outputs except the sources
// beyond the crate root and the env-deps, which the manifest's variants record (from the
// dep-info of the compile that made them).

import type { PathNormalizer } from "../basedirs.ts";
import { KeyHasher } from "../c-family/key.ts";
import type { RustCompile } from "./args.ts";
import type { RustcIdentity } from "./identity.ts";

/** Bump when anything about how Rust keys are computed or entries are laid out changes. */
export const RUST_KEY_VERSION = "kiln-rust-1";

/**
 * CARGO_* variables that never change what rustc writes: jobserver and parallelism,
 * incremental (its effect is the -C incremental argument), and cargo's own settings for
 * registries, the network, HTTP and the terminal (tokens among them).
 */
const UNKEYED_CARGO_ENV = /^CARGO_(MAKEFLAGS|BUILD_JOBS|INCREMENTAL|HOME|TERM_.*|HTTP_.*|NET_.*|REGISTRY_.*|REGISTRIES_.*|CACHE_.*|LOG)$/;

/** Other variables rustc (or a crate's build, through cargo) reads. */
const KEYED_ENV = ["OUT_DIR", "RUSTC_BOOTSTRAP", "RUSTC_FORCE_RUSTC_VERSION", "CLIPPY_ARGS", "CLIPPY_CONF_DIR"] as const;

export interface RustKeyInputs {
  identity: RustcIdentity;
  /** The clippy-driver digest when cargo runs clippy in rustc's place. */
  clippy?: string;
  parsed: RustCompile;
  cwd: string;
  outDir: string;
  env: Record<string, string | undefined>;
  norm: PathNormalizer;
  /** Digests of the crate root, the --extern crates, the static libraries and the target spec, in that order. */
  inputs: [string, string][];
}

export function rustManifestKey(k: RustKeyInputs): string {
  const { norm } = k;
  const h = new KeyHasher()
    .field("version", RUST_KEY_VERSION)
    .field("rustc", k.identity.digest)
    .field("rustc -vV", k.identity.version)
    .field("clippy", k.clippy ?? "")
    .field("cwd", norm.path(k.cwd))
    .field("out-dir", norm.path(k.outDir));
  for (const arg of k.parsed.keyArgs) h.field("arg", norm.arg(arg));
  const names = Object.keys(k.env)
    .filter((n) => (n.startsWith("CARGO_") && !UNKEYED_CARGO_ENV.test(n)) || (KEYED_ENV as readonly string[]).includes(n))
    .sort();
  for (const name of names) h.field(`env ${name}`, norm.arg(k.env[name] ?? ""));
  for (const [what, digest] of k.inputs) h.field(what, digest);
  return `${h.hex()}m`;
}

/** The result key: the manifest key and what one compile's dep-info said it read. */
export function rustResultKey(manifestKey: string, files: [string, string][], env: [string, string | null][]): string {
  const h = new KeyHasher().field("manifest", manifestKey);
  for (const [path, digest] of files) h.field("file", path).field("digest", digest);
  for (const [name, value] of env) h.field("env", name).field(value === null ? "unset" : "value", value ?? "");
  return `${h.hex()}r`;
}
