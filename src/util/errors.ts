// Errors a user can meet: a stable code, a message naming the file or address, and a hint
// that says what to do. Programmer bugs stay plain `Error`.

export class KilnError extends Error {
  readonly code: string;
  readonly hint: string | undefined;

  constructor(code: string, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = "KilnError";
    this.code = code;
    this.hint = options.hint;
  }

  /** One or two lines for a terminal: `kiln: error: message` then the hint. */
  format(): string {
    return `kiln: error: ${this.message}` + (this.hint ? `\n  hint: ${this.hint}` : "");
  }
}

export function isKilnError(e: unknown): e is KilnError {
  return e instanceof KilnError;
}

/** The errno-style code of a Node/Bun system error, or undefined. */
export function errnoCode(e: unknown): string | undefined {
  return typeof e === "object" && e !== null && "code" in e && typeof e.code === "string"
    ? e.code
    : undefined;
}
