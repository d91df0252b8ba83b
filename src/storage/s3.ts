// S3 and compatibles (MinIO, Ceph RGW, R2, ...) through Bun's built-in S3 client, one object
// per entry at <key_prefix><key>. Credentials as the AWS tools find them: AWS_ACCESS_KEY_ID /
// AWS_SECRET_ACCESS_KEY (/ AWS_SESSION_TOKEN), else the profile (`profile`, AWS_PROFILE or
// "default") in AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials. `no_credentials` sends
// unsigned requests (a public bucket).

import { S3Client } from "bun";
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import type { S3Level } from "../config/config.ts";
import { KilnError } from "../util/errors.ts";
import { httpFailure } from "./http.ts";
import type { Env } from "./levels.ts";
import { RemoteAuthError, type CacheStorage } from "./types.ts";

const AUTH_HINT = "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the AWS profile), and that they may read and write the bucket";
const AUTH_CODES = new Set(["AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidToken", "ExpiredToken", "InvalidSecurity"]);

interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** Reads `[profile]` of an AWS INI file. */
function profileCredentials(file: string, profile: string): Credentials | undefined {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
  const values: Record<string, string> = {};
  let inProfile = false;
  for (const raw of text.split("\n")) {
    const line = raw.replace(/[#;].*$/, "").trim();
    const section = /^\[\s*(?:profile\s+)?([^\]]+?)\s*\]$/.exec(line);
    if (section) inProfile = section[1] === profile;
    else if (inProfile) {
      const kv = /^([A-Za-z_]+)\s*=\s*(.*)$/.exec(line);
      if (kv) values[kv[1]!.toLowerCase()] = kv[2]!;
    }
  }
  if (!values.aws_access_key_id || !values.aws_secret_access_key) return undefined;
  return {
    accessKeyId: values.aws_access_key_id,
    secretAccessKey: values.aws_secret_access_key,
    ...(values.aws_session_token ? { sessionToken: values.aws_session_token } : {}),
  };
}

function findCredentials(cfg: S3Level, env: Env): Credentials | undefined {
  if (env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY) {
    return {
      accessKeyId: env.AWS_ACCESS_KEY_ID,
      secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
      ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}),
    };
  }
  const home = env.HOME || homedir();
  const profile = cfg.profile ?? env.AWS_PROFILE ?? "default";
  return (
    profileCredentials(env.AWS_SHARED_CREDENTIALS_FILE || join(home, ".aws", "credentials"), profile) ??
    profileCredentials(env.AWS_CONFIG_FILE || join(home, ".aws", "config"), profile)
  );
}

export class S3Storage implements CacheStorage {
  private readonly client: S3Client | undefined;
  private readonly endpoint: string;

  constructor(
    private readonly cfg: S3Level,
    readonly location: string,
    env: Env,
  ) {
    const region = cfg.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? "us-east-1";
    const given = cfg.endpoint ?? `s3.${region}.amazonaws.com`;
    this.endpoint = /^https?:\/\//.test(given) ? given.replace(/\/+$/, "") : `${cfg.useSsl ? "https" : "http"}://${given}`;
    if (cfg.noCredentials) return;
    const credentials = findCredentials(cfg, env);
    if (!credentials) {
      throw new KilnError("KILN_REMOTE_AUTH", `${location}: no AWS credentials found`, {
        hint: "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or a profile in ~/.aws/credentials), or no_credentials = true for a public bucket",
      });
    }
    this.client = new S3Client({
      ...credentials,
      endpoint: this.endpoint,
      region,
      bucket: cfg.bucket,
      virtualHostedStyle: cfg.virtualHostStyle,
    });
  }

  private objectKey(key: string): string {
    return this.cfg.keyPrefix + key;
  }

  /** Maps S3 errors: NoSuchKey is a miss (undefined), refusals are auth errors. */
  private failure(e: unknown): Error {
    const code = (e as { code?: string }).code ?? "";
    if (AUTH_CODES.has(code)) return new RemoteAuthError(`${this.location} refused the credentials (${code})`, AUTH_HINT);
    return new Error(`${this.location}: ${code || (e as Error).message}`);
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    if (!this.client) return this.anonymous("GET", key);
    try {
      return await this.client.file(this.objectKey(key)).bytes();
    } catch (e) {
      if ((e as { code?: string }).code === "NoSuchKey") return undefined;
      throw this.failure(e);
    }
  }

  async put(key: string, blob: Uint8Array): Promise<void> {
    if (!this.client) {
      await this.anonymous("PUT", key, blob);
      return;
    }
    try {
      await this.client.write(this.objectKey(key), blob);
    } catch (e) {
      throw this.failure(e);
    }
  }

  async remove(key: string): Promise<void> {
    if (!this.client) return;
    try {
      await this.client.delete(this.objectKey(key));
    } catch (e) {
      throw this.failure(e);
    }
  }

  /** Unsigned requests (no_credentials), path-style. */
  private async anonymous(method: "GET" | "PUT", key: string, body?: Uint8Array): Promise<Uint8Array | undefined> {
    const path = this.objectKey(key).split("/").map(encodeURIComponent).join("/");
    const r = await fetch(`${this.endpoint}/${this.cfg.bucket}/${path}`, { method, body, redirect: "error" });
    if (method === "GET" && r.status === 404) return undefined;
    if (!r.ok) throw await httpFailure(r, this.location, "the bucket does not allow anonymous access; set credentials instead of no_credentials");
    return method === "GET" ? new Uint8Array(await r.arrayBuffer()) : undefined;
  }
}
