// The admin commands as an admin uses them: the real `xmppd` CLI in a child process against a
// running server (through its control socket), or against the database when it is stopped; real
// clients on the other side see what the admin did.
import test from 'ava';
import { client } from '@xmpp/client';
import { startServer, type TestServer } from '../helpers/server.js';
import { watchWire, xml, type TestClient } from '../helpers/clients.js';
import { chat, login, online, ping } from '../helpers/conversation.js';
import { workspace, xmppd } from '../helpers/cli.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // the test server's certificate is self-signed

/** The stream error a client's session ends with: condition and text. The client does not reconnect on its own. */
function streamErrorOf(c: TestClient): Promise<{ condition?: string; text?: string }> {
  (c.xmpp as unknown as { reconnect?: { stop(): void } }).reconnect?.stop();
  return new Promise((resolve) => c.xmpp.on('error', (err: unknown) => resolve(err as { condition?: string; text?: string })));
}

/** The SASL failure condition of a login, or 'ok'. */
async function loginOutcome(server: TestServer, username: string, password = 'correct horse battery'): Promise<string> {
  const xmpp = client({ service: `xmpp://127.0.0.1:${server.port}`, domain: server.domain, username, password, resource: 'probe', timeout: 20_000 }); // a loaded machine is slow, not wrong
  watchWire(xmpp, `${username}'s login attempt`, 'stream');
  xmpp.on('error', () => undefined);
  try {
    await xmpp.start();
    return 'ok';
  } catch (err) {
    return (err as { condition?: string }).condition ?? String(err);
  } finally {
    (xmpp as unknown as { reconnect?: { stop(): void } }).reconnect?.stop();
    await xmpp.stop().catch(() => undefined);
  }
}

test('status shows the version, hosts, modules and connections by kind', async (t) => {
  const { dir, cli } = workspace(t);
  const server = await startServer({ dataDir: dir });
  t.teardown(() => server.stop());
  await server.createAccount('alice');
  const alice = await login(server, 'alice', 'phone');

  const status = await cli('status');
  t.is(status.code, 0, status.stderr);
  t.regex(status.stdout, /^xmppd \d+\.\d+\.\d+, up \d+s$/m);
  t.regex(status.stdout, /^connections: c2s 1, websocket 0, s2s 0$/m);
  t.regex(status.stdout, /^host localhost: 1 sessions; modules .*roster.*adhoc/m);
  const json = JSON.parse((await cli('--json', 'status')).stdout) as { node: string; database: { driver: string; version: string } };
  t.is(json.node, process.version);
  t.not(json.database.version, 'unknown');
  await alice.stop();
});

test('stats counts accounts (disabled, online), sessions, waiting messages and what happened since the start', async (t) => {
  const { dir, cli } = workspace(t);
  const server = await startServer({ dataDir: dir });
  t.teardown(() => server.stop());
  for (const name of ['alice', 'bob', 'carol', 'dave']) await server.createAccount(name);
  t.is((await cli('user', 'disable', 'dave@localhost')).code, 0);
  const phone = await login(server, 'alice', 'phone');
  const desk = await login(server, 'alice', 'desk');
  const bob = await login(server, 'bob', 'desk');
  for (const c of [phone, desk, bob]) await online(c);
  // carol is offline: these two wait for her
  await phone.send(chat('carol@localhost', 'one'));
  await phone.send(chat('carol@localhost', 'two'));
  await phone.request(ping('localhost'));
  t.is(await loginOutcome(server, 'bob', 'wrong'), 'not-authorized');

  const stats = JSON.parse((await cli('--json', 'stats')).stdout) as {
    hosts: Array<{ domain: string; accounts: number; disabledAccounts: number; onlineAccounts: number; sessions: number; gauges: Record<string, number> }>;
    connections: Record<string, number>;
    sinceStart: { received: { message: number; presence: number; iq: number }; authFailures: number; deliveries: number };
  };
  const localhost = stats.hosts.find((h) => h.domain === 'localhost')!;
  t.like(localhost, { accounts: 4, disabledAccounts: 1, onlineAccounts: 2, sessions: 3 });
  t.is(localhost.gauges.xmppd_offline_messages, 2);
  t.is(stats.connections.c2s_tcp, 3);
  t.true(stats.sinceStart.received.message >= 2);
  t.true(stats.sinceStart.received.presence >= 3);
  t.true(stats.sinceStart.received.iq >= 1);
  t.true(stats.sinceStart.authFailures >= 1);
  t.true(stats.sinceStart.deliveries > 0);

  const text = await cli('stats');
  t.is(text.code, 0, text.stderr);
  t.regex(text.stdout, /^host localhost: accounts 4 \(1 disabled, 2 online\), sessions 3, rooms 0$/m);
  t.regex(text.stdout, /^  offline_messages 2$/m);
  t.regex(text.stdout, /^since start: \d+ deliveries, mean latency [\d.]+ ms; \d+ failed logins$/m);
  for (const c of [phone, desk, bob]) await c.stop();
});

test('storage usage shows the disk, the database and the shared files; cert list each host\'s certificate and its expiry', async (t) => {
  const { dir, cli } = workspace(t);
  const server = await startServer({ dataDir: dir });
  t.teardown(() => server.stop());
  const storage = await cli('storage', 'usage');
  t.is(storage.code, 0, storage.stderr);
  t.regex(storage.stdout, /^data directory .+: \d+ of \d+ bytes free$/m);
  t.regex(storage.stdout, /^database (sqlite|postgres): \d+ bytes$/m);
  t.regex(storage.stdout, /^uploads: 0 bytes stored; since start 0 files, 0 bytes received$/m);
  const certs = await cli('cert', 'list');
  t.is(certs.code, 0, certs.stderr);
  t.regex(certs.stdout, /^localhost \S+localhost\.crt \(self-signed, generated\) expires=\S+Z days-left=\d+ names=localhost,\*\.localhost$/m);
});

test('sessions list shows who is online; sessions kick ends one session with policy-violation and the text', async (t) => {
  const { dir, cli } = workspace(t);
  const server = await startServer({ dataDir: dir });
  t.teardown(() => server.stop());
  await server.createAccount('alice');
  await server.createAccount('bob');
  const alicePhone = await login(server, 'alice', 'phone');
  const aliceDesk = await login(server, 'alice', 'desk');
  const bob = await login(server, 'bob', 'desk');
  await online(aliceDesk);

  const list = await cli('sessions', 'list');
  t.is(list.code, 0, list.stderr);
  const lines = list.stdout.trim().split('\n').sort();
  t.is(lines.length, 3);
  t.regex(lines[0]!, /^alice@localhost\/desk 127\.0\.0\.1 tcp\+tls since=\S+Z sm=on csi=active$/);
  t.regex(lines[2]!, /^bob@localhost\/desk /);

  const ended = streamErrorOf(alicePhone);
  const kick = await cli('sessions', 'kick', 'alice@localhost/phone', '--reason', 'Spamming the lobby');
  t.is(kick.code, 0, kick.stderr);
  t.is(kick.stdout, 'ended 1 session of alice@localhost/phone\n');
  t.deepEqual(await ended.then((e) => [e.condition, e.text]), ['policy-violation', 'Spamming the lobby']);
  // the others are still here
  await aliceDesk.request(ping('localhost'));
  await bob.request(ping('localhost'));
  t.deepEqual((await cli('sessions', 'list')).stdout.trim().split('\n').map((l) => l.split(' ')[0]).sort(), ['alice@localhost/desk', 'bob@localhost/desk']);

  // a bare JID: every session of the account
  const deskEnded = streamErrorOf(aliceDesk);
  t.is((await cli('sessions', 'kick', 'alice@localhost', '--not-authorized')).stdout, 'ended 1 session of alice@localhost\n');
  t.is((await deskEnded).condition, 'not-authorized');
  const nobody = await cli('sessions', 'kick', 'alice@localhost');
  t.is(nobody.code, 1);
  t.regex(nobody.stderr, /no session of alice@localhost is online/);
  await bob.stop();
});

test('user disable ends the sessions and refuses logins with account-disabled; user enable lets her in again', async (t) => {
  const { dir, cli } = workspace(t);
  const server = await startServer({ dataDir: dir });
  t.teardown(() => server.stop());
  t.is((await cli('user', 'add', 'alice@localhost', '--password', 'secret')).code, 0);
  const alice = await login(server, 'alice', 'phone', { password: 'secret' });
  const ended = streamErrorOf(alice);

  const disabled = await cli('user', 'disable', 'alice@localhost', '--reason', 'Ask the helpdesk');
  t.is(disabled.code, 0, disabled.stderr);
  t.is(disabled.stdout, 'disabled alice@localhost\n');
  t.is((await ended).condition, 'not-authorized');
  t.is(await loginOutcome(server, 'alice', 'secret'), 'account-disabled');
  t.is(await loginOutcome(server, 'alice', 'wrong'), 'not-authorized', 'a wrong password learns nothing about the account');
  t.regex((await cli('user', 'info', 'alice@localhost')).stdout, /^disabled: since \S+ \(Ask the helpdesk\)$/m);

  t.is((await cli('user', 'enable', 'alice@localhost')).stdout, 'enabled alice@localhost\n');
  t.is(await loginOutcome(server, 'alice', 'secret'), 'ok');
  t.regex((await cli('user', 'info', 'alice@localhost')).stdout, /^disabled: no$/m);
});

test('with the server stopped, user disable/info/list act on the database; server-only commands say they need it', async (t) => {
  const { dir, cli } = workspace(t);
  t.is((await cli('user', 'add', 'alice@localhost', '--password', 'secret')).code, 0);
  t.is((await cli('user', 'disable', 'alice@localhost')).code, 0);
  t.regex((await cli('user', 'info', 'alice@localhost')).stdout, /^disabled: since /m);
  t.is((await cli('user', 'list')).stdout, 'alice@localhost\n');
  for (const args of [['status'], ['sessions', 'list'], ['announce', 'hello'], ['reload']]) {
    const refused = await cli(...args);
    t.is(refused.code, 1, args.join(' '));
    t.regex(refused.stderr, /needs the running server/);
  }

  const server = await startServer({ dataDir: dir });
  t.teardown(() => server.stop());
  t.is(await loginOutcome(server, 'alice', 'secret'), 'account-disabled');
});

test('announce sends a headline to every online user of the host; the message of the day reaches later logins', async (t) => {
  const { dir, cli } = workspace(t);
  const server = await startServer({ dataDir: dir });
  t.teardown(() => server.stop());
  await server.createAccount('alice');
  await server.createAccount('bob');
  const alice = await login(server, 'alice', 'phone');
  const bob = await login(server, 'bob', 'desk');
  await online(alice);
  await online(bob);
  const isHeadline = (body: string) => (s: { name: string; attrs: Record<string, string>; getChildText(n: string): string | null }) =>
    s.name === 'message' && s.attrs.type === 'headline' && s.attrs.from === 'localhost' && s.getChildText('body') === body;

  const announced = await cli('announce', 'Maintenance at 22:00 UTC', '--subject', 'Maintenance');
  t.is(announced.code, 0, announced.stderr);
  t.is(announced.stdout, 'announced to 2 sessions on localhost\n');
  for (const c of [alice, bob]) t.is((await c.next(isHeadline('Maintenance at 22:00 UTC'))).getChildText('subject'), 'Maintenance');

  t.is((await cli('motd', 'set', 'Welcome to the new server')).code, 0);
  await alice.next(isHeadline('Welcome to the new server'));
  const carol = await login(server, 'bob', 'laptop');
  await online(carol);
  await carol.next(isHeadline('Welcome to the new server'));
  t.is((await cli('motd', 'clear')).stdout, 'message of the day removed on localhost\n');
  const later = await login(server, 'alice', 'desk');
  await online(later);
  await later.request(ping('localhost'));
  t.false(later.received.some(isHeadline('Welcome to the new server')));
  for (const c of [alice, bob, carol, later]) await c.stop();
});

test('room list shows the rooms; room destroy tells the occupants and removes the room', async (t) => {
  const { dir, cli } = workspace(t);
  const server = await startServer({ dataDir: dir });
  t.teardown(() => server.stop());
  await server.createAccount('alice');
  const alice = await login(server, 'alice', 'phone');
  await alice.send(xml('presence', { to: 'lobby@conference.localhost/alice' }, xml('x', { xmlns: 'http://jabber.org/protocol/muc' })));
  await alice.next((s) => s.name === 'presence' && s.attrs.from === 'lobby@conference.localhost/alice');

  const list = await cli('room', 'list');
  t.is(list.code, 0, list.stderr);
  t.regex(list.stdout, /^lobby@conference\.localhost occupants=1/m);

  const destroyed = await cli('room', 'destroy', 'lobby@conference.localhost', '--reason', 'Moved to #general');
  t.is(destroyed.stdout, 'destroyed lobby@conference.localhost\n', destroyed.stderr);
  const gone = await alice.next((s) => s.name === 'presence' && s.attrs.type === 'unavailable' && s.attrs.from === 'lobby@conference.localhost/alice');
  t.is(gone.getChild('x', 'http://jabber.org/protocol/muc#user')?.getChild('destroy')?.getChildText('reason'), 'Moved to #general');
  t.is((await cli('room', 'list')).stdout, '');
  const again = await cli('room', 'destroy', 'lobby@conference.localhost');
  t.is(again.code, 1);
  t.regex(again.stderr, /no room lobby@conference\.localhost/);
  await alice.stop();
});

test('xmppd help lists the commands of the registry', async (t) => {
  const help = await xmppd(['help']);
  t.is(help.code, 0, help.stderr);
  for (const usage of ['status', 'sessions kick <jid>', 'user add <jid>', 'user disable <jid>', 'announce <text>', 'room destroy <room>', 'reload']) {
    t.true(help.stdout.includes(`  ${usage}`), `${usage} in:\n${help.stdout}`);
  }
});
