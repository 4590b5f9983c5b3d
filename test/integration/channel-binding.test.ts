// SCRAM-*-PLUS: channel binding over the TLS the server terminates (RFC 5802 §6, RFC 9266,
// RFC 5929), announced with XEP-0440, and the XEP-0474 downgrade protection hash. The client
// side here is computed from the client's own TLS socket with node:tls, independently of the
// server's code: the two sides of a real connection must agree.
import crypto from 'node:crypto';
import type tls from 'node:tls';
import test from 'ava';
import type Element from 'ltx/lib/Element.js';
import { RawClient } from '../helpers/clients.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { secured, tlsExporter } from '../helpers/sasl2.js';
import { NS_SASL, authenticateScram, bind, openStream } from '../helpers/wire.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // the test server's certificate is self-signed

const NS_SASL_CB = 'urn:xmpp:sasl-cb:0';

let server: TestServer;

test.before(async () => {
  server = await startServer();
  await server.createAccount('alice');
});

test.after.always(async () => {
  await server?.stop();
});

function mechanismsOf(features: Element): string[] {
  return (features.getChild('mechanisms', NS_SASL)?.getChildren('mechanism') ?? []).map((m) => m.getText());
}

/** RFC 5929 §4.1 from the client's side: the test certificate is ECDSA P-256 with SHA-256. */
function serverEndPoint(socket: tls.TLSSocket): Buffer {
  return crypto.createHash('sha256').update(socket.getPeerCertificate().raw).digest();
}

test('TLS 1.3: -PLUS offered with tls-exporter and tls-server-end-point, and SCRAM-SHA-256-PLUS logs in with tls-exporter', async (t) => {
  const { wire, socket, features } = await secured(server);
  t.teardown(() => wire.close());
  t.is(socket.getProtocol(), 'TLSv1.3');
  t.deepEqual(mechanismsOf(features), ['SCRAM-SHA-512-PLUS', 'SCRAM-SHA-256-PLUS', 'SCRAM-SHA-1-PLUS', 'SCRAM-SHA-512', 'SCRAM-SHA-256', 'SCRAM-SHA-1', 'PLAIN']);
  const types = features.getChild('sasl-channel-binding', NS_SASL_CB)?.getChildren('channel-binding').map((c) => c.attrs.type);
  t.deepEqual(types, ['tls-exporter', 'tls-server-end-point'], 'XEP-0440 names the types');

  const result = await authenticateScram(wire, 'sha256', 'alice', undefined, { binding: { type: 'tls-exporter', data: tlsExporter(socket) } });
  t.like(result, { outcome: 'success', serverSignatureVerified: true });
  t.regex(await bind(wire, 'bound', server.domain), /^alice@localhost\/bound$/);
});

test('SCRAM-SHA-512-PLUS logs in with tls-exporter (draft-melnikov-scram-sha-512)', async (t) => {
  const { wire, socket } = await secured(server);
  t.teardown(() => wire.close());
  const result = await authenticateScram(wire, 'sha512', 'alice', undefined, { binding: { type: 'tls-exporter', data: tlsExporter(socket) } });
  t.like(result, { outcome: 'success', serverSignatureVerified: true });
  t.regex(await bind(wire, 'bound512', server.domain), /^alice@localhost\/bound512$/);
});

test('SCRAM-SHA-512-PLUS: tls-exporter data of another connection is not-authorized', async (t) => {
  const victim = await secured(server);
  const relay = await secured(server);
  t.teardown(() => {
    victim.wire.close();
    relay.wire.close();
  });
  const result = await authenticateScram(relay.wire, 'sha512', 'alice', undefined, { binding: { type: 'tls-exporter', data: tlsExporter(victim.socket) } });
  t.like(result, { outcome: 'failure', condition: 'not-authorized' });
});

test('tls-server-end-point works with SCRAM-SHA-1-PLUS, SCRAM-SHA-256-PLUS and SCRAM-SHA-512-PLUS', async (t) => {
  for (const hash of ['sha1', 'sha256', 'sha512'] as const) {
    const { wire, socket } = await secured(server);
    t.teardown(() => wire.close());
    const result = await authenticateScram(wire, hash, 'alice', undefined, { binding: { type: 'tls-server-end-point', data: serverEndPoint(socket) } });
    t.like(result, { outcome: 'success', serverSignatureVerified: true }, hash);
  }
});

test('TLS 1.2: tls-unique is offered instead of tls-exporter, and binds', async (t) => {
  const { wire, socket, features } = await secured(server, { maxVersion: 'TLSv1.2' });
  t.teardown(() => wire.close());
  t.is(socket.getProtocol(), 'TLSv1.2');
  const types = features.getChild('sasl-channel-binding', NS_SASL_CB)?.getChildren('channel-binding').map((c) => c.attrs.type);
  t.deepEqual(types, ['tls-server-end-point', 'tls-unique']);
  // RFC 5929 §3.1: the first Finished message, the client's own in a full handshake
  const result = await authenticateScram(wire, 'sha256', 'alice', undefined, { binding: { type: 'tls-unique', data: socket.getFinished()! } });
  t.like(result, { outcome: 'success', serverSignatureVerified: true });
});

test('TLS 1.3: tls-unique, unannounced, still binds for clients that ask for it (slixmpp 1.8 does)', async (t) => {
  const { wire, socket, features } = await secured(server);
  t.teardown(() => wire.close());
  t.false(features.getChild('sasl-channel-binding', NS_SASL_CB)!.getChildren('channel-binding').some((c) => c.attrs.type === 'tls-unique'));
  const result = await authenticateScram(wire, 'sha256', 'alice', undefined, { binding: { type: 'tls-unique', data: socket.getFinished()! } });
  t.like(result, { outcome: 'success', serverSignatureVerified: true });
});

test('a man in the middle is caught: binding data from another TLS connection is not-authorized', async (t) => {
  const victim = await secured(server);
  const relay = await secured(server);
  t.teardown(() => {
    victim.wire.close();
    relay.wire.close();
  });
  // the relay authenticates on its own connection with what the victim's TLS session yields
  const result = await authenticateScram(relay.wire, 'sha256', 'alice', undefined, { binding: { type: 'tls-exporter', data: tlsExporter(victim.socket) } });
  t.like(result, { outcome: 'failure', condition: 'not-authorized' });
});

test('a downgrade is refused: flag y (client can bind, thinks we cannot) while -PLUS was offered', async (t) => {
  const { wire } = await secured(server);
  t.teardown(() => wire.close());
  const result = await authenticateScram(wire, 'sha256', 'alice', undefined, { flag: 'y' });
  t.like(result, { outcome: 'failure', condition: 'not-authorized' });
});

test('an unsupported channel binding type, or binding without -PLUS, is malformed-request', async (t) => {
  const { wire } = await secured(server);
  t.teardown(() => wire.close());
  const unsupported = await authenticateScram(wire, 'sha256', 'alice', undefined, { binding: { type: 'tls-fantasy', data: Buffer.alloc(12) } });
  t.like(unsupported, { outcome: 'failure', condition: 'malformed-request' });
  const plain = Buffer.from('p=tls-exporter,,n=alice,r=abcdefgh').toString('base64');
  wire.write(`<auth xmlns='${NS_SASL}' mechanism='SCRAM-SHA-256'>${plain}</auth>`);
  await t.notThrowsAsync(wire.waitFor(/<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><malformed-request\/>/));
});

test('XEP-0474: the server-first-message carries d=, the hash of what the features offered', async (t) => {
  const { wire, socket, features } = await secured(server);
  t.teardown(() => wire.close());
  const types = features.getChild('sasl-channel-binding', NS_SASL_CB)!.getChildren('channel-binding').map((c) => c.attrs.type!);
  const seen: { serverFirst?: string } = {};
  const result = await authenticateScram(wire, 'sha256', 'alice', undefined, { binding: { type: 'tls-exporter', data: tlsExporter(socket) }, seen });
  const d = new Map(seen.serverFirst!.split(',').map((f) => [f.slice(0, 1), f.slice(2)])).get('d');
  // computed here from the features the client saw, as a client does (XEP-0474 §3)
  const sorted = (list: string[]) => [...list].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const input = `${sorted(mechanismsOf(features)).join('\x1e')}\x1f${sorted(types).join('\x1e')}`;
  t.is(d, crypto.createHash('sha256').update(input).digest('base64'));
  t.like(result, { outcome: 'success' }, 'and the AuthMessage covering it verifies');
});

test('direct TLS (XEP-0368) offers -PLUS too', async (t) => {
  const wire = await RawClient.openDirect(server);
  t.teardown(() => wire.close());
  const features = await openStream(wire, server.domain);
  t.true(mechanismsOf(features).includes('SCRAM-SHA-256-PLUS'));
  const result = await authenticateScram(wire, 'sha256', 'alice', undefined, {
    binding: { type: 'tls-exporter', data: tlsExporter(wire.socket as tls.TLSSocket) },
  });
  t.like(result, { outcome: 'success', serverSignatureVerified: true });
});
