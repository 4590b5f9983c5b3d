// PostgreSQL for the test suite's second pass. scripts/run-tests.mjs starts one server for the
// run and passes its address in XMPPD_TEST_POSTGRES_URL; every test server (every data directory)
// gets a database of its own, so tests stay isolated and run in parallel. Without that variable
// the tests run on SQLite. A test may start a server again on the same data directory, so the
// databases are kept until the run's PostgreSQL is thrown away.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import path from 'node:path';

const ADMIN_URL = process.env.XMPPD_TEST_POSTGRES_URL;

/** Whether this pass runs on PostgreSQL. */
export const onPostgres = ADMIN_URL !== undefined && ADMIN_URL !== '';

function databaseName(dataDir: string): string {
  return `xmppd_${createHash('sha256').update(path.resolve(dataDir)).digest('hex').slice(0, 20)}`;
}

function clientArgs(): string[] {
  const url = new URL(ADMIN_URL!);
  return ['-h', url.hostname, '-p', url.port || '5432', '-U', decodeURIComponent(url.username || 'postgres')];
}

/** The client programs of the PostgreSQL the run started (else those on the PATH). */
function program(name: string): string {
  const bin = process.env.XMPPD_TEST_POSTGRES_BIN;
  return bin ? path.join(bin, name) : name;
}

const created = new Set<string>();

/**
 * The storage section for a data directory: undefined on the SQLite pass (the default, a file in
 * the data directory), else a PostgreSQL database of its own, created on first use (the same one
 * again for a server restarted on the same data directory).
 */
export function testStorageConfig(dataDir: string): { driver: 'postgres'; postgres_url: string } | undefined {
  if (!onPostgres) return undefined;
  const name = databaseName(dataDir);
  if (!created.has(name)) {
    try {
      execFileSync(program('createdb'), [...clientArgs(), name], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (err) {
      const stderr = String((err as { stderr?: Buffer }).stderr ?? '');
      if (!stderr.includes('already exists')) throw new Error(`createdb ${name} failed: ${stderr.trim() || (err as Error).message}`);
    }
    created.add(name);
  }
  const url = new URL(ADMIN_URL!);
  url.pathname = `/${name}`;
  return { driver: 'postgres', postgres_url: url.toString() };
}
