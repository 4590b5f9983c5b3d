// XEP-0198 Stream Management (v1.6): acknowledgements and resumption, as a phone on a flaky
// network lives them. Bob's phone is a raw client that acks exactly what the test says and whose
// TCP connection the test cuts; Alice is an ordinary @xmpp/client.
import test, { type ExecutionContext } from 'ava';
import type Element from 'ltx/lib/Element.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { RawClient } from '../helpers/clients.js';
import {
  bare, chat, freshAccounts, isPresence, login, makeFriends, messages, online, presencesFrom, settle, loginForTest } from '../helpers/conversation.js';
import { authenticatePlain, openStream } from '../helpers/wire.js';
import { NS_SM, SmClient, failedCondition } from '../helpers/sm-client.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // the test server's certificate is self-signed

const NS_DELAY = 'urn:xmpp:delay';

/** The default configuration: a session may be resumed for five minutes. */
let server: TestServer;
/** A two-second resumption window, for what happens when it ends. */
let brief: TestServer;
/** Pings clients after one second of silence and gives up on them one second later. */
let pinging: TestServer;

test.before(async () => {
  [server, brief, pinging] = await Promise.all([
    startServer(),
    startServer({ config: { c2s: { resume_timeout: '2s', resume_timeout_push: '1m' } } }),
    startServer({ config: { c2s: { ping_interval: '1s', ping_timeout: '1s' } } }),
  ]);
});
test.after.always(async () => {
  await Promise.all([server?.stop(), brief?.stop(), pinging?.stop()]);
});

/** An @xmpp/client user for the duration of one test. */
/** A raw stream-management client, bound to `resource`, for the duration of one test. */
async function phone(t: ExecutionContext, on: TestServer, username: string, resource = 'phone'): Promise<SmClient> {
  const client = await SmClient.login(on, username, resource);
  t.teardown(() => client.cut());
  return client;
}

/**
 * Alice and Bob are contacts; Alice is online at her desk, Bob on a phone with stream management
 * enabled, and Alice has seen the phone come online.
 */
async function contactsWithPhone(t: ExecutionContext, on: TestServer) {
  const { alice, bob } = await freshAccounts(on, 'alice', 'bob');
  await makeFriends(on, alice, bob);
  const a = await loginForTest(t, on, alice, 'desk');
  await online(a);
  const b = await phone(t, on, bob);
  const enabled = await b.enable();
  await b.online();
  await a.next(isPresence(b.jid));
  return { alice, bob, a, b, enabled };
}

/** Bob's phone comes back on a new connection and asks to resume; torn down with the test. */
async function resume(t: ExecutionContext, on: TestServer, username: string, previd: string, h: number, jid = ''): Promise<{ client: SmClient; answer: Element }> {
  const result = await SmClient.resume(on, username, previd, h, jid);
  t.teardown(() => result.client.cut());
  return result;
}

const body = (text: string) => (e: Element) => e.is('message') && e.getChildText('body') === text;

// --- enabling ----------------------------------------------------------------------------------

test('stream management is offered once the client has authenticated, not before', async (t) => {
  const { bob } = await freshAccounts(server, 'bob');
  const wire = await RawClient.open(server);
  t.teardown(() => wire.close());

  const before = await openStream(wire, server.domain);
  t.is(before.getChild('sm', NS_SM), undefined, 'XEP-0198 §2: not before authentication');

  t.is((await authenticatePlain(wire, bob)).outcome, 'success');
  const after = await openStream(wire, server.domain);
  t.truthy(after.getChild('sm', NS_SM));
});

test('enabling before binding a resource fails with unexpected-request, and binding still works', async (t) => {
  const { bob } = await freshAccounts(server, 'bob');
  const client = await SmClient.authenticate(server, bob);
  t.teardown(() => client.cut());

  const answer = await client.enable();

  t.true(answer.is('failed', NS_SM));
  t.is(failedCondition(answer), 'unexpected-request');
  t.is(await client.bind('phone'), `${bare(server, bob)}/phone`);
  t.true((await client.enable()).is('enabled', NS_SM), 'enabling after binding works');
});

test('enabling with resumption gives an id, resume and the window in seconds', async (t) => {
  const { bob } = await freshAccounts(server, 'bob');
  const b = await phone(t, server, bob);

  const enabled = await b.enable();

  t.true(enabled.is('enabled', NS_SM));
  t.true((enabled.attrs.id ?? '').length >= 16, 'an unguessable resumption id');
  t.true(enabled.attrs.resume === 'true' || enabled.attrs.resume === '1');
  t.is(enabled.attrs.max, '300', 'the default five-minute window');
});

// --- acks --------------------------------------------------------------------------------------

test("the server answers <r/> with the number of the client's stanzas it has handled", async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'desk');
  const b = await phone(t, server, bob);
  await b.enable();

  t.is(await b.requestAck(), 0, 'nothing sent since <enable/>');

  b.chat(a.jid, 'one');
  b.chat(a.jid, 'two');
  t.is(await b.requestAck(), 2);
  await a.next(body('two'));

  b.presence();
  await b.settle(); // an IQ to the server and its answer
  t.is(await b.requestAck(), 4);
  t.is(b.sent, 4);
});

test('the server asks for acks after sending stanzas and forgets the ones acknowledged', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'desk');
  const b = await phone(t, server, bob);
  const enabled = await b.enable();

  await a.send(chat(b.jid, 'first'));
  await a.send(chat(b.jid, 'second'));
  const second = await b.next(body('second'));
  await b.next((e) => e.is('r', NS_SM)); // XEP-0198 §4: the server requests an ack
  b.ack(b.handledThrough(second));

  await a.send(chat(b.jid, 'third'));
  await b.next(body('third'));
  await b.next((e) => e.is('r', NS_SM)); // and asks again for the new one
  b.cut();

  // resuming shows what the server kept: only what was not acknowledged
  const { client: back, answer } = await resume(t, server, bob, enabled.attrs.id!, b.handledThrough(second), b.jid);
  t.true(answer.is('resumed', NS_SM));
  await back.settle();
  t.deepEqual(back.bodies(), ['third']);
});

test('what went out while an ack request was unanswered is asked about once the answer comes', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'desk');
  const b = await phone(t, server, bob);
  await b.enable();

  await a.send(chat(b.jid, 'first'));
  const first = await b.next(body('first'));
  await b.next((e) => e.is('r', NS_SM));
  // unanswered: the next message goes out without an <r/> of its own
  await a.send(chat(b.jid, 'second'));
  await b.next(body('second'));
  await b.settle();
  t.is(b.received.filter((e) => e.is('r', NS_SM)).length, 1);
  // the answer covers 'first' only: 'second' (and the ping's result) are asked about now, so that
  // a client closing its stream next has acknowledged them (not stored again as undelivered)
  b.ack(b.handledThrough(first));
  await b.next((e) => e.is('r', NS_SM));
  b.ack();
  t.is(await b.requestAck(), 1);
});

test('acknowledging more stanzas than the server sent is an undefined-condition stream error', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'desk');
  const b = await phone(t, server, bob);
  const enabled = await b.enable();
  await a.send(chat(b.jid, 'just one'));
  await b.next(body('just one'));

  b.ack(5);

  const error = await b.streamError();
  t.is(error.condition, 'undefined-condition');
  // XEP-0198 §4 (v1.6): the application-specific condition says by how much
  const tooHigh = error.details.find((e) => e.is('handled-count-too-high', NS_SM));
  t.is(tooHigh?.attrs.h, '5');
  t.is(tooHigh?.attrs['send-count'], '1');
  await b.wire.waitClosed();
  // a broken stream is not one to resume
  const { answer } = await resume(t, server, bob, enabled.attrs.id!, 1);
  t.is(failedCondition(answer), 'item-not-found');
});

test('a stale ack, lower than one already received, is ignored', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'desk');
  const b = await phone(t, server, bob);
  await b.enable();
  await a.send(chat(b.jid, 'one'));
  await a.send(chat(b.jid, 'two'));
  await b.next(body('two'));
  b.ack(2);

  b.ack(1); // some clients resend an old count

  await a.send(chat(b.jid, 'three'));
  await b.next(body('three'));
  // had the stale ack rewound the server's count, acknowledging 3 would now be "too high"
  b.ack(3);
  t.is(await b.requestAck(), 0);
  await b.settle();
  t.false(b.closed);
});

// --- resumption --------------------------------------------------------------------------------

test('a phone that loses its connection resumes and gets exactly what it missed, in order', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'desk');
  const b = await phone(t, server, bob);
  const enabled = await b.enable();
  b.chat(a.jid, 'hi Alice');
  await a.next(body('hi Alice'));

  // Alice writes four messages; the phone receives them but acknowledges only the first two
  for (const text of ['m1', 'm2', 'm3', 'm4']) await a.send(chat(b.jid, text));
  const m2 = await b.next(body('m2'));
  await b.next(body('m4'));
  b.ack(b.handledThrough(m2));
  const sentBeforeTheCut = b.sent;

  b.cut();
  // Alice goes on writing while the phone is away
  await a.send(chat(b.jid, 'm5'));
  await a.send(chat(b.jid, 'm6'));
  await settle(a);

  const { client: back, answer } = await resume(t, server, bob, enabled.attrs.id!, b.handledThrough(m2), b.jid);
  t.true(answer.is('resumed', NS_SM));
  t.is(answer.attrs.previd, enabled.attrs.id);
  t.is(answer.attrs.h, String(sentBeforeTheCut), "the server's count of the phone's stanzas");
  await back.next(body('m6'));
  await back.settle();
  t.deepEqual(back.bodies(), ['m3', 'm4', 'm5', 'm6'], 'the unacknowledged ones and those sent meanwhile, once each');

  // and the conversation goes on
  back.chat(a.jid, 'back again');
  const reply = await a.next(body('back again'));
  t.is(reply.attrs.from, b.jid);
  await a.send(chat(b.jid, 'welcome back'));
  await back.next(body('welcome back'));
  t.false(a.received.some((s) => s.attrs.type === 'error'), 'nothing Alice sent bounced');
});

test('a session can be resumed again after a second cut', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'desk');
  const b = await phone(t, server, bob);
  const enabled = await b.enable();
  await a.send(chat(b.jid, 'one'));
  await b.next(body('one'));
  b.cut();

  const { client: second } = await resume(t, server, bob, enabled.attrs.id!, b.handled, b.jid);
  await a.send(chat(b.jid, 'two'));
  await second.next(body('two'));
  second.cut();

  const { client: third, answer } = await resume(t, server, bob, enabled.attrs.id!, second.handled, b.jid);
  t.true(answer.is('resumed', NS_SM));
  await third.settle();
  t.deepEqual(third.bodies(), []);
  await a.send(chat(b.jid, 'three'));
  await third.next(body('three'));
});

test('a web client reloaded and resumed that sends from another resource of its account is stamped with the session\'s JID', async (t) => {
  // Converse after F5: it resumes the old session but addresses its stanzas from the resource it
  // would have bound; closing the stream for it left the page half-broken.
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'desk');
  const b = await phone(t, server, bob, 'converse-old');
  const enabled = await b.enable();
  b.cut();
  const { client: reloaded, answer } = await resume(t, server, bob, enabled.attrs.id!, 0, b.jid);
  t.true(answer.is('resumed', NS_SM));
  reloaded.stanza(`<message to='${a.jid}' from='${bob}@localhost/converse-new' type='chat' id='r1'><body>after reload</body></message>`);
  const got = await a.next((s) => s.is('message') && s.getChildText('body') === 'after reload');
  t.is(got.attrs.from, b.jid, "stamped with the resumed session's full JID");
  await reloaded.settle();
  t.false(reloaded.closed, 'the stream stays open');

  // anyone else's address is still refused
  reloaded.stanza(`<message to='${a.jid}' from='${alice}@localhost/desk' type='chat'><body>spoof</body></message>`);
  t.is((await reloaded.streamError()).condition, 'invalid-from');
});

test('resuming while the old connection still looks alive moves the session and closes the old one with conflict', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'desk');
  const b = await phone(t, server, bob);
  const enabled = await b.enable();
  await a.send(chat(b.jid, 'on the old link'));
  await b.next(body('on the old link'));
  // the phone switched networks: the old TCP connection is dead but the server has not noticed

  const { client: back, answer } = await resume(t, server, bob, enabled.attrs.id!, 0, b.jid);

  t.true(answer.is('resumed', NS_SM));
  t.is((await b.streamError()).condition, 'conflict', 'XEP-0198 §5: the old stream is closed');
  await back.next(body('on the old link'));
  await a.send(chat(b.jid, 'on the new link'));
  await back.next(body('on the new link'));
  await back.settle();
  t.deepEqual(back.bodies(), ['on the old link', 'on the new link']);
  t.false(b.bodies().includes('on the new link'));
});

test('the counters go on across a resume', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'desk');
  const b = await phone(t, server, bob);
  const enabled = await b.enable();
  for (const text of ['one', 'two', 'three']) b.chat(a.jid, text);
  t.is(await b.requestAck(), 3);
  await a.send(chat(b.jid, 'hello'));
  await b.next(body('hello'));
  b.cut();

  const { client: back, answer } = await resume(t, server, bob, enabled.attrs.id!, b.handled, b.jid);
  t.is(answer.attrs.h, '3');

  back.chat(a.jid, 'four');
  back.chat(a.jid, 'five');
  t.is(await back.requestAck(), 5, 'the server counts on from 3, not from 0');
  await a.send(chat(b.jid, 'again'));
  await back.next(body('again'));
  t.is(back.handled, 2, "the phone's count went on from the 1 it sent in <resume/>");
  back.ack(); // had the server restarted its own count, this would be too high
  await back.settle();
  t.false(back.closed);
  await a.next(body('five'));
});

test("resuming someone else's session fails with item-not-found; binding afresh works and the owner can still resume", async (t) => {
  const { bob, mallory } = await freshAccounts(server, 'bob', 'mallory');
  const b = await phone(t, server, bob);
  const enabled = await b.enable();
  b.cut();

  const { client: m, answer } = await resume(t, server, mallory, enabled.attrs.id!, 0);

  t.true(answer.is('failed', NS_SM));
  t.is(failedCondition(answer), 'item-not-found');
  t.is(await m.bind('laptop'), `${bare(server, mallory)}/laptop`);
  await m.settle();
  const { answer: bobs } = await resume(t, server, bob, enabled.attrs.id!, 0, b.jid);
  t.true(bobs.is('resumed', NS_SM));
});

test('resuming an unknown session id fails with item-not-found, and binding afresh works', async (t) => {
  const { bob } = await freshAccounts(server, 'bob');

  const { client, answer } = await resume(t, server, bob, 'no-such-session-id', 0);

  t.is(failedCondition(answer), 'item-not-found');
  t.is(await client.bind('phone'), `${bare(server, bob)}/phone`);
  await client.settle();
});

test('presence does not flap: contacts see no unavailable while the phone is away and back within the window', async (t) => {
  const { bob, a, b, enabled } = await contactsWithPhone(t, server);

  b.cut();
  await a.send(chat(b.jid, 'are you there?'));
  await settle(a);
  const { client: back, answer } = await resume(t, server, bob, enabled.attrs.id!, b.handled, b.jid);
  t.true(answer.is('resumed', NS_SM));
  await back.next(body('are you there?'));
  back.chat(a.jid, 'yes, just went through a tunnel');
  await a.next(body('yes, just went through a tunnel'));

  await settle(a);
  t.deepEqual(presencesFrom(a, b.jid, 'unavailable'), []);
});

test('when the window ends, contacts see the phone go offline once, and it can no longer be resumed', async (t) => {
  const { bob, a, b, enabled } = await contactsWithPhone(t, brief);

  b.cut();

  await a.next(isPresence(b.jid, 'unavailable'), 15_000);
  const { client, answer } = await resume(t, brief, bob, enabled.attrs.id!, b.handled);
  t.is(failedCondition(answer), 'item-not-found');
  t.is(await client.bind('phone'), b.jid);
  await settle(a);
  t.is(presencesFrom(a, b.jid, 'unavailable').length, 1);
});

test('messages the phone never acknowledged are not lost when the window ends: they wait offline', async (t) => {
  const { alice, bob } = await freshAccounts(brief, 'alice', 'bob');
  await makeFriends(brief, alice, bob);
  const a = await loginForTest(t, brief, alice, 'desk');
  await online(a);
  const b = await phone(t, brief, bob);
  await b.enable();
  await b.online();
  await a.next(isPresence(b.jid));
  await a.send(chat(bare(brief, bob), 'first'));
  await a.send(chat(b.jid, 'second'));
  await b.next(body('second'));

  b.cut(); // without acknowledging either
  await a.send(chat(bare(brief, bob), 'third')); // while the session waits for the phone
  await a.next(isPresence(b.jid, 'unavailable'), 15_000);

  const tablet = await loginForTest(t, brief, bob, 'tablet');
  await online(tablet);
  await tablet.next(body('third'));
  await settle(tablet);
  const delivered = messages(tablet).filter((m) => m.getChild('body') !== undefined);
  t.deepEqual(delivered.map((m) => m.getChildText('body')), ['first', 'second', 'third'], 'in order, once each');
  for (const message of delivered) t.truthy(message.getChild('delay', NS_DELAY), 'XEP-0203: marked as delayed');
  t.false(a.received.some((s) => s.attrs.type === 'error'), 'nothing bounced');
});

test("with another resource online, a message to the account is not delivered twice when the phone's window ends", async (t) => {
  const { alice, bob } = await freshAccounts(brief, 'alice', 'bob');
  const a = await loginForTest(t, brief, alice, 'desk');
  const laptop = await login(brief, bob, 'laptop');
  t.teardown(() => laptop.stop());
  await online(laptop);
  const b = await phone(t, brief, bob);
  await b.enable();
  await b.online();
  await laptop.next(isPresence(b.jid));

  await a.send(chat(bare(brief, bob), 'to both'));
  await b.next(body('to both'));
  await laptop.next(body('to both'));
  await a.send(chat(b.jid, 'for the phone'));
  await b.next(body('for the phone'));
  b.cut(); // the phone acknowledged neither

  await laptop.next(isPresence(b.jid, 'unavailable'), 15_000);
  // RFC 6121 §8.5.3.2.1: the phone's resource is gone, so its message goes to the account
  await laptop.next(body('for the phone'));
  await settle(laptop);
  t.is(messages(laptop, 'to both').length, 1, 'the laptop had its own copy already');

  // and nothing was kept for later either: the next login gets only what is new
  await laptop.stop();
  await a.send(chat(bare(brief, bob), 'while nobody is online'));
  await settle(a);
  const tablet = await loginForTest(t, brief, bob, 'tablet');
  await online(tablet);
  await tablet.next(body('while nobody is online'));
  await settle(tablet);
  t.deepEqual(messages(tablet).map((m) => m.getChildText('body')), ['while nobody is online']);
});

test("a message to the account is not lost when the phone's window ends after another resource came online", async (t) => {
  const { alice, bob } = await freshAccounts(brief, 'alice', 'bob');
  const a = await loginForTest(t, brief, alice, 'desk');
  const laptop = await loginForTest(t, brief, bob, 'laptop'); // connected, not yet available
  const b = await phone(t, brief, bob);
  await b.enable();
  await b.online();
  await a.send(chat(bare(brief, bob), 'only the phone was online'));
  await b.next(body('only the phone was online'));
  b.cut(); // unacknowledged

  // the laptop comes online while the phone's session still waits: nothing is offline for it
  await online(laptop);
  await laptop.next(isPresence(b.jid)); // the phone's session still counted as online then

  await laptop.next(isPresence(b.jid, 'unavailable'), 15_000);
  // the laptop did not have its own copy: the phone's unconfirmed one comes to it
  await laptop.next(body('only the phone was online'));
  await settle(laptop);
  t.is(messages(laptop, 'only the phone was online').length, 1);
});

test('a client that closes its stream cannot resume, and its contacts see it offline at once', async (t) => {
  const { bob, a, b, enabled } = await contactsWithPhone(t, server);

  await b.closeStream();

  // XEP-0198 §5: a stream closed with </stream:stream> is over; no five-minute wait
  await a.next(isPresence(b.jid, 'unavailable'));
  const { answer } = await resume(t, server, bob, enabled.attrs.id!, b.handled);
  t.is(failedCondition(answer), 'item-not-found');
});

test('a new login with the same full JID replaces a session waiting for resumption', async (t) => {
  const { bob, a, b, enabled } = await contactsWithPhone(t, server);
  await a.send(chat(b.jid, 'before the cut'));
  await b.next(body('before the cut'));
  b.cut(); // unacknowledged

  // the phone's app was restarted: it logs in afresh instead of resuming (RFC 6120 §7.7.2.2)
  const fresh = await phone(t, server, bob, 'phone');
  t.is(fresh.jid, b.jid);
  const { answer } = await resume(t, server, bob, enabled.attrs.id!, 0);
  t.is(failedCondition(answer), 'item-not-found', 'the replaced session is gone for good');

  await fresh.online();
  // what the old session never acknowledged is not lost: it waited offline for this login
  const late = await fresh.next(body('before the cut'));
  t.truthy(late.getChild('delay', NS_DELAY));
  await a.send(chat(b.jid, 'after the restart'));
  await fresh.next(body('after the restart'));
  await fresh.settle();
  t.deepEqual(fresh.bodies(), ['before the cut', 'after the restart'], 'once each');
  await a.next(isPresence(b.jid)); // the restarted phone is available again
});

// Server.sessionBound closes the replaced session while it is still registered, so it ends like
// any other and its contacts hear about it.
test('contacts hear that a replaced session went away, even before its successor sends presence', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  await makeFriends(server, alice, bob);
  const a = await loginForTest(t, server, alice, 'desk');
  await online(a);
  const b = await phone(t, server, bob);
  await b.enable();
  await b.online();
  await a.next(isPresence(b.jid));
  b.cut();

  await phone(t, server, bob, 'phone'); // binds the same full JID, sends no presence

  // RFC 6121 §4.5.2: the old session ended without unavailable presence; the server sends it
  await a.next(isPresence(b.jid, 'unavailable'));
  t.pass();
});

test('a client that stops answering pings is not logged out: its session waits to be resumed', async (t) => {
  const { bob, a, b, enabled } = await contactsWithPhone(t, pinging);

  // the phone's link is dead: it reads the server's ping but never answers
  await b.next((e) => e.is('iq') && e.attrs.type === 'get' && e.getChild('ping', 'urn:xmpp:ping') !== undefined, 15_000);
  t.is((await b.streamError(15_000)).condition, 'connection-timeout');
  await a.send(chat(b.jid, 'still there?'));

  const { client: back, answer } = await resume(t, pinging, bob, enabled.attrs.id!, 0, b.jid);
  t.true(answer.is('resumed', NS_SM));
  await back.next(body('still there?'));
  await settle(a);
  t.deepEqual(presencesFrom(a, b.jid, 'unavailable'), []);
});

test('a phone registered for push notifications waits longer to be resumed (resume_timeout_push): the push wakes it', async (t) => {
  const { alice, bob } = await freshAccounts(brief, 'alice', 'bob');
  const a = await loginForTest(t, brief, alice, 'desk');
  const pushed = await phone(t, brief, bob);
  const enabled = await pushed.enable();
  // XEP-0357: the phone's app server (its publishes go nowhere here; that does not matter)
  pushed.stanza(`<iq type='set' id='push-on'><enable xmlns='urn:xmpp:push:0' jid='push.example.net' node='bob-phone'/></iq>`);
  t.is((await pushed.next((e) => e.is('iq') && e.attrs.id === 'push-on')).attrs.type, 'result');
  pushed.cut();
  await a.send(chat(pushed.jid, 'wake up'));
  // past resume_timeout (2 s here), not past resume_timeout_push
  await new Promise((resolve) => setTimeout(resolve, 4000));
  const { client: back, answer } = await resume(t, brief, bob, enabled.attrs.id!, pushed.handled, pushed.jid);
  t.true(answer.is('resumed', NS_SM), answer.toString());
  await back.next(body('wake up'));
});
