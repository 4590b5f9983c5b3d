// Message carbons (XEP-0280): Alice's phone and laptop show the same conversation with Bob,
// whichever device sent or received each message.
import test, { type ExecutionContext } from 'ava';
import type Element from 'ltx/lib/Element.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { xml, type TestClient } from '../helpers/clients.js';
import {
  bare, chat, freshAccounts, iqFailure, messages, online, settle, loginForTest,
} from '../helpers/conversation.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
const NS_CARBONS = 'urn:xmpp:carbons:2';
const NS_FORWARD = 'urn:xmpp:forward:0';
const NS_RECEIPTS = 'urn:xmpp:receipts';
const NS_CHATSTATES = 'http://jabber.org/protocol/chatstates';

let server: TestServer;
test.before(async () => {
  server = await startServer();
});
test.after.always(async () => server?.stop());

async function device(t: ExecutionContext, username: string, resource: string, options: { carbons?: boolean; priority?: number } = {}): Promise<TestClient> {
  const client = await loginForTest(t, server, username, resource);
  if (options.carbons ?? true) await client.request(xml('iq', { type: 'set' }, xml('enable', { xmlns: NS_CARBONS })));
  await online(client, options.priority === undefined ? [] : [xml('priority', {}, String(options.priority))]);
  return client;
}

/** The message a carbon copy carries, checking the wrapper on the way (XEP-0280 §7, §8; XEP-0297). */
function carried(copy: Element, kind: 'sent' | 'received', account: string): Element {
  if (copy.attrs.from !== account) throw new Error(`a carbon must come from the account's bare JID, got ${copy.toString()}`);
  const message = copy.getChild(kind, NS_CARBONS)?.getChild('forwarded', NS_FORWARD)?.getChild('message');
  if (message === undefined) throw new Error(`not a ${kind} carbon: ${copy.toString()}`);
  return message;
}

const isCarbon = (kind: 'sent' | 'received', body?: string) => (s: Element) => {
  if (!s.is('message')) return false;
  const message = s.getChild(kind, NS_CARBONS)?.getChild('forwarded', NS_FORWARD)?.getChild('message');
  return message !== undefined && (body === undefined || message.getChildText('body') === body);
};

const carbonsOf = (client: TestClient) => client.received.filter((s) => s.is('message') && (s.getChild('sent', NS_CARBONS) || s.getChild('received', NS_CARBONS)));

test('the server says it supports carbons', async (t) => {
  const { alice } = await freshAccounts(server, 'alice');
  const laptop = await device(t, alice, 'laptop', { carbons: false });
  const info = await laptop.request(xml('iq', { type: 'get', to: server.domain }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' })));
  t.true(info.getChild('query')!.getChildren('feature').some((f) => f.attrs.var === NS_CARBONS));
});

test("Alice's laptop writes to Bob; her phone gets a sent copy, the laptop none", async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const laptop = await device(t, alice, 'laptop');
  const phone = await device(t, alice, 'phone');
  const b = await device(t, bob, 'phone', { carbons: false });

  await laptop.send(chat(bare(server, bob), 'Lunch at noon?', { id: 'lunch-1' }));
  const got = await b.next((s) => s.is('message') && s.attrs.id === 'lunch-1');
  t.is(got.getChildText('body'), 'Lunch at noon?');

  const copy = await phone.next(isCarbon('sent'));
  t.is(copy.attrs.to, phone.jid);
  t.is(copy.attrs.type, 'chat');
  const original = carried(copy, 'sent', bare(server, alice));
  t.is(original.attrs.xmlns, 'jabber:client');
  t.is(original.attrs.from, laptop.jid);
  t.is(original.attrs.to, bare(server, bob));
  t.is(original.attrs.id, 'lunch-1');
  t.is(original.getChildText('body'), 'Lunch at noon?');

  await settle(laptop);
  t.deepEqual(carbonsOf(laptop), [], 'the sending device gets no copy of its own message');
  await settle(b);
  t.deepEqual(carbonsOf(b), [], 'Bob sees only the message');
});

test("Bob answers Alice's laptop directly; her phone gets a received copy, the laptop the message", async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const laptop = await device(t, alice, 'laptop');
  const phone = await device(t, alice, 'phone');
  const b = await device(t, bob, 'phone', { carbons: false });

  await b.send(chat(laptop.jid, 'Noon is fine', { id: 'answer-1' }));
  const got = await laptop.next((s) => s.is('message') && s.attrs.id === 'answer-1');
  t.is(got.getChildText('body'), 'Noon is fine');

  const copy = await phone.next(isCarbon('received', 'Noon is fine'));
  t.is(copy.attrs.to, phone.jid);
  const original = carried(copy, 'received', bare(server, alice));
  t.is(original.attrs.from, b.jid);
  t.is(original.attrs.to, laptop.jid);

  await settle(laptop);
  t.deepEqual(carbonsOf(laptop), [], 'the device the message was addressed to gets no copy');
});

test("the whole conversation shows on both of Alice's devices, in order", async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const laptop = await device(t, alice, 'laptop');
  const phone = await device(t, alice, 'phone');
  const b = await device(t, bob, 'phone', { carbons: false });

  await laptop.send(chat(bare(server, bob), 'one'));
  const first = await b.next((s) => s.is('message') && s.getChildText('body') === 'one');
  await b.send(chat(first.attrs.from!, 'two'));
  await laptop.next((s) => s.is('message') && s.getChildText('body') === 'two');
  await phone.send(chat(bare(server, bob), 'three'));
  await b.next((s) => s.is('message') && s.getChildText('body') === 'three');
  await settle(phone);
  await settle(laptop);

  const onPhone = phone.received.filter((s) => s.is('message')).map((s) => {
    const sent = s.getChild('sent', NS_CARBONS);
    const message = (sent ?? s.getChild('received', NS_CARBONS))?.getChild('forwarded', NS_FORWARD)?.getChild('message');
    return `${sent ? 'me' : 'bob'}: ${message?.getChildText('body')}`;
  });
  t.deepEqual(onPhone, ['me: one', 'bob: two']);
  const onLaptop = laptop.received.filter((s) => s.is('message')).map((s) => {
    const sent = s.getChild('sent', NS_CARBONS);
    return sent ? `me: ${sent.getChild('forwarded', NS_FORWARD)?.getChild('message')?.getChildText('body')}` : `bob: ${s.getChildText('body')}`;
  });
  t.deepEqual(onLaptop, ['bob: two', 'me: three']);
});

test("a message to Alice's bare JID reaches each device once, without copies", async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const laptop = await device(t, alice, 'laptop');
  const phone = await device(t, alice, 'phone');
  const b = await device(t, bob, 'phone', { carbons: false });

  await b.send(chat(bare(server, alice), 'To all of you'));
  await laptop.next((s) => s.is('message') && s.getChildText('body') === 'To all of you');
  await phone.next((s) => s.is('message') && s.getChildText('body') === 'To all of you');
  await settle(laptop);
  await settle(phone);
  t.deepEqual(carbonsOf(laptop), []);
  t.deepEqual(carbonsOf(phone), []);
});

test('a device with a negative priority, which bare-JID messages skip, gets them as received copies', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const laptop = await device(t, alice, 'laptop');
  const bot = await device(t, alice, 'archiver', { priority: -1 });
  const b = await device(t, bob, 'phone', { carbons: false });

  await b.send(chat(bare(server, alice), 'Hello there'));
  await laptop.next((s) => s.is('message') && s.getChildText('body') === 'Hello there');
  const copy = await bot.next(isCarbon('received', 'Hello there'));
  t.is(carried(copy, 'received', bare(server, alice)).attrs.to, bare(server, alice));
  // the same for a message to a resource that is not there, which goes to the bare JID
  await b.send(chat(`${bare(server, alice)}/gone`, 'Still there?'));
  await laptop.next((s) => s.is('message') && s.getChildText('body') === 'Still there?');
  await bot.next(isCarbon('received', 'Still there?'));
  await settle(bot);
  t.deepEqual(messages(bot, 'Hello there'), [], 'not the message itself');
  t.deepEqual(messages(bot, 'Still there?'), []);
});

test("a message marked private is not copied, and Bob never sees the marker", async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const laptop = await device(t, alice, 'laptop');
  const phone = await device(t, alice, 'phone');
  const b = await device(t, bob, 'laptop');
  const bobPhone = await device(t, bob, 'phone');

  await laptop.send(xml('message', { to: b.jid, type: 'chat', id: 'secret-1' }, xml('body', {}, 'Just between us'), xml('private', { xmlns: NS_CARBONS })));
  const got = await b.next((s) => s.is('message') && s.attrs.id === 'secret-1');
  t.is(got.getChild('private', NS_CARBONS), undefined, 'XEP-0280 §9: removed before delivery');

  await Promise.all([settle(phone), settle(laptop), settle(bobPhone)]);
  t.deepEqual(carbonsOf(phone), [], "no sent copy on Alice's phone");
  t.deepEqual(carbonsOf(bobPhone), [], "no received copy on Bob's phone");
  t.deepEqual(messages(bobPhone), []);
});

test('a message with the no-copy hint (XEP-0334) is not copied either', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const laptop = await device(t, alice, 'laptop');
  const phone = await device(t, alice, 'phone');
  const b = await device(t, bob, 'laptop');
  const bobPhone = await device(t, bob, 'phone');

  await laptop.send(xml('message', { to: b.jid, type: 'chat', id: 'nocopy-1' }, xml('body', {}, 'Only here'), xml('no-copy', { xmlns: 'urn:xmpp:hints' })));
  await b.next((s) => s.is('message') && s.attrs.id === 'nocopy-1');
  await Promise.all([settle(phone), settle(bobPhone)]);
  t.deepEqual(carbonsOf(phone), []);
  t.deepEqual(carbonsOf(bobPhone), []);
});

test('a device that did not enable carbons gets no copies', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const laptop = await device(t, alice, 'laptop');
  const phone = await device(t, alice, 'phone');
  const oldClient = await device(t, alice, 'old-client', { carbons: false });
  const b = await device(t, bob, 'phone', { carbons: false });

  await laptop.send(chat(b.jid, 'sent from the laptop'));
  await b.send(chat(laptop.jid, 'to the laptop'));
  await phone.next(isCarbon('sent', 'sent from the laptop'));
  await phone.next(isCarbon('received', 'to the laptop'));
  await settle(oldClient);
  t.deepEqual(carbonsOf(oldClient), []);
  t.deepEqual(messages(oldClient), []);
});

test('after disabling carbons a device gets no more copies; enabling twice is harmless', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const laptop = await device(t, alice, 'laptop');
  const phone = await device(t, alice, 'phone');
  const b = await device(t, bob, 'phone', { carbons: false });
  await phone.request(xml('iq', { type: 'set' }, xml('enable', { xmlns: NS_CARBONS }))); // §10.1: a result, not an error

  await laptop.send(chat(b.jid, 'before'));
  await phone.next(isCarbon('sent', 'before'));

  await phone.request(xml('iq', { type: 'set' }, xml('disable', { xmlns: NS_CARBONS })));
  await laptop.send(chat(b.jid, 'after'));
  await b.send(chat(laptop.jid, 'reply after'));
  await b.next((s) => s.is('message') && s.getChildText('body') === 'after');
  await laptop.next((s) => s.is('message') && s.getChildText('body') === 'reply after');
  await settle(phone);
  t.is(carbonsOf(phone).length, 1, 'only the copy from before disabling');
});

test('receipts and typing notifications are copied; messages with nothing for a conversation are not', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const laptop = await device(t, alice, 'laptop');
  const phone = await device(t, alice, 'phone');
  const b = await device(t, bob, 'phone', { carbons: false });

  // a receipt of type normal (as XEP-0184 shows it) and a chat state: both part of the conversation
  await laptop.send(xml('message', { to: b.jid, id: 'r1' }, xml('received', { xmlns: NS_RECEIPTS, id: 'x' })));
  await laptop.send(xml('message', { to: b.jid, type: 'chat' }, xml('composing', { xmlns: NS_CHATSTATES })));
  // a normal message with neither body nor conversation payload, and a headline
  await laptop.send(xml('message', { to: b.jid, id: 'empty' }, xml('x', { xmlns: 'urn:example:game' })));
  await laptop.send(xml('message', { to: b.jid, type: 'headline' }, xml('body', {}, 'news')));
  await b.next((s) => s.is('message') && s.attrs.type === 'headline');
  await settle(phone);
  const copied = carbonsOf(phone).map((c) => c.getChild('sent', NS_CARBONS)!.getChild('forwarded', NS_FORWARD)!.getChild('message')!);
  t.deepEqual(copied.map((m) => m.getChildElements()[0]!.name), ['received', 'composing']);
  t.false('type' in carbonsOf(phone)[0]!.attrs, 'the copy keeps the type of the original');
});

test("a bounce of a message Alice sent reaches her other devices too", async (t) => {
  const { alice } = await freshAccounts(server, 'alice');
  const laptop = await device(t, alice, 'laptop');
  const phone = await device(t, alice, 'phone');

  await laptop.send(chat(`nobody@${server.domain}`, 'Are you there?', { id: 'bounce-1' }));
  const error = await laptop.next((s) => s.is('message') && s.attrs.type === 'error');
  t.is(error.attrs.id, 'bounce-1');
  await phone.next(isCarbon('sent', 'Are you there?'));
  const copy = await phone.next(isCarbon('received'));
  t.is(carried(copy, 'received', bare(server, alice)).attrs.type, 'error');
});

test("carbons cannot be switched on for someone else's account", async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const laptop = await device(t, alice, 'laptop', { carbons: false });
  const condition = await iqFailure(laptop.request(xml('iq', { type: 'set', to: bare(server, bob) }, xml('enable', { xmlns: NS_CARBONS }))));
  t.is(condition, 'not-allowed');
});
