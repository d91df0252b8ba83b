// KILN_BASEDIRS: absolute paths inside the checkout a compile runs in are written as
// `BASE_MARK/rest` in keys and manifests, so two checkouts of one project in different
// directories share entries. The compile command itself is never changed.

/** Stands for the current checkout's directory in keys, manifests and stored .d files. */
export const BASE_MARK = "\u0000kiln-base\u0000";

const utf8 = new TextEncoder();

function under(base: string, path: string): boolean {
  return path === base || path.startsWith(`${base}/`);
}

/** Replaces every occurrence of `from` (bytes) with `to`; returns the input when none. */
export function replaceBytes(bytes: Uint8Array, from: Uint8Array, to: Uint8Array): Uint8Array {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = buf.indexOf(from);
  if (at < 0) return bytes;
  const parts: Uint8Array[] = [];
  let last = 0;
  while (at >= 0) {
    parts.push(buf.subarray(last, at), to);
    last = at + from.length;
    at = buf.indexOf(from, last);
  }
  parts.push(buf.subarray(last));
  return Buffer.concat(parts);
}

export class PathNormalizer {
  /** The configured base directory holding this compile (its cwd, else its source). */
  readonly base: string | undefined;

  constructor(basedirs: readonly string[], cwd: string, source: string) {
    const sourceAbs = source.startsWith("/") ? source : `${cwd}/${source}`;
    const longestHolding = (path: string) =>
      basedirs.filter((b) => under(b, path)).sort((a, b) => b.length - a.length)[0];
    const base = longestHolding(cwd) ?? longestHolding(sourceAbs);
    // Compilers escape these in line markers and make escapes them in .d files; a base that
    // needs escaping would be matched in some places and not others, so it is not used.
    this.base = base && !/[\s"\\$#:]/.test(base) ? base : undefined;
  }

  /** An absolute path inside the base, with the base replaced by BASE_MARK. */
  path(p: string): string {
    return this.base && under(this.base, p) ? BASE_MARK + p.slice(this.base.length) : p;
  }

  /** Every occurrence of the base inside an argument (`-I/base/x`, `-fdebug-prefix-map=/base=.`). */
  arg(arg: string): string {
    const base = this.base;
    if (!base || !arg.includes(base)) return arg;
    let out = "";
    let at = 0;
    for (let i = arg.indexOf(base); i >= 0; i = arg.indexOf(base, at)) {
      const after = arg[i + base.length];
      const boundary = after === undefined || "/=:,".includes(after);
      out += arg.slice(at, i) + (boundary ? BASE_MARK : base);
      at = i + base.length;
    }
    return out + arg.slice(at);
  }

  /** Undoes `path`; undefined when a marked path meets a compile outside every base. */
  expand(p: string): string | undefined {
    if (!p.startsWith(BASE_MARK)) return p;
    return this.base === undefined ? undefined : this.base + p.slice(BASE_MARK.length);
  }

  /**
   * Preprocessed text with the base replaced where a path starts inside a string (line
   * markers, __FILE__): `"/base/` and `"/base"`.
   */
  text(bytes: Uint8Array): Uint8Array {
    if (!this.base) return bytes;
    const out = replaceBytes(bytes, utf8.encode(`"${this.base}/`), utf8.encode(`"${BASE_MARK}/`));
    return replaceBytes(out, utf8.encode(`"${this.base}"`), utf8.encode(`"${BASE_MARK}"`));
  }

  /** A dependency file made portable: the base becomes BASE_MARK (see `restoreDepFile`). */
  depFile(bytes: Uint8Array): Uint8Array {
    if (!this.base) return bytes;
    return replaceBytes(bytes, utf8.encode(`${this.base}/`), utf8.encode(`${BASE_MARK}/`));
  }

  /** A stored dependency file for this checkout; undefined if it needs a base we lack. */
  restoreDepFile(bytes: Uint8Array): Uint8Array | undefined {
    const mark = utf8.encode(BASE_MARK);
    if (Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).indexOf(mark) < 0) return bytes;
    if (!this.base) return undefined;
    return replaceBytes(bytes, mark, utf8.encode(this.base));
  }
}
