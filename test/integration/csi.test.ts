// XEP-0352 Client State Indication: a phone in a pocket says it is inactive, and the server holds
// back what can wait (contacts' presence changes, typing notifications) until something that
// matters arrives or the phone is active again. Bob's phone is a raw client; to show that nothing
// arrived it asks for a stream-management ack (<r/>), a round trip that is not a stanza and so
// wakes nothing, where an IQ ping would flush the held stanzas in front of its answer.
import test, { type ExecutionContext } from 'ava';
import type Element from 'ltx/lib/Element.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { xml, type TestClient } from '../helpers/clients.js';
import {
  bare, chat, freshAccounts, isPresence, makeFriends, online, ping, presence, settle, loginForTest,
} from '../helpers/conversation.js';
import { NS_CHATSTATES, NS_CSI, NS_SM, SmClient } from '../helpers/sm-client.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // the test server's certificate is self-signed

let server: TestServer;
test.before(async () => {
  server = await startServer();
});
test.after.always(async () => server?.stop());

function typing(to: string, state: 'composing' | 'paused' | 'active'): Element {
  return xml('message', { to, type: 'chat' }, xml(state, { xmlns: NS_CHATSTATES }));
}

function show(value: string, status?: string): Element {
  return xml('presence', {}, xml('show', {}, value), status === undefined ? null : xml('status', {}, status));
}

const isStanza = (e: Element) => e.is('message') || e.is('presence') || e.is('iq');
const chatStateOf = (e: Element) => e.getChildElements().find((c) => c.attrs.xmlns === NS_CHATSTATES)?.name;
const body = (text: string) => (e: Element) => e.is('message') && e.getChildText('body') === text;

/**
 * Bob's phone (raw, with acks) and his contacts Alice and Carol, all online and with each other's
 * presence; then the phone says it is inactive. Returns where the phone's received list stood then.
 */
async function inactivePhone(t: ExecutionContext, resume = false): Promise<{ a: TestClient; c: TestClient; b: SmClient; previd: string; mark: number }> {
  const { alice, bob, carol } = await freshAccounts(server, 'alice', 'bob', 'carol');
  await makeFriends(server, alice, bob);
  await makeFriends(server, carol, bob);
  const a = await loginForTest(t, server, alice, 'desk');
  const c = await loginForTest(t, server, carol, 'laptop');
  await online(a);
  await online(c);
  const b = await SmClient.login(server, bob, 'phone');
  t.teardown(() => b.cut());
  const enabled = await b.enable(resume);
  await b.online();
  await b.next(isPresence(a.jid));
  await b.next(isPresence(c.jid));
  await a.next(isPresence(b.jid));

  b.nonza(`<inactive xmlns='${NS_CSI}'/>`);
  await b.requestAck(); // the server has taken note before anything else happens
  return { a, c, b, previd: enabled.attrs.id ?? '', mark: b.received.length };
}

/** Stanzas the phone received since `mark`. */
function stanzasSince(b: SmClient, mark: number): Element[] {
  return b.received.slice(mark).filter(isStanza);
}

test('client state indication is offered once the client has authenticated', async (t) => {
  const { bob } = await freshAccounts(server, 'bob');
  const client = await SmClient.authenticate(server, bob);
  t.teardown(() => client.cut());

  t.truthy(client.features?.getChild('csi', NS_CSI));
});

test('while the phone is inactive, presence changes and typing wait for the next real message, which they precede in order', async (t) => {
  const { a, c, b, mark } = await inactivePhone(t);

  await a.send(show('away'));
  await a.send(typing(b.jid, 'composing'));
  await a.send(show('dnd', 'In a meeting'));
  await c.send(show('xa'));
  await a.send(typing(b.jid, 'paused'));
  await Promise.all([settle(a), settle(c)]);

  await b.requestAck();
  t.deepEqual(stanzasSince(b, mark), [], 'nothing woke the phone');

  await a.send(chat(b.jid, 'Call me when you can'));
  await b.next(body('Call me when you can'));

  const arrived = stanzasSince(b, mark);
  t.true(body('Call me when you can')(arrived.at(-1)!), 'the held stanzas come first');
  t.deepEqual(arrived.filter((e) => e.is('message') && chatStateOf(e) !== undefined).map(chatStateOf), ['composing', 'paused']);
  const fromAlice = arrived.filter(isPresence(a.jid));
  t.is(fromAlice.length, 1, "only Alice's latest presence");
  t.is(fromAlice[0]!.getChildText('show'), 'dnd');
  t.is(fromAlice[0]!.getChildText('status'), 'In a meeting');
  const fromCarol = arrived.filter(isPresence(c.jid));
  t.deepEqual(fromCarol.map((p) => p.getChildText('show')), ['xa']);
  t.is(arrived.length, 5);
});

test('becoming active delivers what was held, before the answer to what the phone sends next', async (t) => {
  const { a, b, mark } = await inactivePhone(t);
  await a.send(show('away', 'Lunch'));
  await a.send(typing(b.jid, 'composing'));
  await settle(a);
  await b.requestAck();
  t.deepEqual(stanzasSince(b, mark), []);

  b.nonza(`<active xmlns='${NS_CSI}'/>`);
  await b.settle(); // XEP-0352 §5.1: the state changes before the next request is handled

  const arrived = stanzasSince(b, mark);
  t.is(arrived.length, 3);
  t.is(arrived[0]!.getChildText('status'), 'Lunch');
  t.is(chatStateOf(arrived[1]!), 'composing');
  t.true(arrived[2]!.is('iq') && arrived[2]!.attrs.type === 'result', 'then the answer to the ping');

  // and from now on nothing waits
  await a.send(typing(b.jid, 'paused'));
  await b.next((e) => e.is('message') && chatStateOf(e) === 'paused');
  t.pass();
});

test('IQs are never held: an inactive phone answers requests at once', async (t) => {
  const { a, b, mark } = await inactivePhone(t);

  const answered = a.request(ping(b.jid));
  const request = await b.next((e) => e.is('iq') && e.attrs.type === 'get');
  b.answer(request);

  t.is((await answered).attrs.type, 'result');
  t.deepEqual(stanzasSince(b, mark), [request]);
});

test('a subscription request is not held: it wants an answer', async (t) => {
  const { b, mark } = await inactivePhone(t);
  const { dave } = await freshAccounts(server, 'dave');
  const d = await loginForTest(t, server, dave, 'desk');

  await d.send(presence('subscribe', b.jid.split('/')[0]!));

  await b.next(isPresence(bare(server, dave), 'subscribe'));
  t.is(stanzasSince(b, mark).length, 1);
});

test('a resumed stream starts active: what was held arrives without <active/>', async (t) => {
  const { a, b, previd, mark } = await inactivePhone(t, true);
  await a.send(show('away', 'Held while the phone was inactive'));
  await settle(a);
  await b.requestAck();
  t.deepEqual(stanzasSince(b, mark), []);
  b.cut();

  const { client: back, answer } = await SmClient.resume(server, b.jid.split('@')[0]!, previd, b.handled, b.jid);
  t.teardown(() => back.cut());
  t.true(answer.is('resumed', NS_SM));

  // XEP-0352 §4: "A stream always begins in 'active' state"
  const held = await back.next(isPresence(a.jid));
  t.is(held.getChildText('status'), 'Held while the phone was inactive');
});
