// HTTP failures classified the way a cache needs them: 404 is a miss, 401/403 is an auth
// error worth one clear line, anything else is an error with the status and the address.

import { RemoteAuthError } from "./types.ts";

export async function httpFailure(response: Response, location: string, hint: string): Promise<Error> {
  let detail = "";
  try {
    detail = (await response.text()).slice(0, 300);
  } catch {}
  const code = /<Code>([^<]+)<\/Code>/.exec(detail)?.[1];
  const what = `HTTP ${response.status}${code ? ` ${code}` : response.statusText ? ` ${response.statusText}` : ""}`;
  if (response.status === 401 || response.status === 403) {
    return new RemoteAuthError(`${location} refused the credentials (${what})`, hint);
  }
  return new Error(`${location}: ${what}`);
}
