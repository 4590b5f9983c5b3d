// Storage failures the server must notice (issue 16.4): a corrupted or read-only database stops
// the start with a line naming the file, and a write failing while it runs turns readiness to
// 503 and tells the senders of what could not be stored, instead of acknowledging it.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { onPostgres, startServer, type TestServer } from '../helpers/server.js';
import { httpRequest } from '../helpers/http.js';
import { freshAccounts, loginForTest, NS_STANZAS, online } from '../helpers/conversation.js';
import { xml } from '../helpers/clients.js';
import { NS_FAST, issuedToken, sasl2Scram, secured, tlsExporter, userAgent } from '../helpers/sasl2.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // the test server's certificate is self-signed

// These tests break the SQLite file (its pages, its mode, PRAGMA query_only); on the PostgreSQL
// pass there is no such file, so they are skipped there, explicitly.
const sqliteTest = onPostgres ? test.skip : test;

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const main = path.join(root, 'dist', 'src', 'main.js');

/** A data directory with a database that has an account in it, the server stopped. */
async function usedDataDir(): Promise<string> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-storage-'));
  const server = await startServer({ dataDir });
  await server.createAccount('alice');
  await server.stop();
  return dataDir;
}

sqliteTest('a database with corrupted pages stops the start with a line naming the file', async (t) => {
  const dataDir = await usedDataDir();
  t.teardown(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  const file = path.join(dataDir, 'xmppd.sqlite');
  // scribble over the accounts table's page (the rest of the file is fine: it opens, and the
  // migrations read their own table; before the check, every login failed)
  const sqlite3 = (await import('sqlite3')).default;
  const rootpage = await new Promise<number>((resolve, reject) => {
    const db = new sqlite3.Database(file);
    db.get("SELECT rootpage FROM sqlite_master WHERE name = 'accounts'", (err: Error | null, row: { rootpage: number }) => {
      db.close();
      if (err) reject(err);
      else resolve(row.rootpage);
    });
  });
  const fd = fs.openSync(file, 'r+');
  fs.writeSync(fd, Buffer.alloc(4096, 0x5a), 0, 4096, (rootpage - 1) * 4096);
  fs.closeSync(fd);

  const error = await t.throwsAsync(startServer({ dataDir }));
  t.true(error!.message.includes(file), `names the file: ${error!.message}`);
  t.regex(error!.message, /is corrupted \(PRAGMA quick_check: /);
});

sqliteTest('a read-only database file stops `xmppd start` with a line naming the file', async (t) => {
  const dataDir = await usedDataDir();
  t.teardown(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  const file = path.join(dataDir, 'xmppd.sqlite');
  fs.chmodSync(dataDir, 0o755);
  fs.chmodSync(file, 0o444);
  const config = path.join(dataDir, 'xmppd.yml');
  fs.writeFileSync(config, `data_dir: ${JSON.stringify(dataDir)}\nhosts: [{ domain: localhost }]\nc2s: { listen: [{ host: 127.0.0.1, port: 0 }] }\nhttp: { listen: [{ host: 127.0.0.1, port: 0 }] }\n`);
  // root writes to a read-only file anyway: run the server as nobody, as a service would not be root
  const asUser = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
  const { code, output } = await new Promise<{ code: number | null; output: string }>((resolve, reject) => {
    const child = spawn(process.execPath, [main, '--config', config, 'start'], { cwd: dataDir, stdio: ['ignore', 'pipe', 'pipe'], ...asUser });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.on('error', reject);
    child.on('close', (exitCode) => resolve({ code: exitCode, output }));
  });
  t.is(code, 1, output);
  t.true(output.includes(`database ${file} is not writable`), output);
});

sqliteTest('a write failing while the server runs: readiness 503 naming the file, senders told, nothing acknowledged as archived', async (t) => {
  const logFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-storage-log-')), 'xmppd.log');
  const server: TestServer = await startServer({ logFile });
  t.teardown(() => server.stop());
  const file = path.join(server.dataDir, 'xmppd.sqlite');
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'phone');
  const b = await loginForTest(t, server, bob, 'laptop');
  await online(a);
  await online(b);
  t.is((await httpRequest(server, 'GET', '/health/ready')).status, 200);

  // the database refuses writes from now on, as a file turned read-only or a full disk would
  await server.server.db.raw('PRAGMA query_only = ON');
  await a.send(xml('message', { to: `${bob}@localhost`, type: 'chat', id: 'm1' }, xml('body', {}, 'first')));
  const error = await a.next((s) => s.is('message') && s.attrs.id === 'm1' && s.attrs.type === 'error');
  t.truthy(error.getChild('error')!.getChild('internal-server-error', NS_STANZAS), 'the sender learns the message was not stored');

  const ready = await httpRequest(server, 'GET', '/health/ready');
  t.is(ready.status, 503);
  t.true(JSON.parse(ready.body).problem.includes(file), ready.body);
  t.regex(fs.readFileSync(logFile, 'utf8'), new RegExp(`storage failed: ${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: (.* - )?SQLITE_READONLY`));

  // while storage is failed, a message that would be archived is refused before it goes anywhere
  await a.send(xml('message', { to: `${bob}@localhost`, type: 'chat', id: 'm2' }, xml('body', {}, 'second')));
  const refused = await a.next((s) => s.is('message') && s.attrs.id === 'm2' && s.attrs.type === 'error');
  const condition = refused.getChild('error')!;
  t.is(condition.attrs.type, 'wait');
  t.truthy(condition.getChild('resource-constraint', NS_STANZAS));

  // storage works again: ready, and messages flow and are archived
  await server.server.db.raw('PRAGMA query_only = OFF');
  t.is((await httpRequest(server, 'GET', '/health/ready')).status, 200);
  await a.send(xml('message', { to: `${bob}@localhost`, type: 'chat', id: 'm3' }, xml('body', {}, 'third')));
  const received = await b.next((s) => s.is('message') && s.getChildText('body') !== null);
  t.is(received.getChildText('body'), 'first', 'the first was delivered before its write failed');
  const third = await b.next((s) => s.is('message') && s.getChildText('body') === 'third');
  t.truthy(third);
});

sqliteTest('with writes refused (a full disk), a SASL2 login asking for a FAST token still logs in, without a token', async (t) => {
  const logFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-storage-log-')), 'xmppd.log');
  const server: TestServer = await startServer({ logFile });
  t.teardown(() => server.stop());
  const { alice } = await freshAccounts(server, 'alice');
  // the database refuses writes from now on, as a full disk would
  await server.server.db.raw('PRAGMA query_only = ON');
  const { wire, socket } = await secured(server);
  t.teardown(() => wire.close());
  const result = await sasl2Scram(wire, 'sha256', alice, {
    binding: { type: 'tls-exporter', data: tlsExporter(socket) },
    inline: userAgent('a-phone') + `<request-token xmlns='${NS_FAST}' mechanism='HT-SHA-256-NONE'/>`,
  });
  t.is(result.outcome, 'success', result.outcome === 'success' ? '' : `refused: ${result.condition}`);
  if (result.outcome !== 'success') return;
  t.is(issuedToken(result.success), undefined, 'no token the server could not keep');
  t.regex(fs.readFileSync(logFile, 'utf8'), /FAST token could not be stored/);
});
