// Starts a real xmppd in-process on ephemeral loopback ports, for integration tests.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { configFromObject, validateCoreConfig } from '../../src/config/load.js';
import { createServer } from '../../src/app.js';
import { STANDARD_MODULES } from '../../src/config/schema.js';
import type { Server } from '../../src/app/server.js';
import { stopClientsOf } from './clients.js';
import { assertWireWellFormed } from './well-formed.js';
import { testStorageConfig } from './postgres.js';

export { onPostgres, testStorageConfig } from './postgres.js';

export interface TestServer {
  server: Server;
  domain: string;
  /** STARTTLS port */
  port: number;
  /** direct TLS port (XEP-0368) */
  directPort: number;
  /** plain HTTP port (0 when HTTP is disabled) */
  httpPort: number;
  /** HTTPS port (0 when HTTP is disabled) */
  httpsPort: number;
  dataDir: string;
  createAccount(username: string, password?: string): Promise<void>;
  stop(): Promise<void>;
}

export interface TestServerOptions {
  /** Reuse a data directory (and its SQLite file) to test restarts. */
  dataDir?: string;
  /** Extra/overriding top-level config (merged shallowly; `c2s` merged one level deeper). */
  config?: Record<string, unknown>;
  /** Log to this file instead of discarding logs (useful when debugging a test). */
  logFile?: string;
}

export const PASSWORD = 'correct horse battery';

/**
 * The file transfer proxy (proxy65) listens on 7777 by default: on a port the system chooses
 * instead, as every other listener of a test server, unless the test gives one.
 */
function withFreeProxyPort(raw: Record<string, unknown>): Record<string, unknown> {
  const modules = (raw.modules as Record<string, unknown> | undefined) ?? Object.fromEntries(STANDARD_MODULES.map((name) => [name, {}]));
  const proxy = modules.proxy65;
  if (proxy === undefined || proxy === false) return raw;
  const options = typeof proxy === 'object' && proxy !== null ? (proxy as Record<string, unknown>) : {};
  if (options.port !== undefined) return raw;
  return { ...raw, modules: { ...modules, proxy65: { ...options, port: 0 } } };
}

export async function startServer(options: TestServerOptions = {}): Promise<TestServer> {
  const dataDir = options.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-test-'));
  const storage = testStorageConfig(dataDir); // PostgreSQL on the suite's second pass
  options.logFile ??= process.env.XMPPD_TEST_LOG; // debugging: XMPPD_TEST_LOG=/tmp/x.log npx ava ...
  const extra = options.config ?? {};
  const raw = {
    data_dir: dataDir,
    log: { level: options.logFile ? 'debug' : 'silent' },
    hosts: [{ domain: 'localhost', registration: 'open' }],
    ...(storage ? { storage } : {}),
    ...extra,
    c2s: {
      listen: [
        { host: '127.0.0.1', port: 0, tls: 'starttls' },
        { host: '127.0.0.1', port: 0, tls: 'direct' },
      ],
      // a test's outcome must not depend on how busy the machine is: no shedding by event-loop lag
      overload: { event_loop_lag: 'never' },
      ...((extra.c2s as Record<string, unknown> | undefined) ?? {}),
    },
    http: {
      listen: [
        { host: '127.0.0.1', port: 0, tls: 'none' },
        { host: '127.0.0.1', port: 0, tls: 'direct' },
      ],
      ...((extra.http as Record<string, unknown> | undefined) ?? {}),
    },
  };
  const source = configFromObject(withFreeProxyPort(raw), 'test config');
  const config = validateCoreConfig(source);
  const log = options.logFile ? pino({ level: 'debug' }, pino.destination({ dest: options.logFile, sync: true })) : pino({ level: 'silent' });
  const server = createServer(config, source, log);
  await server.start();
  const addresses = server.c2sAddresses();
  const domain = config.hosts[0]!.domain;
  const testServer: TestServer = {
    server,
    domain,
    dataDir,
    port: addresses.find((a) => a.tls === 'starttls')!.port,
    directPort: addresses.find((a) => a.tls === 'direct')?.port ?? 0,
    httpPort: server.httpAddresses().find((a) => a.tls === 'none')?.port ?? 0,
    httpsPort: server.httpAddresses().find((a) => a.tls === 'direct')?.port ?? 0,
    createAccount: (username, password = PASSWORD) => server.accounts.create(domain, username, password),
    stop: async () => {
      await server.stop(); // clients still connected are told system-shutdown
      await stopClientsOf(testServer); // and are stopped, or they would keep reconnecting
      assertWireWellFormed(); // what they received until the end, shutdown included
    },
  };
  return testServer;
}
