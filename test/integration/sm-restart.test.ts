// Messages queued for a session waiting to be resumed (XEP-0198 §5) survive the server's end
// (issue 16.5): a real `xmppd start` child process is stopped with SIGTERM, or killed with
// SIGKILL, while Bob's phone is away with ten acknowledged messages queued for it; after a
// restart Bob's next login gets all ten from offline storage, stamped (XEP-0203) with the time
// the server first had them — no archive (MAM) catch-up needed on the client.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test, { type ExecutionContext } from 'ava';
import type Element from 'ltx/lib/Element.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { SmClient } from '../helpers/sm-client.js';
import { loginForTest, online } from '../helpers/conversation.js';
import { testStorageConfig } from '../helpers/postgres.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // the test server's certificate is self-signed

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const main = path.join(root, 'dist', 'src', 'main.js');
const NS_DELAY = 'urn:xmpp:delay';

interface ChildServer {
  process: ChildProcess;
  /** Enough of a TestServer for the raw clients: its STARTTLS port and domain. */
  address: TestServer;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** `xmppd start` in a child process on `dataDir`, its client port read from its start-up log line. */
async function startChild(t: ExecutionContext, dataDir: string): Promise<ChildServer> {
  const config = path.join(dataDir, 'xmppd.yml');
  // the same database the setup server used: the PostgreSQL one on the suite's second pass
  const storage = testStorageConfig(dataDir);
  fs.writeFileSync(
    config,
    `data_dir: ${JSON.stringify(dataDir)}\nlog: { level: info }\nhosts: [{ domain: localhost, modules: { proxy65: { port: 0 } } }]\n` +
      `c2s: { listen: [{ host: 127.0.0.1, port: 0 }] }\nhttp: { enabled: false }\n` +
      (storage === undefined ? '' : `storage: ${JSON.stringify(storage)}\n`),
  );
  const child = spawn(process.execPath, [main, '--config', config, 'start'], { cwd: dataDir, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  let log = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (log += chunk));
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      log += chunk;
      for (const line of log.split('\n')) {
        if (!line.includes('"xmppd started"')) continue;
        resolve((JSON.parse(line) as { listeners: Array<{ port: number }> }).listeners[0]!.port);
      }
    });
    void exited.then(() => reject(new Error(`the server exited before it started:\n${log}`)));
  });
  return { process: child, address: { port, domain: 'localhost' } as TestServer, exited };
}

/**
 * Alice (at her desk, acks on) sends Bob ten messages while his phone, with resumption enabled,
 * is away; each is acknowledged to her, so the server has them. Returns when she sent them and
 * when the last ack came.
 */
async function tenMessagesForAwayPhone(t: ExecutionContext, server: TestServer): Promise<{ sentFrom: number; ackedAt: number }> {
  const phone = await SmClient.login(server, 'bob', 'phone');
  t.teardown(() => phone.cut());
  await phone.enable();
  await phone.online();
  const desk = await SmClient.login(server, 'alice', 'desk');
  t.teardown(() => desk.cut());
  await desk.enable(false);
  phone.cut(); // the phone loses its network: the session waits to be resumed
  await desk.settle();
  const sentFrom = Date.now();
  for (let i = 1; i <= 10; i++) desk.chat('bob@localhost', `message ${i}`);
  t.is(await desk.requestAck(), 10 + 1, 'the server acknowledged all ten (and the ping)');
  await desk.settle();
  return { sentFrom, ackedAt: Date.now() };
}

/** Bob logs in on his tablet after the restart: the ten messages, in order, and their delay stamps. */
async function bobsOfflineMessages(t: ExecutionContext, dataDir: string): Promise<Element[]> {
  const restarted = await startServer({ dataDir });
  t.teardown(() => restarted.stop());
  const tablet = await loginForTest(t, restarted, 'bob', 'tablet');
  await online(tablet);
  await tablet.next((s) => s.is('message') && s.getChildText('body') === 'message 10');
  const delivered = tablet.received.filter((s) => s.is('message') && s.getChildText('body') !== null);
  t.deepEqual(delivered.map((m) => m.getChildText('body')), Array.from({ length: 10 }, (_, i) => `message ${i + 1}`), 'all ten, in order, once each');
  return delivered;
}

function stampOf(message: Element): number {
  const delay = message.getChildren('delay', NS_DELAY).find((d) => d.attrs.from === 'localhost');
  return delay === undefined ? NaN : Date.parse(delay.attrs.stamp!);
}

async function accounts(): Promise<string> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-sm-restart-'));
  const setup = await startServer({ dataDir });
  await setup.createAccount('alice');
  await setup.createAccount('bob');
  await setup.stop();
  return dataDir;
}

test('after SIGTERM the messages queued for a phone away are in offline storage, stamped when the server had them', async (t) => {
  const dataDir = await accounts();
  t.teardown(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  const child = await startChild(t, dataDir);
  const { sentFrom, ackedAt } = await tenMessagesForAwayPhone(t, child.address);
  // the shutdown comes later than the messages: their stamps must not be its time
  await new Promise((resolve) => setTimeout(resolve, 1500));
  child.process.kill('SIGTERM');
  t.deepEqual(await child.exited, { code: 0, signal: null });

  for (const message of await bobsOfflineMessages(t, dataDir)) {
    const stamp = stampOf(message);
    t.true(stamp >= sentFrom - 1000 && stamp <= ackedAt, `stamped ${new Date(stamp).toISOString()}: when it arrived, not at shutdown`);
  }
});

test('after kill -9 the messages queued for a phone away come from the archive to offline storage at the next login', async (t) => {
  const dataDir = await accounts();
  t.teardown(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  const child = await startChild(t, dataDir);
  const { sentFrom, ackedAt } = await tenMessagesForAwayPhone(t, child.address);
  child.process.kill('SIGKILL');
  t.deepEqual(await child.exited, { code: null, signal: 'SIGKILL' });

  for (const message of await bobsOfflineMessages(t, dataDir)) {
    const stamp = stampOf(message);
    t.true(stamp >= sentFrom - 1000 && stamp <= ackedAt, `stamped ${new Date(stamp).toISOString()}: when it arrived`);
    t.truthy(message.getChild('stanza-id', 'urn:xmpp:sid:0'), 'with its archive id, so a client that also pages the archive sees one message');
  }
});
