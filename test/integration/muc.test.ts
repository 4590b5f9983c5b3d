// Group chat (XEP-0045 Multi-User Chat), as three real clients live it: finding the service,
// creating rooms, invitations, chatting with stable ids, history, nicknames, private messages.
import test from 'ava';
import type Element from 'ltx/lib/Element.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { xml, type TestClient } from '../helpers/clients.js';
import { bare, errorCondition, freshAccounts, login, settle } from '../helpers/conversation.js';
import {
  NS_DELAY, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_MUC, NS_MUC_USER, SERVICE, createInstantRoom, createPrivateGroup, enter, freshRoom,
  groupchat, invite, isGroupchat, isPresenceFrom, isSubject, itemOf, join, stanzaIdOf, statusCodes, occupantClient, trio } from '../helpers/muc.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';

let server: TestServer;
test.before(async () => {
  server = await startServer();
});
test.after.always(async () => server?.stop());

test('the MUC service is listed in the host\'s disco#items and is a text conference service', async (t) => {
  const { alice } = await freshAccounts(server, 'alice');
  const a = await occupantClient(t, server, alice);
  const items = await a.request(xml('iq', { type: 'get', to: server.domain }, xml('query', { xmlns: NS_DISCO_ITEMS })));
  t.true(items.getChild('query')!.getChildren('item').some((i) => i.attrs.jid === SERVICE));
  const info = await a.request(xml('iq', { type: 'get', to: SERVICE }, xml('query', { xmlns: NS_DISCO_INFO })));
  const query = info.getChild('query')!;
  t.deepEqual(query.getChild('identity')?.attrs, { category: 'conference', type: 'text', name: 'Chatrooms' });
  t.true(query.getChildren('feature').some((f) => f.attrs.var === 'http://jabber.org/protocol/muc'));
});

test('three users create a members-only room, invite each other and chat: everyone sees everything, with stanza-ids', async (t) => {
  const { a, b, c, names } = await trio(t, server);
  const room = freshRoom('family');
  const self = await createPrivateGroup(a, room, 'Alice');
  t.deepEqual(statusCodes(self), [110, 201], 'the creator is told the room is new');
  t.is(itemOf(self).affiliation, 'owner');
  t.is(itemOf(self).role, 'moderator');

  // Alice invites Bob through the room (XEP-0045 §7.8.2): he becomes a member and is told
  await a.send(invite(room, bare(server, names.bob), 'family chat'));
  const invitation = await b.next((s) => s.is('message') && s.attrs.from === room && s.getChild('x', NS_MUC_USER)?.getChild('invite') !== undefined);
  t.is(invitation.getChild('x', NS_MUC_USER)!.getChild('invite')!.attrs.from, bare(server, names.alice));
  t.is(invitation.getChild('x', NS_MUC_USER)!.getChild('invite')!.getChildText('reason'), 'family chat');
  const bobSelf = await enter(b, room, 'Bob');
  t.deepEqual(statusCodes(bobSelf), [100, 110], 'a non-anonymous room says so (100)');
  t.is(itemOf(bobSelf).affiliation, 'member');
  t.is(itemOf(bobSelf).role, 'participant');
  // Alice sees Bob arrive, with his real JID (non-anonymous room)
  const bobArrives = await a.next(isPresenceFrom(`${room}/Bob`));
  t.is(itemOf(bobArrives).jid, b.jid);

  // Bob, a member, may not invite Carol (only admins invite in members-only rooms by default)...
  await b.send(invite(room, bare(server, names.carol)));
  const refused = await b.next((s) => s.is('message') && s.attrs.type === 'error' && s.attrs.from === room);
  t.is(errorCondition(refused), 'forbidden');
  // ...Carol, not a member, may not enter...
  const closed = await join(c, room, 'Carol');
  t.is(closed.attrs.type, 'error');
  t.is(errorCondition(closed), 'registration-required');
  // ...until Alice invites her.
  await a.send(invite(room, bare(server, names.carol)));
  await c.next((s) => s.is('message') && s.attrs.from === room && s.getChild('x', NS_MUC_USER)?.getChild('invite') !== undefined);
  await enter(c, room, 'Carol');
  // Carol got the presence of those already there before her own (§7.2.3)
  const presences = c.received.filter((s) => s.is('presence') && s.attrs.from?.startsWith(`${room}/`) && s.attrs.type === undefined);
  t.deepEqual(presences.map((p) => p.attrs.from).sort(), [`${room}/Alice`, `${room}/Bob`, `${room}/Carol`]);
  t.is(presences[presences.length - 1]!.attrs.from, `${room}/Carol`, 'her own presence comes last');

  // everyone chats; every message reaches all three (the sender too) with the same stanza-id
  const lines: Array<[TestClient, string, string]> = [[a, 'Alice', 'hello everyone'], [b, 'Bob', 'hi Alice'], [c, 'Carol', 'hey both']];
  for (const [sender, nick, body] of lines) {
    await sender.send(groupchat(room, body, `id-${nick}`));
    const copies = await Promise.all([a, b, c].map((client) => client.next(isGroupchat(`${room}/${nick}`, body))));
    const ids = copies.map((m) => stanzaIdOf(m, room));
    t.truthy(ids[0]);
    t.deepEqual(ids, [ids[0], ids[0], ids[0]], `${nick}'s message has one stanza-id for all`);
    t.is(copies[[a, b, c].indexOf(sender)]!.attrs.id, `id-${nick}`, 'the echo keeps the sender\'s id');
    for (const m of copies) t.is(m.getChild('delay', NS_DELAY), undefined, 'live messages are not delayed');
  }
  // the member list shows Bob and Carol
  const members = await a.request(xml('iq', { type: 'get', to: room }, xml('query', { xmlns: 'http://jabber.org/protocol/muc#admin' }, xml('item', { affiliation: 'member' }))));
  t.deepEqual(members.getChild('query')!.getChildren('item').map((i) => i.attrs.jid).sort(), [bare(server, names.bob), bare(server, names.carol)].sort());
});

test('someone who leaves and comes back gets the discussion history, with delay stamps', async (t) => {
  const { a, b } = await trio(t, server);
  const room = freshRoom('history');
  await createInstantRoom(a, room, 'Alice');
  await enter(b, room, 'Bob');
  for (let i = 1; i <= 4; i++) {
    await a.send(groupchat(room, `message ${i}`));
    await b.next(isGroupchat(`${room}/Alice`, `message ${i}`));
  }
  await b.send(xml('presence', { to: `${room}/Bob`, type: 'unavailable' }));
  const gone = await b.next(isPresenceFrom(`${room}/Bob`, 'unavailable'));
  t.deepEqual(statusCodes(gone), [110]);
  await a.next(isPresenceFrom(`${room}/Bob`, 'unavailable'));
  await a.send(groupchat(room, 'while Bob was away'));
  await a.next(isGroupchat(`${room}/Alice`, 'while Bob was away'));

  b.received.length = 0;
  await enter(b, room, 'Bob');
  const history = b.received.filter((s) => s.is('message') && s.getChild('body') !== undefined);
  t.deepEqual(history.map((m) => m.getChildText('body')), ['message 1', 'message 2', 'message 3', 'message 4', 'while Bob was away']);
  for (const m of history) {
    t.is(m.getChild('delay', NS_DELAY)?.attrs.from, room);
    t.regex(m.getChild('delay', NS_DELAY)?.attrs.stamp ?? '', /^\d{4}-\d\d-\d\dT/);
    t.truthy(stanzaIdOf(m, room));
  }
  const subjectIndex = b.received.findIndex(isSubject(room));
  t.true(subjectIndex > b.received.indexOf(history[history.length - 1]!), 'the subject comes after the history');

  // <history maxstanzas='2'/> limits it; maxchars='0' asks for none
  await b.send(xml('presence', { to: `${room}/Bob`, type: 'unavailable' }));
  await b.next(isPresenceFrom(`${room}/Bob`, 'unavailable'));
  b.received.length = 0;
  await enter(b, room, 'Bob', { history: { maxstanzas: '2' } });
  t.deepEqual(b.received.filter((s) => s.is('message') && s.getChild('body')).map((m) => m.getChildText('body')), ['message 4', 'while Bob was away']);
  await b.send(xml('presence', { to: `${room}/Bob`, type: 'unavailable' }));
  await b.next(isPresenceFrom(`${room}/Bob`, 'unavailable'));
  b.received.length = 0;
  await enter(b, room, 'Bob', { history: { maxchars: '0' } });
  t.deepEqual(b.received.filter((s) => s.is('message') && s.getChild('body')), []);
});

test('a nickname in use is refused with conflict, and a nickname change is announced with 303', async (t) => {
  const { a, b } = await trio(t, server);
  const room = freshRoom('nicks');
  await createInstantRoom(a, room, 'Alice');
  const conflict = await join(b, room, 'Alice');
  t.is(conflict.attrs.type, 'error');
  t.is(errorCondition(conflict), 'conflict');

  await enter(b, room, 'Bob');
  await a.next(isPresenceFrom(`${room}/Bob`));
  await b.send(xml('presence', { to: `${room}/Alice` }));
  const taken = await b.next((s) => s.is('presence') && s.attrs.type === 'error' && s.attrs.from === `${room}/Alice`);
  t.is(errorCondition(taken), 'conflict');

  await b.send(xml('presence', { to: `${room}/Robert` }));
  const leftOld = await a.next(isPresenceFrom(`${room}/Bob`, 'unavailable'));
  t.deepEqual(statusCodes(leftOld), [303]);
  t.is(itemOf(leftOld).nick, 'Robert');
  await a.next(isPresenceFrom(`${room}/Robert`));
  const ownOld = await b.next(isPresenceFrom(`${room}/Bob`, 'unavailable'));
  t.deepEqual(statusCodes(ownOld), [110, 303]);
  const ownNew = await b.next(isPresenceFrom(`${room}/Robert`));
  t.true(statusCodes(ownNew).includes(110));
  await b.send(groupchat(room, 'call me Robert'));
  await a.next(isGroupchat(`${room}/Robert`, 'call me Robert'));
  t.pass();
});

test('an IQ from one occupant to another arrives as well-formed XML, with one `to`, and its answer comes back', async (t) => {
  // Gajim, poezio and Conversations ask new occupants for disco#info, version and vCard: a stanza
  // with two `to` attributes made their parsers drop the connection, and their rejoin did it again.
  const { a, b } = await trio(t, server);
  const room = freshRoom('iq');
  await createInstantRoom(a, room, 'Alice');
  await enter(b, room, 'Bob');
  const answer = a.request(xml('iq', { type: 'get', to: `${room}/Bob`, id: 'disco-bob' }, xml('query', { xmlns: NS_DISCO_INFO })));
  const asked = await b.next((s) => s.is('iq') && s.attrs.id === 'disco-bob');
  t.is(asked.attrs.from, `${room}/Alice`);
  t.is(asked.attrs.to, b.jid);
  // @xmpp/client answers an IQ it has no handler for with service-unavailable; the room passes it back
  const error = await answer.then(() => undefined, (err: { condition?: string }) => err.condition);
  t.is(error, 'service-unavailable');
  t.is(b.wire.problem, undefined, 'what Bob received is well-formed');
  t.is(a.wire.problem, undefined, 'what Alice received is well-formed');
});

test('occupants send each other private messages through the room', async (t) => {
  const { a, b, c } = await trio(t, server);
  const room = freshRoom('pm');
  await createInstantRoom(a, room, 'Alice');
  await enter(b, room, 'Bob');
  await enter(c, room, 'Carol');
  await a.send(xml('message', { to: `${room}/Bob`, type: 'chat' }, xml('body', {}, 'psst, Bob')));
  const pm = await b.next((s) => s.is('message') && s.getChildText('body') === 'psst, Bob');
  t.is(pm.attrs.from, `${room}/Alice`);
  t.is(pm.attrs.type, 'chat');
  t.truthy(pm.getChild('x', NS_MUC_USER));
  await settle(c);
  t.false(c.received.some((s) => s.getChildText('body') === 'psst, Bob'), 'Carol does not see it');
  await a.send(xml('message', { to: `${room}/Nobody`, type: 'chat' }, xml('body', {}, 'hello?')));
  const error = await a.next((s) => s.is('message') && s.attrs.type === 'error' && s.attrs.from === `${room}/Nobody`);
  t.is(errorCondition(error), 'item-not-found');
});

test('a temporary room is destroyed when its last occupant leaves', async (t) => {
  const { a } = await trio(t, server);
  const room = freshRoom('temp');
  await createInstantRoom(a, room, 'Alice');
  const info = await a.request(xml('iq', { type: 'get', to: room }, xml('query', { xmlns: NS_DISCO_INFO })));
  const features = info.getChild('query')!.getChildren('feature').map((f) => f.attrs.var);
  t.true(features.includes('muc_temporary'));
  t.true(features.includes('http://jabber.org/protocol/muc'));
  t.true(features.includes('urn:xmpp:sid:0'));
  const roomInfo = info.getChild('query')!.getChild('x', 'jabber:x:data')!;
  t.is(roomInfo.getChildren('field').find((f) => f.attrs.var === 'muc#roominfo_occupants')?.getChildText('value'), '1');

  await a.send(xml('presence', { to: `${room}/Alice`, type: 'unavailable' }));
  await a.next(isPresenceFrom(`${room}/Alice`, 'unavailable'));
  const error = await a.request(xml('iq', { type: 'get', to: room }, xml('query', { xmlns: NS_DISCO_INFO }))).catch((err: { condition?: string }) => err);
  t.is((error as { condition?: string }).condition, 'item-not-found');
});

test('a new room is locked until its owner configures it', async (t) => {
  const { a, b } = await trio(t, server);
  const room = freshRoom('locked');
  const self = await enter(a, room, 'Alice');
  t.deepEqual(statusCodes(self), [110, 201]);
  const early = await join(b, room, 'Bob');
  t.is(errorCondition(early), 'item-not-found');
  await a.request(xml('iq', { type: 'set', to: room }, xml('query', { xmlns: 'http://jabber.org/protocol/muc#owner' }, xml('x', { xmlns: 'jabber:x:data', type: 'submit' }))));
  await enter(b, room, 'Bob');
  t.pass();
});

test('XEP-0410: a self-ping is answered by the room while joined, and refused after leaving', async (t) => {
  const { a } = await trio(t, server);
  const room = freshRoom('selfping');
  await createInstantRoom(a, room, 'Alice');
  const pong = await a.request(xml('iq', { type: 'get', to: `${room}/Alice` }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
  t.is(pong.attrs.type, 'result');
  await a.send(xml('presence', { to: `${room}/Alice`, type: 'unavailable' }));
  await a.next(isPresenceFrom(`${room}/Alice`, 'unavailable'));
  // the temporary room is gone with its last occupant
  const error = await a.request(xml('iq', { type: 'get', to: `${room}/Alice` }, xml('ping', { xmlns: 'urn:xmpp:ping' }))).catch((err: { condition?: string }) => err);
  t.true(['not-acceptable', 'item-not-found'].includes((error as { condition: string }).condition));
});

test('one user joins under the same nick from two devices: both get the messages, the others see one occupant', async (t) => {
  const { a, b, names } = await trio(t, server);
  const room = freshRoom('devices');
  await createInstantRoom(a, room, 'Alice');
  await enter(b, room, 'Bob');
  const laptop = await occupantClient(t, server, names.bob, 'laptop');
  await enter(laptop, room, 'Bob');
  await a.send(groupchat(room, 'to both devices'));
  await b.next(isGroupchat(`${room}/Alice`, 'to both devices'));
  await laptop.next(isGroupchat(`${room}/Alice`, 'to both devices'));
  // the phone leaves; Bob is still in the room on his laptop
  await b.send(xml('presence', { to: `${room}/Bob`, type: 'unavailable' }));
  await b.next(isPresenceFrom(`${room}/Bob`, 'unavailable'));
  await laptop.send(groupchat(room, 'still here'));
  await a.next(isGroupchat(`${room}/Bob`, 'still here'));
  t.false(a.received.some(isPresenceFrom(`${room}/Bob`, 'unavailable')), 'Alice never saw Bob leave');
});

test("when the device whose presence the room showed leaves, the others see the presence of Bob's device that stays", async (t) => {
  const { a, b, names } = await trio(t, server);
  const room = freshRoom('devices');
  await createInstantRoom(a, room, 'Alice');
  await b.send(xml('presence', { to: `${room}/Bob` }, xml('x', { xmlns: NS_MUC }), xml('show', {}, 'away')));
  await b.next(isSubject(room));
  const away = (s: Element) => isPresenceFrom(`${room}/Bob`)(s) && s.attrs.type === undefined && s.getChildText('show') === 'away';
  await a.next(away);
  const laptop = await occupantClient(t, server, names.bob, 'laptop');
  await enter(laptop, room, 'Bob');
  await laptop.send(xml('presence', { to: `${room}/Bob` }, xml('show', {}, 'dnd'))); // the room shows the latest to speak
  await a.next((s) => isPresenceFrom(`${room}/Bob`)(s) && s.getChildText('show') === 'dnd');
  // the laptop, whose 'dnd' the room shows, leaves: Bob is still there, away on his phone
  await laptop.send(xml('presence', { to: `${room}/Bob`, type: 'unavailable' }));
  const now = await a.next(away);
  t.is(now.getChild('x', NS_MUC_USER)?.getChild('item')?.attrs.role, 'participant');
  t.false(a.received.some(isPresenceFrom(`${room}/Bob`, 'unavailable')), 'Alice never saw Bob leave');
});

test('the subject is set by a moderator and sent to whoever joins', async (t) => {
  const { a, b } = await trio(t, server);
  const room = freshRoom('subject');
  await createInstantRoom(a, room, 'Alice');
  await enter(b, room, 'Bob');
  await a.send(xml('message', { to: room, type: 'groupchat' }, xml('subject', {}, 'Plans for Sunday')));
  const change = await b.next(isSubject(room));
  t.is(change.getChildText('subject'), 'Plans for Sunday');
  t.is(change.attrs.from, `${room}/Alice`);
  // participants may not change it by default
  await b.send(xml('message', { to: room, type: 'groupchat' }, xml('subject', {}, 'No plans')));
  const refused = await b.next((s) => s.is('message') && s.attrs.type === 'error');
  t.is(errorCondition(refused), 'forbidden');
  const { carol } = await freshAccounts(server, 'carol');
  const c = await occupantClient(t, server, carol);
  await join(c, room, 'Carol');
  const subject = await c.next(isSubject(room));
  t.is(subject.getChildText('subject'), 'Plans for Sunday');
});

test('an occupant whose connection ends leaves the room, even if it never sent initial presence', async (t) => {
  const { a, names } = await trio(t, server);
  const room = freshRoom('dropped');
  await createInstantRoom(a, room, 'Alice');
  const quiet = await login(server, names.bob, 'quiet'); // joins the room without going online first
  await enter(quiet, room, 'Bob');
  await a.next(isPresenceFrom(`${room}/Bob`));
  await quiet.stop();
  const gone = await a.next(isPresenceFrom(`${room}/Bob`, 'unavailable'));
  t.deepEqual(statusCodes(gone), []);
});

test('a client that joins again while still in the room gets the whole join sequence again', async (t) => {
  const { a, b } = await trio(t, server);
  const room = freshRoom('rejoin');
  await createInstantRoom(a, room, 'Alice');
  await enter(b, room, 'Bob');
  await a.send(groupchat(room, 'before the hiccup'));
  await b.next(isGroupchat(`${room}/Alice`, 'before the hiccup'));
  b.received.length = 0;
  // Bob's client lost its state (the room did not see him leave) and joins again
  await enter(b, room, 'Bob');
  t.true(b.received.some(isPresenceFrom(`${room}/Alice`)), 'the other occupants again');
  t.true(b.received.some((s) => s.is('message') && s.getChildText('body') === 'before the hiccup' && s.getChild('delay', NS_DELAY) !== undefined), 'the history again');
  // he is still one occupant: Alice saw no one leave or arrive twice
  await a.send(groupchat(room, 'still one Bob'));
  await b.next(isGroupchat(`${room}/Alice`, 'still one Bob'));
  t.false(a.received.some(isPresenceFrom(`${room}/Bob`, 'unavailable')));
});

test('a nickname is normalised on the way in, and the newcomer is told so (210)', async (t) => {
  const { a, b } = await trio(t, server);
  const room = freshRoom('nfc');
  await createInstantRoom(a, room, 'Alice');
  await b.send(xml('presence', { to: `${room}/Zoe\u0301` }, xml('x', { xmlns: 'http://jabber.org/protocol/muc' })));
  const self = await b.next((s) => s.is('presence') && statusCodes(s).includes(110));
  t.is(self.attrs.from, `${room}/Zo\u00e9`);
  t.deepEqual(statusCodes(self), [110, 210]);
});

test('look-alike nicknames are refused with conflict, invisible ones as malformed (RFC 8266)', async (t) => {
  const { a, b } = await trio(t, server);
  const room = freshRoom('lookalike');
  await createInstantRoom(a, room, 'Alice');
  for (const nick of ['alice', 'ALICE', '\u0410lice', 'Ａｌｉｃｅ', ' Alice ']) {
    const refused = await join(b, room, nick);
    t.is(refused.attrs.type, 'error', JSON.stringify(nick));
    t.is(errorCondition(refused), 'conflict', JSON.stringify(nick));
  }
  await b.send(xml('presence', { to: `${room}/Bob\u200b` }, xml('x', { xmlns: 'http://jabber.org/protocol/muc' })));
  const invisible = await b.next((s) => s.is('presence') && s.attrs.type === 'error' && (s.attrs.from ?? '').startsWith(`${room}/Bob`));
  t.is(errorCondition(invisible), 'jid-malformed');
  // and once in, Bob cannot take a look-alike of Alice's nick either
  await enter(b, room, 'Bob');
  await b.send(xml('presence', { to: `${room}/\u0410LICE` }));
  const taken = await b.next((s) => s.is('presence') && s.attrs.type === 'error' && s.attrs.from === `${room}/\u0410LICE`);
  t.is(errorCondition(taken), 'conflict');
});

test('history can be limited by time: seconds and since', async (t) => {
  const { a, b } = await trio(t, server);
  const room = freshRoom('since');
  await createInstantRoom(a, room, 'Alice');
  await a.send(groupchat(room, 'an old one'));
  await a.next(isGroupchat(`${room}/Alice`, 'an old one'));
  await new Promise((resolve) => setTimeout(resolve, 1100));
  const cut = new Date().toISOString();
  await a.send(groupchat(room, 'a new one'));
  await a.next(isGroupchat(`${room}/Alice`, 'a new one'));
  await enter(b, room, 'Bob', { history: { since: cut } });
  t.deepEqual(b.received.filter((s) => s.is('message') && s.getChild('body')).map((m) => m.getChildText('body')), ['a new one']);
  await b.send(xml('presence', { to: `${room}/Bob`, type: 'unavailable' }));
  await b.next(isPresenceFrom(`${room}/Bob`, 'unavailable'));
  b.received.length = 0;
  await enter(b, room, 'Bob', { history: { seconds: '60' } });
  t.deepEqual(b.received.filter((s) => s.is('message') && s.getChild('body')).map((m) => m.getChildText('body')), ['an old one', 'a new one']);
});

test('a room holds no more occupants than its limit; the invitee can decline', async (t) => {
  const { a, b, c, names } = await trio(t, server);
  const room = freshRoom('small');
  await enter(a, room, 'Alice');
  await a.request(xml('iq', { type: 'set', to: room }, xml('query', { xmlns: 'http://jabber.org/protocol/muc#owner' },
    xml('x', { xmlns: 'jabber:x:data', type: 'submit' }, xml('field', { var: 'muc#roomconfig_maxusers' }, xml('value', {}, '2'))))));
  await enter(b, room, 'Bob');
  const full = await join(c, room, 'Carol');
  t.is(errorCondition(full), 'service-unavailable');
  // an owner cannot raise it beyond the service's max_occupants (1000)
  const tooMany = await a.request(xml('iq', { type: 'set', to: room }, xml('query', { xmlns: 'http://jabber.org/protocol/muc#owner' },
    xml('x', { xmlns: 'jabber:x:data', type: 'submit' }, xml('field', { var: 'muc#roomconfig_maxusers' }, xml('value', {}, '5000')))))).catch((err: { condition?: string }) => err);
  t.is((tooMany as { condition?: string }).condition, 'not-acceptable');

  // Carol is invited anyway and says no thanks (§7.8.2 decline, back through the room)
  await a.send(invite(room, bare(server, names.carol)));
  await c.next((s) => s.is('message') && s.attrs.from === room);
  await c.send(xml('message', { to: room }, xml('x', { xmlns: NS_MUC_USER }, xml('decline', { to: bare(server, names.alice) }, xml('reason', {}, 'too crowded')))));
  const decline = await a.next((s) => s.is('message') && s.attrs.from === room && s.getChild('x', NS_MUC_USER)?.getChild('decline') !== undefined);
  t.is(decline.getChild('x', NS_MUC_USER)!.getChild('decline')!.attrs.from, bare(server, names.carol));
  t.is(decline.getChild('x', NS_MUC_USER)!.getChild('decline')!.getChildText('reason'), 'too crowded');
});

test('what a room answers to stanzas it cannot accept', async (t) => {
  const { a, b } = await trio(t, server);
  const room = freshRoom('errors');
  await createInstantRoom(a, room, 'Alice');
  // a group message from someone not in the room
  await b.send(groupchat(room, 'let me in'));
  t.is(errorCondition(await b.next((s) => s.is('message') && s.attrs.type === 'error' && s.attrs.from === room)), 'not-acceptable');
  // entering without a nickname
  await b.send(xml('presence', { to: room }, xml('x', { xmlns: 'http://jabber.org/protocol/muc' })));
  t.is(errorCondition(await b.next((s) => s.is('presence') && s.attrs.type === 'error')), 'jid-malformed');
  // a groupchat message addressed to one occupant
  await enter(b, room, 'Bob');
  await b.send(xml('message', { to: `${room}/Alice`, type: 'groupchat' }, xml('body', {}, 'just you')));
  t.is(errorCondition(await b.next((s) => s.is('message') && s.attrs.type === 'error' && s.attrs.from === `${room}/Alice`)), 'bad-request');
  // an admin request with a role that does not exist, and one from a participant
  const unknownRole = await a.request(xml('iq', { type: 'set', to: room }, xml('query', { xmlns: 'http://jabber.org/protocol/muc#admin' }, xml('item', { nick: 'Bob', role: 'king' })))).catch((err: { condition?: string }) => err);
  t.is((unknownRole as { condition?: string }).condition, 'bad-request');
  // a message to a room that does not exist
  await b.send(groupchat(freshRoom('nowhere'), 'anyone?'));
  t.is(errorCondition(await b.next((s) => s.is('message') && s.attrs.type === 'error' && s.attrs.from?.includes('nowhere') === true)), 'item-not-found');
  // a request to the service it does not handle
  const unknown = await a.request(xml('iq', { type: 'get', to: SERVICE }, xml('query', { xmlns: 'jabber:iq:version' }))).catch((err: { condition?: string }) => err);
  t.is((unknown as { condition?: string }).condition, 'service-unavailable');
});

test('XEP-0421: every occupant has an occupant id of the room\'s making, kept across nick changes', async (t) => {
  const { a, b } = await trio(t, server);
  const room = freshRoom('occupant-id');
  await createInstantRoom(a, room, 'Alice');
  await enter(b, room, 'Bob');
  const occupantId = (s: { getChild(name: string, ns?: string): { attrs: Record<string, string> } | undefined }) => s.getChild('occupant-id', 'urn:xmpp:occupant-id:0')?.attrs.id;
  const bobPresence = await a.next(isPresenceFrom(`${room}/Bob`));
  const id = occupantId(bobPresence);
  t.truthy(id);
  // a forged id in a message is replaced by the room's
  await b.send(xml('message', { to: room, type: 'groupchat' }, xml('body', {}, 'it is me'), xml('occupant-id', { xmlns: 'urn:xmpp:occupant-id:0', id: 'forged' })));
  const message = await a.next(isGroupchat(`${room}/Bob`, 'it is me'));
  t.deepEqual(message.getChildren('occupant-id', 'urn:xmpp:occupant-id:0').map((o) => o.attrs.id), [id]);
  await b.send(xml('presence', { to: `${room}/Robert` }));
  t.is(occupantId(await a.next(isPresenceFrom(`${room}/Robert`))), id, 'the same person under another nick');
  t.not(occupantId(await b.next(isPresenceFrom(`${room}/Alice`))), id);
});
