/** Per-call switches (KILN_RECACHE, KILN_NO_CACHE): set and not 0/false/no/off. */
export function truthy(value: string | undefined): boolean {
  return value !== undefined && value !== "" && !/^(0|false|no|off)$/i.test(value);
}
