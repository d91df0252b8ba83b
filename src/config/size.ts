// Byte sizes as users write them for ccache and sccache: "500M", "10G", "1.5G", "10GiB".
// Units are 1024-based whatever the spelling ("10GB" == "10GiB"), as in both of those tools,
// so a size copied from an old config means the same number of bytes here.

import { KilnError } from "../util/errors.ts";

const UNIT_POWERS: Record<string, number> = { "": 0, K: 1, M: 2, G: 3, T: 4, P: 5 };

// number, then an optional unit letter, then an optional "B"/"iB"; spaces allowed between.
const SIZE_PATTERN = /^(\d+(?:\.\d+)?|\.\d+)\s*(?:([KMGTP])(?:i?B)?|B)?$/i;

const SIZE_HINT = 'write a byte count or a number with a unit K, M, G or T (1024-based), e.g. "500M" or "10G"';

/**
 * Parses a size into bytes. `where` names the setting for the error message
 * (e.g. `/home/me/.config/kiln/config: [cache.disk] size` or `environment variable KILN_CACHE_SIZE`).
 * Throws KilnError KILN_CONFIG_VALUE on garbage, zero, negative or fractional byte counts.
 */
export function parseSize(text: string | number, where: string): number {
  let bytes: number;
  if (typeof text === "number") {
    if (!Number.isInteger(text)) {
      throw sizeError(`${where}: ${text} is not a whole number of bytes`);
    }
    bytes = text;
  } else {
    const match = SIZE_PATTERN.exec(text.trim());
    if (!match) {
      const shown = text.length > 40 ? `${text.slice(0, 40)}...` : text;
      throw sizeError(`${where}: ${JSON.stringify(shown)} is not a size`);
    }
    const power = UNIT_POWERS[(match[2] ?? "").toUpperCase()] ?? 0;
    const amount = Number(match[1]);
    if (power === 0 && !Number.isInteger(amount)) {
      throw sizeError(`${where}: ${JSON.stringify(text)} is not a whole number of bytes`);
    }
    bytes = Math.floor(amount * 1024 ** power);
  }
  if (bytes <= 0) {
    throw sizeError(`${where}: the size must be greater than zero (got ${JSON.stringify(text)})`);
  }
  if (!Number.isSafeInteger(bytes)) {
    throw sizeError(`${where}: ${JSON.stringify(text)} is too large`);
  }
  return bytes;
}

function sizeError(message: string): KilnError {
  return new KilnError("KILN_CONFIG_VALUE", message, { hint: SIZE_HINT });
}
