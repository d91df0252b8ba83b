// A plain TCP or Unix socket endpoint, as written in config: `host:port`, `tcp://host:port`,
// `redis://...`, `unix:///path`; and a one-shot exchange for diagnosing a refused connection.

export type SocketAddress = { unix: string } | { hostname: string; port: number };

export function parseSocketAddress(endpoint: string, defaultPort: number): SocketAddress {
  const unix = /^(?:unix|redis\+unix|memcached\+unix):\/\/(\/.*)$/.exec(endpoint);
  if (unix) return { unix: unix[1]! };
  if (endpoint.startsWith("/")) return { unix: endpoint };
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(endpoint) ? endpoint : `tcp://${endpoint}`;
  const url = new URL(withScheme);
  const hostname = url.hostname.replace(/^\[(.*)\]$/, "$1");
  return { hostname, port: url.port ? Number(url.port) : defaultPort };
}

/** Sends `request` and resolves with the first line of the answer (undefined: no answer in time). */
export async function firstLine(address: SocketAddress, request: string, timeoutMs: number): Promise<string | undefined> {
  let done: (line: string | undefined) => void = () => {};
  const answer = new Promise<string | undefined>((resolve) => (done = resolve));
  let text = "";
  const handlers = {
    data(_s: unknown, chunk: Buffer) {
      text += chunk.toString("latin1");
      const end = text.indexOf("\r\n");
      if (end >= 0) done(text.slice(0, end));
    },
    close() {
      done(text || undefined);
    },
    error() {
      done(undefined);
    },
    connectError() {
      done(undefined);
    },
  };
  const timer = setTimeout(() => done(undefined), timeoutMs);
  let socket: { write(data: string): number; end(): void } | undefined;
  try {
    socket = await ("unix" in address
      ? Bun.connect({ unix: address.unix, socket: handlers })
      : Bun.connect({ hostname: address.hostname, port: address.port, socket: handlers }));
    socket.write(request);
    return await answer;
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
    socket?.end();
  }
}
