// XEP-0060 publish-subscribe at pubsub.<host>: nodes, items, subscriptions, configuration and
// the errors the XEP names, as two users' clients see them.
import test from 'ava';
import { startServer, type TestServer } from '../helpers/server.js';
import { xml } from '../helpers/clients.js';
import { bare, freshAccounts, iqFailure, loginForTest, settle } from '../helpers/conversation.js';
import {
  NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PUBSUB, NS_PUBSUB_OWNER, eventItem, form, isEvent, items, ownerIq, publish, pubsubFailure, pubsubIq,
} from '../helpers/pubsub.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
const NS_CONFIG = 'http://jabber.org/protocol/pubsub#node_config';
const entry = (title: string) => xml('entry', { xmlns: 'http://www.w3.org/2005/Atom' }, xml('title', {}, title));

let server: TestServer;
let service: string;
test.before(async () => {
  server = await startServer();
  service = `pubsub.${server.domain}`;
});
test.after.always(async () => server?.stop());

let nodeCounter = 0;
const freshNode = (name: string) => `${name}-${++nodeCounter}`;

test('the service is listed by the server and describes itself as pubsub/service', async (t) => {
  const { alice } = await freshAccounts(server, 'alice');
  const a = await loginForTest(t, server, alice, 'pc');
  const listed = await a.request(xml('iq', { type: 'get', to: server.domain }, xml('query', { xmlns: NS_DISCO_ITEMS })));
  t.true(listed.getChild('query')!.getChildren('item').some((i) => i.attrs.jid === service));
  const info = (await a.request(xml('iq', { type: 'get', to: service }, xml('query', { xmlns: NS_DISCO_INFO })))).getChild('query')!;
  t.truthy(info.getChildren('identity').find((i) => i.attrs.category === 'pubsub' && i.attrs.type === 'service'));
  const features = info.getChildren('feature').map((f) => f.attrs.var);
  for (const f of [NS_PUBSUB, `${NS_PUBSUB}#publish`, `${NS_PUBSUB}#create-nodes`, `${NS_PUBSUB}#publish-options`]) t.true(features.includes(f), f);
});

test('Alice creates a node, Bob subscribes, Alice publishes and Bob is notified with the payload', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'pc');
  const b = await loginForTest(t, server, bob, 'pc');
  const node = freshNode('news');
  await pubsubIq(a, 'set', service, xml('create', { node }));
  const subscribed = await pubsubIq(b, 'set', service, xml('subscribe', { node, jid: b.jid }));
  const subscription = subscribed.getChild('pubsub', NS_PUBSUB)!.getChild('subscription')!;
  t.is(subscription.attrs.subscription, 'subscribed');
  t.truthy(subscription.attrs.subid);

  const published = await publish(a, node, entry('Tea at five'), { to: service, id: 'tea' });
  t.is(published.getChild('pubsub', NS_PUBSUB)!.getChild('publish')!.getChild('item')!.attrs.id, 'tea');
  const event = await b.next(isEvent(node, service));
  t.is(event.attrs.type, 'headline');
  t.is(eventItem(event)!.attrs.id, 'tea');
  t.is(eventItem(event)!.getChild('entry')!.getChildText('title'), 'Tea at five');

  // §6.2: unsubscribed, Bob hears no more
  await pubsubIq(b, 'set', service, xml('unsubscribe', { node, jid: b.jid }));
  await publish(a, node, entry('Croquet'), { to: service, id: 'croquet' });
  await settle(b);
  t.is(b.received.filter(isEvent(node)).length, 1);
});

test('an item without an id gets one from the service; items come back by id and by max_items, newest kept', async (t) => {
  const { alice } = await freshAccounts(server, 'alice');
  const a = await loginForTest(t, server, alice, 'pc');
  const node = freshNode('log');
  await pubsubIq(a, 'set', service, xml('create', { node }), xml('configure', {}, form(NS_CONFIG, { 'pubsub#max_items': '3' })));
  const result = await publish(a, node, entry('one'), { to: service });
  const generated = result.getChild('pubsub', NS_PUBSUB)!.getChild('publish')!.getChild('item')!.attrs.id;
  t.truthy(generated);
  for (const n of ['two', 'three', 'four']) await publish(a, node, entry(n), { to: service, id: n });
  // max_items 3: 'one' is gone
  const all = await items(a, service, node);
  t.deepEqual(all.map((i) => i.attrs.id), ['two', 'three', 'four']);
  t.deepEqual((await items(a, service, node, { max_items: '1' })).map((i) => i.attrs.id), ['four']);
  const [two] = await items(a, service, node, {}, ['two']);
  t.is(two!.getChild('entry')!.getChildText('title'), 'two');
  t.deepEqual(await items(a, service, node, {}, [generated!]), []);
  // republishing an id replaces the item
  await publish(a, node, entry('TWO'), { to: service, id: 'two' });
  const again = await items(a, service, node);
  t.deepEqual(again.map((i) => i.attrs.id), ['three', 'four', 'two']);
  t.is(again[2]!.getChild('entry')!.getChildText('title'), 'TWO');
});

test('retract notifies subscribers; retracting a missing item is item-not-found', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'pc');
  const b = await loginForTest(t, server, bob, 'pc');
  const node = freshNode('retract');
  await pubsubIq(a, 'set', service, xml('create', { node }));
  await publish(a, node, entry('oops'), { to: service, id: 'oops' });
  await pubsubIq(b, 'set', service, xml('subscribe', { node, jid: b.jid }));
  await b.next(isEvent(node)); // the last item, sent on subscription (§6.1.7)
  await pubsubIq(a, 'set', service, xml('retract', { node, notify: 'true' }, xml('item', { id: 'oops' })));
  const event = await b.next(isEvent(node));
  t.is(event.getChild('event')!.getChild('items')!.getChild('retract')!.attrs.id, 'oops');
  t.deepEqual(await items(a, service, node), []);
  t.is(await iqFailure(pubsubIq(a, 'set', service, xml('retract', { node }, xml('item', { id: 'oops' })))), 'item-not-found');
  t.deepEqual(await pubsubFailure(pubsubIq(a, 'set', service, xml('retract', { node }))), { condition: 'bad-request', pubsub: 'item-required' });
});

test('errors as XEP-0060 names them', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'pc');
  const b = await loginForTest(t, server, bob, 'pc');
  const node = freshNode('errors');
  await pubsubIq(a, 'set', service, xml('create', { node }));
  // §8.1.3.4: the node exists
  t.is(await iqFailure(pubsubIq(b, 'set', service, xml('create', { node }))), 'conflict');
  // §7.1.3.1: only publishers publish
  t.is(await iqFailure(publish(b, node, entry('spam'), { to: service })), 'forbidden');
  // §6.5.9.11 / §7.1.3.3: no such node
  t.is((await pubsubFailure(items(a, service, `${node}-none`))).condition, 'item-not-found');
  // §6.1.3.1: subscribing someone else
  t.deepEqual(await pubsubFailure(pubsubIq(b, 'set', service, xml('subscribe', { node, jid: bare(server, alice) }))), { condition: 'bad-request', pubsub: 'invalid-jid' });
  // §6.2.3.2: unsubscribing without a subscription
  t.deepEqual(await pubsubFailure(pubsubIq(b, 'set', service, xml('unsubscribe', { node, jid: b.jid }))), { condition: 'unexpected-request', pubsub: 'not-subscribed' });
  // §7.1.3.6: no item
  t.deepEqual(await pubsubFailure(pubsubIq(a, 'set', service, xml('publish', { node }))), { condition: 'bad-request', pubsub: 'item-required' });
  // §8.2.3.3 / §8.4.3.1: only the owner configures or deletes
  t.is(await iqFailure(ownerIq(b, 'get', service, xml('configure', { node }))), 'forbidden');
  t.is(await iqFailure(ownerIq(b, 'set', service, xml('delete', { node }))), 'forbidden');
  // §8.2.5: an invalid configuration
  t.is(await iqFailure(ownerIq(a, 'set', service, xml('configure', { node }, form(NS_CONFIG, { 'pubsub#access_model': 'everyone' })))), 'not-acceptable');
  // subscription options are not offered
  t.deepEqual(await pubsubFailure(pubsubIq(b, 'get', service, xml('options', { node, jid: b.jid }))), { condition: 'feature-not-implemented', pubsub: 'unsupported' });
});

test('the owner reads and changes the configuration form; a whitelist node is closed to others', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'pc');
  const b = await loginForTest(t, server, bob, 'pc');
  const node = freshNode('config');
  await pubsubIq(a, 'set', service, xml('create', { node }));
  const current = (await ownerIq(a, 'get', service, xml('configure', { node }))).getChild('pubsub', NS_PUBSUB_OWNER)!.getChild('configure')!.getChild('x')!;
  const value = (name: string) => current.getChildren('field').find((f) => f.attrs.var === name)?.getChildText('value');
  t.is(value('FORM_TYPE'), NS_CONFIG);
  t.is(value('pubsub#access_model'), 'open');
  await ownerIq(a, 'set', service, xml('configure', { node }, form(NS_CONFIG, { 'pubsub#access_model': 'whitelist', 'pubsub#title': 'Secret' })));
  await publish(a, node, entry('hidden'), { to: service, id: 'x' });
  t.deepEqual(await pubsubFailure(items(b, service, node)), { condition: 'not-allowed', pubsub: 'closed-node' });
  t.deepEqual(await pubsubFailure(pubsubIq(b, 'set', service, xml('subscribe', { node, jid: b.jid }))), { condition: 'not-allowed', pubsub: 'closed-node' });
  // §8.9: Alice makes Bob a member; now he may read
  await ownerIq(a, 'set', service, xml('affiliations', { node }, xml('affiliation', { jid: bare(server, bob), affiliation: 'member' })));
  t.deepEqual((await items(b, service, node)).map((i) => i.attrs.id), ['x']);
  const affiliations = (await ownerIq(a, 'get', service, xml('affiliations', { node }))).getChild('pubsub')!.getChild('affiliations')!.getChildren('affiliation');
  t.deepEqual(affiliations.map((x) => `${x.attrs.jid}=${x.attrs.affiliation}`).sort(), [`${bare(server, alice)}=owner`, `${bare(server, bob)}=member`].sort());
  // disco#items lists it by title
  const listed = await a.request(xml('iq', { type: 'get', to: service }, xml('query', { xmlns: NS_DISCO_ITEMS })));
  t.truthy(listed.getChild('query')!.getChildren('item').find((i) => i.attrs.node === node && i.attrs.name === 'Secret'));
});

test('purge and delete tell the subscribers; a deleted node is gone', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'pc');
  const b = await loginForTest(t, server, bob, 'pc');
  const node = freshNode('gone');
  await pubsubIq(a, 'set', service, xml('create', { node }));
  await pubsubIq(b, 'set', service, xml('subscribe', { node, jid: b.jid }));
  await publish(a, node, entry('1'), { to: service, id: '1' });
  await b.next(isEvent(node));
  await ownerIq(a, 'set', service, xml('purge', { node }));
  t.truthy((await b.next(isEvent(node))).getChild('event')!.getChild('purge'));
  t.deepEqual(await items(a, service, node), []);
  await ownerIq(a, 'set', service, xml('delete', { node }));
  t.truthy((await b.next(isEvent(node))).getChild('event')!.getChild('delete'));
  t.is((await pubsubFailure(items(a, service, node))).condition, 'item-not-found');
});

test('an instant node gets its name from the service; the requester\'s subscriptions and affiliations are listed', async (t) => {
  const { alice } = await freshAccounts(server, 'alice');
  const a = await loginForTest(t, server, alice, 'pc');
  const created = await pubsubIq(a, 'set', service, xml('create'));
  const node = created.getChild('pubsub', NS_PUBSUB)!.getChild('create')!.attrs.node!;
  t.truthy(node);
  await pubsubIq(a, 'set', service, xml('subscribe', { node, jid: a.jid }));
  const subs = (await pubsubIq(a, 'get', service, xml('subscriptions'))).getChild('pubsub')!.getChild('subscriptions')!.getChildren('subscription');
  t.deepEqual(subs.map((s) => s.attrs.node), [node]);
  const affs = (await pubsubIq(a, 'get', service, xml('affiliations'))).getChild('pubsub')!.getChild('affiliations')!.getChildren('affiliation');
  t.deepEqual(affs.map((x) => `${x.attrs.node}=${x.attrs.affiliation}`), [`${node}=owner`]);
});
