// RFC 6121 §4: exchanging presence. Who learns that a user is online, away or gone, and who
// must not.
import test, { type ExecutionContext } from 'ava';
import { startServer, type TestServer } from '../helpers/server.js';
import { xml, type TestClient } from '../helpers/clients.js';
import type { RosterService } from '../../src/modules/roster/index.js';
import {
  bare, befriend, dropConnection, freshAccounts, getRoster, isPresence, makeFriends, online, presence, presencesFrom, settle, loginForTest,
} from '../helpers/conversation.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // the test server's certificate is self-signed

let server: TestServer;
test.before(async () => {
  server = await startServer();
});
test.after.always(async () => server?.stop());

/** Logs a user in for the duration of one test. */
/**
 * Two accounts with a mutual subscription, both logged in and available. Bob's client does not
 * ask for stream resumption: when his connection drops, his session ends at once (a resumable
 * one waits for him first, see stream-management.test.ts).
 */
async function friendsOnline(t: ExecutionContext): Promise<{ alice: string; bob: string; a: TestClient; b: TestClient }> {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  await makeFriends(server, alice, bob);
  const a = await loginForTest(t, server, alice, 'phone');
  await online(a);
  const b = await loginForTest(t, server, bob, 'laptop', { resumption: false });
  await online(b);
  await a.next(isPresence(b.jid));
  return { alice, bob, a, b };
}

test('Bob logs in after Alice: he receives her presence and she receives his', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  await makeFriends(server, alice, bob);
  const a = await loginForTest(t, server, alice, 'phone');
  await online(a, [xml('status', {}, 'At my desk')]);

  const b = await loginForTest(t, server, bob, 'laptop');
  await b.send(xml('presence'));

  // RFC 6121 §4.2.2: Bob's server probes Alice; her server answers with her current presence
  const hers = await b.next(isPresence(a.jid));
  t.is(hers.getChildText('status'), 'At my desk');
  t.is(hers.attrs.to, b.jid, 'the answer to the probe goes to the resource that came online');
  // §4.2.2: Bob's initial presence is broadcast to his subscribers
  const his = await a.next(isPresence(b.jid));
  t.is(his.attrs.to, bare(server, alice));
});

test('Alice logs in while Bob is offline: she learns that he is unavailable', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  await makeFriends(server, alice, bob);
  const a = await loginForTest(t, server, alice, 'phone');

  await a.send(xml('presence'));

  // §4.3.2: the probe is answered with unavailable when the contact has no available resource
  await a.next(isPresence(bare(server, bob), 'unavailable'));
  t.deepEqual(presencesFrom(a, bare(server, bob)), []);
});

test('a presence update with show and status reaches the contact', async (t) => {
  const { a, b } = await friendsOnline(t);

  await b.send(xml('presence', {}, xml('show', {}, 'away'), xml('status', {}, 'Out for lunch'), xml('priority', {}, '3')));

  const update = await a.next((s) => isPresence(b.jid)(s) && s.getChildText('show') === 'away');
  t.is(update.getChildText('status'), 'Out for lunch');
  t.is(update.getChildText('priority'), '3');
});

test("when Bob's connection drops without a goodbye, Alice receives unavailable from his full JID", async (t) => {
  const { a, b } = await friendsOnline(t);

  dropConnection(b);

  // RFC 6121 §4.5.2: the server sends unavailable on the user's behalf
  const gone = await a.next(isPresence(b.jid, 'unavailable'));
  t.is(gone.attrs.to, a.jid.split('/')[0]);
});

test('a graceful unavailable, with its status, reaches the contacts', async (t) => {
  const { a, b } = await friendsOnline(t);

  await b.send(xml('presence', { type: 'unavailable' }, xml('status', {}, 'Going home')));

  const gone = await a.next(isPresence(b.jid, 'unavailable'));
  t.is(gone.getChildText('status'), 'Going home');
});

test('closing the stream is a logout the contacts hear about', async (t) => {
  const { a, b } = await friendsOnline(t);

  await b.stop();

  await a.next(isPresence(b.jid, 'unavailable'));
  t.pass();
});

test("a user's resources see each other's presence", async (t) => {
  const { alice } = await freshAccounts(server, 'alice');
  const phone = await loginForTest(t, server, alice, 'phone');
  await online(phone);
  const laptop = await loginForTest(t, server, alice, 'laptop');

  await laptop.send(xml('presence', {}, xml('show', {}, 'chat')));

  // §4.2.2: initial presence goes to the user's other available resources, and they to it
  t.is((await phone.next(isPresence(laptop.jid))).getChildText('show'), 'chat');
  await laptop.next(isPresence(phone.jid));

  await laptop.send(xml('presence', { type: 'unavailable' }));
  await phone.next(isPresence(laptop.jid, 'unavailable'));
});

test("a user's other resources hear when one of them drops off the network", async (t) => {
  const { alice } = await freshAccounts(server, 'alice');
  const phone = await loginForTest(t, server, alice, 'phone');
  const laptop = await loginForTest(t, server, alice, 'laptop', { resumption: false });
  await online(phone);
  await online(laptop);

  dropConnection(laptop);

  await phone.next(isPresence(laptop.jid, 'unavailable'));
  t.pass();
});

test('presence goes only to subscribers: with a one-way subscription only one side sees the other', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'phone');
  const b = await loginForTest(t, server, bob, 'laptop');
  await Promise.all([getRoster(a), getRoster(b)]);
  await online(a);
  await online(b);
  // Alice subscribes to Bob; Bob does not subscribe back
  await a.send(presence('subscribe', bare(server, bob)));
  await b.next(isPresence(bare(server, alice), 'subscribe'));
  await b.send(presence('subscribed', bare(server, alice)));
  await a.next(isPresence(b.jid));

  await a.send(xml('presence', {}, xml('status', {}, 'Alice is here')));
  await b.send(xml('presence', {}, xml('status', {}, 'Bob is here')));

  await a.next((s) => isPresence(b.jid)(s) && s.getChildText('status') === 'Bob is here');
  await settle(b);
  t.deepEqual(presencesFrom(b, a.jid), [], 'Bob is not subscribed to Alice');
});

test('directed presence reaches a non-contact, who then hears when the sender goes offline', async (t) => {
  const { alice, carol } = await freshAccounts(server, 'alice', 'carol');
  const a = await loginForTest(t, server, alice, 'phone');
  const c = await loginForTest(t, server, carol, 'desk');
  await online(a);

  // §4.6: presence sent straight to Carol, who is not on Alice's roster
  await a.send(xml('presence', { to: c.jid }, xml('status', {}, 'Hi Carol')));
  const directed = await c.next(isPresence(a.jid));
  t.is(directed.getChildText('status'), 'Hi Carol');

  // §4.6.3: when Alice goes offline, the server tells Carol too
  await a.send(xml('presence', { type: 'unavailable' }));
  await c.next(isPresence(a.jid, 'unavailable'));
});

test("directed presence is cancelled by the sender's dropped connection too", async (t) => {
  const { alice, carol } = await freshAccounts(server, 'alice', 'carol');
  const a = await loginForTest(t, server, alice, 'phone', { resumption: false });
  const c = await loginForTest(t, server, carol, 'desk');
  await online(a);
  await online(c); // presence to a bare JID goes to its available resources (§8.5.2.1.2)
  await a.send(xml('presence', { to: bare(server, carol) }));
  await c.next(isPresence(a.jid));

  dropConnection(a);

  await c.next(isPresence(a.jid, 'unavailable'));
  t.pass();
});

test("a non-subscriber's probe does not reveal the user's presence", async (t) => {
  const { alice, mallory } = await freshAccounts(server, 'alice', 'mallory');
  const a = await loginForTest(t, server, alice, 'phone');
  await online(a, [xml('status', {}, 'secret status')]);
  const m = await loginForTest(t, server, mallory, 'laptop');
  await online(m);

  await m.send(xml('presence', { type: 'probe', to: bare(server, alice) }));
  // A subscription request is handled after the probe, on Alice's roster: once Alice has it, the
  // probe has been handled; Alice's reply then passes anything the probe sent Mallory.
  await m.send(presence('subscribe', bare(server, alice)));
  await a.next(isPresence(bare(server, mallory), 'subscribe'));
  await a.send(xml('message', { to: m.jid, type: 'chat' }, xml('body', {}, 'who is asking?')));
  await m.next((s) => s.is('message'));

  t.deepEqual(m.received.filter((s) => s.is('presence') && s.attrs.from?.startsWith(bare(server, alice)) && s.attrs.type !== 'unsubscribed'), []);
});

test('a probe from a subscriber is answered with the current presence', async (t) => {
  const { a, b } = await friendsOnline(t);
  await a.send(xml('presence', {}, xml('status', {}, 'current')));
  await b.next((s) => isPresence(a.jid)(s) && s.getChildText('status') === 'current');

  await b.send(xml('presence', { type: 'probe', to: a.jid.split('/')[0] }));

  const answer = await b.next((s) => isPresence(a.jid)(s) && s.getChildText('status') === 'current');
  t.is(answer.attrs.to, b.jid);
});

test('friends made while online see each other at once', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'phone');
  const b = await loginForTest(t, server, bob, 'laptop');
  await Promise.all([getRoster(a), getRoster(b)]);
  await online(a);
  await online(b);

  await befriend(a, b);

  // §3.1.5/§3.1.6: each approval brings the approver's current presence along
  await a.next(isPresence(b.jid));
  await b.next(isPresence(a.jid));
  t.pass();
});

test("a user's last session ending: contacts hear it from the roster in memory, which is then forgotten", async (t) => {
  const { bob, a, b } = await friendsOnline(t);
  const rosters = (server.server.hosts.get(server.domain)!.services.get('roster') as RosterService).store;
  t.truthy(rosters.cached(bob), "Bob's roster is in memory while he is online");

  dropConnection(b);
  await a.next(isPresence(b.jid, 'unavailable'));
  // the unavailable presence was sent from the roster in memory: it was not read back from the
  // database (and then kept) after the roster module let go of it
  t.is(rosters.cached(bob), undefined);
});
