// Room avatars (XEP-0486): a room's owner sets the room's vCard (XEP-0054) with a photo, as
// Conversations does for a group's picture; anyone reads it, the room's disco#info carries the
// photo's hash so that clients show it before joining, and occupants are told the room changed
// (status 104) while their own presence stays theirs.
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import type Element from 'ltx/lib/Element.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { xml, type TestClient } from '../helpers/clients.js';
import { bare, iqFailure, login, online } from '../helpers/conversation.js';
import { NS_DISCO_INFO, NS_MUC_USER, createPrivateGroup, enter, freshRoom, invite, occupantClient, statusCodes, trio } from '../helpers/muc.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';

const NS_VCARD = 'vcard-temp';
const NS_VCARD_UPDATE = 'vcard-temp:x:update';
const MAX_ROOM_VCARD = 8 * 1024;

let server: TestServer;
test.before(async () => {
  server = await startServer({ config: { modules: { roster: {}, presence: {}, disco: {}, vcard: {}, muc: { max_room_vcard_size: MAX_ROOM_VCARD } } } });
});
test.after.always(async () => server?.stop());

function vcardWithPhoto(photo: Buffer, name = 'Book club'): Element {
  return xml('vCard', { xmlns: NS_VCARD }, xml('FN', {}, name), xml('PHOTO', {}, xml('TYPE', {}, 'image/png'), xml('BINVAL', {}, photo.toString('base64'))));
}

function setRoomVcard(client: TestClient, room: string, vcard: Element): Promise<Element> {
  return client.request(xml('iq', { type: 'set', to: room }, vcard));
}

async function roomVcard(client: TestClient, room: string): Promise<Element> {
  return (await client.request(xml('iq', { type: 'get', to: room }, xml('vCard', { xmlns: NS_VCARD })))).getChild('vCard', NS_VCARD)!;
}

/** The room's disco#info: its features, and the values of muc#roominfo_avatarhash (undefined: no such field). */
async function roomInfo(client: TestClient, room: string): Promise<{ features: string[]; avatarHashes: string[] | undefined }> {
  const query = (await client.request(xml('iq', { type: 'get', to: room }, xml('query', { xmlns: NS_DISCO_INFO })))).getChild('query', NS_DISCO_INFO)!;
  const field = query.getChild('x', 'jabber:x:data')?.getChildren('field').find((f) => f.attrs.var === 'muc#roominfo_avatarhash');
  return { features: query.getChildren('feature').map((f) => f.attrs.var as string), avatarHashes: field?.getChildren('value').map((v) => v.getText()) };
}

const sha1 = (bytes: Buffer) => createHash('sha1').update(bytes).digest('hex');

test('Alice sets her group\'s picture; Bob inside is told the room changed; Carol outside sees the hash and fetches the picture', async (t) => {
  const { a, b, c, names } = await trio(t, server);
  const room = freshRoom('family');
  await createPrivateGroup(a, room, 'Alice');
  await a.send(invite(room, bare(server, names.bob)));
  await b.next((s) => s.is('message') && s.attrs.from === room);
  await enter(b, room, 'Bob');

  // before: the room supports vCards, has none, and advertises no hash
  const before = await roomInfo(c, room);
  t.true(before.features.includes(NS_VCARD));
  t.deepEqual(before.avatarHashes, []);
  t.is((await roomVcard(c, room)).children.length, 0, 'an empty vCard (XEP-0054 §3.3)');

  const photo = randomBytes(2000);
  await setRoomVcard(a, room, vcardWithPhoto(photo));
  const notice = await b.next((s) => s.is('message') && s.attrs.from === room && statusCodes(s).includes(104));
  t.is(notice.attrs.type, 'groupchat');

  // Carol is not in the (members-only) room, and still sees its picture, as in a room list
  t.deepEqual((await roomInfo(c, room)).avatarHashes, [sha1(photo)]);
  const card = await roomVcard(c, room);
  t.is(card.getChildText('FN'), 'Book club');
  t.deepEqual(Buffer.from(card.getChild('PHOTO')!.getChildText('BINVAL')!, 'base64'), photo);
});

test("an occupant's presence in the room keeps the occupant's own avatar hash, not the room's", async (t) => {
  const { a, b, names } = await trio(t, server);
  const room = freshRoom('club');
  await createPrivateGroup(a, room, 'Alice');
  await a.send(invite(room, bare(server, names.bob)));
  await b.next((s) => s.is('message') && s.attrs.from === room);
  await enter(b, room, 'Bob');
  await setRoomVcard(a, room, vcardWithPhoto(randomBytes(500)));
  await b.next((s) => s.is('message') && s.attrs.from === room && statusCodes(s).includes(104));

  // Bob changes his status in the room with his own avatar's hash (the one his server knows:
  // it stamps it into presence, XEP-0153 §4.1)
  const bobsPhoto = randomBytes(100);
  await b.request(xml('iq', { type: 'set' }, vcardWithPhoto(bobsPhoto, 'Bob')));
  const bobsHash = sha1(bobsPhoto);
  await b.send(xml('presence', { to: `${room}/Bob` }, xml('show', {}, 'away'), xml('x', { xmlns: NS_VCARD_UPDATE }, xml('photo', {}, bobsHash))));
  const seen = await a.next((s) => s.is('presence') && s.attrs.from === `${room}/Bob` && s.getChildText('show') === 'away');
  t.is(seen.getChild('x', NS_VCARD_UPDATE)?.getChildText('photo'), bobsHash);
  t.is(seen.getChild('x', NS_MUC_USER)?.getChild('item')?.attrs.affiliation, 'member');
});

test("only the room's owners may change its vCard; a malformed or too large one is refused", async (t) => {
  const { a, b, names } = await trio(t, server);
  const room = freshRoom('rules');
  await createPrivateGroup(a, room, 'Alice');
  await a.send(invite(room, bare(server, names.bob)));
  await b.next((s) => s.is('message') && s.attrs.from === room);
  await enter(b, room, 'Bob');
  const photo = randomBytes(300);
  await setRoomVcard(a, room, vcardWithPhoto(photo));

  // Bob is a member, not an owner (XEP-0486 §5: forbidden)
  t.is(await iqFailure(setRoomVcard(b, room, vcardWithPhoto(randomBytes(300), 'Bob was here'))), 'forbidden');
  t.is(await iqFailure(setRoomVcard(a, room, xml('vcard', { xmlns: NS_VCARD }))), 'bad-request');
  t.is(await iqFailure(setRoomVcard(a, room, vcardWithPhoto(randomBytes(MAX_ROOM_VCARD)))), 'not-acceptable');
  // the picture Alice set is still the one
  t.deepEqual(Buffer.from((await roomVcard(b, room)).getChild('PHOTO')!.getChildText('BINVAL')!, 'base64'), photo);
  t.deepEqual((await roomInfo(b, room)).avatarHashes, [sha1(photo)]);
});

test("a persistent room's picture is still there after a restart", async (t) => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-muc-vcard-'));
  t.teardown(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  const room = freshRoom('lasting');
  const photo = randomBytes(1000);
  const first = await startServer({ dataDir });
  try {
    await first.createAccount('alice');
    const a = await login(first, 'alice', 'phone');
    await online(a);
    await createPrivateGroup(a, room, 'Alice');
    await setRoomVcard(a, room, vcardWithPhoto(photo));
    await a.stop();
  } finally {
    await first.stop();
  }
  const second = await startServer({ dataDir });
  t.teardown(() => second.stop());
  await second.createAccount('dave');
  const d = await occupantClient(t, second, 'dave');
  t.deepEqual((await roomInfo(d, room)).avatarHashes, [sha1(photo)]);
  t.deepEqual(Buffer.from((await roomVcard(d, room)).getChild('PHOTO')!.getChildText('BINVAL')!, 'base64'), photo);
});
