// The Conversations compliance checks (caas, compliance.conversations.im), ported one by one
// from its sources (github.com/iNPUTmice/caas, caas-app/.../xmpp/tests/*.java) because caas
// itself cannot run here: it is built with Maven from Maven Central, which this machine cannot
// reach. Each test below asks exactly what its caas namesake asks and passes under the same
// condition; the title carries caas's short name, "(informational)" where caas marks it so.
//
// The server runs the default modules with their default options. Three checks are about the
// deployment rather than the software, and get what an admin configures for them: STUN and TURN
// need a TURN server's address (XEP-0215), the abuse contact needs an address (XEP-0157). XEP-0368
// and XEP-0156 are asked of the listeners directly: caas finds them through DNS SRV records and
// https://<domain>/.well-known/, which a test on loopback ports has no way to publish.
import { randomUUID } from 'node:crypto';
import tls from 'node:tls';
import test from 'ava';
import type Element from 'ltx/lib/Element.js';
import { STANDARD_MODULES } from '../../src/config/schema.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { RawClient, xml, type TestClient } from '../helpers/clients.js';
import { freshAccounts, loginForTest } from '../helpers/conversation.js';
import { NS_MUC, NS_MUC_OWNER, enter } from '../helpers/muc.js';
import { NS_PUBSUB, NS_PUBSUB_OWNER, publish } from '../helpers/pubsub.js';
import { httpRequest } from '../helpers/http.js';
import { WebSocket } from 'ws';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // the test server's certificate is self-signed

const NS_DISCO_INFO = 'http://jabber.org/protocol/disco#info';
const NS_DISCO_ITEMS = 'http://jabber.org/protocol/disco#items';
const NS_OMEMO = 'eu.siacs.conversations.axolotl';

let server: TestServer;
test.before(async () => {
  const defaults = Object.fromEntries(STANDARD_MODULES.map((name) => [name, {}]));
  server = await startServer({
    config: {
      modules: {
        ...defaults,
        disco: { contact: { abuse: ['mailto:abuse@example.org'] } },
        external_services: {
          secret: 'the turn secret',
          services: [
            { type: 'stun', host: 'turn.example.org', port: 3478, transport: 'udp' },
            { type: 'turn', host: 'turn.example.org', port: 3478, transport: 'udp' },
          ],
        },
      },
    },
  });
});
test.after.always(async () => {
  await server?.stop();
});

async function client(t: Parameters<typeof loginForTest>[0]): Promise<TestClient> {
  const { alice } = await freshAccounts(server, 'alice');
  return loginForTest(t, server, alice, 'caas');
}

function discoInfo(c: TestClient, to: string): Promise<Element> {
  return c.request(xml('iq', { type: 'get', to }, xml('query', { xmlns: NS_DISCO_INFO }))).then((iq) => iq.getChild('query', NS_DISCO_INFO)!);
}

const featuresOf = (info: Element): string[] => info.getChildren('feature').map((f) => f.attrs.var as string);
const hasPepIdentity = (info: Element): boolean => info.getChildren('identity').some((i) => i.attrs.category === 'pubsub' && i.attrs.type === 'pep');

/** AbstractDiscoTest: any of the namespaces among the features of the server or of the account. */
async function discoHasAny(t: Parameters<typeof loginForTest>[0], onServer: boolean, namespaces: string[]): Promise<boolean> {
  const c = await client(t);
  const target = onServer ? server.domain : c.jid.split('/')[0]!;
  const features = featuresOf(await discoInfo(c, target));
  return namespaces.some((ns) => features.includes(ns));
}

/** AbstractServiceTest (rocks.xmpp discoverServices): an item of the server offering it, or the server itself. */
async function serviceOffering(c: TestClient, namespace: string): Promise<string | undefined> {
  const items = await c.request(xml('iq', { type: 'get', to: server.domain }, xml('query', { xmlns: NS_DISCO_ITEMS })));
  for (const item of items.getChild('query', NS_DISCO_ITEMS)!.getChildren('item')) {
    const jid = item.attrs.jid as string;
    if (featuresOf(await discoInfo(c, jid)).includes(namespace)) return jid;
  }
  return featuresOf(await discoInfo(c, server.domain)).includes(namespace) ? server.domain : undefined;
}

/**
 * AbstractStreamFeatureTest: the stream features a client logging in the classic way (as caas's
 * rocks.xmpp does: STARTTLS, SASL, restart) last receives, those offered with resource binding.
 */
async function featuresAfterLogin(): Promise<string> {
  const { alice } = await freshAccounts(server, 'alice');
  const raw = await RawClient.open(server);
  try {
    const open = `<stream:stream to='${server.domain}' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`;
    raw.write(open);
    await raw.waitFor(/<\/stream:features>/);
    raw.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${alice}\0correct horse battery`).toString('base64')}</auth>`);
    await raw.waitFor(/<success/);
    raw.data = '';
    raw.write(open);
    return (await raw.waitFor(/<stream:features>[\s\S]*<\/stream:features>/))[0];
  } finally {
    raw.close();
  }
}

// --- stream features ---------------------------------------------------------------------------

test('xep0115: entity capabilities of the server in the stream features', async (t) => {
  t.regex(await featuresAfterLogin(), /<c [^>]*xmlns=['"]http:\/\/jabber\.org\/protocol\/caps['"]/);
});

test('roster_versioning: RFC 6121 roster versioning in the stream features', async (t) => {
  t.regex(await featuresAfterLogin(), /<ver [^>]*xmlns=['"]urn:xmpp:features:rosterver['"]/);
});

test('xep0198: stream management in the stream features', async (t) => {
  t.regex(await featuresAfterLogin(), /<sm [^>]*xmlns=['"]urn:xmpp:sm:3['"]/);
});

test('xep0352: client state indication in the stream features', async (t) => {
  t.regex(await featuresAfterLogin(), /<csi [^>]*xmlns=['"]urn:xmpp:csi:0['"]/);
});

test('xep0077 (informational): in-band registration offered to a client that has not logged in', async (t) => {
  const raw = await RawClient.open(server); // after STARTTLS, as caas's client sees it
  try {
    raw.write(`<stream:stream to='${server.domain}' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`);
    const features = (await raw.waitFor(/<stream:features>[\s\S]*<\/stream:features>/))[0];
    t.regex(features, /<register [^>]*xmlns=['"]http:\/\/jabber\.org\/features\/iq-register['"]/);
  } finally {
    raw.close();
  }
});

// --- features of the server and of the account ------------------------------------------------

test('xep0191: blocking command on the server', async (t) => {
  t.true(await discoHasAny(t, true, ['urn:xmpp:blocking']));
});

test('xep0280: message carbons on the server', async (t) => {
  t.true(await discoHasAny(t, true, ['urn:xmpp:carbons:2']));
});

test('xep0160: offline storage on the server', async (t) => {
  t.true(await discoHasAny(t, true, ['msgoffline']));
});

test('xep0313: message archive on the account', async (t) => {
  t.true(await discoHasAny(t, false, ['urn:xmpp:mam:0', 'urn:xmpp:mam:1', 'urn:xmpp:mam:2']));
});

test('xep0357: push notifications on the account', async (t) => {
  t.true(await discoHasAny(t, false, ['urn:xmpp:push:0']));
});

test('xep0398: avatar conversion on the account', async (t) => {
  t.true(await discoHasAny(t, false, ['urn:xmpp:pep-vcard-conversion:0']));
});

test('xep0411: bookmarks conversion on the account', async (t) => {
  t.true(await discoHasAny(t, false, ['urn:xmpp:bookmarks-conversion:0']));
});

test('xep0163: the account is a PEP service (identity pubsub/pep)', async (t) => {
  const c = await client(t);
  t.true(hasPepIdentity(await discoInfo(c, c.jid.split('/')[0]!)));
});

test('xep0384: OMEMO needs publish-options, and an item published with access_model open makes an open node', async (t) => {
  const c = await client(t);
  const info = await discoInfo(c, c.jid.split('/')[0]!);
  t.true(hasPepIdentity(info));
  t.true(featuresOf(info).includes('http://jabber.org/protocol/pubsub#publish-options'));
  const node = `${NS_OMEMO}.${randomUUID()}`;
  await publish(c, node, xml('bundle', { xmlns: NS_OMEMO }), { publishOptions: { 'pubsub#access_model': 'open' } });
  const configure = await c.request(xml('iq', { type: 'get' }, xml('pubsub', { xmlns: NS_PUBSUB_OWNER }, xml('configure', { node }))));
  const form = configure.getChild('pubsub', NS_PUBSUB_OWNER)!.getChild('configure')!.getChild('x', 'jabber:x:data')!;
  const accessModel = form.getChildren('field').find((f) => f.attrs.var === 'pubsub#access_model')?.getChildText('value');
  t.is(accessModel, 'open');
  const deleted = await c.request(xml('iq', { type: 'set' }, xml('pubsub', { xmlns: NS_PUBSUB_OWNER }, xml('delete', { node }))));
  t.is(deleted.attrs.type, 'result');
  // and the node is gone, as caas's clean-up expects
  const again = await c.request(xml('iq', { type: 'get' }, xml('pubsub', { xmlns: NS_PUBSUB }, xml('items', { node })))).catch((err: { condition?: string }) => err.condition);
  t.is(again, 'item-not-found');
});

// --- services ----------------------------------------------------------------------------------

test('xep0045: a multi-user chat service', async (t) => {
  t.truthy(await serviceOffering(await client(t), NS_MUC));
});

test('xep0363: an HTTP upload service', async (t) => {
  t.truthy(await serviceOffering(await client(t), 'urn:xmpp:http:upload:0'));
});

test('xep0065: a SOCKS5 bytestreams proxy', async (t) => {
  t.truthy(await serviceOffering(await client(t), 'http://jabber.org/protocol/bytestreams'));
});

test('xep0363_cors (informational): the upload URL answers a CORS preflight with the three headers', async (t) => {
  const c = await client(t);
  const service = await serviceOffering(c, 'urn:xmpp:http:upload:0');
  const slot = await c.request(xml('iq', { type: 'get', to: service! }, xml('request', { xmlns: 'urn:xmpp:http:upload:0', filename: 'hello.png', size: '1234', 'content-type': 'image/png' })));
  const put = slot.getChild('slot', 'urn:xmpp:http:upload:0')!.getChild('put')!.attrs.url as string;
  const reply = await fetch(put, {
    method: 'OPTIONS',
    headers: { Origin: 'https://compliance.conversations.im', 'Access-Control-Request-Method': 'PUT', 'Access-Control-Request-Headers': 'content-type' },
  });
  for (const header of ['Access-Control-Allow-Origin', 'Access-Control-Allow-Methods', 'Access-Control-Allow-Headers']) {
    t.true(reply.headers.has(header), `${header} in ${[...reply.headers.keys()].join(', ')}`);
  }
});

// --- rooms ---------------------------------------------------------------------------------------

/** MamMuc and VcardMuc: create a room with a Conversations-like random name and enter it as "test". */
async function withNewRoom<T>(c: TestClient, look: (room: string, service: string) => Promise<T>): Promise<T> {
  const service = await serviceOffering(c, NS_MUC);
  const room = `${randomUUID().slice(0, 8)}@${service!}`;
  await enter(c, room, 'test');
  try {
    return await look(room, service!);
  } finally {
    await c.request(xml('iq', { type: 'set', to: room }, xml('query', { xmlns: NS_MUC_OWNER }, xml('destroy'))));
  }
}

test('xep0313muc: rooms are archived (a room form field, or MAM among the room features)', async (t) => {
  const c = await client(t);
  const { formField, feature } = await withNewRoom(c, async (room) => {
    const config = await c.request(xml('iq', { type: 'get', to: room }, xml('query', { xmlns: NS_MUC_OWNER })));
    const fields = config.getChild('query', NS_MUC_OWNER)!.getChild('x', 'jabber:x:data')!.getChildren('field').map((f) => f.attrs.var as string);
    const features = featuresOf(await discoInfo(c, room));
    return {
      formField: ['mam', 'muc#roomconfig_mam', 'muc#roomconfig_enablearchiving'].some((name) => fields.includes(name)),
      feature: ['urn:xmpp:mam:0', 'urn:xmpp:mam:1', 'urn:xmpp:mam:2'].some((ns) => features.includes(ns)),
    };
  });
  t.true(formField || feature);
  t.true(feature, 'and here, both'); // stricter than caas: both are there
  t.true(formField);
});

test('vcard_muc: rooms have vCards (vcard-temp among the room features)', async (t) => {
  const c = await client(t);
  const features = await withNewRoom(c, async (room) => featuresOf(await discoInfo(c, room)));
  t.true(features.includes('vcard-temp'));
});

// --- what an admin configures ------------------------------------------------------------------

async function externalServices(c: TestClient): Promise<Array<Record<string, string>>> {
  const reply = await c.request(xml('iq', { type: 'get', to: server.domain }, xml('services', { xmlns: 'urn:xmpp:extdisco:2' })));
  return reply.getChild('services', 'urn:xmpp:extdisco:2')!.getChildren('service').map((s) => s.attrs as Record<string, string>);
}

const validEndpoint = (s: Record<string, string>): boolean => s.host !== undefined && Number(s.port) >= 0 && Number(s.port) <= 65535;

test('stun: a STUN server among the external services (XEP-0215)', async (t) => {
  const services = await externalServices(await client(t));
  t.true(services.some((s) => validEndpoint(s) && ['tcp', 'udp'].includes(s.transport!) && ['stun', 'stuns'].includes(s.type!)));
});

test('turn: a TURN server with a username and password among the external services (XEP-0215)', async (t) => {
  const services = await externalServices(await client(t));
  t.true(services.some((s) => validEndpoint(s) && ['tcp', 'udp'].includes(s.transport!) && ['turn', 'turns'].includes(s.type!) && !!s.username && !!s.password));
});

test('abuse-contact (informational): an abuse address in the server disco#info form (XEP-0157)', async (t) => {
  const info = await discoInfo(await client(t), server.domain);
  const addresses = info.getChildren('x', 'jabber:x:data').flatMap((form) => form.getChildren('field').filter((f) => f.attrs.var === 'abuse-addresses').flatMap((f) => f.getChildren('value')));
  t.true(addresses.length > 0);
});

// --- connection methods --------------------------------------------------------------------------

test('xep0368: direct TLS with the xmpp-client ALPN answers a stream header with an XML declaration', async (t) => {
  const socket = tls.connect({ host: '127.0.0.1', port: server.directPort, servername: server.domain, ALPNProtocols: ['xmpp-client'], rejectUnauthorized: false });
  await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
  t.true(socket.getPeerCertificate().subjectaltname?.includes(`DNS:${server.domain}`), 'the certificate names the domain');
  socket.write(`<?xml version='1.0'?><stream:stream to='${server.domain}' version='1.0' xml:lang='en' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`);
  let opening = '';
  for await (const chunk of socket) {
    opening += chunk.toString();
    if (opening.length >= 21) break;
  }
  socket.destroy();
  t.true(opening.startsWith('<?xml'), opening.slice(0, 40));
});

for (const variant of ['host-meta', 'host-meta.json'] as const) {
  test(`xep0156 (informational): ${variant} with CORS *, and every connection it lists reachable`, async (t) => {
    const reply = await httpRequest(server, 'GET', `/.well-known/${variant}`, { host: `localhost:${server.httpPort}` });
    t.is(reply.status, 200);
    t.is(reply.headers['access-control-allow-origin'], '*');
    const hrefs = variant === 'host-meta.json'
      ? (JSON.parse(reply.body) as { links: Array<{ rel: string; href: string }> }).links.filter((l) => l.rel.startsWith('urn:xmpp:alt-connections:')).map((l) => l.href)
      : [...reply.body.matchAll(/<Link rel=['"]urn:xmpp:alt-connections:(?:websocket|xbosh)['"] href=['"]([^'"]+)['"]/g)].map((m) => m[1]!);
    t.true(hrefs.length > 0, reply.body);
    for (const href of hrefs) {
      t.regex(href, /^wss?:/, 'only WebSocket is offered, never BOSH');
      // caas sends a WebSocket upgrade and wants a status below 300 (101 Switching Protocols)
      const ws = new WebSocket(href, 'xmpp', { rejectUnauthorized: false });
      const status = await new Promise<number>((resolve, reject) => {
        ws.once('upgrade', (res) => resolve(res.statusCode!));
        ws.once('unexpected-response', (_req, res) => resolve(res.statusCode!));
        ws.once('error', reject);
      });
      ws.terminate();
      t.true(status <= 299, `${href}: ${status}`);
    }
  });
}
