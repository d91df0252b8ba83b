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
 * source itself, each with the file that included it (undefined: the command line).
 *
 * This runs on megabytes of text per compile, so it looks at bytes. Only markers that enter
 * a file (flag 1) have their path decoded; flag 2 (return) pops. A marker without flags only
 * renumbers lines, or renames the current file: to a pseudo-file (gcc's `<command-line>`,
 * whose includes have no includer) and back, or by #line, which does not move where the
 * file's own #includes are searched and so is ignored.
 */
export function scanPreprocessed(text: Uint8Array, source: string): { includes: IncludedFile[] } {
  const buf = Buffer.from(text.buffer, text.byteOffset, text.byteLength);
  const includes: IncludedFile[] = [];
  const seen = new Set<string>([source]);
  const stack: (string | undefined)[] = [source];
  const nextLine = (from: number) => {
    const i = buf.indexOf("\n#", from);
    return i < 0 ? -1 : i + 1;
  };
  for (let at = buf[0] === 0x23 ? 0 : nextLine(0); at >= 0; at = nextLine(at)) {
    // A line marker: `# <line> "<file>" <flags>`; the flags follow the last quote.
    if (buf[at + 1] !== 0x20 || buf[at + 2]! < 0x30 || buf[at + 2]! > 0x39) continue;
    const lineEnd = buf.indexOf(10, at);
    const end = lineEnd < 0 ? buf.length : lineEnd;
    const open = buf.indexOf(0x22, at);
    const close = buf.lastIndexOf(0x22, end - 1);
    if (open < 0 || open >= end || close <= open) continue;
    const flag = buf[close + 1] === 0x20 ? buf[close + 2] : undefined;
    const decode = () => unescape(buf.toString("utf8", open + 1, close));
    if (flag === 0x31) {
      const path = decode();
      const includer = stack.at(-1);
      if (isPseudo(path)) {
        stack.push(undefined);
      } else {
        stack.push(path);
        if (!seen.has(path)) {
          seen.add(path);
          includes.push({ path, includer });
        }
      }
    } else if (flag === 0x32) {
      if (stack.length > 1) stack.pop();
    } else if (buf[open + 1] === 0x3c) {
      stack[stack.length - 1] = undefined; // renamed to <built-in>, <command-line>
    } else if (stack.at(-1) === undefined) {
      stack[stack.length - 1] = decode(); // back from a pseudo-file to a real one
    }
  }
  return { includes };
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

/** The directory part of a printed path: "" for a bare name (the cwd), "/" for the root. */
export function dirname(path: string): string {
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
