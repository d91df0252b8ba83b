// memcached over its text protocol (get, set, delete) on one pipelined connection through
// Bun.connect: answers come back in request order, so each request waits its turn in a queue.
//
// An item is at most the server's item size (memcached -I, 1 MiB by default). A larger entry
// is split: its chunks go under `<key>.<write id>.<n>` and the entry's own key holds a small
// descriptor (flags = CHUNKED) naming them. The write id keeps two writers of one key from
// mixing chunks; a reader that finds any chunk missing (evicted) has a miss.
//
// Credentials use memcached's text-protocol authentication (memcached -Y): a `set` of
// "user password" right after connecting.

import type { Socket } from "bun";
import type { MemcachedLevel } from "../config/config.ts";
import { KilnError } from "../util/errors.ts";
import { parseSocketAddress, type SocketAddress } from "./socket.ts";
import { RemoteAuthError, type CacheStorage } from "./types.ts";

const CHUNKED = 1;
/** Room left in each item for memcached's own header and the key. */
const ITEM_OVERHEAD = 1024;
/** Relative expiration times above this are taken by memcached as absolute Unix times. */
const MAX_RELATIVE_EXPIRY = 30 * 24 * 3600;

type Expect = "get" | "store" | "delete";
type Item = { flags: number; data: Uint8Array };
type Answer = Map<string, Item> | undefined;

interface Pending {
  expect: Expect;
  resolve(answer: Answer): void;
  reject(error: Error): void;
}

const CRLF = Buffer.from("\r\n");

class Connection {
  private buffer: Buffer = Buffer.alloc(0);
  /** Bytes the first answer needs before parsing is worth trying again. */
  private needed = 0;
  private readonly queue: Pending[] = [];
  private outgoing: Buffer[] = [];
  closed = false;
  socket!: Socket<undefined>;

  constructor(private readonly location: string) {}

  handlers() {
    return {
      data: (_s: Socket<undefined>, chunk: Buffer) => this.onData(chunk),
      drain: () => this.flush(),
      close: () => this.fail(new Error(`${this.location} closed the connection`)),
      error: (_s: Socket<undefined>, e: Error) => this.fail(e),
    };
  }

  request(bytes: Buffer[], expect: Expect): Promise<Answer> {
    if (this.closed) return Promise.reject(new Error(`connection to ${this.location} is closed`));
    const answer = new Promise<Answer>((resolve, reject) => this.queue.push({ expect, resolve, reject }));
    this.outgoing.push(...bytes);
    this.flush();
    return answer;
  }

  private flush(): void {
    while (this.outgoing.length > 0 && !this.closed) {
      const next = this.outgoing[0]!;
      const n = this.socket.write(next);
      if (n < next.length) {
        this.outgoing[0] = next.subarray(Math.max(n, 0));
        return;
      }
      this.outgoing.shift();
    }
  }

  fail(error: Error): void {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.queue.splice(0)) p.reject(error);
    this.outgoing = [];
    try {
      this.socket?.end();
    } catch {}
  }

  private onData(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    if (this.buffer.length < this.needed) return;
    while (this.queue.length > 0) {
      let parsed: { answer: Answer; used: number } | { need: number };
      try {
        parsed = this.parse(this.queue[0]!.expect);
      } catch (e) {
        this.fail(e as Error);
        return;
      }
      if ("need" in parsed) {
        this.needed = parsed.need;
        return;
      }
      this.needed = 0;
      this.buffer = this.buffer.subarray(parsed.used);
      this.queue.shift()!.resolve(parsed.answer);
    }
  }

  /** One answer from the front of the buffer, or how many bytes it needs at least. */
  private parse(expect: Expect): { answer: Answer; used: number } | { need: number } {
    const items = new Map<string, Item>();
    let at = 0;
    for (;;) {
      const end = this.buffer.indexOf(CRLF, at);
      if (end < 0) return { need: this.buffer.length + 1 };
      const line = this.buffer.toString("latin1", at, end);
      at = end + 2;
      const error = /^(ERROR|CLIENT_ERROR|SERVER_ERROR)\b ?(.*)$/.exec(line);
      if (error) {
        const text = `${error[1]}${error[2] ? ` ${error[2]}` : ""}`;
        if (/authentication failure|unauthenticated/i.test(text)) {
          throw new RemoteAuthError(`${this.location} refused the credentials (${text})`, "check [cache.memcached] username and password (KILN_MEMCACHED_USERNAME, KILN_MEMCACHED_PASSWORD)");
        }
        // The server answered: the connection stays usable, only this request failed.
        const failed = this.queue.shift()!;
        this.buffer = this.buffer.subarray(at);
        failed.reject(new Error(`${this.location}: ${text}`));
        return this.queue.length > 0 ? this.parse(this.queue[0]!.expect) : { need: 0 };
      }
      if (expect === "store") {
        if (line === "STORED") return { answer: undefined, used: at };
        throw new Error(`${this.location}: unexpected answer to set: ${line.slice(0, 80)}`);
      }
      if (expect === "delete") {
        if (line === "DELETED" || line === "NOT_FOUND") return { answer: undefined, used: at };
        throw new Error(`${this.location}: unexpected answer to delete: ${line.slice(0, 80)}`);
      }
      if (line === "END") return { answer: items, used: at };
      const value = /^VALUE (\S+) (\d+) (\d+)/.exec(line);
      if (!value) throw new Error(`${this.location}: unexpected answer to get: ${line.slice(0, 80)}`);
      const size = Number(value[3]);
      if (this.buffer.length < at + size + 2) return { need: at + size + 2 + 5 };
      items.set(value[1]!, { flags: Number(value[2]), data: new Uint8Array(this.buffer.subarray(at, at + size)) });
      at += size + 2;
    }
  }
}

export class MemcachedStorage implements CacheStorage {
  private readonly address: SocketAddress;
  private connection: Connection | undefined;
  private connecting: Promise<Connection> | undefined;

  constructor(
    private readonly cfg: MemcachedLevel,
    readonly location: string,
  ) {
    this.address = parseSocketAddress(cfg.endpoint, 11211);
    if (/[\s\x00-\x1f]/.test(cfg.keyPrefix) || cfg.keyPrefix.length > 150) {
      throw new KilnError("KILN_CONFIG_VALUE", `[cache.memcached] key_prefix ${JSON.stringify(cfg.keyPrefix)} is not a valid memcached key part`, {
        hint: "use at most 150 characters without spaces or control characters",
      });
    }
  }

  private get chunkSize(): number {
    return Math.max(this.cfg.itemSize - ITEM_OVERHEAD, 1024);
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    const c = await this.conn();
    const name = this.cfg.keyPrefix + key;
    const item = (await c.request([Buffer.from(`get ${name}\r\n`)], "get"))?.get(name);
    if (!item) return undefined;
    if (item.flags !== CHUNKED) return item.data;
    const [id, count, total] = new TextDecoder().decode(item.data).split(" ");
    const n = Number(count);
    if (!id || !Number.isInteger(n) || n < 1 || n > 100_000) return undefined;
    const names = Array.from({ length: n }, (_, i) => `${name}.${id}.${i}`);
    const chunks = await c.request([Buffer.from(`get ${names.join(" ")}\r\n`)], "get");
    const parts = names.map((k) => chunks?.get(k)?.data);
    if (parts.some((p) => p === undefined)) return undefined; // a chunk was evicted
    const blob = Buffer.concat(parts as Uint8Array[]);
    return blob.length === Number(total) ? new Uint8Array(blob) : undefined;
  }

  async put(key: string, blob: Uint8Array): Promise<void> {
    const c = await this.conn();
    const name = this.cfg.keyPrefix + key;
    if (blob.length <= this.chunkSize) {
      await c.request(this.set(name, 0, blob), "store");
      return;
    }
    const id = crypto.getRandomValues(new Uint32Array(2)).reduce((s, v) => s + v.toString(36), "");
    const writes: Promise<Answer>[] = [];
    let n = 0;
    for (let at = 0; at < blob.length; at += this.chunkSize, n++) {
      writes.push(c.request(this.set(`${name}.${id}.${n}`, 0, blob.subarray(at, at + this.chunkSize)), "store"));
    }
    await Promise.all(writes);
    await c.request(this.set(name, CHUNKED, Buffer.from(`${id} ${n} ${blob.length}`)), "store");
  }

  async remove(key: string): Promise<void> {
    await (await this.conn()).request([Buffer.from(`delete ${this.cfg.keyPrefix + key}\r\n`)], "delete");
  }

  private set(name: string, flags: number, data: Uint8Array): Buffer[] {
    let exptime = this.cfg.expiration;
    if (exptime > MAX_RELATIVE_EXPIRY) exptime = Math.floor(Date.now() / 1000) + exptime;
    return [Buffer.from(`set ${name} ${flags} ${exptime} ${data.length}\r\n`), Buffer.from(data.buffer, data.byteOffset, data.byteLength), CRLF];
  }

  reset(): void {
    this.connection?.fail(new Error("dropped after a timeout"));
    this.connection = undefined;
  }

  async close(): Promise<void> {
    this.reset();
  }

  private conn(): Promise<Connection> {
    if (this.connection && !this.connection.closed) return Promise.resolve(this.connection);
    this.connecting ??= this.open().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  private async open(): Promise<Connection> {
    const c = new Connection(this.location);
    let timer: Timer | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`cannot connect to ${this.location} within ${this.cfg.connectTimeoutMs} ms`)), this.cfg.connectTimeoutMs);
    });
    const socket = "unix" in this.address
      ? Bun.connect({ unix: this.address.unix, socket: c.handlers() })
      : Bun.connect({ hostname: this.address.hostname, port: this.address.port, socket: c.handlers() });
    try {
      c.socket = await Promise.race([socket, timeout]);
    } catch (e) {
      void socket.then((s) => s.end(), () => {});
      throw new KilnError("KILN_REMOTE_CONNECT", `cannot connect to ${this.location}: ${(e as Error).message}`);
    } finally {
      clearTimeout(timer);
    }
    if (this.cfg.username !== undefined || this.cfg.password !== undefined) {
      const secret = Buffer.from(`${this.cfg.username ?? ""} ${this.cfg.password ?? ""}`);
      try {
        await c.request([Buffer.from(`set auth 0 0 ${secret.length}\r\n`), secret, CRLF], "store");
      } catch (e) {
        c.fail(e as Error);
        throw e;
      }
    }
    this.connection = c;
    return c;
  }
}
