// Overload shedding (the brief: under excessive load, messages keep flowing and the rest gives
// way). Bob's phone is a raw XEP-0198 client that stops acknowledging, as a phone on a dying link
// does: past the server's (here test-low) threshold of unacknowledged stanzas it counts as a
// recipient that cannot keep up. Every message with a body and every IQ still reaches it at once;
// receipts wait, typing notifications and presence changes are coalesced to the latest per
// contact, and all of that arrives once the phone catches up.
import test, { type ExecutionContext } from 'ava';
import type Element from 'ltx/lib/Element.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { xml, type TestClient } from '../helpers/clients.js';
import { chat, freshAccounts, isPresence, makeFriends, online, ping, settle, loginForTest } from '../helpers/conversation.js';
import { NS_CHATSTATES, SmClient } from '../helpers/sm-client.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // the test server's certificate is self-signed

const NS_RECEIPTS = 'urn:xmpp:receipts';
const NS_MARKERS = 'urn:xmpp:chat-markers:0';
/** Past this many stanzas the phone has not acknowledged, the server treats it as overloaded. */
const UNACKED = 3;

let server: TestServer;
let quiet: TestServer;
test.before(async () => {
  server = await startServer({ config: { c2s: { overload: { event_loop_lag: 'never', unacked: UNACKED } } } });
  quiet = await startServer({ config: { c2s: { overload: { shedding: false, unacked: UNACKED } } } });
});
test.after.always(async () => Promise.all([server?.stop(), quiet?.stop()]));

const typing = (to: string, state: string) => xml('message', { to, type: 'chat' }, xml(state, { xmlns: NS_CHATSTATES }));
const receipt = (to: string, id: string) => xml('message', { to }, xml('received', { xmlns: NS_RECEIPTS, id }));
const displayed = (to: string, id: string) => xml('message', { to, type: 'chat' }, xml('displayed', { xmlns: NS_MARKERS, id }));
const show = (value: string) => xml('presence', {}, xml('show', {}, value));

const isStanza = (e: Element) => e.is('message') || e.is('presence') || e.is('iq');
const chatStateOf = (e: Element) => e.getChildElements().find((c) => c.attrs.xmlns === NS_CHATSTATES)?.name;
const isReceipt = (e: Element) => e.is('message') && (e.getChild('received', NS_RECEIPTS) ?? e.getChild('displayed', NS_MARKERS)) !== undefined;
const body = (text: string) => (e: Element) => e.is('message') && e.getChildText('body') === text;

/**
 * Bob's phone (raw, never acknowledging) with his contacts Alice and Carol online; by the time it
 * returns, the phone holds more unacknowledged stanzas than the server's threshold.
 */
async function behindPhone(t: ExecutionContext, on: TestServer): Promise<{ a: TestClient; c: TestClient; b: SmClient; mark: number }> {
  const { alice, bob, carol } = await freshAccounts(on, 'alice', 'bob', 'carol');
  await makeFriends(on, alice, bob);
  await makeFriends(on, carol, bob);
  const a = await loginForTest(t, on, alice, 'desk');
  const c = await loginForTest(t, on, carol, 'laptop');
  await online(a);
  await online(c);
  const b = await SmClient.login(on, bob, 'phone');
  t.teardown(() => b.cut());
  await b.enable(false);
  await b.online();
  await b.next(isPresence(a.jid));
  await b.next(isPresence(c.jid));
  for (let i = 1; i <= UNACKED; i++) await a.send(chat(b.jid, `before ${i}`));
  await b.next(body(`before ${UNACKED}`));
  t.true(b.handled > UNACKED, 'the phone has not acknowledged more than the threshold');
  return { a, c, b, mark: b.received.length };
}

/** What Alice and Carol send while the phone is behind: two messages among everything else. */
async function busyContacts(a: TestClient, c: TestClient, b: SmClient): Promise<void> {
  await a.send(typing(b.jid, 'composing'));
  await a.send(chat(b.jid, 'first'));
  await a.send(receipt(b.jid, 'm1'));
  await a.send(show('away'));
  await a.send(typing(b.jid, 'paused'));
  await c.send(show('xa'));
  await a.send(displayed(b.jid, 'm2'));
  await a.send(show('dnd'));
  await settle(c);
  await a.send(chat(b.jid, 'second'));
}

test('a recipient that cannot keep up gets every message at once while receipts, typing and presence wait', async (t) => {
  const shedding = server.server.c2sShedding()!;
  const before = shedding.shedCounts();
  const { a, c, b, mark } = await behindPhone(t, server);

  await busyContacts(a, c, b);
  await b.next(body('second'));
  const answered = a.request(ping(b.jid)); // an IQ is never held
  b.answer(await b.next((e) => e.is('iq') && e.attrs.type === 'get'));
  await answered;

  const arrived = b.received.slice(mark).filter(isStanza);
  t.deepEqual(b.bodies().slice(-2), ['first', 'second'], 'both messages arrived, in order');
  t.deepEqual(arrived.filter((e) => !e.is('iq')).map((e) => e.getChildText('body')), ['first', 'second'], 'nothing else yet');
  const shed = shedding.shedCounts();
  const delta = (key: string) => shed[key]! - before[key]!;
  t.is(delta('receipt/delayed'), 2);
  t.is(delta('chat_state/delayed'), 1);
  t.is(delta('chat_state/coalesced'), 1, 'paused replaced composing');
  t.is(delta('presence/delayed'), 2, "Alice's and Carol's");
  t.is(delta('presence/coalesced'), 1, "Alice's dnd replaced her away");
  t.is(delta('receipt/dropped') + delta('chat_state/dropped') + delta('presence/dropped'), 0);
  const exposition = await server.server.metrics.registry.metrics();
  t.regex(exposition, /xmppd_shed_stanzas_total\{class="chat_state",action="coalesced"\} [1-9]/);

  // the phone catches up: what was held arrives, the latest of each contact only
  b.ack();
  await b.next(isPresence(a.jid));
  await b.next((e) => e.is('message') && chatStateOf(e) === 'paused');
  await b.requestAck();
  const released = b.received.slice(mark).filter(isStanza).filter((e) => !e.is('iq') && !e.getChild('body'));
  t.deepEqual(released.filter(isPresence(a.jid)).map((p) => p.getChildText('show')), ['dnd']);
  t.deepEqual(released.filter(isPresence(c.jid)).map((p) => p.getChildText('show')), ['xa']);
  t.deepEqual(released.filter((e) => chatStateOf(e) !== undefined).map(chatStateOf), ['paused']);
  t.deepEqual(released.filter(isReceipt).map((e) => (e.getChild('received', NS_RECEIPTS) ?? e.getChild('displayed', NS_MARKERS))!.attrs.id), ['m1', 'm2']);
  t.is(released.length, 5);
});

test('past what a session may hold, typing notifications are dropped and counted, never a message', async (t) => {
  const small = await startServer({ config: { c2s: { overload: { event_loop_lag: 'never', unacked: UNACKED, max_held: 2 } } } });
  t.teardown(() => small.stop());
  const { a, b, mark } = await behindPhone(t, small);
  const shedding = small.server.c2sShedding()!;

  for (let i = 0; i < 5; i++) {
    await a.send(receipt(b.jid, `r${i}`));
    await a.send(chat(b.jid, `message ${i}`));
  }
  await b.next(body('message 4'));

  t.deepEqual(b.bodies().slice(-5), ['message 0', 'message 1', 'message 2', 'message 3', 'message 4']);
  t.is(shedding.shedCounts()['receipt/delayed'], 2);
  t.is(shedding.shedCounts()['receipt/dropped'], 3);
  t.deepEqual(b.received.slice(mark).filter(isReceipt), []);
});

test('with shedding off, a recipient that is behind gets everything as it comes', async (t) => {
  const { a, c, b, mark } = await behindPhone(t, quiet);
  t.is(quiet.server.c2sShedding(), null);

  await busyContacts(a, c, b);
  await b.next(body('second'));
  await b.next(isPresence(a.jid));
  await b.requestAck();

  const arrived = b.received.slice(mark).filter(isStanza);
  t.is(arrived.filter((e) => chatStateOf(e) !== undefined).length, 2);
  t.is(arrived.filter(isReceipt).length, 2);
  t.is(arrived.filter(isPresence(a.jid)).length, 2);
});

test('while the server is saturated, typing notifications and receipts a client sends are given up as they arrive, messages never; stream management still counts them', async (t) => {
  const busy = await startServer({ config: { c2s: { overload: { event_loop_lag: 'never', unacked: UNACKED } } } });
  t.teardown(() => busy.stop());
  const shedding = busy.server.c2sShedding()!;
  const { alice, bob } = await freshAccounts(busy, 'alice', 'bob');
  await makeFriends(busy, alice, bob);
  const b = await loginForTest(t, busy, bob, 'desk');
  await online(b);
  const a = await SmClient.login(busy, alice, 'phone');
  t.teardown(() => a.cut());
  await a.enable(false);
  await a.online();
  const before = shedding.shedCounts();
  shedding.lagging = true; // as when input waits for later turns in most turns (src/c2s/input-turn.ts)
  try {
    a.stanza(`<message to='${b.jid}' type='chat'><composing xmlns='${NS_CHATSTATES}'/></message>`);
    a.chat(b.jid, 'first');
    a.stanza(`<message to='${b.jid}'><received xmlns='${NS_RECEIPTS}' id='m1'/></message>`);
    a.stanza(`<message to='${b.jid}' type='chat'><displayed xmlns='${NS_MARKERS}' id='m2'/></message>`);
    a.chat(b.jid, 'second');
    t.is(await a.requestAck(), a.sent, 'every stanza acknowledged, the dropped ones too');
    await b.next(body('second'));
    await settle(b);
  } finally {
    shedding.lagging = false;
  }
  const fromAlice = b.received.filter((e) => e.is('message') && e.attrs.from?.startsWith(a.jid.split('/')[0]!));
  t.deepEqual(fromAlice.map((e) => e.getChildText('body')), ['first', 'second'], 'the messages, and nothing else');
  const shed = shedding.shedCounts();
  t.is(shed['chat_state/dropped']! - before['chat_state/dropped']!, 1);
  t.is(shed['receipt/dropped']! - before['receipt/dropped']!, 2);
});
