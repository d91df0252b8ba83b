// What direct mode learns from a preprocessing run: the files it read (from the line markers
// in its output, with the file that included each one) and where it searched (from -v).

export interface IncludedFile {
  /** As the preprocessor printed it: relative to the cwd unless absolute. */
  path: string;
  /** The file whose #include brought it in; undefined for the command line (-include, predefs). */
  includer: string | undefined;
}

export interface SearchDirs {
  /** Searched for #include "..." only (-iquote), in order. */
  quote: string[];
  /** Searched for both kinds (-I, -isystem, system directories), in order. */
  bracket: string[];
  /** Named on the command line but absent: creating one would change the search. */
  missing: string[];
}

const PCH_PRAGMA = "#pragma GCC pch_preprocess ";

function isPseudo(path: string): boolean {
  return path.startsWith("<") && path.endsWith(">");
}

/** Undoes the C escaping gcc and clang apply to file names in line markers. */
function unescape(text: string): string {
  return text.includes("\\") ? text.replace(/\\(.)/g, "$1") : text;
}

/**
 * Every file a preprocessed text says it entered, in order of first entry, without the
 * source itself; plus the precompiled headers gcc used (`#pragma GCC pch_preprocess`).
 */
export function scanPreprocessed(text: Uint8Array, source: string): { includes: IncludedFile[]; pch: string[] } {
  const buf = Buffer.from(text.buffer, text.byteOffset, text.byteLength);
  const includes: IncludedFile[] = [];
  const seen = new Set<string>([source]);
  const pch: string[] = [];
  const stack: string[] = [];
  let at = 0;
  while (at < buf.length) {
    const lineEnd = buf.indexOf(10, at);
    const end = lineEnd < 0 ? buf.length : lineEnd;
    // A line marker: `# <line> "<file>" <flags>`.
    if (buf[at] === 0x23 && buf[at + 1] === 0x20 && buf[at + 2]! >= 0x30 && buf[at + 2]! <= 0x39) {
      const line = buf.toString("utf8", at, end);
      const open = line.indexOf('"');
      const close = line.lastIndexOf('"');
      if (open > 0 && close > open) {
        const path = unescape(line.slice(open + 1, close));
        const flags = line.slice(close + 1).trim().split(" ");
        if (flags.includes("1")) {
          const includer = stack.at(-1);
          stack.push(path);
          if (!isPseudo(path) && !seen.has(path)) {
            seen.add(path);
            includes.push({ path, includer: includer === undefined || isPseudo(includer) ? undefined : includer });
          }
        } else if (flags.includes("2")) {
          while (stack.length > 0 && stack.at(-1) !== path) stack.pop();
          if (stack.length === 0) stack.push(path);
        } else if (stack.length === 0) {
          stack.push(path);
        } else {
          stack[stack.length - 1] = path;
        }
      }
    } else if (buf[at] === 0x23 && buf.toString("latin1", at, at + PCH_PRAGMA.length) === PCH_PRAGMA) {
      pch.push(unescape(buf.toString("utf8", at + PCH_PRAGMA.length, end).trim().replace(/^"|"$/g, "")));
    }
    // Skip to the next line that can be a directive: markers only ever start a line.
    at = end + 1;
    if (at < buf.length && buf[at] !== 0x23) {
      const next = buf.indexOf("\n#", at);
      at = next < 0 ? buf.length : next + 1;
    }
  }
  return { includes, pch };
}

/** The precompiled headers gcc used (`#pragma GCC pch_preprocess "x.h.gch"`), fast. */
export function pchFiles(text: Uint8Array): string[] {
  const buf = Buffer.from(text.buffer, text.byteOffset, text.byteLength);
  const found: string[] = [];
  for (let at = buf.indexOf(PCH_PRAGMA); at >= 0; at = buf.indexOf(PCH_PRAGMA, at + 1)) {
    const end = buf.indexOf(10, at);
    found.push(unescape(buf.toString("utf8", at + PCH_PRAGMA.length, end < 0 ? undefined : end).trim().replace(/^"|"$/g, "")));
  }
  return found;
}

/** The search list a `-v` preprocessing run prints to stderr; undefined if absent. */
export function parseSearchDirs(stderr: string): SearchDirs | undefined {
  const quoteStart = stderr.indexOf('#include "..." search starts here:');
  const bracketStart = stderr.indexOf("#include <...> search starts here:");
  const endMark = stderr.indexOf("End of search list.");
  if (quoteStart < 0 || bracketStart < quoteStart || endMark < bracketStart) return undefined;
  const dirsIn = (from: number, to: number) =>
    stderr
      .slice(from, to)
      .split("\n")
      .slice(1)
      .filter((l) => l.startsWith(" "))
      .map((l) => l.trim().replace(/ \(framework directory\)$/, ""));
  const missing = [...stderr.matchAll(/^ignoring nonexistent directory "(.*)"$/gm)].map((m) => m[1]!);
  return { quote: dirsIn(quoteStart, bracketStart), bracket: dirsIn(bracketStart, endMark), missing };
}

function dirname(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash < 0 ? "" : slash === 0 ? "/" : path.slice(0, slash);
}

/** `path` relative to search directory `dir` ("" is the cwd), or undefined if not inside it. */
function within(dir: string, path: string): string | undefined {
  if (dir === "") return path.startsWith("/") ? undefined : path;
  if (dir === "/") return path.startsWith("/") ? path.slice(1) : undefined;
  return path.startsWith(`${dir}/`) ? path.slice(dir.length + 1) : undefined;
}

/**
 * Where a file would have been found before each included one, had it existed: the
 * directories searched earlier for the same name. We do not know whether an #include used
 * quotes or brackets, or which of several directories holding the file it came through,
 * so every reading is taken; readings that name an existing file are false ones (the
 * preprocessor would have taken that file) and `exists` drops them. What is left must stay
 * absent for a recorded result to hold. Returns dir -> names (names may contain '/').
 */
export function shadowCandidates(
  includes: IncludedFile[],
  dirs: SearchDirs,
  exists: (dir: string, name: string) => boolean,
): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  const add = (dir: string, name: string, found: string) => {
    const joined = dir === "" ? name : dir === "/" ? `/${name}` : `${dir}/${name}`;
    if (joined === found) return;
    let names = out.get(dir);
    if (names?.has(name)) return;
    if (exists(dir, name)) return;
    if (!names) out.set(dir, (names = new Set()));
    names.add(name);
  };
  for (const inc of includes) {
    const order = [inc.includer === undefined ? "" : dirname(inc.includer), ...dirs.quote, ...dirs.bracket];
    for (let k = 0; k < order.length; k++) {
      const name = within(order[k]!, inc.path);
      if (name === undefined || name === "") continue;
      for (let j = 0; j < k; j++) add(order[j]!, name, inc.path);
      for (const m of dirs.missing) add(m, name, inc.path);
    }
  }
  return out;
}
