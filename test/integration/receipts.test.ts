// The ticks: delivery receipts (XEP-0184) and chat markers (XEP-0333) travel from the
// recipient's client to the sender's, to the right device; the server never makes them up.
import test from 'ava';
import { startServer, type TestServer } from '../helpers/server.js';
import { xml } from '../helpers/clients.js';
import {
  bare, freshAccounts, messages, online, settle, loginForTest,
} from '../helpers/conversation.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
const NS_RECEIPTS = 'urn:xmpp:receipts';
const NS_MARKERS = 'urn:xmpp:chat-markers:0';

let server: TestServer;
test.before(async () => {
  server = await startServer();
});
test.after.always(async () => server?.stop());

test("Bob's phone acknowledges Alice's message; the receipt reaches the laptop Alice sent it from", async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const laptop = await loginForTest(t, server, alice, 'laptop');
  const phone = await loginForTest(t, server, alice, 'phone');
  await online(laptop);
  await online(phone);
  const b = await loginForTest(t, server, bob, 'phone');
  await online(b);

  await laptop.send(xml('message', { to: bare(server, bob), type: 'chat', id: 'hello-1' },
    xml('body', {}, 'Hello'), xml('request', { xmlns: NS_RECEIPTS }), xml('markable', { xmlns: NS_MARKERS })));
  const got = await b.next((s) => s.is('message') && s.attrs.id === 'hello-1');
  t.truthy(got.getChild('request', NS_RECEIPTS), 'the request is passed on untouched');

  // delivered tick, then read tick, both to the full JID the message came from
  await b.send(xml('message', { to: got.attrs.from!, id: 'rcpt-1' }, xml('received', { xmlns: NS_RECEIPTS, id: 'hello-1' })));
  await b.send(xml('message', { to: got.attrs.from!, type: 'chat', id: 'mark-1' }, xml('displayed', { xmlns: NS_MARKERS, id: 'hello-1' })));
  const receipt = await laptop.next((s) => s.is('message') && s.attrs.id === 'rcpt-1');
  const marker = await laptop.next((s) => s.is('message') && s.attrs.id === 'mark-1');
  t.is(receipt.getChild('received', NS_RECEIPTS)?.attrs.id, 'hello-1');
  t.is(receipt.attrs.from, b.jid);
  t.is(marker.getChild('displayed', NS_MARKERS)?.attrs.id, 'hello-1');
  await settle(phone);
  t.deepEqual(messages(phone), [], "Alice's phone did not get Bob's ticks meant for the laptop");
});

test('the server never sends a receipt on behalf of a client, even when it stores the message offline', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'laptop');
  await online(a);
  await a.send(xml('message', { to: bare(server, bob), type: 'chat', id: 'nobody-home' }, xml('body', {}, 'Hi'), xml('request', { xmlns: NS_RECEIPTS })));
  await settle(a);
  t.deepEqual(a.received.filter((s) => s.is('message')), [], 'no receipt, no error: the message waits offline');

  // when Bob comes online he gets the request and his client answers it
  const b = await loginForTest(t, server, bob, 'phone');
  await online(b);
  const got = await b.next((s) => s.is('message') && s.attrs.id === 'nobody-home');
  t.truthy(got.getChild('request', NS_RECEIPTS));
  await b.send(xml('message', { to: got.attrs.from!, id: 'late-receipt' }, xml('received', { xmlns: NS_RECEIPTS, id: 'nobody-home' })));
  const receipt = await a.next((s) => s.is('message') && s.attrs.id === 'late-receipt');
  t.is(receipt.attrs.from, b.jid);
});
