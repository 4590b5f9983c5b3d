// Two (or more) xmppd servers on loopback with different domains, federating through static
// routes: each one's s2s listener gets a port picked before any of them starts.
import net from 'node:net';
import type { ExecutionContext } from 'ava';
import { startServer, type TestServer, type TestServerOptions } from './server.js';
import { connect, type TestClient } from './clients.js';
import type Element from 'ltx/lib/Element.js';
import { chat, freshAccounts, getRoster, loginForTest, online } from './conversation.js';

const handedOut = new Set<number>();

/**
 * A free loopback port for a server started later: picked below the kernel's ephemeral range
 * (32768+), where `listen(0)` calls of concurrent tests cannot take it meanwhile, never the same
 * twice in one process, and checked to be free now.
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    const server = net.createServer();
    const free = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (!free) continue;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    return port;
  }
}

export interface FederatedOptions extends TestServerOptions {
  domain: string;
  s2sPort: number;
  /** domain → port on 127.0.0.1 */
  routes: Record<string, number | string | { host: string; port: number; tls: string }>;
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

/** A fresh account on `server`, logged in for this test, roster requested and available. */
export async function userOn(t: ExecutionContext, server: TestServer, name: string): Promise<TestClient> {
  const username = (await freshAccounts(server, name))[name];
  const client = await loginForTest(t, server, username, 'phone');
  await getRoster(client);
  await online(client);
  return client;
}

/** The bare JID of a client. */
export const bareOf = (client: TestClient): string => client.jid.split('/')[0]!;

/** `from` writes `body` (with `id`) to `to`'s bare JID; resolves with the message once `to` has it. */
export async function chatTo(from: TestClient, to: TestClient, body: string, id: string, timeoutMs?: number): Promise<Element> {
  await from.send(chat(bareOf(to), body, { id }));
  return to.next((s) => s.is('message') && s.attrs.id === id, timeoutMs);
}

/**
 * Logs an existing account in on any server (ours or a third party's) for this test: roster
 * requested, available.
 */
export async function loginOn(t: ExecutionContext, server: { domain: string; port: number }, username: string, password: string, resource: string): Promise<TestClient> {
  const client = await connect(server as TestServer, username, { password, resource });
  t.teardown(() => client.stop());
  await getRoster(client);
  await online(client);
  return client;
}
