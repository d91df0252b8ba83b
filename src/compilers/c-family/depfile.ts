// Reading the prerequisites out of a make dependency file as gcc and clang write it.

/**
 * The prerequisites of the first rule, unescaped: `\ ` is a space, `$$` a dollar, `\#` a
 * hash, and backslash-newline continues the line. Later rules (-MP's phony targets) are
 * not read.
 */
export function parseDepFile(text: string): string[] {
  const joined = text.replace(/\\\r?\n/g, " ");
  const firstLine = joined.split(/\r?\n/, 1)[0] ?? "";
  // The targets end at the first colon followed by whitespace or the end of the line.
  const colon = firstLine.search(/:(\s|$)/);
  if (colon < 0) return [];
  const deps: string[] = [];
  let current = "";
  const rest = firstLine.slice(colon + 1);
  for (let i = 0; i < rest.length; i++) {
    const c = rest[i]!;
    if (c === "\\" && (rest[i + 1] === " " || rest[i + 1] === "#")) {
      current += rest[++i];
    } else if (c === "$" && rest[i + 1] === "$") {
      current += "$";
      i++;
    } else if (c === " " || c === "\t") {
      if (current) deps.push(current);
      current = "";
    } else {
      current += c;
    }
  }
  if (current) deps.push(current);
  return deps;
}
