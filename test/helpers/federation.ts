// Two (or more) xmppd servers on loopback with different domains, federating through static
// routes: each one's s2s listener gets a port picked before any of them starts.
import net from 'node:net';
import { startServer, type TestServer, type TestServerOptions } from './server.js';

/** A free loopback port (the kernel's pick, released at once). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface FederatedOptions extends TestServerOptions {
  domain: string;
  s2sPort: number;
  /** domain → port on 127.0.0.1 */
  routes: Record<string, number | string>;
  s2s?: Record<string, unknown>;
}

export async function startFederated(options: FederatedOptions): Promise<TestServer> {
  const { domain, s2sPort, routes, s2s, ...rest } = options;
  return startServer({
    ...rest,
    config: {
      hosts: [{ domain, registration: 'open' }],
      ...(rest.config ?? {}),
      s2s: {
        enabled: true,
        listen: [{ host: '127.0.0.1', port: s2sPort }],
        routes: Object.fromEntries(Object.entries(routes).map(([d, p]) => [d, typeof p === 'number' ? `127.0.0.1:${p}` : p])),
        ...(s2s ?? {}),
      },
    },
  });
}

/** Polls `condition` every 50 ms until it holds (or fails the wait after `timeoutMs`). */
export async function eventually(condition: () => boolean, timeoutMs = 10000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
