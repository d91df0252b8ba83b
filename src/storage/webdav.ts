// WebDAV / plain HTTP: GET, PUT, HEAD (and DELETE for corrupt entries), with basic or bearer
// authentication. Three layouts, so Kiln can share a server other tools already use:
//
//   subdirs  <endpoint>/<prefix><k0k1>/<rest of key>      ccache's default HTTP layout
//   flat     <endpoint>/<prefix><key>                     ccache's flat layout
//   bazel    <endpoint>/<prefix>ac/<sha256 of key>        an ActionResult naming the entry's blob,
//            <endpoint>/<prefix>cas/<sha256 of blob>      the blob itself, content-addressed
//
// The bazel layout is what bazel-remote serves: its /ac/ entries are validated as REAPI
// ActionResult messages, so Kiln stores one (one output file, digest = the blob's) rather
// than a bare blob, and puts the bytes where /cas/ expects them.

import type { WebdavLevel } from "../config/config.ts";
import { httpFailure } from "./http.ts";
import type { CacheStorage } from "./types.ts";

const AUTH_HINT = "check [cache.webdav] username and password, or token (KILN_WEBDAV_USERNAME, KILN_WEBDAV_PASSWORD, KILN_WEBDAV_TOKEN)";
/** The name of the one output file in a bazel-layout ActionResult. */
const BAZEL_OUTPUT = "kiln-entry";

export class WebdavStorage implements CacheStorage {
  private readonly base: string;
  private readonly headers: Record<string, string> = {};

  constructor(
    private readonly cfg: WebdavLevel,
    readonly location: string,
  ) {
    const prefix = cfg.keyPrefix === "" ? "" : cfg.keyPrefix.replace(/^\/+/, "").replace(/\/*$/, "/");
    // Credentials written into the endpoint (http://user:pass@host/) become a header.
    const endpoint = new URL(cfg.endpoint);
    const username = cfg.username ?? (endpoint.username ? decodeURIComponent(endpoint.username) : undefined);
    const password = cfg.password ?? (endpoint.password ? decodeURIComponent(endpoint.password) : undefined);
    endpoint.username = "";
    endpoint.password = "";
    this.base = endpoint.toString().replace(/\/*$/, "/") + prefix;
    if (cfg.token !== undefined) this.headers.authorization = `Bearer ${cfg.token}`;
    else if (username !== undefined || password !== undefined) {
      this.headers.authorization = `Basic ${Buffer.from(`${username ?? ""}:${password ?? ""}`).toString("base64")}`;
    }
  }

  private url(key: string): string {
    switch (this.cfg.layout) {
      case "subdirs":
        return `${this.base}${key.slice(0, 2)}/${key.slice(2)}`;
      case "flat":
        return this.base + key;
      case "bazel":
        return `${this.base}ac/${sha256(key)}`;
    }
  }

  private cas(digest: string): string {
    return `${this.base}cas/${digest}`;
  }

  private async request(method: string, url: string, body?: Uint8Array, extra: Record<string, string> = {}): Promise<Response> {
    return fetch(url, {
      method,
      body,
      headers: { ...this.headers, ...extra },
      signal: AbortSignal.timeout(this.cfg.connectTimeoutMs + this.cfg.timeoutMs),
      redirect: "error",
    });
  }

  /** The body of a 2xx answer, undefined on 404; throws on anything else. */
  private async fetchBytes(url: string): Promise<Uint8Array | undefined> {
    const r = await this.request("GET", url);
    if (r.status === 404) return undefined;
    if (!r.ok) throw await httpFailure(r, this.location, AUTH_HINT);
    return new Uint8Array(await r.arrayBuffer());
  }

  private async send(method: "PUT" | "DELETE", url: string, body?: Uint8Array, extra?: Record<string, string>): Promise<void> {
    const r = await this.request(method, url, body, extra);
    if (method === "DELETE" && r.status === 404) return;
    if (!r.ok) throw await httpFailure(r, this.location, AUTH_HINT);
    await r.arrayBuffer().catch(() => {});
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    const found = await this.fetchBytes(this.url(key));
    if (found === undefined || this.cfg.layout !== "bazel") return found;
    const digest = outputDigest(found);
    if (!digest) return undefined;
    const blob = await this.fetchBytes(this.cas(digest.hash));
    // Content-addressed: bytes that do not hash to their name are not the entry.
    return blob && blob.length === digest.size && sha256(blob) === digest.hash ? blob : undefined;
  }

  async put(key: string, blob: Uint8Array): Promise<void> {
    if (this.cfg.layout !== "bazel") {
      await this.send("PUT", this.url(key), blob);
      return;
    }
    const hash = sha256(blob);
    const head = await this.request("HEAD", this.cas(hash));
    if (head.status === 401 || head.status === 403) throw await httpFailure(head, this.location, AUTH_HINT);
    if (!head.ok) await this.send("PUT", this.cas(hash), blob);
    await this.send("PUT", this.url(key), actionResult(hash, blob.length), { "content-type": "application/octet-stream" });
  }

  async remove(key: string): Promise<void> {
    await this.send("DELETE", this.url(key));
  }
}

function sha256(data: string | Uint8Array): string {
  return new Bun.CryptoHasher("sha256").update(data).digest("hex");
}

// ---------------------------------------------------------------------------------------------
// The few protobuf bytes of REAPI's ActionResult that Kiln needs:
//   ActionResult { repeated OutputFile output_files = 2; }
//   OutputFile { string path = 1; Digest digest = 2; }
//   Digest { string hash = 1; int64 size_bytes = 2; }

function varint(n: number): number[] {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
  return out;
}

function lengthDelimited(field: number, bytes: Uint8Array | number[]): number[] {
  return [...varint((field << 3) | 2), ...varint(bytes.length), ...bytes];
}

function actionResult(hash: string, size: number): Uint8Array {
  const utf8 = new TextEncoder();
  const digest = [...lengthDelimited(1, utf8.encode(hash)), ...varint((2 << 3) | 0), ...varint(size)];
  const outputFile = [...lengthDelimited(1, utf8.encode(BAZEL_OUTPUT)), ...lengthDelimited(2, digest)];
  return new Uint8Array(lengthDelimited(2, outputFile));
}

/** Each field of a message: number, wire type, and its bytes (length-delimited) or value. */
function* fields(bytes: Uint8Array): Generator<{ field: number; type: number; value: number; bytes: Uint8Array }> {
  let at = 0;
  const readVarint = (): number => {
    let n = 0;
    let scale = 1;
    for (;;) {
      if (at >= bytes.length) throw new Error("truncated");
      const b = bytes[at++]!;
      n += (b & 0x7f) * scale;
      if (b < 0x80) return n;
      scale *= 0x80;
    }
  };
  while (at < bytes.length) {
    const tag = readVarint();
    const type = tag & 7;
    const field = tag >>> 3;
    if (type === 0) yield { field, type, value: readVarint(), bytes: new Uint8Array() };
    else if (type === 2) {
      const length = readVarint();
      if (at + length > bytes.length) throw new Error("truncated");
      yield { field, type, value: length, bytes: bytes.subarray(at, at + length) };
      at += length;
    } else if (type === 1) at += 8;
    else if (type === 5) at += 4;
    else throw new Error(`wire type ${type}`);
  }
}

/** The digest of the ActionResult's first output file, or undefined if it has none. */
function outputDigest(message: Uint8Array): { hash: string; size: number } | undefined {
  try {
    for (const f of fields(message)) {
      if (f.field !== 2 || f.type !== 2) continue;
      for (const o of fields(f.bytes)) {
        if (o.field !== 2 || o.type !== 2) continue;
        let hash = "";
        let size = 0;
        for (const d of fields(o.bytes)) {
          if (d.field === 1 && d.type === 2) hash = new TextDecoder().decode(d.bytes);
          if (d.field === 2 && d.type === 0) size = d.value;
        }
        return /^[0-9a-f]{64}$/.test(hash) ? { hash, size } : undefined;
      }
    }
  } catch {}
  return undefined;
}
