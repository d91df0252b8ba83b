// The storage interface every tier implements. Keys are opaque lower-case [0-9a-z] strings of
// at least 3 characters (a hex digest plus a kind suffix); blobs are whole encoded entries.

export interface CacheStorage {
  /** For stats and messages, e.g. `Local disk: "/home/me/.cache/kiln"`. */
  readonly location: string;
  /** The blob, or undefined on a miss. Throws on a read failure (counted as a read error). */
  get(key: string): Promise<Uint8Array | undefined>;
  /** Stores the blob under key, replacing any previous one. Throws on failure. */
  put(key: string, blob: Uint8Array): Promise<void>;
  /** Drops an entry found to be corrupt. */
  remove(key: string): Promise<void>;
  /** Current and maximum size in bytes, when the tier knows them. */
  usage?(): Promise<{ size: number; maxSize: number; entries: number }>;
  close?(): Promise<void>;
}
