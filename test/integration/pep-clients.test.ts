// What clients keep on PEP, each done as the client does it: OMEMO (Conversations' legacy
// eu.siacs.conversations.axolotl and XEP-0384's urn:xmpp:omemo:2), avatars (XEP-0084),
// bookmarks (XEP-0402) and nicknames (XEP-0172).
import { createHash } from 'node:crypto';
import test from 'ava';
import type Element from 'ltx/lib/Element.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { xml, type TestClient } from '../helpers/clients.js';
import { bare, freshAccounts, getRoster, loginForTest, makeFriends, online, settle } from '../helpers/conversation.js';
import { NS_DISCO_INFO, advertiseCaps, eventItem, isEvent, items, publish, pubsubFailure, pubsubIq } from '../helpers/pubsub.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';

let server: TestServer;
test.before(async () => {
  server = await startServer();
});
test.after.always(async () => server?.stop());

let capsCounter = 0;
const isCapsQuery = (s: Element) => s.is('iq') && s.attrs.type === 'get' && s.getChild('query', NS_DISCO_INFO) !== undefined;
async function onlineWithInterest(client: TestClient, nodes: string[]): Promise<void> {
  await getRoster(client);
  await online(client, [advertiseCaps(client, [...nodes.map((n) => `${n}+notify`), `urn:test:client-${++capsCounter}`])]);
  await client.next(isCapsQuery);
  await settle(client);
}

// --- OMEMO, as Conversations does it (legacy namespace) -------------------------------------------
const AXOLOTL = 'eu.siacs.conversations.axolotl';
const DEVICELIST = `${AXOLOTL}.devicelist`;
const deviceList = (...ids: number[]) => xml('list', { xmlns: AXOLOTL }, ...ids.map((id) => xml('device', { id: String(id) })));
const bundle = (preKeys: number) => xml('bundle', { xmlns: AXOLOTL },
  xml('signedPreKeyPublic', { signedPreKeyId: '1' }, 'BQ2SignedPreKey'),
  xml('signedPreKeySignature', {}, 'c2lnbmF0dXJl'),
  xml('identityKey', {}, 'BWlkZW50aXR5'),
  xml('prekeys', {}, ...Array.from({ length: preKeys }, (_, i) => xml('preKeyPublic', { preKeyId: String(i + 1) }, `cHJla2V5${i}`))));
const OPEN = { 'pubsub#access_model': 'open' };

test('OMEMO (Conversations): device list and bundle published open; a contact is notified, anyone fetches them', async (t) => {
  const { alice, bob, stranger } = await freshAccounts(server, 'alice', 'bob', 'stranger');
  await makeFriends(server, alice, bob);
  const b = await loginForTest(t, server, bob, 'phone');
  await onlineWithInterest(b, [DEVICELIST]);

  const a = await loginForTest(t, server, alice, 'phone');
  await getRoster(a);
  await online(a);
  // Conversations: bundle first, then the device list, both with publish-options access_model=open
  await publish(a, `${AXOLOTL}.bundles:1111`, bundle(100), { id: 'current', publishOptions: OPEN });
  await publish(a, DEVICELIST, deviceList(1111), { id: 'current', publishOptions: OPEN });
  const event = await b.next(isEvent(DEVICELIST, bare(server, alice)));
  t.deepEqual(eventItem(event)!.getChild('list', AXOLOTL)!.getChildren('device').map((d) => d.attrs.id), ['1111']);

  // someone not in her roster starts an encrypted chat: fetches list and bundle
  const s = await loginForTest(t, server, stranger, 'pc');
  const [list] = await items(s, bare(server, alice), DEVICELIST);
  t.is(list!.attrs.id, 'current');
  const [fetched] = await items(s, bare(server, alice), `${AXOLOTL}.bundles:1111`, { max_items: '1' });
  t.is(fetched!.getChild('bundle', AXOLOTL)!.getChild('prekeys')!.getChildren('preKeyPublic').length, 100);

  // a second device: the list grows, the contact hears of it
  await publish(a, DEVICELIST, deviceList(1111, 2222), { id: 'current', publishOptions: OPEN });
  const grown = await b.next(isEvent(DEVICELIST, bare(server, alice)));
  t.deepEqual(eventItem(grown)!.getChild('list', AXOLOTL)!.getChildren('device').map((d) => d.attrs.id), ['1111', '2222']);
});

test('OMEMO (Conversations): a device list created with the default access is made open as Conversations does', async (t) => {
  const { alice } = await freshAccounts(server, 'alice');
  const a = await loginForTest(t, server, alice, 'phone');
  // an older client published it without options: presence access
  await publish(a, DEVICELIST, deviceList(1), { id: 'current' });
  const failure = await pubsubFailure(publish(a, DEVICELIST, deviceList(1, 2), { id: 'current', publishOptions: OPEN }));
  t.deepEqual(failure, { condition: 'conflict', pubsub: 'precondition-not-met' });
  // Conversations then fetches the configuration, sets access_model open, and publishes again
  const form = await a.request(xml('iq', { type: 'get' }, xml('pubsub', { xmlns: 'http://jabber.org/protocol/pubsub#owner' }, xml('configure', { node: DEVICELIST }))));
  const x = form.getChild('pubsub')!.getChild('configure')!.getChild('x')!;
  x.attrs.type = 'submit';
  x.getChildren('field').find((f) => f.attrs.var === 'pubsub#access_model')!.getChild('value')!.children = ['open'];
  await a.request(xml('iq', { type: 'set' }, xml('pubsub', { xmlns: 'http://jabber.org/protocol/pubsub#owner' }, xml('configure', { node: DEVICELIST }, x))));
  await publish(a, DEVICELIST, deviceList(1, 2), { id: 'current', publishOptions: OPEN });
  t.is((await items(a, undefined, DEVICELIST))[0]!.getChild('list')!.getChildren('device').length, 2);
});

// --- OMEMO 2 (XEP-0384 0.8) -------------------------------------------------------------------
const OMEMO2 = 'urn:xmpp:omemo:2';

test('OMEMO 2: devices node and a bundles node with one item per device (max_items max), open', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  await makeFriends(server, alice, bob);
  const b = await loginForTest(t, server, bob, 'pc');
  await onlineWithInterest(b, [`${OMEMO2}:devices`]);
  const a = await loginForTest(t, server, alice, 'phone');
  const bundle2 = (id: number) => xml('bundle', { xmlns: OMEMO2 }, xml('spk', { id: '1' }, 'c3Br'), xml('spks', {}, 'c3Brcw=='), xml('ik', {}, `aWs${id}`),
    xml('prekeys', {}, xml('pk', { id: '1' }, 'cGs=')));
  // XEP-0384 §5.3.2: bundles in one node, item id = device id, max_items max
  for (const id of [31415, 27182]) await publish(a, `${OMEMO2}:bundles`, bundle2(id), { id: String(id), publishOptions: { ...OPEN, 'pubsub#max_items': 'max' } });
  await publish(a, `${OMEMO2}:devices`, xml('devices', { xmlns: OMEMO2 }, xml('device', { id: '31415', label: 'Phone' }), xml('device', { id: '27182' })), {
    id: 'current', publishOptions: OPEN,
  });
  const event = await b.next(isEvent(`${OMEMO2}:devices`, bare(server, alice)));
  t.deepEqual(eventItem(event)!.getChild('devices', OMEMO2)!.getChildren('device').map((d) => d.attrs.id), ['31415', '27182']);
  const [one] = await items(b, bare(server, alice), `${OMEMO2}:bundles`, {}, ['27182']);
  t.is(one!.getChild('bundle', OMEMO2)!.getChildText('ik'), 'aWs27182');
  t.is((await items(b, bare(server, alice), `${OMEMO2}:bundles`)).length, 2, 'both bundles kept');
});

// --- XEP-0084 avatars -------------------------------------------------------------------------
const AVATAR_DATA = 'urn:xmpp:avatar:data';
const AVATAR_METADATA = 'urn:xmpp:avatar:metadata';

test('avatar (XEP-0084): data then metadata; a contact is told of the metadata and fetches the data by id', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  await makeFriends(server, alice, bob);
  const b = await loginForTest(t, server, bob, 'pc');
  await onlineWithInterest(b, [AVATAR_METADATA]);
  const a = await loginForTest(t, server, alice, 'phone');
  const png = Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex');
  const id = createHash('sha1').update(png).digest('hex');
  await publish(a, AVATAR_DATA, xml('data', { xmlns: AVATAR_DATA }, png.toString('base64')), { id });
  await publish(a, AVATAR_METADATA, xml('metadata', { xmlns: AVATAR_METADATA }, xml('info', { bytes: String(png.length), id, type: 'image/png', height: '1', width: '1' })), { id });
  const event = await b.next(isEvent(AVATAR_METADATA, bare(server, alice)));
  const info = eventItem(event)!.getChild('metadata', AVATAR_METADATA)!.getChild('info')!;
  t.is(info.attrs.id, id);
  const [data] = await items(b, bare(server, alice), AVATAR_DATA, {}, [id]);
  t.deepEqual(Buffer.from(data!.getChild('data', AVATAR_DATA)!.getText(), 'base64'), png);
  // disabling: empty metadata
  await publish(a, AVATAR_METADATA, xml('metadata', { xmlns: AVATAR_METADATA }), { id: 'current' });
  const off = await b.next(isEvent(AVATAR_METADATA, bare(server, alice)));
  t.is(eventItem(off)!.getChild('metadata', AVATAR_METADATA)!.getChildElements().length, 0);
});

// --- XEP-0402 bookmarks -----------------------------------------------------------------------
const BOOKMARKS = 'urn:xmpp:bookmarks:1';
const BOOKMARK_OPTIONS = {
  'pubsub#persist_items': 'true', 'pubsub#max_items': 'max', 'pubsub#send_last_published_item': 'never', 'pubsub#access_model': 'whitelist',
};
const conference = (name: string, nick: string) => xml('conference', { xmlns: BOOKMARKS, name, autojoin: 'true' }, xml('nick', {}, nick));

test('bookmarks (XEP-0402): one item per room, private, another device is told; retraction removes one', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  await makeFriends(server, alice, bob);
  const laptop = await loginForTest(t, server, alice, 'laptop');
  await onlineWithInterest(laptop, [BOOKMARKS]);
  const b = await loginForTest(t, server, bob, 'pc');
  await onlineWithInterest(b, [BOOKMARKS]);
  const phone = await loginForTest(t, server, alice, 'phone');
  await publish(phone, BOOKMARKS, conference('Tea', 'Alice'), { id: 'tea@conference.localhost', publishOptions: BOOKMARK_OPTIONS });
  await publish(phone, BOOKMARKS, conference('Croquet', 'Al'), { id: 'croquet@conference.localhost', publishOptions: BOOKMARK_OPTIONS });
  const first = await laptop.next(isEvent(BOOKMARKS, bare(server, alice)));
  t.is(eventItem(first)!.attrs.id, 'tea@conference.localhost');
  t.is(eventItem(await laptop.next(isEvent(BOOKMARKS)))!.attrs.id, 'croquet@conference.localhost');
  // a new device reads them all
  const all = await items(laptop, undefined, BOOKMARKS);
  t.deepEqual(all.map((i) => i.attrs.id), ['tea@conference.localhost', 'croquet@conference.localhost']);
  t.is(all[0]!.getChild('conference', BOOKMARKS)!.getChildText('nick'), 'Alice');
  // whitelist: nobody else, not even a contact with +notify
  await settle(b);
  t.false(b.received.some(isEvent(BOOKMARKS)));
  t.deepEqual(await pubsubFailure(items(b, bare(server, alice), BOOKMARKS)), { condition: 'not-allowed', pubsub: 'closed-node' });
  // XEP-0402 §5.4: removing a bookmark is retracting its item, with notify
  await pubsubIq(phone, 'set', undefined, xml('retract', { node: BOOKMARKS, notify: 'true' }, xml('item', { id: 'tea@conference.localhost' })));
  const retracted = await laptop.next(isEvent(BOOKMARKS));
  t.is(retracted.getChild('event')!.getChild('items')!.getChild('retract')!.attrs.id, 'tea@conference.localhost');
  t.deepEqual((await items(laptop, undefined, BOOKMARKS)).map((i) => i.attrs.id), ['croquet@conference.localhost']);
});

// --- XEP-0172 nicknames -----------------------------------------------------------------------
const NICK = 'http://jabber.org/protocol/nick';

test('nickname (XEP-0172): a contact is told of the nickname', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  await makeFriends(server, alice, bob);
  const b = await loginForTest(t, server, bob, 'pc');
  await onlineWithInterest(b, [NICK]);
  const a = await loginForTest(t, server, alice, 'phone');
  await publish(a, NICK, xml('nick', { xmlns: NICK }, 'Ally'));
  const event = await b.next(isEvent(NICK, bare(server, alice)));
  t.is(eventItem(event)!.getChild('nick', NICK)!.getText(), 'Ally');
});
