// XEP-0160 offline messages: what is kept for a user who is away, and how it is handed over.
import test from 'ava';
import { startServer, type TestServer } from '../helpers/server.js';
import { xml } from '../helpers/clients.js';
import { loginRaw } from '../helpers/wire.js';
import { bare, chat, errorCondition, freshAccounts, login, messages, online, settle, loginForTest } from '../helpers/conversation.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';

const NS_RECEIPTS = 'urn:xmpp:receipts';
const NS_MARKERS = 'urn:xmpp:chat-markers:0';

let server: TestServer;
test.before(async () => {
  server = await startServer({ config: { c2s: { resume_timeout: '2s' }, modules: { roster: {}, presence: {}, offline: { max_messages: 5 }, register: {}, disco: {}, ping: {} } } });
});
test.after.always(async () => server?.stop());

const delayOf = (s: { getChild(name: string, ns?: string): { attrs: Record<string, string> } | undefined }) => s.getChild('delay', 'urn:xmpp:delay');

test('messages sent while Bob is offline arrive in order, with delay stamps, when he comes online', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'phone');
  for (let i = 1; i <= 3; i++) await a.send(chat(bare(server, bob), `while you were out ${i}`));
  await settle(a);
  t.deepEqual(a.received.filter((s) => s.attrs.type === 'error'), [], 'nothing bounced: the messages were stored');

  const b = await loginForTest(t, server, bob, 'laptop');
  await online(b);
  for (let i = 1; i <= 3; i++) await b.next((s) => s.is('message') && s.getChildText('body') === `while you were out ${i}`);
  const got = messages(b);
  t.deepEqual(got.map((m) => m.getChildText('body')), ['while you were out 1', 'while you were out 2', 'while you were out 3']);
  for (const m of got) {
    t.is(m.attrs.from, a.jid);
    t.is(delayOf(m)?.attrs.from, server.domain);
    t.regex(delayOf(m)?.attrs.stamp ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
  }
});

test('delivered offline messages are not delivered again at the next login', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'phone');
  await a.send(chat(bare(server, bob), 'just once'));
  await settle(a);
  const first = await login(server, bob, 'laptop');
  await online(first);
  await first.next((s) => s.is('message'));
  await settle(first); // our ack (or the write) has reached the server
  await first.stop();

  const second = await loginForTest(t, server, bob, 'laptop');
  await online(second);
  await settle(second);
  t.deepEqual(messages(second), []);
});

test('messages handed over on a connection that dies before the client acknowledges them are kept', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'phone');
  await a.send(chat(bare(server, bob), 'do not lose me'));
  await settle(a);

  // Bob's phone enables stream management with resumption, receives the message, never acks it,
  // and loses its network.
  const { wire } = await loginRaw(server, bob, 'phone');
  wire.write(`<enable xmlns='urn:xmpp:sm:3' resume='true'/>`);
  await wire.waitFor(/<enabled /);
  wire.write('<presence/>');
  await wire.waitFor(/do not lose me/);
  wire.close();

  // Bob's laptop comes online meanwhile: the phone's session may still resume, so nothing yet...
  const b = await loginForTest(t, server, bob, 'laptop');
  await online(b);
  // ...but once the phone's resumption window ends, the message is not lost: the laptop gets it
  const again = await b.next((s) => s.is('message') && s.getChildText('body') === 'do not lose me', 15000);
  t.truthy(delayOf(again));
});

test('chat states alone are not stored; no-store hints are honoured; receipts and markers are stored', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'phone');
  const to = bare(server, bob);
  await a.send(xml('message', { to, type: 'chat' }, xml('composing', { xmlns: 'http://jabber.org/protocol/chatstates' })));
  await a.send(xml('message', { to, type: 'chat' }, xml('body', {}, 'ephemeral'), xml('no-store', { xmlns: 'urn:xmpp:hints' })));
  await a.send(xml('message', { to, type: 'chat', id: 'r1' }, xml('received', { xmlns: NS_RECEIPTS, id: 'orig-1' })));
  await a.send(xml('message', { to, type: 'chat', id: 'm1' }, xml('displayed', { xmlns: NS_MARKERS, id: 'orig-1' })));
  await settle(a);
  t.deepEqual(a.received.filter((s) => s.attrs.type === 'error'), [], 'nothing bounced');

  const b = await loginForTest(t, server, bob, 'laptop');
  await online(b);
  const receipt = await b.next((s) => s.is('message') && s.attrs.id === 'r1');
  const marker = await b.next((s) => s.is('message') && s.attrs.id === 'm1');
  t.is(receipt.getChild('received', NS_RECEIPTS)?.attrs.id, 'orig-1');
  t.is(receipt.attrs.from, a.jid, 'the receipt is the one the sender\'s client made, not forged by the server');
  t.is(marker.getChild('displayed', NS_MARKERS)?.attrs.id, 'orig-1');
  await settle(b);
  t.deepEqual(messages(b).map((m) => m.attrs.id), ['r1', 'm1']);
});

test('when Bob\'s offline storage is full, senders get resource-constraint', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'phone');
  for (let i = 1; i <= 5; i++) await a.send(chat(bare(server, bob), `fits ${i}`));
  await a.send(chat(bare(server, bob), 'one too many', { id: 'overflow' }));
  const error = await a.next((s) => s.is('message') && s.attrs.type === 'error');
  t.is(error.attrs.id, 'overflow');
  t.is(errorCondition(error), 'resource-constraint');

  const b = await loginForTest(t, server, bob, 'laptop');
  await online(b);
  await b.next((s) => s.is('message') && s.getChildText('body') === 'fits 5');
  t.is(messages(b).length, 5);
});

test('a login with negative priority does not take the offline messages; the next available one does', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'phone');
  await a.send(chat(bare(server, bob), 'for a real client'));
  await settle(a);
  const bot = await loginForTest(t, server, bob, 'bot');
  await online(bot, [xml('priority', {}, '-1')]);
  await settle(bot);
  t.deepEqual(messages(bot), []);
  const b = await loginForTest(t, server, bob, 'laptop');
  await online(b);
  await b.next((s) => s.is('message') && s.getChildText('body') === 'for a real client');
  t.pass();
});

test('a message to an account that does not exist still bounces', async (t) => {
  const { alice } = await freshAccounts(server, 'alice');
  const a = await loginForTest(t, server, alice, 'phone');
  await a.send(chat(`nobody-${Date.now()}@${server.domain}`, 'hello?', { id: 'void' }));
  const error = await a.next((s) => s.is('message') && s.attrs.type === 'error');
  t.is(errorCondition(error), 'service-unavailable');
});

test('offline messages survive a server restart', async (t) => {
  const restartable = await startServer();
  const dataDir = restartable.dataDir;
  await restartable.createAccount('carol');
  await restartable.createAccount('dave');
  const c = await login(restartable, 'carol', 'phone');
  await c.send(chat(`dave@${restartable.domain}`, 'see you after the restart'));
  await settle(c);
  await restartable.stop();

  const again = await startServer({ dataDir });
  t.teardown(() => again.stop());
  const d = await login(again, 'dave', 'laptop');
  await online(d);
  const got = await d.next((s) => s.is('message'));
  t.is(got.getChildText('body'), 'see you after the restart');
});

test('a burst written at once is stored in order, within the quota, and acknowledged (XEP-0198) once stored', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const to = bare(server, bob);
  const { wire } = await loginRaw(server, alice, 'phone');
  wire.write(`<enable xmlns='urn:xmpp:sm:3'/>`);
  await wire.waitFor(/<enabled /);
  // six messages in one TCP write: they reach the store in one turn and share its commits;
  // the quota (5 here) still refuses the sixth
  const burst = Array.from({ length: 6 }, (_, i) => `<message type='chat' to='${to}' id='burst-${i + 1}'><body>burst ${i + 1}</body></message>`).join('');
  wire.write(burst + `<r xmlns='urn:xmpp:sm:3'/>`);
  await wire.waitFor(/<a xmlns=['"]urn:xmpp:sm:3['"] h=['"]6['"]/);
  await wire.waitFor(/id=['"]burst-6['"][^>]*type=['"]error['"]|type=['"]error['"][^>]*id=['"]burst-6['"]/);
  wire.close();

  const b = await loginForTest(t, server, bob, 'laptop');
  await online(b);
  await b.next((s) => s.is('message') && s.getChildText('body') === 'burst 5');
  await settle(b);
  t.deepEqual(messages(b).map((m) => m.getChildText('body')), ['burst 1', 'burst 2', 'burst 3', 'burst 4', 'burst 5']);
});
