// XEP-0163 Personal Eventing Protocol: every account is a pubsub service. Notifications follow
// +notify interest in entity capabilities (XEP-0115), access models guard the nodes, and
// publish-options (XEP-0060 §7.1.5) are preconditions.
import { createHash } from 'node:crypto';
import test from 'ava';
import type Element from 'ltx/lib/Element.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { RawClient, xml, type TestClient } from '../helpers/clients.js';
import { bare, freshAccounts, getRoster, loginForTest, makeFriends, online, settle } from '../helpers/conversation.js';
import {
  NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PUBSUB, NS_PUBSUB_OWNER, advertiseCaps, eventItem, form, isEvent, items, ownerIq, publish, pubsubFailure, pubsubIq,
} from '../helpers/pubsub.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
const NS_CONFIG = 'http://jabber.org/protocol/pubsub#node_config';
const NICK = 'http://jabber.org/protocol/nick';
const nick = (name: string) => xml('nick', { xmlns: NICK }, name);
const tune = (title: string) => xml('tune', { xmlns: 'http://jabber.org/protocol/tune' }, xml('title', {}, title));
const TUNE = 'http://jabber.org/protocol/tune';

let server: TestServer;
test.before(async () => {
  server = await startServer();
});
test.after.always(async () => server?.stop());

let capsCounter = 0;
const isCapsQuery = (s: Element) => s.is('iq') && s.attrs.type === 'get' && s.getChild('query', NS_DISCO_INFO) !== undefined;

/**
 * Goes online with capabilities asking for `nodes` (+notify), unique to this client so that the
 * server asks for them; returns once the client has answered and the server read the answer.
 */
async function onlineWithInterest(client: TestClient, nodes: string[]): Promise<void> {
  const c = advertiseCaps(client, [...nodes.map((n) => `${n}+notify`), `urn:test:client-${++capsCounter}`]);
  await online(client, [c]);
  await client.next(isCapsQuery);
  await settle(client);
}

test('the account shows pubsub/pep and the pubsub features; the server shows those clients check', async (t) => {
  const { alice } = await freshAccounts(server, 'alice');
  const a = await loginForTest(t, server, alice, 'phone');
  const info = (await a.request(xml('iq', { type: 'get', to: bare(server, alice) }, xml('query', { xmlns: NS_DISCO_INFO })))).getChild('query')!;
  t.truthy(info.getChildren('identity').find((i) => i.attrs.category === 'pubsub' && i.attrs.type === 'pep'));
  t.truthy(info.getChildren('identity').find((i) => i.attrs.category === 'account' && i.attrs.type === 'registered'));
  const accountFeatures = info.getChildren('feature').map((f) => f.attrs.var);
  const host = (await a.request(xml('iq', { type: 'get', to: server.domain }, xml('query', { xmlns: NS_DISCO_INFO })))).getChild('query')!;
  const hostFeatures = host.getChildren('feature').map((f) => f.attrs.var);
  for (const f of [NS_PUBSUB, `${NS_PUBSUB}#publish`, `${NS_PUBSUB}#publish-options`, `${NS_PUBSUB}#auto-create`, `${NS_PUBSUB}#config-node-max`, `${NS_PUBSUB}#access-whitelist`]) {
    t.true(accountFeatures.includes(f), `account: ${f}`);
    t.true(hostFeatures.includes(f), `server: ${f}`);
  }
});

test('the server advertises its own capabilities as a stream feature, and its caps node answers', async (t) => {
  const raw = await RawClient.open(server);
  t.teardown(() => raw.close());
  raw.write(`<?xml version='1.0'?><stream:stream to='${server.domain}' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`);
  const [c] = await raw.waitFor(/<c xmlns='http:\/\/jabber.org\/protocol\/caps'[^>]*\/>/);
  const node = /node='([^']+)'/.exec(c!)![1]!;
  const ver = /ver='([^']+)'/.exec(c!)![1]!;
  const { alice } = await freshAccounts(server, 'alice');
  const a = await loginForTest(t, server, alice, 'phone');
  const answer = (await a.request(xml('iq', { type: 'get', to: server.domain }, xml('query', { xmlns: NS_DISCO_INFO, node: `${node}#${ver}` })))).getChild('query')!;
  t.is(answer.attrs.node, `${node}#${ver}`);
  // XEP-0115 §5.1, computed here: the ver is the hash of what the server answers
  const s = answer.getChildren('identity').map((i) => `${i.attrs.category}/${i.attrs.type}//${i.attrs.name ?? ''}<`).sort().join('')
    + answer.getChildren('feature').map((f) => f.attrs.var!).sort().map((f) => `${f}<`).join('');
  t.is(createHash('sha1').update(s).digest('base64'), ver);
});

test('publishing auto-creates the node; the owner\'s other device with +notify is told, one without is not', async (t) => {
  const { alice } = await freshAccounts(server, 'alice');
  const phone = await loginForTest(t, server, alice, 'phone');
  const laptop = await loginForTest(t, server, alice, 'laptop');
  const desktop = await loginForTest(t, server, alice, 'desktop');
  await onlineWithInterest(laptop, [NICK]);
  await online(desktop, [advertiseCaps(desktop, [`urn:test:no-interest-${++capsCounter}`])]);
  await desktop.next(isCapsQuery);
  await settle(desktop);
  await online(phone);
  await publish(phone, NICK, nick('Alice'));
  const event = await laptop.next(isEvent(NICK, bare(server, alice)));
  t.is(eventItem(event)!.getChild('nick', NICK)!.getText(), 'Alice');
  await settle(desktop);
  t.false(desktop.received.some(isEvent(NICK)));
  t.deepEqual((await items(phone, undefined, NICK)).map((i) => i.getChild('nick')!.getText()), ['Alice']);
});

test('a contact with +notify gets notifications and, coming online later, the last item; a stranger gets nothing', async (t) => {
  const { alice, bob, mallory } = await freshAccounts(server, 'alice', 'bob', 'mallory');
  await makeFriends(server, alice, bob);
  const a = await loginForTest(t, server, alice, 'phone');
  await online(a);
  await publish(a, TUNE, tune('First song'));
  // Bob logs in after: his initial presence with +notify brings him the last item (XEP-0163 §4.3.2)
  const b = await loginForTest(t, server, bob, 'phone');
  await getRoster(b);
  const c = advertiseCaps(b, [`${TUNE}+notify`, `urn:test:bob-${++capsCounter}`]);
  await online(b, [c]);
  const last = await b.next(isEvent(TUNE, bare(server, alice)));
  t.is(eventItem(last)!.getChild('tune')!.getChildText('title'), 'First song');
  t.truthy(last.getChild('delay', 'urn:xmpp:delay'));

  const m = await loginForTest(t, server, mallory, 'pc');
  await online(m, [advertiseCaps(m, [`${TUNE}+notify`])]);
  await publish(a, TUNE, tune('Second song'));
  const next = await b.next(isEvent(TUNE, bare(server, alice)));
  t.is(eventItem(next)!.getChild('tune')!.getChildText('title'), 'Second song');
  await settle(m);
  t.false(m.received.some(isEvent(TUNE)));
  // presence access (the default): a stranger may not read, a contact may
  t.deepEqual(await pubsubFailure(items(m, bare(server, alice), TUNE)), { condition: 'not-authorized', pubsub: 'presence-subscription-required' });
  t.is((await items(b, bare(server, alice), TUNE)).length, 1);
});

test('capabilities are asked once per verification string; a hash that does not match is not trusted for others', async (t) => {
  const { alice } = await freshAccounts(server, 'alice');
  const first = await loginForTest(t, server, alice, 'one');
  const second = await loginForTest(t, server, alice, 'two');
  const features = [`${NICK}+notify`, `urn:test:shared-${++capsCounter}`];
  await online(first, [advertiseCaps(first, features)]);
  await first.next(isCapsQuery);
  await settle(first);
  await online(second, [advertiseCaps(second, features)]);
  await settle(second);
  t.false(second.received.some(isCapsQuery), 'the same ver is not asked again');
  // both are interested all the same
  const third = await loginForTest(t, server, alice, 'three');
  await online(third);
  await publish(third, NICK, nick('Al'));
  await first.next(isEvent(NICK));
  await second.next(isEvent(NICK));

  // a ver that is not the hash of the answer: asked each time
  const liar1 = await loginForTest(t, server, alice, 'liar1');
  const liar2 = await loginForTest(t, server, alice, 'liar2');
  const forged = (client: TestClient) => {
    const c = advertiseCaps(client, [`urn:test:forged-${++capsCounter}`]);
    c.attrs.ver = 'AAAAAAAAAAAAAAAAAAAAAAAAAAA=';
    return c;
  };
  await online(liar1, [forged(liar1)]);
  await liar1.next(isCapsQuery);
  await settle(liar1);
  await online(liar2, [forged(liar2)]);
  await liar2.next(isCapsQuery);
  t.pass();
});

test('publish-options: auto-create with them, precondition-not-met when the node differs, fine once reconfigured', async (t) => {
  const { alice, mallory } = await freshAccounts(server, 'alice', 'mallory');
  const a = await loginForTest(t, server, alice, 'phone');
  const node = 'urn:example:public';
  await publish(a, node, xml('note', { xmlns: 'urn:example' }, 'hello'), { id: 'current', publishOptions: { 'pubsub#access_model': 'open' } });
  const m = await loginForTest(t, server, mallory, 'pc');
  t.is((await items(m, bare(server, alice), node)).length, 1, 'open: anyone reads');
  // same options: fine
  await publish(a, node, xml('note', { xmlns: 'urn:example' }, 'again'), { id: 'current', publishOptions: { 'pubsub#access_model': 'open' } });
  // different: §7.1.5
  t.deepEqual(await pubsubFailure(publish(a, node, xml('note', { xmlns: 'urn:example' }, 'x'), { publishOptions: { 'pubsub#access_model': 'whitelist' } })),
    { condition: 'conflict', pubsub: 'precondition-not-met' });
  // what Conversations does next: reconfigure, then publish again
  await ownerIq(a, 'set', undefined, xml('configure', { node }, form(NS_CONFIG, { 'pubsub#access_model': 'whitelist' })));
  await publish(a, node, xml('note', { xmlns: 'urn:example' }, 'private'), { id: 'current', publishOptions: { 'pubsub#access_model': 'whitelist' } });
  t.deepEqual(await pubsubFailure(items(m, bare(server, alice), node)), { condition: 'not-allowed', pubsub: 'closed-node' });
  // only the owner publishes on her PEP
  t.is((await pubsubFailure(publish(m, node, xml('note', { xmlns: 'urn:example' }, 'spam'), { to: bare(server, alice) }))).condition, 'forbidden');
});

test('max_items: one by default, a number, or max', async (t) => {
  const { alice } = await freshAccounts(server, 'alice');
  const a = await loginForTest(t, server, alice, 'phone');
  for (const id of ['a', 'b']) await publish(a, 'urn:example:one', xml('x', { xmlns: 'urn:example' }), { id });
  t.deepEqual((await items(a, undefined, 'urn:example:one')).map((i) => i.attrs.id), ['b']);
  for (const id of ['a', 'b', 'c']) await publish(a, 'urn:example:two', xml('x', { xmlns: 'urn:example' }), { id, publishOptions: { 'pubsub#max_items': '2' } });
  t.deepEqual((await items(a, undefined, 'urn:example:two')).map((i) => i.attrs.id), ['b', 'c']);
  for (let i = 0; i < 30; i++) await publish(a, 'urn:example:many', xml('x', { xmlns: 'urn:example' }), { id: `i${i}`, publishOptions: { 'pubsub#max_items': 'max' } });
  t.is((await items(a, undefined, 'urn:example:many')).length, 30);
  const config = (await ownerIq(a, 'get', undefined, xml('configure', { node: 'urn:example:many' }))).getChild('pubsub', NS_PUBSUB_OWNER)!.getChild('configure')!.getChild('x')!;
  t.is(config.getChildren('field').find((f) => f.attrs.var === 'pubsub#max_items')!.getChildText('value'), 'max');
  // persist_items false keeps the last one only
  for (const id of ['p', 'q']) await publish(a, 'urn:example:volatile', xml('x', { xmlns: 'urn:example' }), { id, publishOptions: { 'pubsub#persist_items': 'false', 'pubsub#max_items': '10' } });
  t.deepEqual((await items(a, undefined, 'urn:example:volatile')).map((i) => i.attrs.id), ['q']);
});

test('roster and whitelist access models; the owner lists her nodes', async (t) => {
  const { alice, bob, carol } = await freshAccounts(server, 'alice', 'bob', 'carol');
  await makeFriends(server, alice, bob);
  await makeFriends(server, alice, carol);
  const a = await loginForTest(t, server, alice, 'phone');
  // Bob is in Alice's group Family, Carol is not
  await a.request(xml('iq', { type: 'set' }, xml('query', { xmlns: 'jabber:iq:roster' }, xml('item', { jid: bare(server, bob) }, xml('group', {}, 'Family')))));
  await publish(a, 'urn:example:family', xml('x', { xmlns: 'urn:example' }), {
    id: '1', publishOptions: { 'pubsub#access_model': 'roster', 'pubsub#roster_groups_allowed': 'Family' },
  });
  await publish(a, 'urn:example:mine', xml('x', { xmlns: 'urn:example' }), { id: '1', publishOptions: { 'pubsub#access_model': 'whitelist' } });
  const b = await loginForTest(t, server, bob, 'pc');
  const c = await loginForTest(t, server, carol, 'pc');
  t.is((await items(b, bare(server, alice), 'urn:example:family')).length, 1);
  t.deepEqual(await pubsubFailure(items(c, bare(server, alice), 'urn:example:family')), { condition: 'not-authorized', pubsub: 'not-in-roster-group' });
  t.deepEqual(await pubsubFailure(items(b, bare(server, alice), 'urn:example:mine')), { condition: 'not-allowed', pubsub: 'closed-node' });
  const listed = (await a.request(xml('iq', { type: 'get', to: bare(server, alice) }, xml('query', { xmlns: NS_DISCO_ITEMS })))).getChild('query')!;
  t.deepEqual(listed.getChildren('item').map((i) => i.attrs.node).sort(), ['urn:example:family', 'urn:example:mine']);
});

test('a contact subscribes explicitly to a node and gets the last item, then later ones', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  await makeFriends(server, alice, bob);
  const a = await loginForTest(t, server, alice, 'phone');
  await publish(a, TUNE, tune('One'));
  const b = await loginForTest(t, server, bob, 'pc');
  const subscribed = await pubsubIq(b, 'set', bare(server, alice), xml('subscribe', { node: TUNE, jid: b.jid }));
  t.is(subscribed.getChild('pubsub')!.getChild('subscription')!.attrs.subscription, 'subscribed');
  t.is(eventItem(await b.next(isEvent(TUNE)))!.getChild('tune')!.getChildText('title'), 'One');
  await publish(a, TUNE, tune('Two'));
  t.is(eventItem(await b.next(isEvent(TUNE)))!.getChild('tune')!.getChildText('title'), 'Two');
});

test('deleting the account deletes its PEP nodes and its subscriptions; the next owner of the name inherits nothing', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'phone');
  await publish(a, NICK, nick('The first'), { publishOptions: { 'pubsub#access_model': 'open' } });
  await publish(a, 'urn:xmpp:bookmarks:1', xml('conference', { xmlns: 'urn:xmpp:bookmarks:1', autojoin: 'true' }), {
    id: 'secret@conference.localhost', publishOptions: { 'pubsub#access_model': 'whitelist', 'pubsub#max_items': 'max' },
  });
  const service = `pubsub.${server.domain}`;
  const b = await loginForTest(t, server, bob, 'pc');
  const node = `deletion-${alice}`;
  await pubsubIq(b, 'set', service, xml('create', { node }));
  await pubsubIq(a, 'set', service, xml('subscribe', { node, jid: a.jid }));
  await ownerIq(b, 'set', service, xml('affiliations', { node }, xml('affiliation', { jid: bare(server, alice), affiliation: 'publisher' })));
  await a.stop();

  const deletion = await server.server.deleteAccount(server.domain, alice);
  t.true(deletion.existed);
  t.deepEqual(deletion.failed, []);
  await server.createAccount(alice);
  const again = await loginForTest(t, server, alice, 'phone');
  t.is((await pubsubFailure(items(again, undefined, NICK))).condition, 'item-not-found');
  t.is((await pubsubFailure(items(again, undefined, 'urn:xmpp:bookmarks:1'))).condition, 'item-not-found');
  const subs = (await pubsubIq(again, 'get', service, xml('subscriptions'))).getChild('pubsub')!.getChild('subscriptions')!.getChildren('subscription');
  t.deepEqual(subs, []);
  const affs = (await ownerIq(b, 'get', service, xml('affiliations', { node }))).getChild('pubsub')!.getChild('affiliations')!.getChildren('affiliation');
  t.deepEqual(affs.map((x) => x.attrs.jid), [bare(server, bob)]);
});

test('a new device of the owner coming online with +notify gets her own last item (how Conversations learns its device list)', async (t) => {
  const { alice } = await freshAccounts(server, 'alice');
  const phone = await loginForTest(t, server, alice, 'phone');
  const node = 'eu.siacs.conversations.axolotl.devicelist';
  await publish(phone, node, xml('list', { xmlns: 'eu.siacs.conversations.axolotl' }, xml('device', { id: '42' })), { id: 'current', publishOptions: { 'pubsub#access_model': 'open' } });
  const tablet = await loginForTest(t, server, alice, 'tablet');
  await online(tablet, [advertiseCaps(tablet, [`${node}+notify`, `urn:test:tablet-${++capsCounter}`])]);
  const event = await tablet.next(isEvent(node, bare(server, alice)));
  t.is(eventItem(event)!.getChild('list')!.getChild('device')!.attrs.id, '42');
});

test('a contact\'s disconnection ends its interest: nothing is sent to a resource that went away', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  await makeFriends(server, alice, bob);
  const b = await loginForTest(t, server, bob, 'pc');
  await getRoster(b);
  await onlineWithInterest(b, [NICK]);
  const a = await loginForTest(t, server, alice, 'phone');
  await online(a);
  await publish(a, NICK, nick('first'));
  await b.next(isEvent(NICK, bare(server, alice)));
  // Bob goes unavailable, then comes back without interest in nicknames
  await b.send(xml('presence', { type: 'unavailable' }));
  await online(b, [advertiseCaps(b, [`urn:test:bob-no-nick-${++capsCounter}`])]);
  await b.next(isCapsQuery);
  await settle(b);
  await publish(a, NICK, nick('second'));
  await settle(b);
  t.is(b.received.filter(isEvent(NICK)).length, 1);
});

test('a status change without <c/> keeps the resource\'s interest', async (t) => {
  const { alice } = await freshAccounts(server, 'alice');
  const laptop = await loginForTest(t, server, alice, 'laptop');
  await onlineWithInterest(laptop, [NICK]);
  await online(laptop, [xml('show', {}, 'away')]);
  const phone = await loginForTest(t, server, alice, 'phone');
  await publish(phone, NICK, nick('Away Alice'));
  t.is(eventItem(await laptop.next(isEvent(NICK)))!.getChild('nick', NICK)!.getText(), 'Away Alice');
});
