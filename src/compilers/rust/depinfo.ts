// rustc's dep-info (`--emit=dep-info`): the source files a crate read, and the environment
// variables it read through env!/option_env! (`# env-dep:NAME=value`, or `# env-dep:NAME`
// when unset).

export interface DepInfo {
  /** Every file listed, as rustc wrote it (relative to the cwd, or absolute). */
  files: string[];
  /** The names of the environment variables the crate read. */
  envDeps: string[];
}

/** Splits a make rule's prerequisites on unescaped spaces (rustc writes a space as `\ `). */
function words(text: string): string[] {
  const out: string[] = [];
  let current = "";
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === "\\" && text[i + 1] === " ") {
      current += " ";
      i += 1;
    } else if (c === " " || c === "\t") {
      if (current) out.push(current);
      current = "";
    } else current += c;
  }
  if (current) out.push(current);
  return out;
}

export function parseDepInfo(text: string): DepInfo {
  const files: string[] = [];
  const envDeps: string[] = [];
  let sawRule = false;
  for (const line of text.replace(/\\\n/g, " ").split("\n")) {
    const env = /^# env-dep:([^=]*)/.exec(line);
    if (env) {
      envDeps.push(env[1]!);
      continue;
    }
    if (sawRule || line.startsWith("#") || line.trim() === "") continue;
    // The first rule (target: prerequisites) lists every source; the others repeat them.
    const colon = line.search(/: |:$/);
    if (colon < 0) continue;
    files.push(...words(line.slice(colon + 1)));
    sawRule = true;
  }
  return { files, envDeps };
}
