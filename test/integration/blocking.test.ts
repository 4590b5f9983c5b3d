// Blocking (XEP-0191): Alice blocks Mallory. From then on nothing of Mallory's reaches any of
// Alice's devices, Alice looks offline to him, and she cannot write to him by mistake — until
// she unblocks him. The list is hers across devices and restarts.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import type Element from 'ltx/lib/Element.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { xml, type TestClient } from '../helpers/clients.js';
import { createInstantRoom, enter, freshRoom, groupchat, isGroupchat, isPresenceFrom } from '../helpers/muc.js';
import {
  bare, befriend, chat, errorCondition, freshAccounts, getRoster, iqFailure, isPresence, login, makeFriends, messages, online, ping, presencesFrom, settle, loginForTest } from '../helpers/conversation.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
const NS_BLOCKING = 'urn:xmpp:blocking';
const NS_BLOCKING_ERRORS = 'urn:xmpp:blocking:errors';

let server: TestServer;
test.before(async () => {
  server = await startServer();
});
test.after.always(async () => server?.stop());

async function device(t: ExecutionContext, username: string, resource: string, on: TestServer = server): Promise<TestClient> {
  const client = await loginForTest(t, on, username, resource);
  return client;
}

async function blocklist(client: TestClient): Promise<string[]> {
  const result = await client.request(xml('iq', { type: 'get' }, xml('blocklist', { xmlns: NS_BLOCKING })));
  return result.getChild('blocklist', NS_BLOCKING)!.getChildren('item').map((i) => i.attrs.jid!).sort();
}

function command(client: TestClient, name: 'block' | 'unblock', ...jids: string[]): Promise<Element> {
  return client.request(xml('iq', { type: 'set' }, xml(name, { xmlns: NS_BLOCKING }, ...jids.map((jid) => xml('item', { jid })))));
}

const isPush = (name: 'block' | 'unblock') => (s: Element) => s.is('iq') && s.attrs.type === 'set' && s.getChild(name, NS_BLOCKING) !== undefined;
const pushedJids = (push: Element, name: 'block' | 'unblock') => push.getChild(name, NS_BLOCKING)!.getChildren('item').map((i) => i.attrs.jid!);
const from = (client: TestClient, jid: string) => client.received.filter((s) => s.attrs.from?.split('/')[0] === jid.split('/')[0]);

test('the server says it supports blocking', async (t) => {
  const { alice } = await freshAccounts(server, 'alice');
  const a = await device(t, alice, 'laptop');
  const info = await a.request(xml('iq', { type: 'get', to: server.domain }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' })));
  t.true(info.getChild('query')!.getChildren('feature').some((f) => f.attrs.var === NS_BLOCKING));
});

test('Alice blocks, lists and unblocks: one JID, several at once, then everyone', async (t) => {
  const { alice } = await freshAccounts(server, 'alice');
  const a = await device(t, alice, 'laptop');
  t.deepEqual(await blocklist(a), []);

  await command(a, 'block', `mallory@${server.domain}`);
  await command(a, 'block', 'spam.example', 'Eve@Example.COM/phone');
  t.deepEqual(await blocklist(a), ['eve@example.com/phone', `mallory@${server.domain}`, 'spam.example'], 'normalised, as stored');

  await command(a, 'unblock', 'spam.example');
  t.deepEqual(await blocklist(a), ['eve@example.com/phone', `mallory@${server.domain}`]);
  await command(a, 'unblock');
  t.deepEqual(await blocklist(a), [], 'an empty <unblock/> clears the list');
});

test('a block without items, a malformed JID, or a block of oneself is refused', async (t) => {
  const { alice } = await freshAccounts(server, 'alice');
  const a = await device(t, alice, 'laptop');
  t.is(await iqFailure(command(a, 'block')), 'bad-request');
  t.is(await iqFailure(command(a, 'block', 'a@b@c')), 'jid-malformed');
  t.is(await iqFailure(command(a, 'block', bare(server, alice))), 'not-acceptable');
  t.deepEqual(await blocklist(a), []);
});

test('a block and an unblock are pushed to every device that asked for the list, and only to those', async (t) => {
  const { alice, mallory } = await freshAccounts(server, 'alice', 'mallory');
  const laptop = await device(t, alice, 'laptop');
  const phone = await device(t, alice, 'phone');
  const watch = await device(t, alice, 'watch'); // never asks for the list
  await blocklist(laptop);
  await blocklist(phone);

  await command(laptop, 'block', bare(server, mallory));
  t.deepEqual(pushedJids(await laptop.next(isPush('block')), 'block'), [bare(server, mallory)]);
  t.deepEqual(pushedJids(await phone.next(isPush('block')), 'block'), [bare(server, mallory)]);
  t.deepEqual(await blocklist(phone), [bare(server, mallory)]);

  await command(phone, 'unblock');
  t.deepEqual(pushedJids(await laptop.next(isPush('unblock')), 'unblock'), [], 'unblock everyone');
  await phone.next(isPush('unblock'));
  await settle(watch);
  t.deepEqual(watch.received.filter(isPush('block')).concat(watch.received.filter(isPush('unblock'))), []);
});

/** Alice (laptop and phone, both online) and Mallory are contacts; Alice blocks Mallory. */
async function aliceBlocksMallory(t: ExecutionContext) {
  const { alice, mallory } = await freshAccounts(server, 'alice', 'mallory');
  await makeFriends(server, alice, mallory);
  const laptop = await device(t, alice, 'laptop');
  const phone = await device(t, alice, 'phone');
  const m = await device(t, mallory, 'pc');
  await Promise.all([getRoster(laptop), getRoster(phone), getRoster(m)]);
  await online(laptop);
  await online(phone);
  await online(m);
  await m.next(isPresence(laptop.jid));
  await m.next(isPresence(phone.jid));
  await laptop.next(isPresence(m.jid));
  await command(laptop, 'block', bare(server, mallory));
  return { alice, mallory, laptop, phone, m };
}

test("once blocked, Mallory sees Alice go offline on every device, and her presence no more", async (t) => {
  const { laptop, phone, m } = await aliceBlocksMallory(t);
  await m.next(isPresence(laptop.jid, 'unavailable'));
  await m.next(isPresence(phone.jid, 'unavailable'));

  await laptop.send(xml('presence', {}, xml('show', {}, 'away')));
  await laptop.next((s) => s.is('presence') && s.attrs.from === laptop.jid && s.getChildText('show') === 'away');
  await m.send(xml('presence', { type: 'probe', to: bare(server, laptop.jid) }));
  await settle(m);
  t.deepEqual(presencesFrom(m, laptop.jid).map((s) => s.getChildText('show')), [null],
    'only the presence from before the block: neither the update nor an answer to the probe');
});

test("nothing Mallory sends reaches any of Alice's devices: messages bounce, presence vanishes, requests fail", async (t) => {
  const { alice, laptop, phone, m } = await aliceBlocksMallory(t);
  const before = { laptop: from(laptop, m.jid).length, phone: from(phone, m.jid).length };

  await m.send(chat(bare(server, alice), 'Hi Alice', { id: 'to-bare' }));
  const bounced = await m.next((s) => s.is('message') && s.attrs.id === 'to-bare');
  t.is(bounced.attrs.type, 'error');
  t.is(errorCondition(bounced), 'service-unavailable', 'as if nobody were there (§5.3)');
  await m.send(chat(phone.jid, 'Hi phone', { id: 'to-full' }));
  t.is(errorCondition(await m.next((s) => s.is('message') && s.attrs.id === 'to-full')), 'service-unavailable');
  await m.send(xml('message', { to: laptop.jid, type: 'headline' }, xml('body', {}, 'ad')));
  await m.send(xml('presence', {}, xml('status', {}, 'look at me')));
  await m.send(xml('presence', { type: 'subscribe', to: bare(server, alice) }));
  t.is(await iqFailure(m.request(ping(laptop.jid))), 'service-unavailable');
  t.is(await iqFailure(m.request(xml('iq', { type: 'get', to: bare(server, alice) }, xml('query', { xmlns: 'jabber:iq:last' })))), 'service-unavailable');

  await Promise.all([settle(laptop), settle(phone), settle(m)]);
  t.is(from(laptop, m.jid).length, before.laptop, 'the laptop got nothing from Mallory');
  t.is(from(phone, m.jid).length, before.phone, 'the phone got nothing from Mallory');
  t.deepEqual(messages(laptop), []);
  t.deepEqual(messages(phone), []);
});

test('Alice cannot write to Mallory while he is blocked: not-acceptable with <blocked/>', async (t) => {
  const { mallory, laptop, phone, m } = await aliceBlocksMallory(t);
  await phone.send(chat(bare(server, mallory), 'oops', { id: 'oops-1' }));
  const error = await phone.next((s) => s.is('message') && s.attrs.id === 'oops-1');
  t.is(error.attrs.type, 'error');
  t.is(errorCondition(error), 'not-acceptable');
  t.truthy(error.getChild('error')!.getChild('blocked', NS_BLOCKING_ERRORS));
  t.is(error.attrs.from, bare(server, mallory));
  t.is(await iqFailure(laptop.request(ping(m.jid))), 'not-acceptable');
  await settle(m);
  t.deepEqual(messages(m), []);
  t.deepEqual(m.received.filter((s) => s.is('iq') && s.attrs.from === laptop.jid), []);
});

test('after unblocking, Mallory sees Alice online again and they can write to each other', async (t) => {
  const { alice, mallory, laptop, phone, m } = await aliceBlocksMallory(t);
  await m.next(isPresence(phone.jid, 'unavailable'));
  await command(phone, 'unblock', bare(server, mallory));
  await m.next((s) => isPresence(laptop.jid)(s) && presencesFrom(m, laptop.jid).length >= 2);
  await m.next((s) => isPresence(phone.jid)(s) && presencesFrom(m, phone.jid).length >= 2);

  await m.send(chat(bare(server, alice), 'Friends again?'));
  await laptop.next((s) => s.is('message') && s.getChildText('body') === 'Friends again?');
  await phone.send(chat(m.jid, 'Yes'));
  await m.next((s) => s.is('message') && s.getChildText('body') === 'Yes');
  t.pass();
});

test("the block list survives a restart, and applies while Alice is offline", async (t) => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-blocking-restart-'));
  t.teardown(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  const first = await startServer({ dataDir });
  await first.createAccount('alice');
  await first.createAccount('mallory');
  await first.createAccount('bob');
  const a = await device(t, 'alice', 'laptop', first);
  await command(a, 'block', `mallory@${first.domain}`);
  await first.stop();

  const again = await startServer({ dataDir });
  t.teardown(() => again.stop());
  // Alice is offline: Mallory's message is refused, Bob's is kept for her
  const m = await device(t, 'mallory', 'pc', again);
  await m.send(chat(`alice@${again.domain}`, 'Still there?', { id: 'offline-1' }));
  t.is(errorCondition(await m.next((s) => s.is('message') && s.attrs.id === 'offline-1')), 'service-unavailable');
  const b = await device(t, 'bob', 'pc', again);
  await b.send(chat(`alice@${again.domain}`, 'Call me'));
  await settle(b);

  const back = await device(t, 'alice', 'laptop', again);
  t.deepEqual(await blocklist(back), [`mallory@${again.domain}`]);
  await online(back);
  await back.next((s) => s.is('message') && s.getChildText('body') === 'Call me');
  await settle(back);
  t.deepEqual(messages(back).map((s) => s.getChildText('body')), ['Call me']);
});

test('what Mallory left while Alice was offline is not delivered once she has blocked him', async (t) => {
  const { alice, mallory, bob } = await freshAccounts(server, 'alice', 'mallory', 'bob');
  const m = await device(t, mallory, 'pc');
  const b = await device(t, bob, 'pc');
  await m.send(chat(bare(server, alice), 'You will read this later'));
  await b.send(chat(bare(server, alice), 'Hello from Bob'));
  await Promise.all([settle(m), settle(b)]);

  // she blocks him before going online, which is when offline messages come (XEP-0160 §5)
  const a = await device(t, alice, 'laptop');
  await command(a, 'block', bare(server, mallory));
  await online(a);
  await a.next((s) => s.is('message') && s.getChildText('body') === 'Hello from Bob');
  await settle(a);
  t.deepEqual(messages(a).map((s) => s.getChildText('body')), ['Hello from Bob']);
  await a.stop();

  const again = await device(t, alice, 'phone');
  await command(again, 'unblock');
  await online(again);
  await settle(again);
  t.deepEqual(messages(again, 'You will read this later'), [], "Mallory's message is gone, not just held back");
});

test('blocking a whole domain served by the same server: Eve on chat.example is shut out too', async (t) => {
  const two = await startServer({ config: { hosts: [{ domain: 'localhost', registration: 'open' }, { domain: 'chat.example' }] } });
  t.teardown(() => two.stop());
  await two.createAccount('alice');
  await two.server.accounts.create('chat.example', 'eve', 'eves password');
  const a = await device(t, 'alice', 'laptop', two);
  const e = await login({ ...two, domain: 'chat.example' }, 'eve', 'pc', { password: 'eves password' });
  t.teardown(() => e.stop());
  await Promise.all([getRoster(a), getRoster(e)]);
  await online(a);
  await online(e);
  await befriend(a, e);
  await e.next(isPresence(a.jid));

  await command(a, 'block', 'chat.example');
  await e.next(isPresence(a.jid, 'unavailable'));
  await a.send(xml('presence', {}, xml('show', {}, 'dnd')));
  await e.send(chat('alice@localhost', 'Hi', { id: 'cross-1' }));
  t.is(errorCondition(await e.next((s) => s.is('message') && s.attrs.id === 'cross-1')), 'service-unavailable');
  await a.send(chat('eve@chat.example', 'Hi', { id: 'cross-2' }));
  t.is(errorCondition(await a.next((s) => s.is('message') && s.attrs.id === 'cross-2')), 'not-acceptable');
  await Promise.all([settle(a), settle(e)]);
  t.deepEqual(presencesFrom(e, a.jid).map((s) => s.getChildText('show')), [null], 'not the dnd update');
  const notErrors = (c: TestClient) => messages(c).filter((s) => s.attrs.type !== 'error');
  t.deepEqual(notErrors(a), []);
  t.deepEqual(notErrors(e), []);
});

test("a subscription request Mallory made while Alice was offline is not shown once she has blocked him", async (t) => {
  const { alice, mallory } = await freshAccounts(server, 'alice', 'mallory');
  const m = await device(t, mallory, 'pc');
  await m.send(xml('presence', { type: 'subscribe', to: bare(server, alice) }));
  await settle(m);

  const a = await device(t, alice, 'laptop');
  await getRoster(a);
  await command(a, 'block', bare(server, mallory));
  await online(a);
  await settle(a);
  t.deepEqual(a.received.filter((s) => s.is('presence') && s.attrs.type === 'subscribe'), []);
  await a.stop();

  const again = await device(t, alice, 'phone');
  await command(again, 'unblock');
  await online(again);
  await settle(again);
  t.deepEqual(again.received.filter((s) => s.is('presence') && s.attrs.type === 'subscribe'), [], 'dropped, not held back');
  t.deepEqual(m.received.filter((s) => s.is('presence') && s.attrs.type === 'unsubscribed'), [], 'and not answered: polite blocking');
});

test('blocking a room occupant (room@service/nick) stops its group messages and presence reaching every device', async (t) => {
  const { alice, mallory, carol } = await freshAccounts(server, 'alice', 'mallory', 'carol');
  const [laptop, phone, m, c] = await Promise.all([device(t, alice, 'laptop'), device(t, alice, 'phone'), device(t, mallory, 'pc'), device(t, carol, 'pc')]);
  const room = freshRoom('pests');
  await createInstantRoom(c, room, 'Carol');
  await enter(laptop, room, 'Alice');
  await enter(phone, room, 'Alice');
  await enter(m, room, 'Mallory');
  await laptop.next(isPresenceFrom(`${room}/Mallory`));

  await command(laptop, 'block', `${room}/Mallory`);
  await m.send(xml('presence', { to: `${room}/Mallory` }, xml('status', {}, 'still here')));
  await m.send(groupchat(room, 'spam from Mallory'));
  await c.next(isGroupchat(`${room}/Mallory`, 'spam from Mallory'));
  await c.send(groupchat(room, 'hello from Carol'));
  // what comes after Mallory's message arrives: so Mallory's had its chance to arrive before it
  await laptop.next(isGroupchat(`${room}/Carol`, 'hello from Carol'));
  await phone.next(isGroupchat(`${room}/Carol`, 'hello from Carol'));
  for (const d of [laptop, phone]) {
    t.deepEqual(d.received.filter(isGroupchat(`${room}/Mallory`, 'spam from Mallory')), [], `${d.jid} got no message from the blocked occupant`);
    t.deepEqual(d.received.filter((s) => s.is('presence') && s.attrs.from === `${room}/Mallory` && s.getChildText('status') === 'still here'), [],
      `${d.jid} got no presence update from the blocked occupant`);
  }
  t.truthy(await m.next(isGroupchat(`${room}/Mallory`, 'spam from Mallory')), 'Mallory still gets his echo');

  // once unblocked, Mallory is heard again
  await command(laptop, 'unblock', `${room}/Mallory`);
  await m.send(groupchat(room, 'sorry'));
  await laptop.next(isGroupchat(`${room}/Mallory`, 'sorry'));
  await phone.next(isGroupchat(`${room}/Mallory`, 'sorry'));
});

test("blocking a room's bare JID silences the whole room for the user, and not for the others", async (t) => {
  const { alice, bob, carol } = await freshAccounts(server, 'alice', 'bob', 'carol');
  const [a, b, c] = await Promise.all([device(t, alice, 'laptop'), device(t, bob, 'pc'), device(t, carol, 'pc')]);
  const room = freshRoom('noisy');
  await createInstantRoom(c, room, 'Carol');
  await enter(a, room, 'Alice');
  await enter(b, room, 'Bob');

  await command(a, 'block', room);
  await c.send(groupchat(room, 'anyone there?'));
  await b.send(xml('presence', { to: `${room}/Bob` }, xml('status', {}, 'busy')));
  await b.send(groupchat(room, 'yes'));
  await c.next(isGroupchat(`${room}/Bob`, 'yes'));
  // the room wrote to every occupant's stream before Carol got Bob's message: a round trip on Alice's shows what reached her
  await settle(a);
  t.deepEqual(a.received.filter((s) => (s.attrs.from ?? '').startsWith(`${room}/`) && s.attrs.from !== `${room}/Alice` && (s.is('message') || s.getChildText('status') === 'busy')), [],
    'nothing from the room after the block');
  t.truthy(b.received.find(isGroupchat(`${room}/Carol`, 'anyone there?')), 'Bob, who blocks nobody, hears Carol');
});
