// Room archives (XEP-0313 §6): a group's history is on the server, queried at the room's JID;
// a live group message's stanza-id is its archive id; members-only rooms keep theirs for members.
import test from 'ava';
import { startServer, type TestServer } from '../helpers/server.js';
import { xml } from '../helpers/clients.js';
import { bare, freshAccounts, iqFailure } from '../helpers/conversation.js';
import { configure, createInstantRoom, createPrivateGroup, enter, freshRoom, groupchat, isGroupchat, NS_DISCO_INFO, NS_MUC_ADMIN, occupantClient } from '../helpers/muc.js';
import { NS_MAM, mamQuery, stanzaIdOf, type MamPage } from '../helpers/mam.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';

let server: TestServer;
test.before(async () => {
  server = await startServer({ config: { modules: { roster: {}, presence: {}, disco: {}, ping: {}, muc: {}, mam: {} } } });
});
test.after.always(async () => server?.stop());

const mamFailure = (query: Promise<MamPage>) => iqFailure(query.then((page) => page.fin));

test('a room keeps its messages; a newcomer pages through them at the room JID, stanza-ids matching', async (t) => {
  const { alice, bob, carol } = await freshAccounts(server, 'alice', 'bob', 'carol');
  const room = freshRoom();
  const a = await occupantClient(t, server, alice);
  const b = await occupantClient(t, server, bob);
  await createInstantRoom(a, room, 'Alice');
  await enter(b, room, 'Bob');
  const ids: string[] = [];
  for (let i = 1; i <= 12; i++) {
    const [client, nick] = i % 3 === 0 ? [b, 'Bob'] : [a, 'Alice'];
    await client.send(groupchat(room, `group message ${i}`));
    const echo = await client.next(isGroupchat(`${room}/${nick}`, `group message ${i}`));
    ids.push(stanzaIdOf(echo, room)!);
  }
  await a.send(xml('message', { to: room, type: 'groupchat' }, xml('composing', { xmlns: 'http://jabber.org/protocol/chatstates' })));

  const info = await a.request(xml('iq', { type: 'get', to: room }, xml('query', { xmlns: NS_DISCO_INFO })));
  t.true(info.getChild('query')!.getChildren('feature').some((f) => f.attrs.var === NS_MAM));

  // Carol never joined: an open room's archive is readable, backwards page by page
  const c = await occupantClient(t, server, carol);
  const pages: string[][] = [];
  let before = '';
  for (;;) {
    const page = await mamQuery(c, { to: room, max: 5, before });
    pages.unshift(page.results.map((r) => r.body ?? ''));
    for (const r of page.results) {
      t.is(r.message.attrs.type, 'groupchat');
      t.true(r.message.attrs.from!.startsWith(`${room}/`));
    }
    if (page.complete) break;
    before = page.first!;
  }
  t.deepEqual(pages.flat(), Array.from({ length: 12 }, (_, i) => `group message ${i + 1}`));
  const all = await mamQuery(c, { to: room, max: 50 });
  t.deepEqual(all.results.map((r) => r.id), ids);
  t.deepEqual((await mamQuery(c, { to: room, with: `${room}/Bob` })).results.map((r) => r.body), ['group message 3', 'group message 6', 'group message 9', 'group message 12']);
  // the room's results come from the room
  const raw = c.received.find((s) => s.is('message') && s.getChild('result', NS_MAM) !== undefined);
  t.is(raw?.attrs.from, room);
});

test("a members-only room's archive is for its members; archiving can be turned off", async (t) => {
  const { alice, bob, mallory } = await freshAccounts(server, 'alice', 'bob', 'mallory');
  const room = freshRoom('private');
  const a = await occupantClient(t, server, alice);
  const b = await occupantClient(t, server, bob);
  const m = await occupantClient(t, server, mallory);
  await createPrivateGroup(a, room, 'Alice');
  await a.request(xml('iq', { type: 'set', to: room }, xml('query', { xmlns: NS_MUC_ADMIN }, xml('item', { jid: bare(server, bob), affiliation: 'member' }))));
  await a.send(groupchat(room, 'members only'));
  await a.next(isGroupchat(`${room}/Alice`, 'members only'));

  t.deepEqual((await mamQuery(b, { to: room })).results.map((r) => r.body), ['members only'], 'a member who is not in the room');
  t.is(await mamFailure(mamQuery(m, { to: room })), 'forbidden');

  await configure(a, room, { 'muc#roomconfig_enablearchiving': '0' });
  await a.send(groupchat(room, 'not archived'));
  const echo = await a.next(isGroupchat(`${room}/Alice`, 'not archived'));
  t.truthy(stanzaIdOf(echo, room), 'a stanza-id all the same');
  t.deepEqual((await mamQuery(b, { to: room })).results.map((r) => r.body), ['members only']);
  const info = await a.request(xml('iq', { type: 'get', to: room }, xml('query', { xmlns: NS_DISCO_INFO })));
  t.false(info.getChild('query')!.getChildren('feature').some((f) => f.attrs.var === NS_MAM));
});

test("a private message through a room is kept in the recipient's archive as well as the sender's, with the stanza-id delivered", async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const room = freshRoom('pm');
  const a = await occupantClient(t, server, alice);
  const b = await occupantClient(t, server, bob);
  await createInstantRoom(a, room, 'Alice');
  await enter(b, room, 'Bob');
  await a.send(xml('message', { to: `${room}/Bob`, type: 'chat', id: 'pm1' }, xml('body', {}, 'psst, Bob')));
  const pm = await b.next((s) => s.is('message') && s.getChildText('body') === 'psst, Bob');
  t.is(pm.attrs.from, `${room}/Alice`);
  const id = stanzaIdOf(pm, bare(server, bob));
  t.truthy(id, "the PM carries its id in Bob's archive");
  t.is(stanzaIdOf(pm, room), undefined, 'not a room archive id: the room does not keep private messages');

  // Bob's archive: from the occupant, found by the room's JID and by the occupant's
  const mine = await mamQuery(b, { with: room });
  t.deepEqual(mine.results.map((r) => [r.id, r.body, r.message.attrs.from]), [[id, 'psst, Bob', `${room}/Alice`]]);
  t.deepEqual((await mamQuery(b, { with: `${room}/Alice` })).results.map((r) => r.id), [id]);
  t.deepEqual((await mamQuery(b, { with: `${room}/Carol` })).results, []);
  // Alice's archive has what she sent
  t.deepEqual((await mamQuery(a, { with: `${room}/Bob` })).results.map((r) => r.body), ['psst, Bob']);
  // the room's archive has no private message
  t.false((await mamQuery(b, { to: room })).results.some((r) => r.body === 'psst, Bob'));

  // Bob's preferences hold for private messages too
  await b.request(xml('iq', { type: 'set' }, xml('prefs', { xmlns: NS_MAM, default: 'always' }, xml('always'), xml('never', {}, xml('jid', {}, room)))));
  await a.send(xml('message', { to: `${room}/Bob`, type: 'chat' }, xml('body', {}, 'not for the record')));
  const unkept = await b.next((s) => s.is('message') && s.getChildText('body') === 'not for the record');
  t.is(stanzaIdOf(unkept, bare(server, bob)), undefined);
  t.deepEqual((await mamQuery(b, { with: room })).results.map((r) => r.body), ['psst, Bob']);
});
