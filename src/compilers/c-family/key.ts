// The cache key of a gcc/clang compile in preprocessor mode.

import type { PathNormalizer } from "../basedirs.ts";
import type { CFamilyCompile } from "../types.ts";
import type { CompilerIdentity } from "../identity.ts";

/** Bump when anything about how keys are computed or entries are laid out changes. */
export const KEY_VERSION = "kiln-c-4";

/**
 * Environment variables that change what the compiler writes or prints. Include-path
 * variables are here too: preprocessor mode sees their effect in the text, but direct mode
 * does not.
 */
export const KEYED_ENV = [
  "LANG",
  "LC_ALL",
  "GCC_COLORS",
  "LC_CTYPE",
  "LC_MESSAGES",
  "GCC_COMPARE_DEBUG",
  "GCC_EXEC_PREFIX",
  "COMPILER_PATH",
  "CCC_OVERRIDE_OPTIONS",
  "SDKROOT",
  "MACOSX_DEPLOYMENT_TARGET",
  "IPHONEOS_DEPLOYMENT_TARGET",
  "SOURCE_DATE_EPOCH",
  "CPATH",
  "C_INCLUDE_PATH",
  "CPLUS_INCLUDE_PATH",
  "OBJC_INCLUDE_PATH",
] as const;

export class KeyHasher {
  constructor(private readonly h = new Bun.CryptoHasher("sha256")) {}

  /** An independent hasher that starts from everything fed so far. */
  copy(): KeyHasher {
    return new KeyHasher(this.h.copy());
  }

  /** Length-prefixed, so no two different sequences of fields hash alike. */
  field(label: string, value: string | Uint8Array): this {
    this.h.update(`${label}:${typeof value === "string" ? value.length : value.byteLength}:`);
    this.h.update(value);
    return this;
  }

  hex(): string {
    return this.h.digest("hex");
  }
}

/**
 * Everything but the source text, shared by preprocessor mode and direct mode. Paths inside
 * the checkout go in through `norm`, so other checkouts of the project share keys.
 */
export function hashCommon(
  identity: CompilerIdentity,
  parsed: CFamilyCompile,
  env: Record<string, string | undefined>,
  norm: PathNormalizer,
): KeyHasher {
  const h = new KeyHasher();
  h.field("version", KEY_VERSION).field("compiler", identity.digest).field("language", parsed.language);
  for (const arg of parsed.keyArgs) h.field("arg", norm.arg(arg));
  for (const extra of parsed.keyExtras) h.field("extra", norm.arg(extra));
  for (const name of KEYED_ENV) {
    const value = env[name];
    if (value !== undefined) h.field(`env ${name}`, value);
  }
  return h;
}
