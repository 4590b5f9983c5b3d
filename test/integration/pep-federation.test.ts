// PEP across servers: a contact on another server (a second xmppd, over s2s with dialback)
// gets notifications by its capabilities, which the owner's server asks over s2s, and reads the
// owner's nodes as the access model allows.
import test from 'ava';
import type Element from 'ltx/lib/Element.js';
import type { TestServer } from '../helpers/server.js';
import { xml } from '../helpers/clients.js';
import { befriend, online } from '../helpers/conversation.js';
import { bareOf, freePort, startFederated, userOn } from '../helpers/federation.js';
import { NS_DISCO_INFO, advertiseCaps, eventItem, isEvent, items, publish, pubsubFailure } from '../helpers/pubsub.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
const NICK = 'http://jabber.org/protocol/nick';
const nick = (name: string) => xml('nick', { xmlns: NICK }, name);

let a: TestServer;
let b: TestServer;
test.before(async () => {
  const [portA, portB] = [await freePort(), await freePort()];
  a = await startFederated({ domain: 'a.example', s2sPort: portA, routes: { 'b.example': portB } });
  b = await startFederated({ domain: 'b.example', s2sPort: portB, routes: { 'a.example': portA } });
});
test.after.always(async () => {
  await a?.stop();
  await b?.stop();
});

test('Bob on b.example, Alice\'s contact, gets her nickname by his capabilities and reads her node; a stranger there may not', async (t) => {
  const alice = await userOn(t, a, 'alice');
  const bob = await userOn(t, b, 'bob');
  await befriend(alice, bob);
  await publish(alice, NICK, nick('Alice of A'));
  // Bob's client now says it wants nicknames: a.example asks his client over s2s, then sends the last item
  await online(bob, [advertiseCaps(bob, [`${NICK}+notify`, 'urn:test:federated-bob'])]);
  // (his own server asks too, for his own PEP)
  const asked: Element = await bob.next((s) => s.is('iq') && s.attrs.from === bareOf(alice) && s.getChild('query', NS_DISCO_INFO) !== undefined, 15000);
  t.regex(asked.getChild('query')!.attrs.node!, /#/);
  const last = await bob.next(isEvent(NICK, bareOf(alice)), 15000);
  t.is(eventItem(last)!.getChild('nick', NICK)!.getText(), 'Alice of A');
  await publish(alice, NICK, nick('Alice the Second'));
  const next = await bob.next(isEvent(NICK, bareOf(alice)), 15000);
  t.is(eventItem(next)!.getChild('nick', NICK)!.getText(), 'Alice the Second');
  t.is((await items(bob, bareOf(alice), NICK))[0]!.getChild('nick', NICK)!.getText(), 'Alice the Second');

  const carol = await userOn(t, b, 'carol');
  t.deepEqual(await pubsubFailure(items(carol, bareOf(alice), NICK)), { condition: 'not-authorized', pubsub: 'presence-subscription-required' });
});
