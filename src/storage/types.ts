// The storage interface every tier implements. Keys are opaque lower-case [0-9a-z] strings of
// at least 3 characters (a hex digest plus a kind suffix); blobs are whole encoded entries.

import { KilnError } from "../util/errors.ts";

export interface CacheStorage {
  /** For stats and messages, e.g. `Local disk: "/home/me/.cache/kiln"`. Never holds credentials. */
  readonly location: string;
  /** The blob, or undefined on a miss. Throws on a read failure (counted as a read error). */
  get(key: string): Promise<Uint8Array | undefined>;
  /** Stores the blob under key, replacing any previous one. Throws on failure. */
  put(key: string, blob: Uint8Array): Promise<void>;
  /** Drops an entry found to be corrupt. */
  remove(key: string): Promise<void>;
  /** Current and maximum size in bytes, when the tier knows them. */
  usage?(): Promise<{ size: number; maxSize: number; entries: number }>;
  /** Drops the connection after a call timed out, so the next call starts afresh. */
  reset?(): void;
  close?(): Promise<void>;
}

/** A remote refused our credentials: one clear line in the log, and the level is skipped. */
export class RemoteAuthError extends KilnError {
  constructor(message: string, hint: string) {
    super("KILN_REMOTE_AUTH", message, { hint });
    this.name = "RemoteAuthError";
  }
}

/** Raised by the tier wrapper when a call takes longer than its level allows. */
export class RemoteTimeout extends Error {
  override name = "RemoteTimeout";
}
