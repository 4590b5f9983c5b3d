// Federation between two xmppd servers on loopback (RFC 6120 server-to-server streams): a.example
// and b.example, each with its own users, reach each other through static routes. Dialback
// (XEP-0220) authenticates them: their certificates are self-signed.
import test from 'ava';
import type { TestServer } from '../helpers/server.js';
import { xml } from '../helpers/clients.js';
import {
  befriend, chat, errorCondition, freshAccounts, getRoster, isPresence, loginForTest, online, ping, settle,
} from '../helpers/conversation.js';
import { enter, freshRoom, createInstantRoom, groupchat, isGroupchat } from '../helpers/muc.js';
import { bareOf, freePort, startFederated, userOn } from '../helpers/federation.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // the test servers' certificates are self-signed

let a: TestServer;
let b: TestServer;
test.before(async () => {
  const [portA, portB] = [await freePort(), await freePort()];
  a = await startFederated({ domain: 'a.example', s2sPort: portA, routes: { 'b.example': portB } });
  b = await startFederated({ domain: 'b.example', s2sPort: portB, routes: { 'a.example': portA } });
});
test.after.always(async () => {
  await a?.stop();
  await b?.stop();
});



test('Alice on a.example and Bob on b.example chat both ways, receipts included', async (t) => {
  const alice = await userOn(t, a, 'alice');
  const bob = await userOn(t, b, 'bob');

  await alice.send(chat(bareOf(bob), 'Hello from a', { id: 'fed-1' }));
  const got = await bob.next((s) => s.is('message') && s.attrs.id === 'fed-1');
  t.is(got.getChildText('body'), 'Hello from a');
  t.is(got.attrs.from, alice.jid, 'the sender is the full JID of her client');

  await bob.send(xml('message', { to: got.attrs.from!, id: 'rcpt-1' }, xml('received', { xmlns: 'urn:xmpp:receipts', id: 'fed-1' })));
  const receipt = await alice.next((s) => s.is('message') && s.attrs.id === 'rcpt-1');
  t.is(receipt.getChild('received', 'urn:xmpp:receipts')?.attrs.id, 'fed-1');

  await bob.send(chat(bareOf(alice), 'Hi from b', { id: 'fed-2' }));
  const reply = await alice.next((s) => s.is('message') && s.attrs.id === 'fed-2');
  t.is(reply.attrs.from, bob.jid);

  // one stream each way, authenticated by dialback (self-signed certificates)
  const streams = a.server.s2s!.streams();
  t.truthy(streams.find((s) => s.direction === 'outgoing' && s.remote === 'b.example' && s.state === 'ready' && s.method === 'dialback'));
  t.truthy(streams.find((s) => s.direction === 'incoming' && s.remote === 'b.example' && s.method === 'dialback'));
});

test('Messages sent while the stream connects are queued and arrive in order', async (t) => {
  const [portC, portD] = [await freePort(), await freePort()];
  const c = await startFederated({ domain: 'c.example', s2sPort: portC, routes: { 'd.example': portD } });
  const d = await startFederated({ domain: 'd.example', s2sPort: portD, routes: { 'c.example': portC } });
  t.teardown(async () => {
    await c.stop();
    await d.stop();
  });
  const carol = await userOn(t, c, 'carol');
  const dave = await userOn(t, d, 'dave');
  for (let i = 0; i < 20; i++) await carol.send(chat(bareOf(dave), `message ${i}`, { id: `q-${i}` }));
  await dave.next((s) => s.is('message') && s.attrs.id === 'q-19');
  const bodies = dave.received.filter((s) => s.is('message')).map((s) => s.getChildText('body'));
  t.deepEqual(bodies, Array.from({ length: 20 }, (_, i) => `message ${i}`));
  t.is(c.server.s2s!.streams().filter((s) => s.direction === 'outgoing' && s.remote === 'd.example').length, 1, 'one stream for the pair, reused');
});

test('A presence subscription across servers, both ways, then presence and probes flow', async (t) => {
  const alice = await userOn(t, a, 'alice');
  const bob = await userOn(t, b, 'bob');
  await befriend(alice, bob);
  // Bob's second device comes online: Alice sees it; it gets Alice's presence (a probe to a.example)
  const tablet = await loginForTest(t, b, bareOf(bob).split('@')[0]!, 'tablet');
  await getRoster(tablet);
  await tablet.send(xml('presence', {}, xml('status', {}, 'on the tablet')));
  const seen = await alice.next(isPresence(tablet.jid));
  t.is(seen.getChildText('status'), 'on the tablet');
  const probed = await tablet.next(isPresence(alice.jid));
  t.falsy(probed.attrs.type, 'the answer to the probe: Alice is available');
  // Alice goes offline: Bob's devices are told
  await alice.send(xml('presence', { type: 'unavailable' }));
  await bob.next(isPresence(alice.jid, 'unavailable'));
  t.pass();
});

test('IQs across servers: ping, vCard, last activity and service discovery', async (t) => {
  const alice = await userOn(t, a, 'alice');
  const bob = await userOn(t, b, 'bob');
  await befriend(alice, bob);

  await alice.request(ping('b.example'));
  const vcard = xml('vCard', { xmlns: 'vcard-temp' }, xml('FN', {}, 'Bob Builder'));
  await bob.request(xml('iq', { type: 'set' }, vcard));
  const got = await alice.request(xml('iq', { type: 'get', to: bareOf(bob) }, xml('vCard', { xmlns: 'vcard-temp' })));
  t.is(got.getChild('vCard', 'vcard-temp')?.getChildText('FN'), 'Bob Builder');

  const last = await alice.request(xml('iq', { type: 'get', to: bareOf(bob) }, xml('query', { xmlns: 'jabber:iq:last' })));
  t.truthy(last.getChild('query', 'jabber:iq:last'));

  const info = await alice.request(xml('iq', { type: 'get', to: 'b.example' }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' })));
  const features = info.getChild('query')!.getChildren('feature').map((f) => f.attrs.var);
  t.true(features.includes('urn:xmpp:ping'));
  const pong = await bob.request(ping(alice.jid));
  t.is(pong.attrs.type, 'result', "a ping to Alice's client is answered by her client");
});

test("Bob on b.example joins a group at conference.a.example and chats with Alice's group", async (t) => {
  const alice = await userOn(t, a, 'alice');
  const bob = await userOn(t, b, 'bob');
  const room = freshRoom().replace('@conference.localhost', '@conference.a.example');
  await createInstantRoom(alice, room, 'Alice');
  await enter(bob, room, 'Bob');
  await alice.next(isPresence(`${room}/Bob`));
  await bob.send(groupchat(room, 'hello from b'));
  await alice.next(isGroupchat(`${room}/Bob`, 'hello from b'));
  await bob.next(isGroupchat(`${room}/Bob`, 'hello from b'));
  t.pass();
});

test('A message to a user who does not exist on the other server bounces back', async (t) => {
  const alice = await userOn(t, a, 'alice');
  await alice.send(chat('nobody@b.example', 'anyone?', { id: 'nobody-1' }));
  const error = await alice.next((s) => s.is('message') && s.attrs.id === 'nobody-1');
  t.is(error.attrs.type, 'error');
  t.is(errorCondition(error), 'service-unavailable');
  await settle(alice);
});

test('A message for a user who is offline on the other server waits there and is delivered when he logs in', async (t) => {
  const alice = await userOn(t, a, 'alice');
  const { bob } = await freshAccounts(b, 'bob');
  await alice.send(chat(`${bob}@b.example`, 'see you later', { id: 'offline-1' }));
  await settle(alice);
  t.deepEqual(alice.received.filter((s) => s.attrs.id === 'offline-1'), [], 'no error: the message is stored');
  const later = await loginForTest(t, b, bob, 'phone');
  await later.send(xml('presence'));
  const stored = await later.next((s) => s.is('message') && s.attrs.id === 'offline-1');
  t.is(stored.attrs.from, alice.jid);
});

test('Bob blocks Alice on the other server: her messages do not reach him', async (t) => {
  const alice = await userOn(t, a, 'alice');
  const bob = await userOn(t, b, 'bob');
  await bob.request(xml('iq', { type: 'set' }, xml('block', { xmlns: 'urn:xmpp:blocking' }, xml('item', { jid: bareOf(alice) }))));
  await alice.send(chat(bareOf(bob), 'hello?', { id: 'blocked-1' }));
  const error = await alice.next((s) => s.is('message') && s.attrs.id === 'blocked-1');
  t.is(error.attrs.type, 'error', 'XEP-0191 §3.4: the blocked sender gets an error');
  await settle(bob);
  t.deepEqual(bob.received.filter((s) => s.attrs.id === 'blocked-1'), []);
});

test("A message from the other server reaches all of Alice's devices with carbons (XEP-0280)", async (t) => {
  const alice = await userOn(t, a, 'alice');
  const tablet = await loginForTest(t, a, bareOf(alice).split('@')[0]!, 'tablet');
  await online(tablet);
  for (const device of [alice, tablet]) await device.request(xml('iq', { type: 'set' }, xml('enable', { xmlns: 'urn:xmpp:carbons:2' })));
  const bob = await userOn(t, b, 'bob');
  await bob.send(chat(alice.jid, 'to your phone', { id: 'carbon-1' }));
  await alice.next((s) => s.is('message') && s.attrs.id === 'carbon-1');
  const copy = await tablet.next((s) => s.is('message') && s.getChild('received', 'urn:xmpp:carbons:2') !== undefined);
  t.is(copy.getChild('received', 'urn:xmpp:carbons:2')?.getChild('forwarded')?.getChild('message')?.attrs.id, 'carbon-1');
});
