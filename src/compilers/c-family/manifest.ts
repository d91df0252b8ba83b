// A direct-mode manifest: for one source file compiled one way, the include sets seen so far
// and the result each one produced. Stored like any entry (kind Manifest), on every tier.

import { EntryKind, openEntry, sealEntry, CorruptEntry } from "../../storage/entry.ts";

export interface ManifestVariant {
  /** The result entry's key. */
  result: string;
  /** Every file the preprocessor read: [path (normalized), sha256 hex]. */
  files: [string, string][];
  /** Indexes into `files` whose mtime matters too (__TIMESTAMP__), with that mtime. */
  stamps?: [number, number][];
  /** Names that must stay absent from directories searched earlier: [dir, names]. */
  absent: [string, string[]][];
  /** The local date the result holds for (some file uses __DATE__). */
  date?: string;
}

export interface Manifest {
  variants: ManifestVariant[];
}

/** Enough for a header edited back and forth, few enough to check quickly. */
export const MAX_VARIANTS = 12;

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

export function encodeManifest(m: Manifest): Uint8Array {
  return sealEntry(EntryKind.Manifest, utf8.encode(JSON.stringify(m)));
}

export function decodeManifest(blob: Uint8Array): Manifest {
  const payload = openEntry(EntryKind.Manifest, blob);
  let m: Manifest;
  try {
    m = JSON.parse(fromUtf8.decode(payload)) as Manifest;
  } catch {
    throw new CorruptEntry("unreadable manifest");
  }
  if (!m || !Array.isArray(m.variants)) throw new CorruptEntry("malformed manifest");
  return m;
}

function sameFiles(a: ManifestVariant, b: ManifestVariant): boolean {
  return a.files.length === b.files.length && a.files.every((f, i) => f[0] === b.files[i]![0] && f[1] === b.files[i]![1]);
}

/** The manifest with `variant` first, replacing one for the same include set, capped. */
export function withVariant(m: Manifest | undefined, variant: ManifestVariant): Manifest {
  const others = (m?.variants ?? []).filter((v) => !sameFiles(v, variant));
  return { variants: [variant, ...others].slice(0, MAX_VARIANTS) };
}
