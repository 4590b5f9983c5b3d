// Starting and stopping: a server that cannot open one of its listeners gives back what it had
// already opened and says which address was the problem.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { startServer } from '../helpers/server.js';
import { xml, type TestClient } from '../helpers/clients.js';
import { freshAccounts, login, makeFriends, online } from '../helpers/conversation.js';
import { freePort } from '../helpers/federation.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // the test server's certificate is self-signed

test('a server whose HTTP port is taken fails to start, naming the address, and frees its client port', async (t) => {
  const squatter = net.createServer();
  await new Promise<void>((resolve) => squatter.listen({ host: '127.0.0.1', port: 0 }, resolve));
  t.teardown(() => new Promise<void>((resolve) => squatter.close(() => resolve())));
  const takenPort = (squatter.address() as net.AddressInfo).port;
  const c2sPort = await freePort();

  const error = await t.throwsAsync(startServer({
    config: {
      c2s: { listen: [{ host: '127.0.0.1', port: c2sPort, tls: 'starttls' }] },
      http: { listen: [{ host: '127.0.0.1', port: takenPort, tls: 'none' }] },
    },
  }));
  t.regex(error!.message, new RegExp(`HTTP.*127\\.0\\.0\\.1:${takenPort}.*in use`), error!.message);

  // the client listener opened before it is closed again: the port can be bound at once
  const again = net.createServer();
  await t.notThrowsAsync(new Promise<void>((resolve, reject) => {
    again.once('error', reject);
    again.listen({ host: '127.0.0.1', port: c2sPort }, resolve);
  }));
  await new Promise<void>((resolve) => again.close(() => resolve()));
});

test('stopping a server with users online: their goodbyes are sent before the database closes, and nothing fails', async (t) => {
  const logFile = path.join(os.tmpdir(), `xmppd-shutdown-${process.pid}.log`);
  fs.rmSync(logFile, { force: true });
  const server = await startServer({ logFile });
  const pairs = 8;
  const clients: TestClient[] = [];
  for (let i = 0; i < pairs; i++) {
    const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
    await makeFriends(server, alice, bob);
    clients.push(await login(server, alice, 'phone'), await login(server, bob, 'phone'));
  }
  await Promise.all(clients.map((c) => online(c)));
  // some initial presences are still waiting for their rosters when the server stops
  const late = await Promise.all(clients.slice(0, 4).map(async (c) => {
    const username = c.jid.split('@')[0]!;
    return login(server, username, 'tablet');
  }));
  for (const c of late) void c.send(xml('presence'));
  await server.stop();

  const entries = fs.readFileSync(logFile, 'utf8').split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as { level: number; msg: string; err?: { message?: string } });
  t.deepEqual(entries.filter((e) => e.level >= 50).map((e) => `${e.msg}: ${e.err?.message ?? ''}`), [], 'no errors logged');
  t.true(entries.some((e) => e.msg === 'stopped'));
});
