// RFC 6121 §2 (the roster), §3 (presence subscriptions) and XEP-0237 (roster versioning),
// as a user's clients see them.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { startServer, type TestServer } from '../helpers/server.js';
import { xml, type TestClient } from '../helpers/clients.js';
import {
  NS_ROSTER, bare, befriend, freshAccounts, getRoster, iqFailure, isPresence, isPushAbout, nextPush, online, presence, rosterItems, setRosterItem, settle, subscription, loginForTest,
} from '../helpers/conversation.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // the test server's certificate is self-signed

let server: TestServer;
test.before(async () => {
  server = await startServer();
});
test.after.always(async () => server?.stop());

/** Logs a user in for the duration of one test. */
/** A user's connected resource that has requested the roster (an "interested resource") and is available. */
async function interested(t: ExecutionContext, username: string, resource: string, on: TestServer = server): Promise<TestClient> {
  const client = await loginForTest(t, on, username, resource);
  await getRoster(client);
  await online(client);
  return client;
}

test('a new account has an empty roster, with a version', async (t) => {
  const { alice } = await freshAccounts(server, 'alice');
  const a = await loginForTest(t, server, alice, 'phone');

  const result = await getRoster(a, '');
  const query = result.getChild('query', NS_ROSTER);
  t.truthy(query, 'a client that supports versioning still gets the roster when it has none');
  t.deepEqual(rosterItems(query), []);
  t.is(typeof query!.attrs.ver, 'string');
});

test('a roster set adds an item with its name and groups, pushed to every interested resource', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const phone = await loginForTest(t, server, alice, 'phone');
  const laptop = await loginForTest(t, server, alice, 'laptop');
  const watch = await loginForTest(t, server, alice, 'watch'); // never asks for the roster
  await getRoster(phone);
  await getRoster(laptop);

  const result = await setRosterItem(phone, { jid: bare(server, bob), name: 'Bobby', groups: ['Friends', 'Work'] });
  t.is(result.attrs.type, 'result');

  // RFC 6121 §2.3.2: the push goes to all interested resources, including the one that asked
  for (const client of [phone, laptop]) {
    const pushed = await nextPush(client, bare(server, bob));
    t.like(pushed, { jid: bare(server, bob), name: 'Bobby', subscription: 'none', groups: ['Friends', 'Work'] });
    t.is(typeof pushed.ver, 'string', 'a push carries the new roster version');
  }
  await settle(watch);
  t.false(watch.received.some(isPushAbout(bare(server, bob))), 'a resource that never asked for the roster gets no push');

  const roster = rosterItems((await getRoster(watch)).getChild('query', NS_ROSTER));
  t.deepEqual(roster, [{ jid: bare(server, bob), name: 'Bobby', subscription: 'none', groups: ['Friends', 'Work'] }]);
});

test('a roster set updates an existing item: its name and groups are replaced', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'phone');
  await getRoster(a);
  await setRosterItem(a, { jid: bare(server, bob), name: 'Bobby', groups: ['Friends'] });
  await nextPush(a, bare(server, bob));

  await setRosterItem(a, { jid: bare(server, bob), name: 'Robert', groups: ['Work'] });

  t.like(await nextPush(a, bare(server, bob)), { name: 'Robert', groups: ['Work'] });
  t.deepEqual(rosterItems((await getRoster(a)).getChild('query', NS_ROSTER)), [
    { jid: bare(server, bob), name: 'Robert', subscription: 'none', groups: ['Work'] },
  ]);
});

test('a client cannot set the subscription state of an item itself', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'phone');
  await getRoster(a);

  // RFC 6121 §2.1.2.5: the server ignores a 'subscription' other than "remove" in a roster set
  await setRosterItem(a, { jid: bare(server, bob), subscription: 'both' });

  t.like(await nextPush(a, bare(server, bob)), { subscription: 'none' });
});

test('invalid roster sets are refused as RFC 6121 §2.3.3 says, and change nothing', async (t) => {
  const { alice, bob, carol } = await freshAccounts(server, 'alice', 'bob', 'carol');
  const a = await loginForTest(t, server, alice, 'phone');
  const setQuery = (...items: ReturnType<typeof xml>[]) => a.request(xml('iq', { type: 'set' }, xml('query', { xmlns: NS_ROSTER }, ...items)));

  t.is(await iqFailure(setQuery(xml('item', { jid: bare(server, bob) }), xml('item', { jid: bare(server, carol) }))), 'bad-request', 'two items');
  t.is(await iqFailure(setQuery()), 'bad-request', 'no item');
  t.is(await iqFailure(setRosterItem(a, { jid: bare(server, bob), groups: ['Friends', 'Friends'] })), 'bad-request', 'the same group twice');
  t.is(await iqFailure(setRosterItem(a, { name: 'Nobody' })), 'bad-request', 'an item without a jid');
  t.is(await iqFailure(setRosterItem(a, { jid: bare(server, bob), groups: [''] })), 'not-acceptable', 'an empty group name');
  t.is(await iqFailure(setRosterItem(a, { jid: bare(server, bob), name: 'x'.repeat(5000) })), 'not-acceptable', 'an overlong name');

  t.deepEqual(rosterItems((await getRoster(a)).getChild('query', NS_ROSTER)), []);
});

test('removing an item pushes subscription="remove" and the item is gone', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const phone = await loginForTest(t, server, alice, 'phone');
  const laptop = await loginForTest(t, server, alice, 'laptop');
  await getRoster(phone);
  await getRoster(laptop);
  await setRosterItem(phone, { jid: bare(server, bob), name: 'Bobby' });
  await nextPush(laptop, bare(server, bob));

  await setRosterItem(phone, { jid: bare(server, bob), subscription: 'remove' });

  t.like(await nextPush(laptop, bare(server, bob), subscription('remove')), { jid: bare(server, bob), subscription: 'remove' });
  t.deepEqual(rosterItems((await getRoster(laptop)).getChild('query', NS_ROSTER)), []);
  // RFC 6121 §2.5.3: removing an item that is not there
  t.is(await iqFailure(setRosterItem(phone, { jid: bare(server, bob), subscription: 'remove' })), 'item-not-found');
});

test("a user cannot read or change another user's roster", async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'phone');

  const get = a.request(xml('iq', { type: 'get', to: bare(server, bob) }, xml('query', { xmlns: NS_ROSTER })));
  t.is(await iqFailure(get), 'forbidden');
});

test('Alice and Bob subscribe to each other, step by step (RFC 6121 §3.1)', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const aliceJid = bare(server, alice);
  const bobJid = bare(server, bob);
  const a = await interested(t, alice, 'phone');
  const b = await interested(t, bob, 'laptop');

  // Alice asks to see Bob's presence
  await a.send(presence('subscribe', bobJid, xml('status', {}, "It's Alice from work")));
  t.like(await nextPush(a, bobJid), { jid: bobJid, subscription: 'none', ask: 'subscribe' }, 'pending out');
  const request = await b.next(isPresence(aliceJid, 'subscribe'));
  t.is(request.attrs.to, bobJid);
  t.is(request.getChildText('status'), "It's Alice from work");

  // Bob approves
  await b.send(presence('subscribed', aliceJid));
  t.like(await nextPush(b, aliceJid), { jid: aliceJid, subscription: 'from' });
  const approval = await a.next(isPresence(bobJid, 'subscribed'));
  t.is(approval.attrs.to, aliceJid);
  const pushed = await nextPush(a, bobJid, subscription('to'));
  t.is(pushed.ask, undefined, 'no longer pending');
  // RFC 6121 §3.1.5: the approval comes with Bob's current presence
  await a.next(isPresence(b.jid));

  // Bob asks back, Alice approves
  await b.send(presence('subscribe', aliceJid));
  t.like(await nextPush(b, aliceJid, (i) => i.attrs.ask === 'subscribe'), { subscription: 'from', ask: 'subscribe' });
  await a.next(isPresence(bobJid, 'subscribe'));
  await a.send(presence('subscribed', bobJid));
  t.like(await nextPush(a, bobJid, subscription('both')), { subscription: 'both' });
  t.like(await nextPush(b, aliceJid, subscription('both')), { subscription: 'both' });
  await b.next(isPresence(a.jid));

  // and from now on they see each other's presence
  await a.send(xml('presence', {}, xml('show', {}, 'away')));
  t.is((await b.next((s) => isPresence(a.jid)(s) && s.getChildText('show') === 'away')).attrs.from, a.jid);
  await b.send(xml('presence', {}, xml('show', {}, 'dnd')));
  t.is((await a.next((s) => isPresence(b.jid)(s) && s.getChildText('show') === 'dnd')).attrs.from, b.jid);

  for (const [client, contact] of [[a, bobJid], [b, aliceJid]] as const) {
    t.like(rosterItems((await getRoster(client)).getChild('query', NS_ROSTER))[0], { jid: contact, subscription: 'both' });
  }
});

test('Alice unsubscribes from Bob: both rosters change and Alice stops seeing Bob (RFC 6121 §3.3)', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await interested(t, alice, 'phone');
  const b = await interested(t, bob, 'laptop');
  await befriend(a, b);

  await a.send(presence('unsubscribe', bare(server, bob)));

  t.like(await nextPush(a, bare(server, bob), subscription('from')), { subscription: 'from' });
  t.like(await nextPush(b, bare(server, alice), subscription('to')), { subscription: 'to' });
  await b.next(isPresence(bare(server, alice), 'unsubscribe'));
  // §3.3.3: Bob's server tells Alice that Bob is, for her, unavailable
  await a.next(isPresence(b.jid, 'unavailable'));

  // Bob's presence no longer reaches Alice; Alice's still reaches Bob
  await b.send(xml('presence', {}, xml('status', {}, 'after the unsubscribe')));
  await a.send(xml('presence', {}, xml('status', {}, 'still sharing')));
  await b.next((s) => isPresence(a.jid)(s) && s.getChildText('status') === 'still sharing');
  await settle(a);
  t.false(a.received.some((s) => s.getChildText('status') === 'after the unsubscribe'));
});

test("Bob cancels Alice's subscription: both rosters change and Alice sees Bob go unavailable (RFC 6121 §3.2)", async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await interested(t, alice, 'phone');
  const b = await interested(t, bob, 'laptop');
  await befriend(a, b);

  await b.send(presence('unsubscribed', bare(server, alice)));

  t.like(await nextPush(b, bare(server, alice), subscription('to')), { subscription: 'to' });
  t.like(await nextPush(a, bare(server, bob), subscription('from')), { subscription: 'from' });
  await a.next(isPresence(bare(server, bob), 'unsubscribed'));
  await a.next(isPresence(b.jid, 'unavailable'));

  // and then the other way too: back to none on both sides
  await a.send(presence('unsubscribed', bare(server, bob)));
  t.like(await nextPush(a, bare(server, bob), subscription('none')), { subscription: 'none' });
  t.like(await nextPush(b, bare(server, alice), subscription('none')), { subscription: 'none' });
  await b.next(isPresence(a.jid, 'unavailable'));
});

test('removing a contact with a mutual subscription cancels it both ways (RFC 6121 §2.5.2)', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await interested(t, alice, 'phone');
  const b = await interested(t, bob, 'laptop');
  await befriend(a, b);

  await setRosterItem(a, { jid: bare(server, bob), subscription: 'remove' });

  await nextPush(a, bare(server, bob), subscription('remove'));
  t.like(await nextPush(b, bare(server, alice), subscription('none')), { subscription: 'none' });
  // each learns the other is gone for them
  await b.next(isPresence(a.jid, 'unavailable'));
  await a.next(isPresence(b.jid, 'unavailable'));
});

test('a subscription request to an account that does not exist is answered with unsubscribed', async (t) => {
  const { alice } = await freshAccounts(server, 'alice');
  const a = await interested(t, alice, 'phone');
  const ghost = `ghost-of-${alice}@${server.domain}`;

  await a.send(presence('subscribe', ghost));

  await a.next(isPresence(ghost, 'unsubscribed'));
  const pushed = await nextPush(a, ghost, (i) => i.attrs.ask === undefined);
  t.like(pushed, { subscription: 'none' });
});

test('Bob declines a subscription request: Alice is no longer pending', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await interested(t, alice, 'phone');
  const b = await interested(t, bob, 'laptop');

  await a.send(presence('subscribe', bare(server, bob)));
  await nextPush(a, bare(server, bob), (i) => i.attrs.ask === 'subscribe');
  await b.next(isPresence(bare(server, alice), 'subscribe'));
  await b.send(presence('unsubscribed', bare(server, alice)));

  await a.next(isPresence(bare(server, bob), 'unsubscribed'));
  const pushed = await nextPush(a, bare(server, bob), (i) => i.attrs.ask === undefined);
  t.like(pushed, { subscription: 'none' });
  t.is(pushed.ask, undefined);
});

test('a subscription request sent while Bob is offline waits for his next login, and the one after', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await interested(t, alice, 'phone');

  await a.send(presence('subscribe', bare(server, bob), xml('status', {}, 'Remember me?')));
  await nextPush(a, bare(server, bob), (i) => i.attrs.ask === 'subscribe');

  // RFC 6121 §3.1.3: the request waits in pending-in and is delivered on initial presence
  const first = await loginForTest(t, server, bob, 'laptop');
  await first.send(xml('presence'));
  const request = await first.next(isPresence(bare(server, alice), 'subscribe'));
  t.is(request.getChildText('status'), 'Remember me?');
  await first.stop();

  const second = await loginForTest(t, server, bob, 'phone');
  await second.send(xml('presence'));
  await second.next(isPresence(bare(server, alice), 'subscribe'));
  await getRoster(second);
  await second.send(presence('subscribed', bare(server, alice)));
  t.like(await nextPush(a, bare(server, bob), subscription('to')), { subscription: 'to' });

  // once answered, it is not asked again
  const third = await loginForTest(t, server, bob, 'tablet');
  await online(third);
  await settle(third);
  t.false(third.received.some(isPresence(bare(server, alice), 'subscribe')));
});

test('a roster get with the current version returns an empty result; an old version gets the roster (XEP-0237)', async (t) => {
  const { alice, bob, carol } = await freshAccounts(server, 'alice', 'bob', 'carol');
  const a = await loginForTest(t, server, alice, 'phone');
  await setRosterItem(a, { jid: bare(server, bob), name: 'Bob' });
  const current = (await getRoster(a)).getChild('query', NS_ROSTER)!.attrs.ver!;

  const upToDate = await getRoster(a, current);
  t.is(upToDate.attrs.type, 'result');
  t.deepEqual(upToDate.getChildElements(), [], 'nothing to send: the client has it all');

  await setRosterItem(a, { jid: bare(server, carol), name: 'Carol' });
  const pushed = await nextPush(a, bare(server, carol));
  t.not(pushed.ver, current, 'every change gets a new version');
  const stale = (await getRoster(a, current)).getChild('query', NS_ROSTER)!;
  t.is(stale.attrs.ver, pushed.ver!);
  t.deepEqual(rosterItems(stale).map((i) => i.jid).sort(), [bare(server, bob), bare(server, carol)].sort());
});

test('rosters, subscriptions and pending requests survive a server restart', async (t) => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-roster-restart-'));
  t.teardown(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  const first = await startServer({ dataDir });
  let version = '';
  try {
    await first.createAccount('alice');
    await first.createAccount('bob');
    await first.createAccount('carol');
    const a = await interested(t, 'alice', 'phone', first);
    const b = await interested(t, 'bob', 'laptop', first);
    const c = await interested(t, 'carol', 'desk', first);
    await befriend(a, b);
    await setRosterItem(a, { jid: 'bob@localhost', name: 'Bobby', groups: ['Friends'] });
    await nextPush(a, 'bob@localhost', (i) => i.attrs.name === 'Bobby');
    await c.send(presence('subscribe', 'alice@localhost'));
    await a.next(isPresence('carol@localhost', 'subscribe'));
    version = (await getRoster(a)).getChild('query', NS_ROSTER)!.attrs.ver!;
    await Promise.all([a.stop(), b.stop(), c.stop()]);
  } finally {
    await first.stop();
  }

  const second = await startServer({ dataDir });
  t.teardown(() => second.stop());
  const a = await loginForTest(t, second, 'alice', 'phone');
  t.deepEqual(rosterItems((await getRoster(a)).getChild('query', NS_ROSTER)), [
    { jid: 'bob@localhost', name: 'Bobby', subscription: 'both', groups: ['Friends'] },
  ]);
  t.deepEqual((await getRoster(a, version)).getChildElements(), [], 'the version is still current');
  const c = await loginForTest(t, second, 'carol', 'desk');
  t.like(rosterItems((await getRoster(c)).getChild('query', NS_ROSTER))[0], { jid: 'alice@localhost', subscription: 'none', ask: 'subscribe' });

  // Carol's request is still waiting for Alice, and Bob's presence still reaches her
  await a.send(xml('presence'));
  await a.next(isPresence('carol@localhost', 'subscribe'));
  const b = await loginForTest(t, second, 'bob', 'laptop');
  await b.send(xml('presence'));
  await a.next(isPresence(b.jid));
  await b.next(isPresence(a.jid));
});
