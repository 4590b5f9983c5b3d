// XEP-0012 "last seen": what contacts learn about a user who is away, and who may ask.
import test from 'ava';
import { startServer, type TestServer } from '../helpers/server.js';
import { xml, type TestClient } from '../helpers/clients.js';
import { bare, freshAccounts, iqFailure, login, makeFriends, online, loginForTest } from '../helpers/conversation.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
const NS_LAST = 'jabber:iq:last';

let server: TestServer;
test.before(async () => {
  server = await startServer();
});
test.after.always(async () => server?.stop());

const lastOf = (client: TestClient, to: string) => client.request(xml('iq', { type: 'get', to }, xml('query', { xmlns: NS_LAST })));

test('a contact who logged out tells how long ago and with which status', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  await makeFriends(server, alice, bob);
  const b = await login(server, bob, 'laptop');
  await online(b);
  await b.send(xml('presence', { type: 'unavailable' }, xml('status', {}, 'Gone fishing')));
  await b.stop();

  const a = await loginForTest(t, server, alice, 'phone');
  const result = await lastOf(a, bare(server, bob));
  const query = result.getChild('query', NS_LAST)!;
  t.true(Number(query.attrs.seconds) >= 0 && Number(query.attrs.seconds) < 60);
  t.is(query.getText(), 'Gone fishing');
});

test('while a contact has an active client, last activity is 0', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  await makeFriends(server, alice, bob);
  const b = await loginForTest(t, server, bob, 'laptop');
  await online(b);
  const a = await loginForTest(t, server, alice, 'phone');
  const query = (await lastOf(a, bare(server, bob))).getChild('query', NS_LAST)!;
  t.is(query.attrs.seconds, '0');
});

test('someone without a presence subscription is told forbidden', async (t) => {
  const { mallory, bob } = await freshAccounts(server, 'mallory', 'bob');
  const b = await login(server, bob, 'laptop');
  await online(b);
  await b.stop();
  const m = await loginForTest(t, server, mallory, 'pc');
  t.is(await iqFailure(lastOf(m, bare(server, bob))), 'forbidden');
});

test('the server answers with its uptime', async (t) => {
  const { alice } = await freshAccounts(server, 'alice');
  const a = await loginForTest(t, server, alice, 'phone');
  const query = (await lastOf(a, server.domain)).getChild('query', NS_LAST)!;
  t.true(Number(query.attrs.seconds) >= 0);
});

test('a client that declared itself inactive (XEP-0352) does not count as active', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  await makeFriends(server, alice, bob);
  const b = await loginForTest(t, server, bob, 'phone');
  await online(b);
  // the phone goes into the pocket
  await b.send(xml('inactive', { xmlns: 'urn:xmpp:csi:0' }));
  const a = await loginForTest(t, server, alice, 'laptop');
  // wait until at least one second has passed since Bob was last active
  await new Promise((resolve) => setTimeout(resolve, 1100));
  const query = (await lastOf(a, bare(server, bob))).getChild('query', NS_LAST)!;
  t.true(Number(query.attrs.seconds) >= 1, `an inactive client is not "online now" (got ${query.attrs.seconds})`);
  // taking it out of the pocket makes Bob active again
  await b.send(xml('active', { xmlns: 'urn:xmpp:csi:0' }));
  await b.request(xml('iq', { type: 'get', to: server.domain }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
  const again = (await lastOf(a, bare(server, bob))).getChild('query', NS_LAST)!;
  t.is(again.attrs.seconds, '0');
});

test('XEP-0319 idle times in presence reach contacts unchanged', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  await makeFriends(server, alice, bob);
  const a = await loginForTest(t, server, alice, 'phone');
  await online(a);
  const b = await loginForTest(t, server, bob, 'laptop');
  await online(b, [xml('show', {}, 'away'), xml('idle', { xmlns: 'urn:xmpp:idle:1', since: '2026-11-22T10:00:00Z' })]);
  const seen = await a.next((s) => s.is('presence') && s.attrs.from === b.jid && s.getChild('idle', 'urn:xmpp:idle:1') !== undefined);
  t.is(seen.getChild('idle', 'urn:xmpp:idle:1')?.attrs.since, '2026-11-22T10:00:00Z');
});
