// Interoperability on PEP with a real third-party client library: slixmpp's caps (XEP-0115),
// PEP (XEP-0163), tune (XEP-0118), nickname (XEP-0172) and pubsub (XEP-0060) plugins.
import test from 'ava';
import { startServer, type TestServer } from '../helpers/server.js';
import { xml } from '../helpers/clients.js';
import { bare, freshAccounts, getRoster, loginForTest, makeFriends, online, settle } from '../helpers/conversation.js';
import { advertiseCaps, eventItem, isEvent, publish, NS_DISCO_INFO } from '../helpers/pubsub.js';
import { serialTestNeeding } from '../helpers/requirements.js';
import { runSlixmpp, slixmppRequirement } from '../helpers/slixmpp.js';
import { PASSWORD } from '../helpers/server.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
const TUNE = 'http://jabber.org/protocol/tune';
const NICK = 'http://jabber.org/protocol/nick';

let server: TestServer;
test.before(async () => {
  server = await startServer();
});
test.after.always(async () => server?.stop());

const interop = serialTestNeeding(slixmppRequirement);

interop('slixmpp gets the last tune from its caps, publishes its nickname, and reads Alice\'s', async (t) => {
  const { alice, sam } = await freshAccounts(server, 'alice', 'sam');
  await makeFriends(server, alice, sam);
  const a = await loginForTest(t, server, alice, 'desk');
  await getRoster(a);
  await online(a, [advertiseCaps(a, [`${NICK}+notify`, 'urn:test:interop-alice'])]);
  await a.next((s) => s.is('iq') && s.getChild('query', NS_DISCO_INFO) !== undefined);
  await settle(a);
  await publish(a, TUNE, xml('tune', { xmlns: TUNE }, xml('title', {}, 'Yesterday')));
  await publish(a, NICK, xml('nick', { xmlns: NICK }, 'Alice'));

  const result = await runSlixmpp('slixmpp_pep.py', ['--jid', `${bare(server, sam)}/slix`, '--password', PASSWORD, '--port', String(server.port), '--peer', bare(server, alice), '--nick', 'Sam']);
  t.is(result.code, 0, result.stderr.slice(-2000));
  t.deepEqual(result.events.find((e) => e.event === 'tune'), { event: 'tune', title: 'Yesterday' });
  t.deepEqual(result.events.find((e) => e.event === 'peer_nick'), { event: 'peer_nick', nick: 'Alice' });
  const nick = await a.next(isEvent(NICK, bare(server, sam)));
  t.is(eventItem(nick)!.getChild('nick', NICK)!.getText(), 'Sam');
});
