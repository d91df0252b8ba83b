// Coloured diagnostics. The daemon runs compilers on pipes, where they print no colours, so a
// compile through Kiln asks for colours itself (like ccache); the colours are kept for a
// caller whose stderr is a terminal and taken out for any other, which leaves exactly what the
// compiler prints on a pipe (checked for gcc and clang).

/** SGR (colours) and EL (erase line) sequences: all gcc and clang put in diagnostics. */
const COLOR_SEQUENCE = /\x1b\[[0-9;]*[mK]/g;

export const FORCE_COLOR = "-fdiagnostics-color=always";

/** The call sets colours itself (gcc's and clang's spellings), so Kiln leaves them alone. */
export function choosesColor(args: readonly string[]): boolean {
  return args.some((a) => /^-f(no-)?(diagnostics-color|color-diagnostics)(=|$)/.test(a));
}

/** Whether the compiler would colour diagnostics for this caller on its own. */
export function callerWantsColor(stderrTty: boolean | undefined, env: Record<string, string | undefined>): boolean {
  return stderrTty === true && env.TERM !== "dumb" && env.GCC_COLORS !== "";
}

export function stripColors(bytes: Uint8Array): Uint8Array {
  if (!bytes.includes(0x1b)) return bytes;
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1");
  return Buffer.from(text.replace(COLOR_SEQUENCE, ""), "latin1");
}
