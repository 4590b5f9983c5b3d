// RFC 6121 §8.5 (and RFC 6120 §10): where the server delivers a stanza addressed to a local
// account, a full JID, nobody, or another domain. Real clients on real sockets.
import test from 'ava';
import type Element from 'ltx/lib/Element.js';
import { STANDARD_MODULES } from '../../src/config/schema.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { xml } from '../helpers/clients.js';
import {
  bare, chat, errorCondition, freshAccounts, iqFailure, messages, online, ping, settle, loginForTest,
} from '../helpers/conversation.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // the test server's certificate is self-signed

let server: TestServer;
test.before(async () => {
  // The standard modules without offline storage: these tests are about what happens when a
  // message cannot be delivered or stored (RFC 6121 §8.5.2.2: the sender is told).
  const modules = Object.fromEntries(STANDARD_MODULES.filter((name: string) => name !== 'offline').map((name) => [name, {}]));
  server = await startServer({ config: { modules } });
});
test.after.always(async () => server?.stop());

/** Logs a user in for the duration of one test. */
const isMessage = (body: string) => (s: Element) => s.is('message') && s.getChildText('body') === body;
const isError = (id: string) => (s: Element) => s.attrs.type === 'error' && s.attrs.id === id;

test('a chat message to a bare JID reaches every available resource of the account', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'phone');
  const bobPhone = await loginForTest(t, server, bob, 'phone');
  const bobLaptop = await loginForTest(t, server, bob, 'laptop');
  await online(bobPhone);
  await online(bobLaptop);

  await a.send(chat(bare(server, bob), 'Hi Bob'));

  const onPhone = await bobPhone.next(isMessage('Hi Bob'));
  const onLaptop = await bobLaptop.next(isMessage('Hi Bob'));
  t.is(onPhone.attrs.from, `${bare(server, alice)}/phone`);
  t.is(onLaptop.attrs.from, `${bare(server, alice)}/phone`);
  t.is(onPhone.attrs.to, bare(server, bob), 'the address is left as the sender wrote it');
});

test('a resource with negative priority does not get messages sent to the bare JID', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'phone');
  const bobDesk = await loginForTest(t, server, bob, 'desk');
  const bobBot = await loginForTest(t, server, bob, 'bot');
  await online(bobDesk, [xml('priority', {}, '5')]);
  await online(bobBot, [xml('priority', {}, '-1')]);

  await a.send(chat(bare(server, bob), 'for people only'));
  await a.send(chat(bobBot.jid, 'for the bot'));

  await bobDesk.next(isMessage('for people only'));
  // the bot gets what is addressed to it, sent after the bare-JID message, and nothing else
  await bobBot.next(isMessage('for the bot'));
  t.deepEqual(messages(bobBot).map((m) => m.getChildText('body')), ['for the bot']);
});

test("when Bob's only available resource has negative priority, a bare-JID message is handled as if he were offline", async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'phone');
  const bobBot = await loginForTest(t, server, bob, 'bot');
  await online(bobBot, [xml('priority', {}, '-5')]);

  // RFC 6121 §4.7.2.3 / §8.5.2.2: no offline storage yet, so the sender is told
  await a.send(chat(bare(server, bob), 'anyone there?', { id: 'm-negative-only' }));

  t.is(errorCondition(await a.next(isError('m-negative-only'))), 'service-unavailable');
  await a.request(ping(bobBot.jid));
  t.deepEqual(messages(bobBot), []);
});

test('a message to a full JID reaches only that resource', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'phone');
  const bobPhone = await loginForTest(t, server, bob, 'phone');
  const bobLaptop = await loginForTest(t, server, bob, 'laptop');
  await online(bobPhone);
  await online(bobLaptop);

  await a.send(chat(bobPhone.jid, 'only on your phone'));
  await a.send(chat(bobLaptop.jid, 'only on your laptop'));

  await bobPhone.next(isMessage('only on your phone'));
  await bobLaptop.next(isMessage('only on your laptop'));
  await settle(bobPhone);
  t.deepEqual(messages(bobPhone).map((m) => m.getChildText('body')), ['only on your phone']);
  t.deepEqual(messages(bobLaptop).map((m) => m.getChildText('body')), ['only on your laptop']);
});

test('a message to the full JID of a connected resource is delivered even before it sends presence', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'phone');
  const b = await loginForTest(t, server, bob, 'laptop'); // connected, not available

  // RFC 6121 §8.5.3.1: a full JID that matches a connected resource gets the stanza
  await a.send(chat(b.jid, 'straight to your laptop'));

  t.is((await b.next(isMessage('straight to your laptop'))).attrs.from, a.jid);
});

test("a chat message to an offline resource is delivered by the bare JID's rules", async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'phone');
  const bobPhone = await loginForTest(t, server, bob, 'phone');
  const bobLaptop = await loginForTest(t, server, bob, 'laptop');
  await online(bobPhone);
  await online(bobLaptop);

  // RFC 6121 §8.5.3.2.1: no such resource, so chat/normal go to the account as if sent to the bare JID
  await a.send(chat(`${bare(server, bob)}/tablet`, 'are you there?'));
  await a.send(xml('message', { to: `${bare(server, bob)}/tablet` }, xml('body', {}, 'a normal one')));

  for (const bobClient of [bobPhone, bobLaptop]) {
    const got = await bobClient.next(isMessage('are you there?'));
    t.is(got.attrs.from, a.jid);
    await bobClient.next(isMessage('a normal one'));
  }
  await settle(a);
  t.deepEqual(a.received.filter((s) => s.attrs.type === 'error'), [], 'no bounce');
});

test('a groupchat message to a user bounces, a headline to an offline resource is dropped', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'phone');
  const b = await loginForTest(t, server, bob, 'laptop');
  await online(b);

  // RFC 6121 §8.5.2.1.1: groupchat to a bare JID is never delivered; §8.5.3.2.1: to a missing resource neither
  await a.send(xml('message', { to: bare(server, bob), type: 'groupchat', id: 'gc-bare' }, xml('body', {}, 'room?')));
  await a.send(xml('message', { to: `${bare(server, bob)}/gone`, type: 'groupchat', id: 'gc-full' }, xml('body', {}, 'room?')));
  // headline to a missing resource: silently ignored
  await a.send(xml('message', { to: `${bare(server, bob)}/gone`, type: 'headline', id: 'headline' }, xml('body', {}, 'news')));

  t.is(errorCondition(await a.next(isError('gc-bare'))), 'service-unavailable');
  t.is(errorCondition(await a.next(isError('gc-full'))), 'service-unavailable');
  await a.request(ping(b.jid));
  await settle(a);
  t.deepEqual(messages(b), [], 'Bob got none of them');
  t.false(a.received.some(isError('headline')));
});

test('a message to an account that is connected but not available bounces with service-unavailable', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'phone');
  const b = await loginForTest(t, server, bob, 'laptop'); // connected, but never sent presence: not available

  await a.send(chat(bare(server, bob), 'hello?', { id: 'm-unavailable' }));

  const bounce = await a.next(isError('m-unavailable'));
  t.true(bounce.is('message'));
  t.is(errorCondition(bounce), 'service-unavailable');
  t.is(bounce.attrs.from, bare(server, bob));
  t.is(bounce.getChildText('body'), 'hello?', 'the error carries the original payload');
  // a ping from Alice to Bob's laptop passes everything sent to it before
  await a.request(ping(b.jid));
  t.deepEqual(messages(b), [], 'Bob did not get it');
});

test('a message to an account with no session at all bounces with service-unavailable (no offline storage yet)', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'phone');

  await a.send(chat(bare(server, bob), 'are you awake?', { id: 'm-offline' }));
  await a.send(chat(`${bare(server, bob)}/phone`, 'your phone?', { id: 'm-offline-full' }));

  const bounce = await a.next(isError('m-offline'));
  t.is(errorCondition(bounce), 'service-unavailable');
  t.is(bounce.attrs.from, bare(server, bob));
  const bounceFull = await a.next(isError('m-offline-full'));
  t.is(errorCondition(bounceFull), 'service-unavailable');
});

test("an IQ to a full JID is delivered to that resource and its result comes back to the sender", async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'phone');
  const b = await loginForTest(t, server, bob, 'laptop'); // IQs need a connected resource, not an available one

  const result = await a.request(xml('iq', { type: 'get', to: b.jid, id: 'ping-1' }, xml('ping', { xmlns: 'urn:xmpp:ping' })));

  t.is(result.attrs.type, 'result');
  t.is(result.attrs.from, b.jid);
  const atBob = b.received.find((s) => s.is('iq') && s.attrs.id === 'ping-1')!;
  t.is(atBob.attrs.from, a.jid, "Bob's client saw who asked");
});

test("an IQ error from the recipient's client reaches the sender", async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'phone');
  const b = await loginForTest(t, server, bob, 'laptop');

  // Bob's client does not know this namespace and says so (RFC 6120 §8.4)
  const condition = await iqFailure(a.request(xml('iq', { type: 'get', to: b.jid }, xml('query', { xmlns: 'urn:example:unknown' }))));
  t.is(condition, 'service-unavailable');
});

test('an IQ get or set to an offline full JID bounces with service-unavailable', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'phone');
  await loginForTest(t, server, bob, 'laptop');
  const gone = `${bare(server, bob)}/phone`;

  t.is(await iqFailure(a.request(ping(gone))), 'service-unavailable');
  t.is(await iqFailure(a.request(xml('iq', { type: 'set', to: gone }, xml('query', { xmlns: 'urn:example:thing' })))), 'service-unavailable');
  // nobody's account at all
  t.is(await iqFailure(a.request(ping(`nobody-here@${server.domain}/x`))), 'service-unavailable');
});

test("an IQ result to an offline full JID is dropped, not bounced", async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'phone');

  await a.send(xml('iq', { type: 'result', id: 'late-answer', to: `${bare(server, bob)}/phone` }));

  await settle(a);
  t.deepEqual(a.received.filter((s) => s.attrs.id === 'late-answer'), []);
});

test("a message without 'to' goes to the sender's own account, on every available resource", async (t) => {
  const { alice } = await freshAccounts(server, 'alice');
  const phone = await loginForTest(t, server, alice, 'phone');
  const laptop = await loginForTest(t, server, alice, 'laptop');
  await online(phone);
  await online(laptop);

  // RFC 6120 §10.3.1: as if addressed to the sender's bare JID
  await phone.send(xml('message', { type: 'chat' }, xml('body', {}, 'note to self')));

  const onLaptop = await laptop.next(isMessage('note to self'));
  t.is(onLaptop.attrs.from, phone.jid);
  const onPhone = await phone.next(isMessage('note to self'));
  t.is(onPhone.attrs.from, phone.jid);
});

test('200 messages arrive complete and in the order they were sent', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'phone');
  const b = await loginForTest(t, server, bob, 'laptop');
  await online(b);
  const count = 200;

  for (let i = 1; i <= count; i++) await a.send(chat(bare(server, bob), `message ${i}`));

  await b.next(isMessage(`message ${count}`), 20_000);
  const bodies = messages(b).map((m) => m.getChildText('body'));
  t.deepEqual(bodies, Array.from({ length: count }, (_, i) => `message ${i + 1}`));
});

test('a message to another domain bounces with remote-server-not-found (no federation yet)', async (t) => {
  const { alice } = await freshAccounts(server, 'alice');
  const a = await loginForTest(t, server, alice, 'phone');

  await a.send(chat('romeo@montague.example', 'wherefore art thou', { id: 'm-remote' }));
  const bounce = await a.next(isError('m-remote'));
  t.true(bounce.is('message'));
  t.is(errorCondition(bounce), 'remote-server-not-found');
  t.is(bounce.attrs.from, 'romeo@montague.example');

  t.is(await iqFailure(a.request(ping('montague.example'))), 'remote-server-not-found');
});

test("messages of type 'error' never produce bounces", async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'phone');
  await loginForTest(t, server, bob, 'laptop'); // connected, not available
  const error = (to: string, id: string) =>
    xml('message', { to, type: 'error', id }, xml('error', { type: 'cancel' }, xml('service-unavailable', { xmlns: 'urn:ietf:params:xml:ns:xmpp-stanzas' })));

  // RFC 6120 §8.3.1: an entity that receives an error stanza MUST NOT respond with another error
  await a.send(error(bare(server, bob), 'e-unavailable'));
  await a.send(error(`${bare(server, bob)}/gone`, 'e-offline-resource'));
  await a.send(error(`nobody-here@${server.domain}`, 'e-no-account'));
  await a.send(error('romeo@montague.example', 'e-remote'));
  // a message that does bounce, sent last, proves the others had their chance to
  await a.send(chat(`nobody-here@${server.domain}`, 'anyone?', { id: 'marker' }));

  await a.next(isError('marker'));
  await settle(a);
  t.deepEqual(a.received.filter((s) => s.is('message')).map((s) => s.attrs.id), ['marker']);
});
