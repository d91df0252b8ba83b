// A build server's unpacked toolchains: `<dir>/<id>/` each, content-addressed, unpacked once
// (concurrent jobs for the same id share one fetch), evicted least recently used when the
// unpacked total exceeds the size limit. A toolchain a running job uses is never evicted.
// Unpacking goes to a temporary directory renamed into place, so a crash leaves no
// half-unpacked toolchain under its id; leftovers are removed at start.

import { mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BadArchive, unpackTarZst } from "./tar.ts";
import { toolchainId } from "./toolchain.ts";

interface Cached {
  bytes: number;
  lastUsedMs: number;
  users: number;
}

const ID = /^[0-9a-f]{64}$/;

export class ToolchainCache {
  private readonly cached = new Map<string, Cached>();
  private readonly loading = new Map<string, Promise<void>>();
  private totalBytes = 0;

  constructor(
    private readonly dir: string,
    private readonly limitBytes: number,
    private readonly onEvict: (id: string) => void = () => {},
  ) {
    mkdirSync(dir, { recursive: true });
    const names = readdirSync(dir);
    for (const name of names.filter((n) => ID.test(n))) {
      try {
        const sizeFile = `${join(dir, name)}.size`;
        const bytes = Number(readFileSync(sizeFile, "utf8"));
        if (!Number.isSafeInteger(bytes)) continue;
        this.cached.set(name, { bytes, lastUsedMs: statSync(sizeFile).mtimeMs, users: 0 });
        this.totalBytes += bytes;
      } catch {
        // no size file: an interrupted eviction, removed below
      }
    }
    for (const name of names) {
      if (this.cached.has(name) || (name.endsWith(".size") && this.cached.has(name.slice(0, -5)))) continue;
      rmSync(join(dir, name), { recursive: true, force: true });
    }
  }

  ids(): string[] {
    return [...this.cached.keys()];
  }

  get bytes(): number {
    return this.totalBytes;
  }

  /**
   * The toolchain's directory, fetching and unpacking it first if needed; `release` must be
   * called when the job is done with it.
   */
  async acquire(id: string, fetchArchive: (id: string) => Promise<Uint8Array>): Promise<{ dir: string; release: () => void }> {
    if (!ID.test(id)) throw new BadArchive(`toolchain id ${JSON.stringify(id)} is not a SHA-256`);
    while (!this.cached.has(id)) {
      let load = this.loading.get(id);
      if (!load) {
        load = this.load(id, fetchArchive).finally(() => this.loading.delete(id));
        this.loading.set(id, load);
      }
      await load;
    }
    const entry = this.cached.get(id)!;
    entry.users++;
    entry.lastUsedMs = Date.now();
    // Only now, with this one in use: evicting before would throw the fresh one away.
    this.evict();
    try {
      utimesSync(`${join(this.dir, id)}.size`, new Date(), new Date());
    } catch {
      // the LRU order after a restart is a nicety
    }
    let released = false;
    return {
      dir: join(this.dir, id),
      release: () => {
        if (released) return;
        released = true;
        entry.users--;
        this.evict();
      },
    };
  }

  private async load(id: string, fetchArchive: (id: string) => Promise<Uint8Array>): Promise<void> {
    const archive = await fetchArchive(id);
    if (toolchainId(archive) !== id) throw new BadArchive(`toolchain ${id}: the archive's SHA-256 does not match its id`);
    const tmp = join(this.dir, `tmp-${id}-${process.pid}-${Date.now()}`);
    mkdirSync(tmp);
    try {
      const bytes = await unpackTarZst(archive, tmp);
      writeFileSync(`${join(this.dir, id)}.size`, String(bytes));
      renameSync(tmp, join(this.dir, id));
      this.cached.set(id, { bytes, lastUsedMs: Date.now(), users: 0 });
      this.totalBytes += bytes;
    } catch (e) {
      rmSync(tmp, { recursive: true, force: true });
      throw e;
    }
  }

  private evict(): void {
    if (this.totalBytes <= this.limitBytes) return;
    const idle = [...this.cached.entries()].filter(([, c]) => c.users === 0).sort((a, b) => a[1].lastUsedMs - b[1].lastUsedMs);
    for (const [id, c] of idle) {
      if (this.totalBytes <= this.limitBytes) break;
      this.cached.delete(id);
      this.totalBytes -= c.bytes;
      rmSync(`${join(this.dir, id)}.size`, { force: true });
      rmSync(join(this.dir, id), { recursive: true, force: true });
      this.onEvict(id);
    }
  }
}
