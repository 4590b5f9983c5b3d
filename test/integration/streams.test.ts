// The stream layer against hand-made bytes (RFC 6120 §4): every stream error a client can
// provoke is answered with the right <stream:error> condition and the connection is closed, and
// the server carries on: Alice and Bob, connected separately with @xmpp/client, still chat.
import test, { type ExecutionContext } from 'ava';
import { startServer, type TestServer } from '../helpers/server.js';
import { connect, RawClient, xml, type TestClient } from '../helpers/clients.js';
import type Element from 'ltx/lib/Element.js';
import { authenticatePlain, loginRaw, openStream, read, readElement, readStreamError, streamHeader, type Wire } from '../helpers/wire.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // the test server's certificate is self-signed

const MAX_STANZA_SIZE = 4096;

let server: TestServer;
let alice: TestClient;
let bob: TestClient;
test.before(async () => {
  server = await startServer({ config: { c2s: { max_stanza_size: '4KiB' } } });
  for (const name of ['alice', 'bob', 'carol', 'mallory']) await server.createAccount(name);
  alice = await connect(server, 'alice', { resource: 'phone' });
  bob = await connect(server, 'bob', { resource: 'laptop' });
  await alice.send(xml('presence'));
  await bob.send(xml('presence'));
});
test.after.always(async () => {
  await alice?.stop();
  await bob?.stop();
  await server?.stop();
});

let messageCount = 0;
/** Alice sends Bob a message and Bob receives it: the server is still serving everyone else. */
async function aliceAndBobStillChat(t: ExecutionContext): Promise<void> {
  const body = `still here #${++messageCount}`;
  await alice.send(xml('message', { to: 'bob@localhost', type: 'chat' }, xml('body', {}, body)));
  const received = await bob.next((s) => s.is('message') && s.getChildText('body') === body);
  t.is(received.attrs.from, 'alice@localhost/phone', 'Alice and Bob can still chat');
}

/** A raw client over STARTTLS with its stream open, not yet authenticated. */
async function openedStream(): Promise<RawClient> {
  const wire = await RawClient.open(server);
  await openStream(wire);
  return wire;
}

/** A raw client over plain TCP that has sent nothing yet (for stream header errors). */
function plainSocket(): Promise<RawClient> {
  return RawClient.open(server, { tls: false });
}

async function expectStreamError(t: ExecutionContext, wire: Wire, condition: string, timeoutMs?: number): Promise<void> {
  t.is(await readStreamError(wire, timeoutMs), condition);
  t.true(wire.closed, 'the server closed the connection');
}

// --- not-well-formed (RFC 6120 §4.9.3.13) -----------------------------------------------------

test('mismatched tags are not-well-formed', async (t) => {
  const wire = await openedStream();
  wire.write('<message><body></message>');
  await expectStreamError(t, wire, 'not-well-formed');
  await aliceAndBobStillChat(t);
});

test('an unquoted attribute value is not-well-formed', async (t) => {
  const wire = await openedStream();
  wire.write('<message to=bob@localhost><body>hi</body></message>');
  await expectStreamError(t, wire, 'not-well-formed');
  await aliceAndBobStillChat(t);
});

test('a bare ampersand (bad entity syntax) is not-well-formed', async (t) => {
  const wire = await openedStream();
  wire.write('<message><body>fish & chips</body></message>');
  await expectStreamError(t, wire, 'not-well-formed');
  await aliceAndBobStillChat(t);
});

test('a bound client sending broken XML is disconnected with not-well-formed', async (t) => {
  const { wire } = await loginRaw(server, 'mallory', 'broken-xml');
  wire.write("<message to='bob@localhost'><body>half</message>");
  await expectStreamError(t, wire, 'not-well-formed');
  await aliceAndBobStillChat(t);
});

// --- restricted-xml (RFC 6120 §4.9.3.18, §11.1) -----------------------------------------------

test('invalid UTF-8 is not-well-formed', async (t) => {
  const wire = await openedStream();
  wire.write(Buffer.concat([Buffer.from('<message><body>'), Buffer.from([0xc3, 0x28]), Buffer.from('</body></message>')]));
  await expectStreamError(t, wire, 'not-well-formed');
});

test('an overlong UTF-8 encoding (of <) is not-well-formed', async (t) => {
  const wire = await openedStream();
  wire.write(Buffer.concat([Buffer.from('<message><body>'), Buffer.from([0xc0, 0xbc]), Buffer.from('</body></message>')]));
  await expectStreamError(t, wire, 'not-well-formed');
});

test('plaintext pipelined after <starttls/> is discarded, not processed (RFC 6120 §5.4.3.3)', async (t) => {
  const wire = await plainSocket();
  await openStream(wire);
  // an attacker on the path appends a stream header and a stanza to the client's <starttls/>
  wire.write(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>${streamHeader()}<iq type='get' id='injected'><ping xmlns='urn:xmpp:ping'/></iq>`);
  await read(wire, /<proceed[^>]*\/>/);
  await wire.upgradeToTls(server.domain);
  // after TLS, the client's own stream starts afresh, with nothing of the injected bytes
  const features = await openStream(wire);
  t.truthy(features.getChild('mechanisms', 'urn:ietf:params:xml:ns:xmpp-sasl'));
  const result = await authenticatePlain(wire, 'carol');
  t.is(result.outcome, 'success');
  t.false(/injected|stream:error/.test(wire.data), wire.data);
  wire.close();
});

test('an XML comment is restricted-xml', async (t) => {
  const wire = await openedStream();
  wire.write('<!-- x -->');
  await expectStreamError(t, wire, 'restricted-xml');
  await aliceAndBobStillChat(t);
});

test('a processing instruction inside the stream is restricted-xml', async (t) => {
  const wire = await openedStream();
  wire.write('<?foo?>');
  await expectStreamError(t, wire, 'restricted-xml');
  await aliceAndBobStillChat(t);
});

test('a DOCTYPE with an internal DTD (the billion laughs setup) is restricted-xml', async (t) => {
  const wire = await plainSocket();
  wire.write(`<?xml version='1.0'?><!DOCTYPE stream:stream [<!ENTITY lol 'lol'><!ENTITY lol2 '&lol;&lol;&lol;'>]>`);
  await expectStreamError(t, wire, 'restricted-xml');
  await aliceAndBobStillChat(t);
});

test('an entity reference other than the predefined five is restricted-xml', async (t) => {
  const wire = await openedStream();
  wire.write('<message><body>&foo;</body></message>');
  await expectStreamError(t, wire, 'restricted-xml');
  await aliceAndBobStillChat(t);
});

// --- policy-violation: the size limit (XEP-0478) ----------------------------------------------

test('the stream features after TLS come in records small enough for the first 1 KiB of Node\'s TLS output buffer', async (t) => {
  // one larger flush makes Node add a 16 KiB buffer the connection keeps (src/c2s/transport.ts)
  const wire = await RawClient.open(server);
  const records: number[] = [];
  wire.socket.on('data', (chunk: string) => records.push(Buffer.byteLength(chunk)));
  const features = await openStream(wire);
  t.truthy(features.getChild('authentication', 'urn:xmpp:sasl:2'), 'SASL2 and SASL both offered: more than one record holds');
  const total = records.reduce((sum, n) => sum + n, 0);
  t.true(total > 990, `${total} bytes`);
  t.true(records.length >= 2 && records.every((n) => n <= 990), records.join(', '));
  t.is((await authenticatePlain(wire, 'carol')).outcome, 'success', 'the stream goes on');
  wire.close();
});

test('the stanza size limit is advertised in the stream features before and after login (XEP-0478)', async (t) => {
  const wire = await RawClient.open(server);
  const limitOf = (features: Element) => features.getChild('limits', 'urn:xmpp:stream-limits:0')?.getChildText('max-bytes');
  t.is(limitOf(await openStream(wire)), String(MAX_STANZA_SIZE), 'after STARTTLS');
  t.is((await authenticatePlain(wire, 'mallory')).outcome, 'success');
  t.is(limitOf(await openStream(wire)), String(MAX_STANZA_SIZE), 'after authentication');
  wire.close();
});

test('a stanza growing past the size limit is cut off with policy-violation before it is complete', async (t) => {
  const { wire } = await loginRaw(server, 'mallory', 'flood');
  wire.write("<message to='bob@localhost' type='chat'><body>");
  // keep the body coming and never close it: the server must not wait for the end
  let sent = 0;
  const chunk = 'x'.repeat(512);
  while (!wire.data.includes('<stream:error>') && !wire.closed && sent < 64 * MAX_STANZA_SIZE) {
    await new Promise<void>((resolve) => wire.socket.write(chunk, () => resolve()));
    sent += chunk.length;
    await new Promise((resolve) => setImmediate(resolve));
  }
  await expectStreamError(t, wire, 'policy-violation');
  t.true(sent < 64 * MAX_STANZA_SIZE, 'the error came while the stanza was still arriving');
  await aliceAndBobStillChat(t);
  t.false(bob.received.some((s) => (s.getChildText('body') ?? '').startsWith('xxx')), 'nothing of the oversized stanza reached Bob');
});

test('a complete stanza over the size limit, sent in one piece, is policy-violation', async (t) => {
  const { wire } = await loginRaw(server, 'mallory', 'big');
  wire.write(`<message to='bob@localhost' type='chat' id='too-big'><body>${'y'.repeat(MAX_STANZA_SIZE)}</body></message>`);
  await expectStreamError(t, wire, 'policy-violation');
  await aliceAndBobStillChat(t);
  t.false(bob.received.some((s) => s.attrs.id === 'too-big'), 'the oversized stanza was not delivered');
});

// --- stream header errors ------------------------------------------------------------------------

test('a stream root in the wrong namespace is invalid-namespace', async (t) => {
  const wire = await plainSocket();
  wire.write(streamHeader({ streamNs: 'http://example.com/streams' }));
  await expectStreamError(t, wire, 'invalid-namespace');
  await aliceAndBobStillChat(t);
});

test("a client stream with the server-to-server namespace 'jabber:server' is invalid-namespace", async (t) => {
  const wire = await plainSocket();
  wire.write(streamHeader({ xmlns: 'jabber:server' }));
  await expectStreamError(t, wire, 'invalid-namespace');
  await aliceAndBobStillChat(t);
});

test('a stream to a domain this server does not serve is host-unknown', async (t) => {
  const wire = await plainSocket();
  wire.write(streamHeader({ to: 'nowhere.example' }));
  await expectStreamError(t, wire, 'host-unknown');
  await aliceAndBobStillChat(t);
});

test("a stream header without 'to' is improper-addressing", async (t) => {
  const wire = await plainSocket();
  wire.write(streamHeader({ to: null }));
  await expectStreamError(t, wire, 'improper-addressing');
  await aliceAndBobStillChat(t);
});

test('a stream header without a version (a pre-XMPP-1.0 client) is unsupported-version', async (t) => {
  const wire = await plainSocket();
  wire.write(streamHeader({ version: null }));
  await expectStreamError(t, wire, 'unsupported-version');
  await aliceAndBobStillChat(t);
});

test('a connection that never authenticates is closed with connection-timeout', async (t) => {
  const impatient = await startServer({ config: { c2s: { auth_timeout: '1s' } } });
  t.teardown(() => impatient.stop());
  const wire = await RawClient.open(impatient, { tls: false });
  await openStream(wire);
  // the sweeper looks every 5 s: the idle socket is gone within one or two sweeps
  await expectStreamError(t, wire, 'connection-timeout', 12_000);
  await aliceAndBobStillChat(t);
});

// --- errors of bound sessions ----------------------------------------------------------------------

test('a second client binding the same full JID replaces the first, which gets conflict', async (t) => {
  const first = await loginRaw(server, 'carol', 'desk');
  t.is(first.jid, 'carol@localhost/desk');
  const second = await connect(server, 'carol', { resource: 'desk' });
  t.teardown(() => second.stop());
  t.is(second.jid, 'carol@localhost/desk');
  await expectStreamError(t, first.wire, 'conflict');

  await second.send(xml('message', { to: 'bob@localhost', type: 'chat' }, xml('body', {}, 'the new desk session works')));
  const atBob = await bob.next((s) => s.getChildText('body') === 'the new desk session works');
  t.is(atBob.attrs.from, 'carol@localhost/desk');
  await aliceAndBobStillChat(t);
});

test("a bound client claiming someone else's address in 'from' is invalid-from", async (t) => {
  const { wire } = await loginRaw(server, 'mallory', 'spoofer');
  wire.write("<message from='someone@else' to='bob@localhost' type='chat'><body>it is me, someone</body></message>");
  await expectStreamError(t, wire, 'invalid-from');
  await aliceAndBobStillChat(t);
  t.false(bob.received.some((s) => s.getChildText('body') === 'it is me, someone'), 'the forged message was not delivered');
});

test('an unknown top-level element after binding is unsupported-stanza-type', async (t) => {
  const { wire } = await loginRaw(server, 'mallory', 'odd');
  wire.write("<foo xmlns='urn:example:unknown'/>");
  await expectStreamError(t, wire, 'unsupported-stanza-type');
  await aliceAndBobStillChat(t);
});

// --- things that must work ----------------------------------------------------------------------

test('whitespace keepalives between stanzas are accepted', async (t) => {
  const { wire } = await loginRaw(server, 'mallory', 'keepalive');
  wire.write(' ');
  wire.write('\n\n');
  wire.write("<message to='bob@localhost' type='chat'><body>after some whitespace</body></message>");
  wire.write(' \t\r\n ');
  wire.write("<iq type='get' id='still-alive' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
  wire.write(' ');
  const pong = await readElement(wire, 'iq', 'still-alive');
  t.is(pong.attrs.type, 'result');
  const atBob = await bob.next((s) => s.getChildText('body') === 'after some whitespace');
  t.is(atBob.attrs.from, 'mallory@localhost/keepalive');
  t.false(wire.closed);
  wire.close();
});

test('a stanza arriving one byte per TCP write, with multi-byte UTF-8 split across writes, is parsed intact', async (t) => {
  const { wire } = await loginRaw(server, 'mallory', 'trickle');
  const body = 'Grüße, 你好 👋 & <welcome>';
  const stanza = `<message to='bob@localhost' type='chat' id='trickle'><body>${body.replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;')}</body></message>`;
  const bytes = Buffer.from(stanza, 'utf8');
  t.true(bytes.length > stanza.length, 'the stanza has multi-byte characters');
  const socket = wire.socket;
  for (const byte of bytes) {
    await new Promise<void>((resolve) => socket.write(Buffer.of(byte), () => resolve()));
  }
  const atBob = await bob.next((s) => s.attrs.id === 'trickle');
  t.is(atBob.getChildText('body'), body);
  t.false(wire.closed);
  wire.close();
});

test('a graceful </stream:stream> from the client is answered with </stream:stream>', async (t) => {
  const { wire } = await loginRaw(server, 'mallory', 'goodbye');
  wire.write('</stream:stream>');
  await read(wire, /<\/stream:stream>/);
  await wire.waitClosed();
  t.false(wire.data.includes('<stream:error>'), 'no error for a clean close');
  await aliceAndBobStillChat(t);
});

test('on server shutdown, connected clients receive system-shutdown', async (t) => {
  const doomed = await startServer();
  await doomed.createAccount('dana');
  await doomed.createAccount('ed');
  const { wire } = await loginRaw(doomed, 'dana', 'raw');
  const ed = await connect(doomed, 'ed', { resource: 'client' });
  (ed.xmpp as unknown as { reconnect: { stop(): void } }).reconnect.stop(); // the server will not come back
  const edErrors: string[] = [];
  ed.xmpp.on('error', (err: unknown) => edErrors.push((err as { condition?: string }).condition ?? String(err)));
  const edDisconnected = new Promise<void>((resolve) => ed.xmpp.on('disconnect', () => resolve()));

  await doomed.stop();
  await expectStreamError(t, wire, 'system-shutdown');
  await edDisconnected;
  t.deepEqual(edErrors, ['system-shutdown'], "Ed's client was told why");
  await ed.stop();
});

// Issue 16.6: 1,000 resources of one account cost a million presence stanzas and 170 MB.
test("an account's eleventh session is refused at binding with resource-constraint (wait); rebinding its own resource is not", async (t) => {
  const limited = await startServer(); // default max_sessions_per_account: 10
  t.teardown(() => limited.stop());
  await limited.createAccount('dana');
  const wires: Wire[] = [];
  t.teardown(() => wires.forEach((w) => w.close()));
  for (let i = 1; i <= 10; i++) wires.push((await loginRaw(limited, 'dana', `device${i}`)).wire);

  const eleventh = await RawClient.open(limited);
  wires.push(eleventh);
  await openStream(eleventh, limited.domain);
  t.is((await authenticatePlain(eleventh, 'dana')).outcome, 'success', 'logging in is not refused');
  await openStream(eleventh, limited.domain);
  eleventh.write(`<iq type='set' id='bind-11'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>device11</resource></bind></iq>`);
  const refused = await readElement(eleventh, 'iq', 'bind-11');
  t.is(refused.attrs.type, 'error');
  const error = refused.getChild('error')!;
  t.is(error.attrs.type, 'wait', 'RFC 6120 §7.6.2.2: resource-constraint is of type wait');
  t.truthy(error.getChild('resource-constraint', 'urn:ietf:params:xml:ns:xmpp-stanzas'));
  t.is(limited.server.sessions.localSessions('dana@localhost').length, 10);

  // RFC 6120 §7.7.2.2: the same resource again replaces the old session, within the limit
  const again = await loginRaw(limited, 'dana', 'device1');
  wires.push(again.wire);
  t.is(again.jid, 'dana@localhost/device1');
  t.is(limited.server.sessions.localSessions('dana@localhost').length, 10);
});
