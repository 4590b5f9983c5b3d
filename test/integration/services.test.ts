// What the server itself answers, asked by a real @xmpp/client: ping (XEP-0199), software
// version (XEP-0092), entity time (XEP-0202), service discovery (XEP-0030), the legacy session
// IQ (RFC 3921 §3), and the IQ errors of RFC 6120 §8.3 for requests it cannot serve.
import test from 'ava';
import type Element from 'ltx/lib/Element.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { connect, xml, type TestClient } from '../helpers/clients.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // the test server's certificate is self-signed

const NS_STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';
const NS_DISCO_INFO = 'http://jabber.org/protocol/disco#info';
const NS_DISCO_ITEMS = 'http://jabber.org/protocol/disco#items';

let server: TestServer;
let alice: TestClient;
test.before(async () => {
  server = await startServer();
  await server.createAccount('alice');
  alice = await connect(server, 'alice', { resource: 'desk' });
});
test.after.always(async () => {
  await alice?.stop();
  await server?.stop();
});

let iqCount = 0;
/** Alice sends an IQ and gets back its answer, result or error, as the element she received. */
async function ask(attrs: Record<string, string>, ...payloads: Element[]): Promise<Element> {
  const id = `services-${++iqCount}`;
  await alice.send(xml('iq', { id, ...attrs }, ...payloads));
  return alice.next((s) => s.is('iq') && s.attrs.id === id && (s.attrs.type === 'result' || s.attrs.type === 'error'));
}

function errorCondition(reply: Element): string | undefined {
  return reply.getChild('error')?.getChildElements().find((c) => c.attrs.xmlns === NS_STANZAS && c.name !== 'text')?.name;
}

// --- XEP-0199 ----------------------------------------------------------------------------------

test('Alice pings the server and gets a result from it', async (t) => {
  const pong = await ask({ type: 'get', to: 'localhost' }, xml('ping', { xmlns: 'urn:xmpp:ping' }));
  t.is(pong.attrs.type, 'result');
  t.is(pong.attrs.from, 'localhost');
  t.is(pong.attrs.to, 'alice@localhost/desk');
});

test("Alice pings without a 'to' (her own account, answered by the server) and gets a result", async (t) => {
  const pong = await ask({ type: 'get' }, xml('ping', { xmlns: 'urn:xmpp:ping' }));
  t.is(pong.attrs.type, 'result');
});

// --- XEP-0092, XEP-0202 ------------------------------------------------------------------------

test('Alice asks the server which software it runs (XEP-0092)', async (t) => {
  const reply = await ask({ type: 'get', to: 'localhost' }, xml('query', { xmlns: 'jabber:iq:version' }));
  t.is(reply.attrs.type, 'result');
  const query = reply.getChild('query', 'jabber:iq:version')!;
  t.is(query.getChildText('name'), 'xmppd');
  t.regex(query.getChildText('version') ?? '', /^\d+\.\d+/);
  t.is(query.getChild('os'), undefined, 'the operating system is not disclosed by default');
});

test("Alice asks the server for its time (XEP-0202) and gets UTC in XEP-0082's format", async (t) => {
  const reply = await ask({ type: 'get', to: 'localhost' }, xml('time', { xmlns: 'urn:xmpp:time' }));
  t.is(reply.attrs.type, 'result');
  const time = reply.getChild('time', 'urn:xmpp:time')!;
  t.is(time.getChildText('tzo'), '+00:00');
  const utc = time.getChildText('utc') ?? '';
  t.regex(utc, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/);
  t.true(Math.abs(Date.parse(utc) - Date.now()) < 10 * 60_000, "it is the server's current time");
});

// --- XEP-0030 ----------------------------------------------------------------------------------

test('disco#info on the server shows an im server and the features of the loaded modules', async (t) => {
  const reply = await ask({ type: 'get', to: 'localhost' }, xml('query', { xmlns: NS_DISCO_INFO }));
  t.is(reply.attrs.type, 'result');
  const query = reply.getChild('query', NS_DISCO_INFO)!;
  const identities = query.getChildren('identity').map((i) => `${i.attrs.category}/${i.attrs.type}`);
  t.true(identities.includes('server/im'), `identities: ${identities.join(', ')}`);
  const features = query.getChildren('feature').map((f) => f.attrs.var);
  for (const feature of ['jabber:iq:roster', 'urn:xmpp:ping', 'jabber:iq:version', 'urn:xmpp:time', 'jabber:iq:register', NS_DISCO_INFO, NS_DISCO_ITEMS]) {
    t.true(features.includes(feature), `advertises ${feature}`);
  }
});

test('disco#items on the server lists its services: group chat, file upload, publish-subscribe and the file transfer proxy by default', async (t) => {
  const reply = await ask({ type: 'get', to: 'localhost' }, xml('query', { xmlns: NS_DISCO_ITEMS }));
  t.is(reply.attrs.type, 'result');
  const query = reply.getChild('query', NS_DISCO_ITEMS);
  t.truthy(query);
  t.deepEqual(query!.getChildren('item').map((item) => item.attrs), [
    { jid: 'conference.localhost', name: 'Chatrooms' },
    { jid: 'upload.localhost', name: 'HTTP File Upload' },
    { jid: 'pubsub.localhost', name: 'Publish-Subscribe' },
    { jid: 'proxy.localhost', name: 'SOCKS5 Bytestreams' },
  ]);
});

// --- IQ errors (RFC 6120 §8.3) -------------------------------------------------------------------

test('an IQ to the server in a namespace nobody handles is service-unavailable', async (t) => {
  const reply = await ask({ type: 'get', to: 'localhost' }, xml('query', { xmlns: 'urn:example:nothing-here' }));
  t.is(reply.attrs.type, 'error');
  t.is(errorCondition(reply), 'service-unavailable');
  t.truthy(reply.getChild('query', 'urn:example:nothing-here'), 'the request is echoed back');
});

test('an IQ get with two payloads is bad-request', async (t) => {
  const reply = await ask(
    { type: 'get', to: 'localhost' },
    xml('ping', { xmlns: 'urn:xmpp:ping' }),
    xml('query', { xmlns: 'jabber:iq:version' }),
  );
  t.is(reply.attrs.type, 'error');
  t.is(errorCondition(reply), 'bad-request');
});

test("an IQ with a malformed 'to' address is jid-malformed", async (t) => {
  const reply = await ask({ type: 'get', to: 'bob@@localhost' }, xml('ping', { xmlns: 'urn:xmpp:ping' }));
  t.is(reply.attrs.type, 'error');
  t.is(errorCondition(reply), 'jid-malformed');
  t.is(reply.getChild('error')?.attrs.type, 'modify');
});

// --- RFC 3921 §3 ---------------------------------------------------------------------------------

test("the legacy session IQ without 'to' is answered with a result", async (t) => {
  const reply = await ask({ type: 'set' }, xml('session', { xmlns: 'urn:ietf:params:xml:ns:xmpp-session' }));
  t.is(reply.attrs.type, 'result');
});

test("the legacy session IQ addressed to the server, as RFC 3921 §3 shows it, is answered with a result", async (t) => {
  const reply = await ask({ type: 'set', to: 'localhost' }, xml('session', { xmlns: 'urn:ietf:params:xml:ns:xmpp-session' }));
  t.is(reply.attrs.type, 'result');
  t.is(errorCondition(reply), undefined);
});
