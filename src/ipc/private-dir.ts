// The per-user runtime directory holds the daemon's socket: nobody else may enter it.

import { lstatSync, mkdirSync } from "node:fs";
import { KilnError } from "../util/errors.ts";

/** Creates the runtime directory if needed and refuses one that other users could enter. */
export function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  const uid = process.getuid?.() ?? 0;
  if (!st.isDirectory()) {
    throw new KilnError("KILN_RUNTIME_DIR", `${dir} is not a directory`, {
      hint: "remove it, or point KILN_RUNTIME_DIR at a private directory",
    });
  }
  if (st.uid !== uid || (st.mode & 0o077) !== 0) {
    throw new KilnError(
      "KILN_RUNTIME_DIR",
      `the runtime directory ${dir} is not private to this user (owner ${st.uid}, mode ${(st.mode & 0o777).toString(8)})`,
      { hint: `run 'chmod 700 ${dir}' if it is yours, or set KILN_RUNTIME_DIR to a directory only you can enter` },
    );
  }
}
