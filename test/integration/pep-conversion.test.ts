// One set of bookmarks and one avatar whichever way a client keeps them: bookmarks between PEP
// (XEP-0402) and private XML (XEP-0048/0049), XEP-0411; avatars between PEP (XEP-0084) and the
// vCard (XEP-0054/0153), XEP-0398.
import { createHash } from 'node:crypto';
import test from 'ava';
import type Element from 'ltx/lib/Element.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { xml, type TestClient } from '../helpers/clients.js';
import { bare, freshAccounts, getRoster, isPresence, loginForTest, makeFriends, online, settle } from '../helpers/conversation.js';
import { NS_DISCO_INFO, advertiseCaps, eventItem, isEvent, items, publish } from '../helpers/pubsub.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
const BOOKMARKS = 'urn:xmpp:bookmarks:1';
const LEGACY = 'storage:bookmarks';
const NS_PRIVATE = 'jabber:iq:private';
const OPTIONS = { 'pubsub#persist_items': 'true', 'pubsub#max_items': 'max', 'pubsub#send_last_published_item': 'never', 'pubsub#access_model': 'whitelist' };

let server: TestServer;
test.before(async () => {
  server = await startServer();
});
test.after.always(async () => server?.stop());

let capsCounter = 0;
const isCapsQuery = (s: Element) => s.is('iq') && s.attrs.type === 'get' && s.getChild('query', NS_DISCO_INFO) !== undefined;
async function onlineWithInterest(client: TestClient, nodes: string[]): Promise<void> {
  await online(client, [advertiseCaps(client, [...nodes.map((n) => `${n}+notify`), `urn:test:conversion-${++capsCounter}`])]);
  await client.next(isCapsQuery);
  await settle(client);
}

const readPrivate = async (client: TestClient) =>
  (await client.request(xml('iq', { type: 'get' }, xml('query', { xmlns: NS_PRIVATE }, xml('storage', { xmlns: LEGACY }))))).getChild('query')!.getChild('storage', LEGACY)!;
const writePrivate = (client: TestClient, ...conferences: Element[]) =>
  client.request(xml('iq', { type: 'set' }, xml('query', { xmlns: NS_PRIVATE }, xml('storage', { xmlns: LEGACY }, ...conferences))));

test('the account says it converts bookmarks and avatars', async (t) => {
  const { alice } = await freshAccounts(server, 'alice');
  const a = await loginForTest(t, server, alice, 'phone');
  const info = await a.request(xml('iq', { type: 'get', to: bare(server, alice) }, xml('query', { xmlns: NS_DISCO_INFO })));
  const features = info.getChild('query')!.getChildren('feature').map((f) => f.attrs.var);
  for (const f of [`${BOOKMARKS}#compat`, `${BOOKMARKS}#compat-pep`, 'urn:xmpp:bookmarks-conversion:0', 'urn:xmpp:pep-vcard-conversion:0']) t.true(features.includes(f), f);
});

test('bookmarks a modern client publishes are what an old client reads from private XML', async (t) => {
  const { alice } = await freshAccounts(server, 'alice');
  const modern = await loginForTest(t, server, alice, 'gajim');
  await publish(modern, BOOKMARKS, xml('conference', { xmlns: BOOKMARKS, name: 'Tea', autojoin: 'true' }, xml('nick', {}, 'Alice')), { id: 'tea@conference.localhost', publishOptions: OPTIONS });
  await publish(modern, BOOKMARKS, xml('conference', { xmlns: BOOKMARKS, name: 'Work', autojoin: 'false' }), { id: 'work@conference.localhost', publishOptions: OPTIONS });
  const old = await loginForTest(t, server, alice, 'old');
  const storage = await readPrivate(old);
  const conferences = storage.getChildren('conference').map((c) => ({ jid: c.attrs.jid, name: c.attrs.name, autojoin: c.attrs.autojoin, nick: c.getChildText('nick') }));
  t.deepEqual(conferences, [
    { jid: 'tea@conference.localhost', name: 'Tea', autojoin: 'true', nick: 'Alice' },
    { jid: 'work@conference.localhost', name: 'Work', autojoin: 'false', nick: null },
  ]);
});

test('an old client writing private XML bookmarks updates PEP, and the modern devices are told', async (t) => {
  const { alice } = await freshAccounts(server, 'alice');
  const modern = await loginForTest(t, server, alice, 'conversations');
  await publish(modern, BOOKMARKS, xml('conference', { xmlns: BOOKMARKS, name: 'Tea', autojoin: 'true' }), { id: 'tea@conference.localhost', publishOptions: OPTIONS });
  await onlineWithInterest(modern, [BOOKMARKS]);
  const old = await loginForTest(t, server, alice, 'old');
  // tea goes, croquet comes
  await writePrivate(old, xml('conference', { jid: 'croquet@conference.localhost', name: 'Croquet', autojoin: '1' }, xml('nick', {}, 'Al')));
  const added = await modern.next(isEvent(BOOKMARKS, bare(server, alice)));
  t.is(eventItem(added)!.attrs.id, 'croquet@conference.localhost');
  t.is(eventItem(added)!.getChild('conference', BOOKMARKS)!.attrs.autojoin, 'true');
  const removed = await modern.next(isEvent(BOOKMARKS, bare(server, alice)));
  t.is(removed.getChild('event')!.getChild('items')!.getChild('retract')!.attrs.id, 'tea@conference.localhost');
  const now = await items(modern, undefined, BOOKMARKS);
  t.deepEqual(now.map((i) => i.attrs.id), ['croquet@conference.localhost']);
  t.is(now[0]!.getChild('conference', BOOKMARKS)!.getChildText('nick'), 'Al');
  // and the node stays private
  const config = await modern.request(xml('iq', { type: 'get' }, xml('pubsub', { xmlns: 'http://jabber.org/protocol/pubsub#owner' }, xml('configure', { node: BOOKMARKS }))));
  t.is(config.getChild('pubsub')!.getChild('configure')!.getChild('x')!.getChildren('field').find((f) => f.attrs.var === 'pubsub#access_model')!.getChildText('value'), 'whitelist');
});

test('an old client alone: its private XML bookmarks make a private PEP node', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  await makeFriends(server, alice, bob);
  const old = await loginForTest(t, server, alice, 'old');
  await writePrivate(old, xml('conference', { jid: 'a@conference.localhost', autojoin: 'true' }), xml('conference', { jid: 'b@conference.localhost', autojoin: 'false' }));
  t.deepEqual((await readPrivate(old)).getChildren('conference').map((c) => c.attrs.jid), ['a@conference.localhost', 'b@conference.localhost']);
  const b = await loginForTest(t, server, bob, 'pc');
  const failure = await b.request(xml('iq', { type: 'get', to: bare(server, alice) }, xml('pubsub', { xmlns: 'http://jabber.org/protocol/pubsub' }, xml('items', { node: BOOKMARKS })))).catch((err: { condition?: string }) => err.condition);
  t.is(failure, 'not-allowed');
});

// XEP-0048 on PEP (XEP-0411): the node `storage:bookmarks`, one item 'current' holding everything
const legacyPep = (...conferences: Element[]) => xml('storage', { xmlns: LEGACY }, ...conferences);
const legacyJids = (storage: Element | undefined) => (storage?.getChildren('conference') ?? []).map((c) => c.attrs.jid).sort();
/** Waits until `read` gives what `expected` says (the conversion runs after the publisher's result). */
async function eventually<T>(read: () => Promise<T>, expected: (value: T) => boolean): Promise<T> {
  for (let i = 0; ; i++) {
    const value = await read();
    if (expected(value) || i === 50) return value;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
const modernIds = async (client: TestClient) => (await items(client, undefined, BOOKMARKS)).map((i) => i.attrs.id).sort();
const legacyOnPep = async (client: TestClient) =>
  (await items(client, undefined, LEGACY)).find((i) => i.attrs.id === 'current')?.getChild('storage', LEGACY);

test('a client that keeps XEP-0048 bookmarks on PEP (Gajim) shares them with XEP-0402 and private XML clients', async (t) => {
  const { alice } = await freshAccounts(server, 'alice');
  const gajim = await loginForTest(t, server, alice, 'gajim');
  // what Gajim 1.7 publishes when the server says bookmarks-conversion but not #compat-pep
  await publish(gajim, LEGACY, legacyPep(xml('conference', { jid: 'trial@conference.localhost', autojoin: 'true' }, xml('nick', {}, 'alice'))), { id: 'current', publishOptions: OPTIONS });
  const web = await loginForTest(t, server, alice, 'converse');
  t.deepEqual(await eventually(() => modernIds(web), (ids) => ids.length === 1), ['trial@conference.localhost']);
  const conference = (await items(web, undefined, BOOKMARKS))[0]!.getChild('conference', BOOKMARKS)!;
  t.is(conference.attrs.autojoin, 'true');
  t.is(conference.getChildText('nick'), 'alice');
  t.deepEqual(legacyJids(await readPrivate(web)), ['trial@conference.localhost']);

  // the web chat bookmarks another room (XEP-0402): Gajim's node gets it, with a notification
  await onlineWithInterest(gajim, [LEGACY]);
  await publish(web, BOOKMARKS, xml('conference', { xmlns: BOOKMARKS, autojoin: 'true' }), { id: 'webroom@conference.localhost', publishOptions: OPTIONS });
  const told = await gajim.next(isEvent(LEGACY, bare(server, alice)));
  t.deepEqual(legacyJids(eventItem(told)!.getChild('storage', LEGACY)), ['trial@conference.localhost', 'webroom@conference.localhost']);

  // and forgets the first one (a retraction): Gajim's node follows
  await web.request(xml('iq', { type: 'set' }, xml('pubsub', { xmlns: 'http://jabber.org/protocol/pubsub' }, xml('retract', { node: BOOKMARKS, notify: 'true' }, xml('item', { id: 'trial@conference.localhost' })))));
  t.deepEqual(legacyJids(await eventually(() => legacyOnPep(gajim), (s) => legacyJids(s).length === 1)), ['webroom@conference.localhost']);

  // an old client's private XML write reaches both PEP forms
  const old = await loginForTest(t, server, alice, 'old');
  await writePrivate(old, xml('conference', { jid: 'croquet@conference.localhost', autojoin: 'false' }));
  t.deepEqual(await modernIds(web), ['croquet@conference.localhost']);
  t.deepEqual(legacyJids(await legacyOnPep(gajim)), ['croquet@conference.localhost']);
});

test('XEP-0402 bookmarks alone make no storage:bookmarks node: it is kept only for a client that has one', async (t) => {
  const { alice } = await freshAccounts(server, 'alice');
  const modern = await loginForTest(t, server, alice, 'conversations');
  await publish(modern, BOOKMARKS, xml('conference', { xmlns: BOOKMARKS, autojoin: 'true' }), { id: 'tea@conference.localhost', publishOptions: OPTIONS });
  await publish(modern, BOOKMARKS, xml('conference', { xmlns: BOOKMARKS, autojoin: 'true' }), { id: 'cake@conference.localhost', publishOptions: OPTIONS });
  const failure = await items(modern, undefined, LEGACY).catch((err: { condition?: string }) => err.condition);
  t.is(failure, 'item-not-found');
});

// --- XEP-0398 ---------------------------------------------------------------------------------
const DATA = 'urn:xmpp:avatar:data';
const METADATA = 'urn:xmpp:avatar:metadata';
const PNG = Buffer.from('89504e470d0a1a0a0000000d4948445200000001000000010806000000', 'hex');
const sha1 = (bytes: Buffer) => createHash('sha1').update(bytes).digest('hex');
const vcardPhotoHash = (presence: Element) => presence.getChild('x', 'vcard-temp:x:update')?.getChildText('photo');

test('an avatar published on PEP becomes the vCard photo, and the presence hash follows', async (t) => {
  const { alice } = await freshAccounts(server, 'alice');
  const a = await loginForTest(t, server, alice, 'phone');
  const id = sha1(PNG);
  await publish(a, DATA, xml('data', { xmlns: DATA }, PNG.toString('base64')), { id });
  await publish(a, METADATA, xml('metadata', { xmlns: METADATA }, xml('info', { id, bytes: String(PNG.length), type: 'image/png' })), { id });
  // the publish is answered once the vCard has it
  const photo = (await a.request(xml('iq', { type: 'get' }, xml('vCard', { xmlns: 'vcard-temp' })))).getChild('vCard')!.getChild('PHOTO');
  t.truthy(photo);
  t.is(photo!.getChildText('TYPE'), 'image/png');
  t.deepEqual(Buffer.from(photo!.getChildText('BINVAL')!, 'base64'), PNG);
  const reflected = await online(a);
  t.is(vcardPhotoHash(reflected), id);
});

test('a vCard photo set by an old client is published on PEP, and a contact with +notify is told', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  await makeFriends(server, alice, bob);
  const b = await loginForTest(t, server, bob, 'pc');
  await getRoster(b);
  await onlineWithInterest(b, [METADATA]);
  const a = await loginForTest(t, server, alice, 'old');
  await a.request(xml('iq', { type: 'set' }, xml('vCard', { xmlns: 'vcard-temp' }, xml('FN', {}, 'Alice'),
    xml('PHOTO', {}, xml('TYPE', {}, 'image/png'), xml('BINVAL', {}, PNG.toString('base64'))))));
  const event = await b.next(isEvent(METADATA, bare(server, alice)));
  const info = eventItem(event)!.getChild('metadata', METADATA)!.getChild('info')!;
  t.is(info.attrs.id, sha1(PNG));
  t.is(info.attrs.type, 'image/png');
  t.is(info.attrs.bytes, String(PNG.length));
  const [data] = await items(b, bare(server, alice), DATA, {}, [sha1(PNG)]);
  t.deepEqual(Buffer.from(data!.getChild('data', DATA)!.getText(), 'base64'), PNG);
  // the contact's presence view: the hash of the same picture
  const a2 = await loginForTest(t, server, alice, 'again');
  await online(a2);
  const presence = await b.next(isPresence(a2.jid));
  t.is(vcardPhotoHash(presence), sha1(PNG));
});
