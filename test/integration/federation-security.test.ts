// Who may federate with us, and what a user sees when the other server is missing: a peer that
// claims a domain it cannot prove is refused and its stanzas are never routed; an unreachable or
// silent server gives the sender an error, not silence; certificates from a trusted CA
// authenticate with SASL EXTERNAL (XEP-0178); idle streams close and come back on demand.
import net from 'node:net';
import test from 'ava';
import type { TestServer } from '../helpers/server.js';
import { RawClient } from '../helpers/clients.js';
import { chat, errorCondition, messages, settle } from '../helpers/conversation.js';
import { read, readElement } from '../helpers/wire.js';
import { chatTo, eventually, freePort, startFederated, userOn } from '../helpers/federation.js';
import { createTestCa } from '../helpers/test-ca.js';
import { dialbackKey } from '../../src/s2s/dialback.js';
import { startTestDns } from '../helpers/dns.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';

const SECRET_B = 'b.example dialback secret for tests';
let a: TestServer;
let b: TestServer;
let portA: number;
let closedPort: number;
test.before(async () => {
  portA = await freePort();
  const portB = await freePort();
  closedPort = await freePort(); // nobody listens there
  a = await startFederated({
    domain: 'a.example',
    s2sPort: portA,
    routes: { 'b.example': portB, 'down.example': closedPort, 'ghost.example': closedPort },
  });
  b = await startFederated({ domain: 'b.example', s2sPort: portB, routes: { 'a.example': portA }, s2s: { dialback_secret: SECRET_B } });
});
test.after.always(async () => {
  await a?.stop();
  await b?.stop();
});


/** A hand-made server stream to a.example claiming to be `from`, through STARTTLS; returns it and its stream id. */
async function rawPeer(from: string): Promise<{ wire: RawClient; streamId: string }> {
  const wire = await RawClient.connectTo(portA);
  const header = `<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='${from}' to='a.example' version='1.0'>`;
  wire.write(header);
  await readElement(wire, 'stream:features');
  wire.write(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`);
  await wire.waitFor(/<proceed/);
  await wire.upgradeToTls('a.example');
  wire.write(header);
  const opened = await read(wire, /<stream:stream\s[^>]*>/);
  const streamId = /\sid=['"]([^'"]+)['"]/.exec(opened[0])![1]!;
  const features = await readElement(wire, 'stream:features');
  if (!features.getChild('dialback', 'urn:xmpp:features:dialback')) throw new Error('no dialback offered');
  return { wire, streamId };
}

test('A peer claiming b.example with a key b.example did not issue is refused, and its stanzas never routed', async (t) => {
  const alice = await userOn(t, a, 'alice');
  const { wire } = await rawPeer('b.example');
  wire.write(`<db:result from='b.example' to='a.example'>${'0'.repeat(64)}</db:result>`);
  // a.example asked b.example (the real one, over its own stream), which said the key is not its own
  await wire.waitFor(/<db:result[^>]*type=['"]invalid['"]/);
  wire.write(`<message from='mallory@b.example/x' to='${alice.jid}' type='chat' id='forged'><body>trust me</body></message>`);
  await wire.waitClosed();
  t.regex(wire.data, /<not-authorized/);
  await settle(alice);
  t.deepEqual(messages(alice), [], 'the forged message was not delivered');
});

test('A peer claiming a domain whose server cannot be reached gets a dialback error, not acceptance', async (t) => {
  const { wire } = await rawPeer('ghost.example');
  wire.write(`<db:result from='ghost.example' to='a.example'>${'1'.repeat(64)}</db:result>`);
  const answer = await wire.waitFor(/<db:result[^>]*type=['"](\w+)['"][\s\S]*?(?:\/>|<\/db:result>)/);
  t.is(answer[1], 'error');
  t.regex(answer[0], /remote-server-not-found/);
  wire.write(`<message from='x@ghost.example' to='someone@a.example'><body>hi</body></message>`);
  await wire.waitClosed();
  t.regex(wire.data, /<not-authorized/, 'stanzas before authentication close the stream');
});

test('A peer that proved b.example may not send stanzas from another domain (invalid-from)', async (t) => {
  const alice = await userOn(t, a, 'alice');
  const { wire, streamId } = await rawPeer('b.example');
  // a valid key: made with b.example's secret, as its own server would
  wire.write(`<db:result from='b.example' to='a.example'>${dialbackKey(SECRET_B, 'a.example', 'b.example', streamId)}</db:result>`);
  await wire.waitFor(/<db:result[^>]*type=['"]valid['"]/);
  wire.write(`<message from='bob@b.example/raw' to='${alice.jid}' type='chat' id='genuine'><body>from b</body></message>`);
  const genuine = await alice.next((s) => s.is('message') && s.attrs.id === 'genuine');
  t.is(genuine.attrs.from, 'bob@b.example/raw');
  wire.write(`<message from='eve@c.example/raw' to='${alice.jid}' type='chat' id='spoofed'><body>from c?</body></message>`);
  await wire.waitClosed();
  t.regex(wire.data, /<invalid-from/);
  await settle(alice);
  t.deepEqual(messages(alice).map((m) => m.attrs.id), ['genuine'], 'the spoofed message was not delivered');
});

test('A message to a server that is down bounces with remote-server-not-found, at once while it stays down', async (t) => {
  const alice = await userOn(t, a, 'alice');
  await alice.send(chat('bob@down.example', 'are you there?', { id: 'down-1' }));
  const error = await alice.next((s) => s.is('message') && s.attrs.id === 'down-1');
  t.is(error.attrs.type, 'error');
  t.is(errorCondition(error), 'remote-server-not-found');
  t.is(error.attrs.from, 'bob@down.example');
  await alice.send(chat('bob@down.example', 'still there?', { id: 'down-2' }));
  const second = await alice.next((s) => s.is('message') && s.attrs.id === 'down-2');
  t.is(errorCondition(second), 'remote-server-not-found');
});

test('A server that accepts the connection but never answers gives remote-server-timeout', async (t) => {
  const accepted: net.Socket[] = [];
  const silent = net.createServer((socket) => {
    accepted.push(socket.on('error', () => undefined).resume()); // reads, never answers
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const socket of accepted) socket.destroy();
    return new Promise<void>((resolve) => silent.close(() => resolve()));
  });
  const silentPort = (silent.address() as net.AddressInfo).port;
  const [portC] = [await freePort()];
  const c = await startFederated({ domain: 'timeout.example', s2sPort: portC, routes: { 'silent.example': silentPort }, s2s: { connect_timeout: '1s' } });
  t.teardown(() => c.stop());
  const carol = await userOn(t, c, 'carol');
  await carol.send(chat('someone@silent.example', 'hello?', { id: 'silent-1' }));
  const error = await carol.next((s) => s.is('message') && s.attrs.id === 'silent-1');
  t.is(errorCondition(error), 'remote-server-timeout');
});

test('When the peer comes up after being down, the next message goes through (reconnect after backoff)', async (t) => {
  const [portC, portD] = [await freePort(), await freePort()];
  const c = await startFederated({ domain: 'up-c.example', s2sPort: portC, routes: { 'up-d.example': portD } });
  t.teardown(() => c.stop());
  const carol = await userOn(t, c, 'carol');
  await carol.send(chat('dave@up-d.example', 'first', { id: 'early' }));
  t.is(errorCondition(await carol.next((s) => s.is('message') && s.attrs.id === 'early')), 'remote-server-not-found');

  const d = await startFederated({ domain: 'up-d.example', s2sPort: portD, routes: { 'up-c.example': portC } });
  t.teardown(() => d.stop());
  const dave = await userOn(t, d, 'dave');
  // keep trying, as a user would, until the backoff has passed
  let delivered = false;
  for (let attempt = 0; attempt < 40 && !delivered; attempt++) {
    await carol.send(chat(dave.jid.split('/')[0]!, 'hello again', { id: `retry-${attempt}` }));
    const answer = await Promise.race([
      carol.next((s) => s.is('message') && s.attrs.id === `retry-${attempt}`).then(() => false),
      dave.next((s) => s.is('message') && s.attrs.id === `retry-${attempt}`).then(() => true),
    ]);
    delivered = answer;
    if (!delivered) await new Promise((resolve) => setTimeout(resolve, 250));
  }
  t.true(delivered);
});

test('An idle stream is closed, and the next message opens a new one', async (t) => {
  const [portC, portD] = [await freePort(), await freePort()];
  const c = await startFederated({ domain: 'idle-c.example', s2sPort: portC, routes: { 'idle-d.example': portD }, s2s: { idle_timeout: '1s' } });
  const d = await startFederated({ domain: 'idle-d.example', s2sPort: portD, routes: { 'idle-c.example': portC }, s2s: { idle_timeout: '1s' } });
  t.teardown(async () => {
    await c.stop();
    await d.stop();
  });
  const carol = await userOn(t, c, 'carol');
  const dave = await userOn(t, d, 'dave');
  const daveBare = dave.jid.split('/')[0]!;
  await carol.send(chat(daveBare, 'one', { id: 'idle-1' }));
  await dave.next((s) => s.is('message') && s.attrs.id === 'idle-1');
  await eventually(() => c.server.s2s!.streams().length === 0, 10000, 'the idle streams to close');
  await carol.send(chat(daveBare, 'two', { id: 'idle-2' }));
  await dave.next((s) => s.is('message') && s.attrs.id === 'idle-2');
  t.truthy(c.server.s2s!.streams().find((s) => s.direction === 'outgoing' && s.state === 'ready'));
});

test('With certificates from a trusted CA, both servers authenticate with SASL EXTERNAL', async (t) => {
  const ca = createTestCa(['cert-c.example', 'cert-d.example']);
  const [portC, portD] = [await freePort(), await freePort()];
  const s2s = { ca_file: ca.caFile, require_valid_certificates: true };
  const c = await startFederated({ domain: 'cert-c.example', s2sPort: portC, routes: { 'cert-d.example': portD }, s2s,
    config: { hosts: [{ domain: 'cert-c.example', registration: 'open', tls: ca.certs['cert-c.example'] }] } });
  const d = await startFederated({ domain: 'cert-d.example', s2sPort: portD, routes: { 'cert-c.example': portC }, s2s,
    config: { hosts: [{ domain: 'cert-d.example', registration: 'open', tls: ca.certs['cert-d.example'] }] } });
  t.teardown(async () => {
    await c.stop();
    await d.stop();
  });
  const carol = await userOn(t, c, 'carol');
  const dave = await userOn(t, d, 'dave');
  await chatTo(carol, dave, 'signed and sealed', 'cert-1');
  await chatTo(dave, carol, 'likewise', 'cert-2');
  t.deepEqual(
    c.server.s2s!.streams().map((s) => `${s.direction} ${s.remote} ${s.method}`).sort(),
    ['incoming cert-d.example sasl-external', 'outgoing cert-d.example sasl-external'],
  );
});

test('A server that requires valid certificates refuses a peer with a self-signed one', async (t) => {
  const ca = createTestCa(['strict-c.example']);
  const [portC] = [await freePort()];
  // strict-c.example trusts only the test CA; a.example's certificate is self-signed
  const c = await startFederated({ domain: 'strict-c.example', s2sPort: portC, routes: { 'a.example': portA },
    s2s: { ca_file: ca.caFile, require_valid_certificates: true },
    config: { hosts: [{ domain: 'strict-c.example', registration: 'open', tls: ca.certs['strict-c.example'] }] } });
  t.teardown(() => c.stop());
  const carol = await userOn(t, c, 'carol');
  await carol.send(chat('alice@a.example', 'hi', { id: 'strict-1' }));
  const error = await carol.next((s) => s.is('message') && s.attrs.id === 'strict-1');
  t.is(errorCondition(error), 'remote-server-not-found');
});

test('Direct TLS (XEP-0368): a server listening with TLS from the first byte is reached by a direct route', async (t) => {
  const [portE, portF] = [await freePort(), await freePort()];
  const e = await startFederated({ domain: 'direct-e.example', s2sPort: portE, routes: { 'direct-f.example': portF },
    s2s: { listen: [{ host: '127.0.0.1', port: portE, tls: 'direct' }] } });
  const f = await startFederated({ domain: 'direct-f.example', s2sPort: portF, routes: { 'direct-e.example': { host: '127.0.0.1', port: portE, tls: 'direct' } } });
  t.teardown(async () => {
    await e.stop();
    await f.stop();
  });
  const erin = await userOn(t, e, 'erin');
  const frank = await userOn(t, f, 'frank');
  await chatTo(frank, erin, 'over direct TLS', 'direct-1');
  await chatTo(erin, frank, 'and back over STARTTLS', 'direct-2');
  t.is(e.server.s2sAddresses()[0]?.tls, 'direct');
});

test('Stanzas beyond the queue limit for a domain that is still connecting bounce with resource-constraint', async (t) => {
  const accepted: net.Socket[] = [];
  const silent = net.createServer((socket) => {
    accepted.push(socket.on('error', () => undefined).resume()); // reads, never answers: the stream never gets ready
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const socket of accepted) socket.destroy();
    return new Promise<void>((resolve) => silent.close(() => resolve()));
  });
  const c = await startFederated({ domain: 'queue.example', s2sPort: await freePort(),
    routes: { 'slow.example': (silent.address() as net.AddressInfo).port }, s2s: { max_queued_stanzas: 2, connect_timeout: '2s' } });
  t.teardown(() => c.stop());
  const carol = await userOn(t, c, 'carol');
  for (let i = 1; i <= 3; i++) await carol.send(chat('someone@slow.example', `message ${i}`, { id: `queued-${i}` }));
  const third = await carol.next((s) => s.is('message') && s.attrs.id === 'queued-3');
  t.is(errorCondition(third), 'resource-constraint');
  // the two queued ones get their answer when the connection attempt gives up
  t.is(errorCondition(await carol.next((s) => s.is('message') && s.attrs.id === 'queued-1')), 'remote-server-timeout');
  t.is(errorCondition(await carol.next((s) => s.is('message') && s.attrs.id === 'queued-2')), 'remote-server-timeout');
});

test('Bad input on the server port is answered with stream errors, and the server carries on', async (t) => {
  const clientNamespace = await RawClient.connectTo(portA);
  clientNamespace.write(`<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='a.example' version='1.0'>`);
  await clientNamespace.waitClosed();
  t.regex(clientNamespace.data, /<invalid-namespace/);

  const unknownHost = await RawClient.connectTo(portA);
  unknownHost.write(`<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='elsewhere.example' version='1.0'>`);
  await unknownHost.waitClosed();
  t.regex(unknownHost.data, /<host-unknown/);

  const garbage = await RawClient.connectTo(portA);
  garbage.write(`<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='a.example' version='1.0'><db:result from='x' to='a.example'>&foo;</db:result>`);
  await garbage.waitClosed();
  t.regex(garbage.data, /<restricted-xml|<not-well-formed|<policy-violation/);

  // and federation still works
  const alice = await userOn(t, a, 'alice');
  const bob = await userOn(t, b, 'bob');
  await bob.send(chat(alice.jid, 'still here', { id: 'after-garbage' }));
  await alice.next((s) => s.is('message') && s.attrs.id === 'after-garbage');
});

test('Without a static route the server finds its peer by DNS SRV records (_xmpp-server._tcp)', async (t) => {
  const dns = await startTestDns();
  t.teardown(() => dns.close());
  const [portE, portF] = [await freePort(), await freePort()];
  // srv-f.example is served on a port and a host name only DNS knows
  dns.addSrv('_xmpp-server._tcp.srv-f.example', 'xmpp.srv-f.example', portF);
  const e = await startFederated({ domain: 'srv-e.example', s2sPort: portE, routes: {}, s2s: { dns_servers: [`127.0.0.1:${dns.port}`] } });
  const f = await startFederated({ domain: 'srv-f.example', s2sPort: portF, routes: { 'srv-e.example': portE } });
  t.teardown(async () => {
    await e.stop();
    await f.stop();
  });
  const erin = await userOn(t, e, 'erin');
  const frank = await userOn(t, f, 'frank');
  await chatTo(erin, frank, 'found you', 'srv-1');
  // a domain DNS knows nothing about: no SRV, no address
  await erin.send(chat('nobody@nowhere.example', 'hello?', { id: 'srv-2' }));
  t.is(errorCondition(await erin.next((s) => s.is('message') && s.attrs.id === 'srv-2', 15000)), 'remote-server-not-found');
});
