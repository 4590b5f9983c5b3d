// XEP-0054 vCards and XEP-0153 avatar hashes: what a user publishes about themself, and what
// their contacts learn from it.
import { createHash } from 'node:crypto';
import test from 'ava';
import type Element from 'ltx/lib/Element.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { xml, type TestClient } from '../helpers/clients.js';
import { bare, freshAccounts, iqFailure, isPresence, login, makeFriends, online, loginForTest } from '../helpers/conversation.js';
import { createInstantRoom, enter, freshRoom } from '../helpers/muc.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
const NS_VCARD = 'vcard-temp';
const NS_UPDATE = 'vcard-temp:x:update';

let server: TestServer;
test.before(async () => {
  server = await startServer();
});
test.after.always(async () => server?.stop());

const getVcard = (client: TestClient, to?: string) =>
  client.request(xml('iq', to === undefined ? { type: 'get' } : { type: 'get', to }, xml('vCard', { xmlns: NS_VCARD })));
const setVcard = (client: TestClient, ...fields: Element[]) => client.request(xml('iq', { type: 'set' }, xml('vCard', { xmlns: NS_VCARD }, ...fields)));

const PHOTO = Buffer.from('not really a PNG, but bytes all the same');
const photoField = (bytes: Buffer) => xml('PHOTO', {}, xml('TYPE', {}, 'image/png'), xml('BINVAL', {}, bytes.toString('base64')));
const photoOf = (presence: Element) => presence.getChild('x', NS_UPDATE)?.getChild('photo');

test('Alice sets her vCard and reads it back, and a new one replaces it whole', async (t) => {
  const { alice } = await freshAccounts(server, 'alice');
  const a = await loginForTest(t, server, alice, 'phone');
  await setVcard(a, xml('FN', {}, 'Alice Liddell'), xml('NICKNAME', {}, 'ally'));
  const vcard = (await getVcard(a)).getChild('vCard', NS_VCARD)!;
  t.is(vcard.getChildText('FN'), 'Alice Liddell');
  t.is(vcard.getChildText('NICKNAME'), 'ally');

  await setVcard(a, xml('FN', {}, 'Alice'));
  const again = (await getVcard(a, bare(server, alice))).getChild('vCard', NS_VCARD)!;
  t.is(again.getChildText('FN'), 'Alice');
  t.is(again.getChild('NICKNAME'), undefined);
});

test('Bob reads Alice\'s vCard; an account without one has an empty vCard', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'phone');
  await setVcard(a, xml('FN', {}, 'Alice Liddell'));
  const b = await loginForTest(t, server, bob, 'laptop');
  t.is((await getVcard(b, bare(server, alice))).getChild('vCard', NS_VCARD)?.getChildText('FN'), 'Alice Liddell');
  const own = (await getVcard(b)).getChild('vCard', NS_VCARD)!;
  t.is(own.getChildElements().length, 0);
});

test('nobody else may change a user\'s vCard, and a missing account has none', async (t) => {
  const { alice, mallory } = await freshAccounts(server, 'alice', 'mallory');
  const m = await loginForTest(t, server, mallory, 'pc');
  const forged = xml('iq', { type: 'set', to: bare(server, alice) }, xml('vCard', { xmlns: NS_VCARD }, xml('FN', {}, 'Pwned')));
  t.is(await iqFailure(m.request(forged)), 'forbidden');
  t.is(await iqFailure(getVcard(m, bare(server, 'nobody-here'))), 'service-unavailable');
});

test('a vCard over the size limit is refused', async (t) => {
  const { alice } = await freshAccounts(server, 'alice');
  const a = await loginForTest(t, server, alice, 'phone');
  t.is(await iqFailure(setVcard(a, photoField(Buffer.alloc(70 * 1024, 7)))), 'not-acceptable');
});

test('after Alice sets a photo, Bob receives her presence with its SHA-1', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  await makeFriends(server, alice, bob);
  const b = await loginForTest(t, server, bob, 'laptop');
  await online(b);
  const a = await loginForTest(t, server, alice, 'phone');
  // before any photo: an empty <photo/>, even if the client claimed one
  const first = await online(a, [xml('x', { xmlns: NS_UPDATE }, xml('photo', {}, 'deadbeef'))]);
  t.is(photoOf(first)?.getText(), '');
  t.is(first.getChildren('x', NS_UPDATE).length, 1);

  await setVcard(a, xml('FN', {}, 'Alice'), photoField(PHOTO));
  await a.send(xml('presence', {}, xml('status', {}, 'new avatar')));
  const seen = await b.next((s) => isPresence(a.jid)(s) && s.getChildText('status') === 'new avatar');
  t.is(photoOf(seen)?.getText(), createHash('sha1').update(PHOTO).digest('hex'));
});

test('the photo hash is known again at the next login', async (t) => {
  const { alice } = await freshAccounts(server, 'alice');
  const a = await login(server, alice, 'phone');
  await setVcard(a, photoField(PHOTO));
  await a.stop();
  const again = await loginForTest(t, server, alice, 'laptop');
  const presence = await online(again);
  t.is(photoOf(presence)?.getText(), createHash('sha1').update(PHOTO).digest('hex'));
});

test("in a group chat, Bob sees the hash of Alice's photo in her join presence, which her client sent without one", async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'gajim');
  const b = await loginForTest(t, server, bob, 'gajim');
  await setVcard(a, photoField(PHOTO));
  const room = freshRoom('avatars');
  await createInstantRoom(b, room, 'bob');
  // Gajim leaves the hash out of a join when the server converts avatars (XEP-0398)
  await enter(a, room, 'alice');
  const seen = await b.next((s) => s.is('presence') && s.attrs.from === `${room}/alice`);
  t.is(photoOf(seen)?.getText(), createHash('sha1').update(PHOTO).digest('hex'));
});

test("in a group chat, Bob asks for Alice's vCard at her room address and gets it, though her client does not answer such requests", async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'gajim');
  const b = await loginForTest(t, server, bob, 'gajim');
  await setVcard(a, xml('FN', {}, 'Alice'), photoField(PHOTO));
  const room = freshRoom('vcards');
  await createInstantRoom(b, room, 'bob');
  await enter(a, room, 'alice');
  const reply = await getVcard(b, `${room}/alice`);
  t.is(reply.attrs.from, `${room}/alice`, 'from her room address: her account stays hidden');
  const vcard = reply.getChild('vCard', NS_VCARD)!;
  t.is(vcard.getChildText('FN'), 'Alice');
  t.is(vcard.getChild('PHOTO')?.getChildText('BINVAL'), PHOTO.toString('base64'));
  t.false(a.received.some((s) => s.is('iq') && s.getChild('vCard', NS_VCARD) !== undefined), "Alice's client was not asked");
});

test("in a group chat, the answer to Bob's request goes to the client of Bob's that asked, not to the one the room shows", async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'gajim');
  const phone = await loginForTest(t, server, bob, 'phone');
  await setVcard(a, xml('FN', {}, 'Alice'), photoField(PHOTO));
  const room = freshRoom('devices');
  await createInstantRoom(phone, room, 'bob');
  await enter(a, room, 'alice');
  const laptop = await loginForTest(t, server, bob, 'laptop');
  await enter(laptop, room, 'bob'); // the room now shows the laptop's presence for bob
  const reply = await getVcard(phone, `${room}/alice`);
  t.is(reply.getChild('vCard', NS_VCARD)?.getChildText('FN'), 'Alice');
  // and an IQ answered by Alice's client, too
  const asked = phone.request(xml('iq', { type: 'get', to: `${room}/alice` }, xml('time', { xmlns: 'urn:xmpp:time' })));
  const request = await a.next((s) => s.is('iq') && s.attrs.type === 'get' && s.getChild('time', 'urn:xmpp:time') !== undefined);
  await a.send(xml('iq', { type: 'result', id: request.attrs.id, to: request.attrs.from }, xml('time', { xmlns: 'urn:xmpp:time' }, xml('utc', {}, '2026-12-06T00:00:00Z'), xml('tzo', {}, '+00:00'))));
  t.is((await asked).getChild('time', 'urn:xmpp:time')?.getChildText('tzo'), '+00:00');
  t.false(laptop.received.some((s) => s.is('iq') && s.attrs.from === `${room}/alice`), 'the laptop got none of the answers');
});

test("Alice changes her photo and sends no presence (as Gajim does): her contacts and her room still get her presence with the new hash", async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  await makeFriends(server, alice, bob);
  const b = await loginForTest(t, server, bob, 'laptop');
  await online(b);
  const a = await loginForTest(t, server, alice, 'gajim');
  await online(a, [xml('status', {}, 'reading')]);
  await b.next((s) => isPresence(a.jid)(s) && s.getChildText('status') === 'reading');
  const room = freshRoom('photos');
  await createInstantRoom(b, room, 'bob');
  await a.send(xml('presence', { to: `${room}/alice` }, xml('x', { xmlns: 'http://jabber.org/protocol/muc' }), xml('status', {}, 'in the room')));
  await b.next((s) => s.is('presence') && s.attrs.from === `${room}/alice`);

  const hash = createHash('sha1').update(PHOTO).digest('hex');
  await setVcard(a, photoField(PHOTO));
  const contact = await b.next((s) => isPresence(a.jid)(s) && photoOf(s)?.getText() === hash);
  t.is(contact.getChildText('status'), 'reading', 'the same presence, with the new hash');
  const inRoom = await b.next((s) => s.is('presence') && s.attrs.from === `${room}/alice` && photoOf(s)?.getText() === hash);
  t.false("type" in inRoom.attrs, "available");
  t.is(inRoom.getChild('x', 'http://jabber.org/protocol/muc#user')?.getChild('item')?.attrs.role, 'participant', 'still in the room');
});
