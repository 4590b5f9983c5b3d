// The server's own HTTP endpoints: XEP-0156 discovery of the WebSocket endpoint (host-meta XML
// and JSON), /health liveness and readiness, and /metrics in Prometheus text format, whose
// numbers move when clients connect, chat, fail to log in and leave messages offline.
import type http from 'node:http';
import test from 'ava';
import { client } from '@xmpp/client';
import parse from 'ltx/lib/parse.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { httpRequest, type Reply } from '../helpers/http.js';
import { chat, freshAccounts, loginForTest, online } from '../helpers/conversation.js';
import { watchWire } from '../helpers/clients.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // the test server's certificate is self-signed

let server: TestServer;
test.before(async () => {
  server = await startServer();
});
test.after.always(async () => {
  await server?.stop();
});

/** A GET to this file's server, named as localhost with the listener's port. */
function get(path: string, options: { secure?: boolean; port?: number; headers?: http.OutgoingHttpHeaders } = {}): Promise<Reply> {
  const port = options.port ?? (options.secure ? server.httpsPort : server.httpPort);
  return httpRequest(server, 'GET', path, { ...options, port, host: `localhost:${port}` });
}

/** One sample of a Prometheus text exposition, e.g. value(text, 'xmppd_stanzas_sent_total{kind="message"}'). */
function value(text: string, sample: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
  if (line === undefined) throw new Error(`no sample ${sample} in:\n${text}`);
  return Number(line.slice(sample.length + 1));
}

// --- XEP-0156 ----------------------------------------------------------------------------------

test('host-meta (XML) points web clients at the WebSocket endpoint of the URL they used', async (t) => {
  const reply = await get('/.well-known/host-meta', { secure: true });
  t.is(reply.status, 200);
  t.regex(reply.headers['content-type'] ?? '', /^application\/xrd\+xml/);
  t.is(reply.headers['access-control-allow-origin'], '*');
  const xrd = parse(reply.body);
  t.is(xrd.attrs.xmlns, 'http://docs.oasis-open.org/ns/xri/xrd-1.0');
  const link = xrd.getChildren('Link').find((l) => l.attrs.rel === 'urn:xmpp:alt-connections:websocket');
  t.is(link?.attrs.href, `wss://localhost:${server.httpsPort}/xmpp-websocket`);
});

test('host-meta.json says the same in JSON; behind a local proxy it uses the scheme the proxy reports', async (t) => {
  const reply = await get('/.well-known/host-meta.json', { headers: { Host: 'chat.localhost', 'X-Forwarded-Proto': 'https' } });
  t.is(reply.status, 200);
  t.deepEqual(JSON.parse(reply.body), { links: [{ rel: 'urn:xmpp:alt-connections:websocket', href: 'wss://chat.localhost/xmpp-websocket' }] });
});

test('with http.public_url set, host-meta gives that address for each host', async (t) => {
  const proxied = await startServer({ config: { http: { public_url: 'https://{host}/xmpp' } } });
  t.teardown(() => proxied.stop());
  const reply = (await httpRequest(proxied, 'GET', '/.well-known/host-meta.json')).body;
  t.is(JSON.parse(reply).links[0].href, 'wss://localhost/xmpp/xmpp-websocket');
});

// --- health ------------------------------------------------------------------------------------

test('/health answers while the process runs', async (t) => {
  const reply = await get('/health');
  t.is(reply.status, 200);
  t.is(JSON.parse(reply.body).status, 'ok');
  t.is((await get('/health/live', { secure: true })).status, 200);
});

test('/health/ready is 200 with the database and every listener up', async (t) => {
  const reply = await get('/health/ready');
  t.is(reply.status, 200);
  t.deepEqual(JSON.parse(reply.body), { status: 'ready', checks: { database: true, listeners: true } });
});

test('/health/ready is 503 when the database is gone', async (t) => {
  const broken = await startServer();
  t.teardown(() => broken.stop());
  await broken.server.db.destroy(); // as if the database went away
  const reply = await httpRequest(broken, 'GET', '/health/ready');
  t.is(reply.status, 503);
  t.is(JSON.parse(reply.body).checks.database, false);
});

// --- metrics -----------------------------------------------------------------------------------

test('/metrics is Prometheus text on the plain loopback listener, and not served over HTTPS', async (t) => {
  const reply = await get('/metrics');
  t.is(reply.status, 200);
  t.regex(reply.headers['content-type'] ?? '', /^text\/plain; version=0\.0\.4/);
  t.regex(reply.body, /# TYPE xmppd_connections gauge/);
  t.regex(reply.body, /# TYPE xmppd_delivery_latency_seconds histogram/);
  t.regex(reply.body, /xmppd_upload_bytes_total 0/);
  t.is((await get('/metrics', { secure: true })).status, 404);
});

// Issue 16.11: through the README's nginx config (proxy_pass to the loopback listener,
// X-Forwarded-For added), anyone on the internet could read the metrics.
test('/metrics refuses a request the local reverse proxy relays for a client elsewhere', async (t) => {
  t.is((await get('/metrics', { headers: { 'X-Forwarded-For': '203.0.113.5' } })).status, 403, "nginx's X-Forwarded-For");
  t.is((await get('/metrics', { headers: { 'X-Forwarded-For': '127.0.0.1, 203.0.113.5' } })).status, 403, 'a forged loopback entry before the real client');
  t.is((await get('/metrics', { headers: { Forwarded: 'for="[2001:db8::7]:4711";proto=https' } })).status, 403, 'RFC 7239 Forwarded');
  t.is((await get('/metrics', { headers: { Forwarded: 'for=unknown' } })).status, 403, 'an unnamed client is someone else');
  t.is((await get('/metrics', { headers: { 'X-Forwarded-For': '127.0.0.1' } })).status, 200, 'a local client through a local proxy');
  t.is((await get('/metrics', { headers: { Forwarded: 'for="[::1]:5000"' } })).status, 200);
});

test('metrics move with traffic: connections, stanzas, auth failures, delivery latency, offline queue', async (t) => {
  const before = (await get('/metrics')).body;
  const { ann, ben, cid } = await freshAccounts(server, 'ann', 'ben', 'cid');
  const annWs = await loginForTest(t, server, ann, 'browser', { transport: 'websocket' });
  const benTcp = await loginForTest(t, server, ben, 'desk');
  await online(benTcp);
  await annWs.send(chat(benTcp.jid, 'counted'));
  await benTcp.next((s) => s.is('message') && s.getChildText('body') === 'counted');
  await benTcp.send(chat(`${cid}@localhost`, 'waits offline'));
  // a wrong password
  const intruder = client({ service: `xmpp://127.0.0.1:${server.port}`, domain: 'localhost', username: ann, password: 'wrong' });
  watchWire(intruder, 'the intruder', 'stream');
  intruder.on('error', () => undefined);
  await t.throwsAsync(intruder.start());
  await intruder.stop().catch(() => undefined);

  let after = (await get('/metrics')).body;
  // the offline write is batched per event-loop turn: scrape until it is in
  for (let i = 0; i < 50 && value(after, 'xmppd_offline_messages{host="localhost"}') < value(before, 'xmppd_offline_messages{host="localhost"}') + 1; i++) {
    await new Promise((r) => setTimeout(r, 20));
    after = (await get('/metrics')).body;
  }
  t.true(value(after, 'xmppd_connections{type="c2s_websocket"}') >= 1);
  t.true(value(after, 'xmppd_connections{type="c2s_tcp"}') >= 1);
  t.true(value(after, 'xmppd_stanzas_received_total{kind="message"}') >= value(before, 'xmppd_stanzas_received_total{kind="message"}') + 2);
  t.true(value(after, 'xmppd_stanzas_sent_total{kind="message"}') >= value(before, 'xmppd_stanzas_sent_total{kind="message"}') + 1);
  t.true(value(after, 'xmppd_stanzas_received_total{kind="presence"}') > value(before, 'xmppd_stanzas_received_total{kind="presence"}'));
  t.true(value(after, 'xmppd_auth_failures_total') >= value(before, 'xmppd_auth_failures_total') + 1);
  t.true(value(after, 'xmppd_delivery_latency_seconds_count') > value(before, 'xmppd_delivery_latency_seconds_count'));
  t.true(value(after, 'xmppd_delivery_latency_seconds_bucket{le="+Inf"}') === value(after, 'xmppd_delivery_latency_seconds_count'));
  t.is(value(after, 'xmppd_offline_messages{host="localhost"}'), value(before, 'xmppd_offline_messages{host="localhost"}') + 1);

  server.server.metrics.uploadBytes.inc(1234); // what the upload module does per file
  t.is(value((await get('/metrics')).body, 'xmppd_upload_bytes_total'), 1234);
});

test('with http.metrics.listeners: all, /metrics is served over HTTPS too; enabled: false removes it', async (t) => {
  const everywhere = await startServer({ config: { http: { metrics: { listeners: 'all' } } } });
  t.teardown(() => everywhere.stop());
  t.is((await get('/metrics', { secure: true, port: everywhere.httpsPort })).status, 200);
  const none = await startServer({ config: { http: { metrics: { enabled: false } } } });
  t.teardown(() => none.stop());
  t.is((await get('/metrics', { port: none.httpPort })).status, 404);
});
