// The toolchain archive format: round trips, determinism, and the reader as a security
// boundary (hostile archives are rejected with the entry and the reason, and nothing lands
// outside the target directory).

import { describe, expect, test } from "bun:test";
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { packTarZst, readTar, unpackTarZst, writeTar, type TarEntry } from "../src/dist/tar.ts";
import { packageToolchain } from "../src/dist/toolchain.ts";
import { ok, scratch } from "./support.ts";

const enc = new TextEncoder();

/** A ustar header with any name, type and link (the writer refuses hostile ones). */
function rawHeader(name: string, type: string, size = 0, link = ""): Uint8Array {
  const h = new Uint8Array(512);
  const put = (at: number, text: string): void => h.set(enc.encode(text), at);
  put(0, name);
  put(100, "0000644\0");
  put(108, "0000000\0");
  put(116, "0000000\0");
  put(124, size.toString(8).padStart(11, "0") + "\0");
  put(136, "00000000000\0");
  put(156, type);
  put(157, link);
  put(257, "ustar\0");
  put(263, "00");
  h.fill(0x20, 148, 156);
  const sum = h.reduce((a, b) => a + b, 0);
  put(148, sum.toString(8).padStart(6, "0") + "\0 ");
  return h;
}

function rawArchive(...entries: [name: string, type: string, data?: string, link?: string][]): Uint8Array {
  const blocks: Uint8Array[] = [];
  for (const [name, type, data = "", link = ""] of entries) {
    blocks.push(rawHeader(name, type, data.length, link));
    if (data.length > 0) {
      const body = new Uint8Array(Math.ceil(data.length / 512) * 512);
      body.set(enc.encode(data));
      blocks.push(body);
    }
  }
  blocks.push(new Uint8Array(1024));
  return Bun.zstdCompressSync(Buffer.concat(blocks));
}

/** Unpacks into a fresh directory inside a fresh parent; returns the error message. */
async function rejects(archive: Uint8Array): Promise<{ message: string; parent: string }> {
  const parent = scratch("kdt-");
  const dir = join(parent, "root");
  mkdirSync(dir);
  try {
    await unpackTarZst(archive, dir);
  } catch (e) {
    return { message: e instanceof Error ? e.message : String(e), parent };
  }
  throw new Error("the archive was accepted");
}

describe("tar round trip", () => {
  test("files, directories and symlinks come back as written, with long paths", async () => {
    const long = `${"d".repeat(70)}/${"e".repeat(70)}/file-with-a-long-name.txt`;
    const entries: TarEntry[] = [
      { type: "dir", path: "usr" },
      { type: "file", path: "usr/tool", data: enc.encode("#!/bin/sh\n"), mode: 0o755 },
      { type: "file", path: long, data: enc.encode("x".repeat(1000)), mode: 0o644 },
      { type: "symlink", path: "bin", target: "usr" },
    ];
    const back = readTar(writeTar(entries));
    expect(back.map((e) => [e.type, e.path])).toEqual(entries.map((e) => [e.type, e.path]));
    const dir = scratch("kdt-");
    await unpackTarZst(packTarZst(entries), dir);
    expect(readFileSync(join(dir, long), "utf8")).toBe("x".repeat(1000));
    expect(lstatSync(join(dir, "usr/tool")).mode & 0o777).toBe(0o755);
    expect(readlinkSync(join(dir, "bin"))).toBe("usr");
  });

  test("GNU tar reads what the writer writes", () => {
    const dir = scratch("kdt-");
    const file = join(dir, "a.tar");
    Bun.write(file, writeTar([{ type: "dir", path: "a" }, { type: "file", path: "a/b", data: enc.encode("hello"), mode: 0o644 }, { type: "symlink", path: "c", target: "a/b" }]));
    expect(ok(["tar", "-tvf", file]).stdout).toMatch(/a\/b\n.*c -> a\/b/s);
  });

  test("the same compiler packages to the same id; the package has cc1 and the loader", async () => {
    const [a, b] = [await packageToolchain("gcc"), await packageToolchain("/usr/bin/gcc")];
    expect(a.id).toBe(b.id);
    expect(a.id).toMatch(/^[0-9a-f]{64}$/);
    expect(a.files.some((f) => f.endsWith("/cc1"))).toBe(true);
    expect(a.files.some((f) => /ld-linux.*\.so/.test(f))).toBe(true);
    expect(a.files.some((f) => /libc\.so/.test(f))).toBe(true);
  });
});

describe("hostile archives are rejected with the entry and the reason", () => {
  const cases: [string, Uint8Array, RegExp][] = [
    ["absolute path", rawArchive(["/etc/evil", "0", "x"]), /"\/etc\/evil": absolute path/],
    ["'..' in a path", rawArchive(["a/../../evil", "0", "x"]), /"a\/..\/..\/evil": '\.\.' in the path/],
    ["symlink pointing out", rawArchive(["out", "2", "", "../../etc"]), /"out": symlink to "..\/..\/etc" points outside/],
    ["absolute symlink", rawArchive(["abs", "2", "", "/etc"]), /"abs": symlink to "\/etc" is absolute/],
    ["symlink out through another symlink", rawArchive(["here", "2", "", "."], ["sub", "5"], ["sub/up", "2", "", "../here/.."]), /"sub\/up": symlink .* points outside/],
    ["file through a symlink", rawArchive(["d", "5"], ["link", "2", "", "d"], ["link/evil", "0", "x"]), /"link\/evil": its parent "link" is a symlink/],
    ["hard link", rawArchive(["h", "1", "", "etc/passwd"]), /"h": hard links are not allowed/],
    ["device file", rawArchive(["dev", "3"]), /"dev": device files are not allowed/],
    ["unknown type", rawArchive(["x", "Z"]), /"x": unknown entry type "Z"/],
    ["duplicate entry", rawArchive(["x", "0", "a"], ["x", "0", "b"]), /"x": appears twice/],
  ];
  for (const [name, archive, reason] of cases) {
    test(name, async () => {
      const { message, parent } = await rejects(archive);
      expect(message).toMatch(reason);
      // Nothing was written, inside or beside the target.
      expect(readdirSync(parent)).toEqual(["root"]);
      expect(readdirSync(join(parent, "root"))).toEqual([]);
    });
  }

  test("a symlink created by an earlier entry is never written through", async () => {
    const parent = scratch("kdt-");
    mkdirSync(join(parent, "root"));
    mkdirSync(join(parent, "outside"));
    // Relative symlink that escapes, then a file through it: the first is already refused.
    const { message } = await rejects(rawArchive(["esc", "2", "", "../outside"], ["esc/pwned", "0", "x"]));
    expect(message).toMatch(/"esc"/);
    expect(existsSync(join(parent, "outside", "pwned"))).toBe(false);
  });

  test("sizes beyond the limits and garbage are refused", async () => {
    const big = packTarZst([{ type: "file", path: "big", data: new Uint8Array(1 << 20), mode: 0o644 }]);
    const dir = scratch("kdt-");
    await expect(unpackTarZst(big, dir, { unpackedBytes: 64 * 1024, entries: 10 })).rejects.toThrow(/more than 65536 bytes/);
    await expect(unpackTarZst(enc.encode("not zstd"), dir)).rejects.toThrow(/not valid zstd/);
    const many = packTarZst(Array.from({ length: 11 }, (_, i) => ({ type: "dir" as const, path: `d${i}` })));
    await expect(unpackTarZst(many, dir, { unpackedBytes: 1 << 20, entries: 10 })).rejects.toThrow(/more than 10 entries/);
    const truncated = Bun.zstdCompressSync(writeTar([{ type: "file", path: "f", data: new Uint8Array(2000), mode: 0o644 }]).subarray(0, 1024));
    await expect(unpackTarZst(truncated, dir)).rejects.toThrow(/"f": size 2000 runs past the end|truncated/);
  });
});
