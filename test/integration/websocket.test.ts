// XMPP over WebSocket (RFC 7395): @xmpp/client on a WebSocket chatting with one on TCP, the
// framing seen message by message with a raw `ws` client, the subprotocol, stream errors inside
// a framed stream, who counts as secure, and stream management resumption over WebSocket
// (including a TCP session resumed from a WebSocket).
import http from 'node:http';
import test from 'ava';
import { startServer, type TestServer } from '../helpers/server.js';
import { xml } from '../helpers/clients.js';
import { chat, freshAccounts, loginForTest } from '../helpers/conversation.js';
import { NS_FRAMING, WsWire } from '../helpers/websocket.js';
import { NS_SM, SmClient } from '../helpers/sm-client.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // the test server's certificate is self-signed

const NS_SASL = 'urn:ietf:params:xml:ns:xmpp-sasl';

let server: TestServer;
test.before(async () => {
  server = await startServer({ config: { c2s: { max_stanza_size: '16KiB' } } });
});
test.after.always(async () => {
  await server?.stop();
});

async function rawWs(t: { teardown(fn: () => void): void }, options?: Parameters<typeof WsWire.open>[1]): Promise<WsWire> {
  const wire = await WsWire.open(WsWire.plainUrl(server), options);
  t.teardown(() => wire.close());
  return wire;
}

// --- chatting ----------------------------------------------------------------------------------

test('Alice on a WebSocket (wss://) and Bob on TCP chat in both directions', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const aliceWs = await loginForTest(t, server, alice, 'browser', { transport: 'websocket-tls' });
  const bobTcp = await loginForTest(t, server, bob, 'desktop');
  await aliceWs.send(chat(bobTcp.jid, 'hello from the browser'));
  const atBob = await bobTcp.next((s) => s.is('message') && s.getChildText('body') === 'hello from the browser');
  t.is(atBob.attrs.from, aliceWs.jid);
  await bobTcp.send(chat(aliceWs.jid, 'hello from TCP'));
  const atAlice = await aliceWs.next((s) => s.is('message') && s.getChildText('body') === 'hello from TCP');
  t.is(atAlice.attrs.from, bobTcp.jid);
});

test('a browser on this machine logs in over plain ws:// on the loopback listener', async (t) => {
  const { carol } = await freshAccounts(server, 'carol');
  const ws = await loginForTest(t, server, carol, 'local', { transport: 'websocket' });
  const pong = await ws.request(xml('iq', { type: 'get', to: server.domain }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
  t.is(pong.attrs.type, 'result');
});

// --- framing -----------------------------------------------------------------------------------

test('<open/> is answered by <open/> and the features, each a message of its own', async (t) => {
  const wire = await rawWs(t);
  const { open, features } = await wire.open();
  t.is(open.attrs.from, server.domain);
  t.is(open.attrs.version, '1.0');
  t.truthy(open.attrs.id);
  t.is(wire.received[0], open);
  t.is(wire.received[1], features);
  const mechanisms = features.getChild('mechanisms', NS_SASL)!.getChildElements().map((m) => m.text());
  t.true(mechanisms.includes('PLAIN'), 'secure enough for PLAIN');
  t.is(features.getChild('starttls'), undefined, 'no STARTTLS over WebSocket (RFC 7395 §3.8)');
  t.deepEqual(wire.unparsable, []);
});

test('after login every stanza arrives as a document of its own, in jabber:client', async (t) => {
  const { dave } = await freshAccounts(server, 'dave');
  const wire = await rawWs(t);
  await wire.authenticate(dave);
  const jid = await wire.bind('raw');
  t.is(jid, `${dave}@${server.domain}/raw`);
  wire.send(`<iq xmlns='jabber:client' type='get' id='p1' to='${server.domain}'><ping xmlns='urn:xmpp:ping'/></iq>`);
  const pong = await wire.next((e) => e.is('iq') && e.attrs.id === 'p1');
  t.is(pong.attrs.xmlns, 'jabber:client');
  t.is(pong.attrs.type, 'result');
  t.deepEqual(wire.unparsable, []);
});

test('a client that closes with <close/> gets <close/> and the WebSocket is closed', async (t) => {
  const wire = await rawWs(t);
  await wire.open();
  wire.send(`<close xmlns='${NS_FRAMING}'/>`);
  await wire.next((e) => e.is('close', NS_FRAMING));
  t.is(await wire.waitClosed(), 1000);
});

test('a connection without the xmpp subprotocol is refused', async (t) => {
  await t.throwsAsync(WsWire.open(WsWire.plainUrl(server), { protocols: ['chat'] }), { message: /400/ });
  await t.throwsAsync(WsWire.open(WsWire.plainUrl(server), { protocols: [] }), { message: /400/ });
});

test('a plain GET on the WebSocket endpoint gets 426 Upgrade Required', async (t) => {
  const status = await new Promise<number>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: server.httpPort, path: '/xmpp-websocket', headers: { Host: 'localhost' } }, (res) => {
      res.resume();
      resolve(res.statusCode!);
    }).on('error', reject);
  });
  t.is(status, 426);
});

// --- errors (RFC 7395 §3.6) ----------------------------------------------------------------------

test('bad XML gets a framed not-well-formed stream error, then <close/>, then the WebSocket closes', async (t) => {
  const wire = await rawWs(t);
  await wire.open();
  wire.send(`<message to='a@localhost'><body>oops</message>`);
  t.is(await wire.streamError(), 'not-well-formed');
  await wire.next((e) => e.is('close', NS_FRAMING));
  await wire.waitClosed();
  t.deepEqual(wire.unparsable, [], 'the error declares the stream prefix, so it parses alone');
});

test('a message holding half an element is not-well-formed: one element per message', async (t) => {
  const wire = await rawWs(t);
  await wire.open();
  wire.send(`<iq type='get' id='half'>`);
  t.is(await wire.streamError(), 'not-well-formed');
});

test('a stanza over the size limit is a policy-violation stream error', async (t) => {
  const wire = await rawWs(t);
  await wire.open();
  wire.send(`<message to='a@localhost'><body>${'x'.repeat(20 * 1024)}</body></message>`);
  t.is(await wire.streamError(), 'policy-violation');
  await wire.waitClosed();
});

test('a stream opened with <stream:stream> instead of <open/> is refused', async (t) => {
  const wire = await rawWs(t);
  wire.send(`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'/>`);
  t.truthy(await wire.streamError());
  await wire.waitClosed();
});

test('an unknown host in <open/> is host-unknown', async (t) => {
  const wire = await rawWs(t);
  wire.send(`<open xmlns='${NS_FRAMING}' to='elsewhere.example' version='1.0'/>`);
  t.is(await wire.streamError(), 'host-unknown');
});

test('behind a local proxy that says the browser used plain http, the stream is refused as unencrypted', async (t) => {
  const wire = await rawWs(t, { headers: { 'X-Forwarded-Proto': 'http', 'X-Forwarded-For': '203.0.113.9' } });
  wire.send(`<open xmlns='${NS_FRAMING}' to='localhost' version='1.0'/>`);
  t.is(await wire.streamError(), 'policy-violation');
});

test('behind a local proxy that terminated TLS (X-Forwarded-Proto: https), PLAIN is offered', async (t) => {
  const wire = await rawWs(t, { headers: { 'X-Forwarded-Proto': 'https', 'X-Forwarded-For': '203.0.113.10' } });
  const { features } = await wire.open();
  t.true(features.getChild('mechanisms', NS_SASL)!.getChildElements().some((m) => m.text() === 'PLAIN'));
});

// --- stream management (XEP-0198) --------------------------------------------------------------

test('a WebSocket session that loses its connection is resumed on a new WebSocket and gets what it missed', async (t) => {
  const { erin, frank } = await freshAccounts(server, 'erin', 'frank');
  const frankTcp = await loginForTest(t, server, frank, 'desk');
  const first = await rawWs(t);
  await first.authenticate(erin);
  const jid = await first.bind('phone');
  first.send(`<enable xmlns='${NS_SM}' resume='true'/>`);
  const enabled = await first.next((e) => e.is('enabled', NS_SM));
  t.is(enabled.attrs.resume, 'true');
  await frankTcp.send(chat(jid, 'one'));
  await first.next((e) => e.is('message') && e.getChildText('body') === 'one');
  first.close(); // the network goes away; 'one' was never acknowledged
  await frankTcp.send(chat(jid, 'two'));

  const second = await rawWs(t);
  await second.authenticate(erin);
  second.send(`<resume xmlns='${NS_SM}' previd='${enabled.attrs.id}' h='0'/>`);
  const resumed = await second.next((e) => e.is('resumed', NS_SM) || e.is('failed', NS_SM));
  t.is(resumed.name, 'resumed');
  await second.next((e) => e.is('message') && e.getChildText('body') === 'one');
  await second.next((e) => e.is('message') && e.getChildText('body') === 'two');
  const bodies = second.received.filter((e) => e.is('message')).map((e) => e.getChildText('body'));
  t.deepEqual(bodies, ['one', 'two']);
});

test('a session that started on TCP is resumed from a WebSocket', async (t) => {
  const { gina, hank } = await freshAccounts(server, 'gina', 'hank');
  const hankTcp = await loginForTest(t, server, hank, 'desk');
  const phone = await SmClient.login(server, gina, 'phone');
  const enabled = await phone.enable();
  await hankTcp.send(chat(phone.jid, 'while on TCP'));
  await phone.next((e) => e.is('message'));
  phone.cut();
  await hankTcp.send(chat(phone.jid, 'while away'));

  const browser = await rawWs(t);
  await browser.authenticate(gina);
  browser.send(`<resume xmlns='${NS_SM}' previd='${enabled.attrs.id}' h='1'/>`);
  const resumed = await browser.next((e) => e.is('resumed', NS_SM) || e.is('failed', NS_SM));
  t.is(resumed.name, 'resumed');
  const missed = await browser.next((e) => e.is('message'));
  t.is(missed.getChildText('body'), 'while away');
  // and the session now lives on the WebSocket: new messages arrive there
  await hankTcp.send(chat(phone.jid, 'after the move'));
  await browser.next((e) => e.is('message') && e.getChildText('body') === 'after the move');
  t.pass();
});

// --- shutdown ----------------------------------------------------------------------------------

test('when the server shuts down, a WebSocket client is told system-shutdown in a framed close', async (t) => {
  const own = await startServer();
  const wire = await WsWire.open(WsWire.plainUrl(own));
  t.teardown(() => wire.close());
  await wire.open();
  await own.stop();
  t.is(await wire.streamError(), 'system-shutdown');
  await wire.next((e) => e.is('close', NS_FRAMING));
  await wire.waitClosed();
});

// --- in-band registration (XEP-0077) -------------------------------------------------------------

async function registerOverWebSocket(t: { teardown(fn: () => void): void }, username: string, headers?: Record<string, string>): Promise<string> {
  const wire = await rawWs(t, headers ? { headers } : undefined);
  await wire.open();
  wire.send(
    `<iq xmlns='jabber:client' type='set' id='reg'><query xmlns='jabber:iq:register'><username>${username}</username><password>a good password</password></query></iq>`,
  );
  const answer = await wire.next((e) => e.is('iq') && e.attrs.id === 'reg');
  wire.close();
  return answer.attrs.type === 'result' ? 'registered' : (answer.getChild('error')?.getChildElements()[0]?.name ?? 'error');
}

test('a browser user creates an account over the WebSocket and logs in with it', async (t) => {
  t.is(await registerOverWebSocket(t, 'newcomer'), 'registered');
  const wire = await rawWs(t);
  await wire.authenticate('newcomer', 'localhost', 'a good password');
  t.is(await wire.bind('web'), 'newcomer@localhost/web');
});

test("behind a local proxy, registration limits count the client's forwarded address, not the proxy's", async (t) => {
  const viaProxy = { 'X-Forwarded-Proto': 'https', 'X-Forwarded-For': '198.51.100.1, 203.0.113.77' };
  for (let i = 1; i <= 5; i++) t.is(await registerOverWebSocket(t, `spree${i}`, viaProxy), 'registered');
  t.is(await registerOverWebSocket(t, 'spree6', viaProxy), 'resource-constraint');
  // another client behind the same proxy is not affected
  t.is(await registerOverWebSocket(t, 'neighbour', { 'X-Forwarded-Proto': 'https', 'X-Forwarded-For': '203.0.113.78' }), 'registered');
});
