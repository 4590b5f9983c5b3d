// Cluster mode (issue 12): two nodes sharing one PostgreSQL database and one Redis, each with its
// own listeners and data directory; users on different nodes chat, see each other's presence,
// sync devices and get the same errors as on one server. Runs on the PostgreSQL pass (a cluster
// needs a shared database); Redis is Debian's redis-server, started here and stopped by PID.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import type Element from 'ltx/lib/Element.js';
import { PASSWORD, onPostgres, startServer, testStorageConfig, type TestServer } from '../helpers/server.js';
import { connect, xml, type TestClient } from '../helpers/clients.js';
import { bare, befriend, chat, freshAccounts, iqFailure, getRoster, loginForTest, makeFriends, online, ping, isPresence, settle } from '../helpers/conversation.js';
import { NS_SM, SmClient } from '../helpers/sm-client.js';
import { startChild, startedPorts } from '../helpers/cli.js';
import { NS_DELAY, createPrivateGroup, enter, freshRoom, groupchat, isGroupchat, isPresenceFrom, isSubject, join, joinPresence } from '../helpers/muc.js';
import { mamQuery } from '../helpers/mam.js';
import { RawClient } from '../helpers/clients.js';
import { authenticatePlain, openStream, readElement } from '../helpers/wire.js';
import { redisRequirement, startRedis, type TestRedis } from '../helpers/redis.js';
import { sasl2Scram, secured, tlsExporter } from '../helpers/sasl2.js';
import { serialTestNeeding } from '../helpers/requirements.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
const NS_CARBONS = 'urn:xmpp:carbons:2';
const NS_PUSH = 'urn:xmpp:push:0';
const NS_PUBSUB = 'http://jabber.org/protocol/pubsub';

// a cluster shares one database: only the PostgreSQL pass has one. One test at a time: each
// runs several nodes and clients, and the suite runs other files meanwhile.
const clusterTest = onPostgres ? serialTestNeeding(redisRequirement) : (title: string) => test.skip(`${title} (PostgreSQL pass only)`, () => {});

let redis: TestRedis;
let a: TestServer;
let b: TestServer;
let sharedDir: string;

async function startNode(nodeId: string, shared: string, redisUrl: string): Promise<TestServer> {
  return startServer({
    config: {
      // one uploads directory for every node, as the README asks of a cluster
      storage: { ...testStorageConfig(shared), uploads_dir: path.join(shared, 'uploads') },
      cluster: { redis_url: redisUrl, node_id: nodeId, heartbeat: '1s', node_timeout: '3s' },
      // the throttle test guesses from its own loopback address, for its own account
      c2s: { auth_throttle: { per_account_and_ip: { attempts: 2, window: '1m' } } },
    },
  });
}

test.before(async () => {
  if (!onPostgres || !redisRequirement.available) return;
  redis = await startRedis();
  sharedDir = fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-cluster-db-'));
  // together, on a fresh database: their migrations must not collide
  [a, b] = await Promise.all([startNode('a', sharedDir, redis.url), startNode('b', sharedDir, redis.url)]);
});
test.after.always(async () => {
  await a?.stop();
  await b?.stop();
  await redis?.stop();
});

async function user(t: ExecutionContext, node: TestServer, username: string, resource: string, options: { carbons?: boolean } = {}): Promise<TestClient> {
  const client = await loginForTest(t, node, username, resource);
  await getRoster(client);
  if (options.carbons) await client.request(xml('iq', { type: 'set' }, xml('enable', { xmlns: NS_CARBONS })));
  await online(client);
  return client;
}

/** Waits until node `on` knows the session `jid` (the directory copy is updated asynchronously). */
async function known(on: TestServer, jid: string): Promise<void> {
  const [bareJid, resource] = [jid.split('/')[0]!, jid.split('/')[1]!];
  for (let i = 0; i < 200 && on.server.sessions.find(bareJid, resource) === undefined; i++) await new Promise((r) => setTimeout(r, 25));
}

/** Waits until node `on` no longer knows the session `jid`. */
async function forgotten(on: TestServer, jid: string): Promise<void> {
  const [bareJid, resource] = [jid.split('/')[0]!, jid.split('/')[1]!];
  for (let i = 0; i < 200 && on.server.sessions.find(bareJid, resource) !== undefined; i++) await new Promise((r) => setTimeout(r, 25));
}

clusterTest('users on two nodes befriend, see each other come and go, and chat by bare and full JID', async (t) => {
  const { alice, bob } = await freshAccounts(a, 'alice', 'bob');
  const onA = await user(t, a, alice, 'phone');
  const onB = await user(t, b, bob, 'laptop');
  await befriend(onA, onB); // subscriptions across nodes, roster pushes to both

  await onA.send(chat(bare(a, bob), 'Hello across the cluster', { id: 'x1' }));
  const got = await onB.next((s) => s.is('message') && s.attrs.id === 'x1');
  t.is(got.getChildText('body'), 'Hello across the cluster');
  t.is(got.attrs.from, onA.jid);

  await onB.send(chat(onA.jid, 'Back to your phone', { id: 'x2' }));
  t.is((await onA.next((s) => s.is('message') && s.attrs.id === 'x2')).getChildText('body'), 'Back to your phone');
  // several stanzas in one batch between nodes, with characters outside ASCII and escaped markup
  const bodies = ['naïve café ☕', '日本語のテキスト', 'emoji 👩‍💻 & <tags> "quoted"', 'x'.repeat(20_000)];
  for (const [i, body] of bodies.entries()) void onA.send(chat(onB.jid, body, { id: `batch-${i}` }));
  for (const [i, body] of bodies.entries()) t.is((await onB.next((s) => s.is('message') && s.attrs.id === `batch-${i}`)).getChildText('body'), body);
  const order = onB.received.filter((s) => s.is('message') && (s.attrs.id ?? '').startsWith('batch-')).map((s) => s.attrs.id);
  t.deepEqual(order, bodies.map((_, i) => `batch-${i}`), 'in the order sent');

  // a second resource of Bob's comes online on node A: Alice (node A) sees it, as does Bob's laptop
  const bobPhone = await user(t, a, bob, 'phone');
  await onA.next(isPresence(bobPhone.jid));
  await onB.next(isPresence(bobPhone.jid));

  // Bob's laptop goes: Alice sees it go, on the other node
  await onB.stop();
  const gone = await onA.next(isPresence(onB.jid, 'unavailable'));
  t.is(gone.attrs.type, 'unavailable');
});

clusterTest('IQs reach a full JID on another node, and a missing one gets service-unavailable', async (t) => {
  const { alice, bob } = await freshAccounts(a, 'alice', 'bob');
  const onA = await user(t, a, alice, 'phone');
  const onB = await user(t, b, bob, 'laptop');
  await befriend(onA, onB);
  // @xmpp/client answers XEP-0199 pings
  const pong = await onA.request(ping(onB.jid));
  t.is(pong.attrs.type, 'result');
  t.is(pong.attrs.from, onB.jid);
  t.is(await iqFailure(onA.request(ping(`${bare(a, bob)}/nowhere`))), 'service-unavailable');

  // each node's /metrics shows the cluster: nodes, stanzas between nodes, Redis latency
  const metrics = await (await fetch(`http://127.0.0.1:${a.httpPort}/metrics`)).text();
  t.regex(metrics, /^xmppd_cluster_nodes [2-9]/m);
  t.regex(metrics, /^xmppd_cluster_stanzas_total\{direction="out"\} [1-9]/m);
  t.regex(metrics, /^xmppd_cluster_stanzas_total\{direction="in"\} [1-9]/m);
  t.regex(metrics, /^xmppd_cluster_redis_latency_seconds \d/m);
});

clusterTest("carbons: Alice's devices on two nodes see both sides of her conversation", async (t) => {
  const { alice, bob } = await freshAccounts(a, 'alice', 'bob');
  const phone = await user(t, a, alice, 'phone', { carbons: true });
  const laptop = await user(t, b, alice, 'laptop', { carbons: true });
  const bobs = await user(t, a, bob, 'desk');
  await known(a, laptop.jid);
  await known(b, phone.jid);

  await phone.send(chat(bare(a, bob), 'sent from the phone', { id: 'c1' }));
  await bobs.next((s) => s.is('message') && s.attrs.id === 'c1');
  const sentCopy = await laptop.next((s) => s.is('message') && s.getChild('sent', NS_CARBONS) !== undefined);
  t.is(sentCopy.getChild('sent', NS_CARBONS)!.getChild('forwarded')!.getChild('message')!.getChildText('body'), 'sent from the phone');

  // to Alice's phone's full JID: the laptop (other node) gets a received copy
  await bobs.send(chat(phone.jid, 'to the phone only', { id: 'c2' }));
  await phone.next((s) => s.is('message') && s.attrs.id === 'c2');
  const receivedCopy = await laptop.next((s) => s.is('message') && s.getChild('received', NS_CARBONS) !== undefined);
  t.is(receivedCopy.getChild('received', NS_CARBONS)!.getChild('forwarded')!.getChild('message')!.attrs.id, 'c2');

  // to her bare JID: both devices get it once
  await bobs.send(chat(bare(a, alice), 'to both', { id: 'c3' }));
  await phone.next((s) => s.is('message') && s.attrs.id === 'c3');
  await laptop.next((s) => s.is('message') && s.attrs.id === 'c3');
});

clusterTest('the same full JID on a second node replaces the older session with <conflict/>', async (t) => {
  const { carol } = await freshAccounts(a, 'carol');
  const first = await loginForTest(t, a, carol, 'tablet');
  const ended = new Promise<string>((resolve) => {
    first.xmpp.on('error', (err: unknown) => resolve((err as { condition?: string }).condition ?? String(err)));
  });
  first.xmpp.reconnect.stop();
  const second = await loginForTest(t, b, carol, 'tablet');
  t.is(second.jid, `${bare(a, carol)}/tablet`);
  t.is(await ended, 'conflict');
  // and the newer one is the one messages reach, from either node
  const { dave } = await freshAccounts(a, 'dave');
  const d = await user(t, a, dave, 'x');
  await known(a, second.jid);
  await d.send(chat(second.jid, 'to the tablet', { id: 't1' }));
  t.is((await second.next((s) => s.is('message') && s.attrs.id === 't1')).getChildText('body'), 'to the tablet');
});

clusterTest('a message to a user on no node waits in offline storage, delivered on whichever node they log in to', async (t) => {
  const { alice, bob } = await freshAccounts(a, 'alice', 'bob');
  const onA = await user(t, a, alice, 'phone');
  await onA.send(chat(bare(a, bob), 'while you were away', { id: 'o1' }));
  await new Promise((r) => setTimeout(r, 300));
  const later = await loginForTest(t, b, bob, 'laptop');
  await online(later);
  t.is((await later.next((s) => s.is('message') && s.attrs.id === 'o1')).getChildText('body'), 'while you were away');
});

clusterTest('a user who just came online on one node gets what another node, not yet aware of the session, stored for later', async (t) => {
  const { alice, bob } = await freshAccounts(a, 'alice', 'bob');
  const onB = await user(t, b, alice, 'laptop');
  // node b hears of no session change for a while (its copy of the directory lags, as it may for
  // a few milliseconds after any bind): bob's phone comes online on node a meanwhile
  const directory = b.server.cluster!.directory;
  const held: string[] = [];
  directory.receive = (message: string) => void held.push(message);
  const release = () => {
    delete (directory as { receive?: unknown }).receive; // the class's own method again
    for (const message of held.splice(0)) directory.receive(message);
  };
  t.teardown(release);
  const phone = await user(t, a, bob, 'phone');
  t.is(b.server.sessions.find(bare(a, bob), 'phone'), undefined, 'node b does not know the phone yet');

  // to node b bob is offline: the message goes to offline storage, the request to pending-in
  await onB.send(chat(bare(b, bob), 'stored while you came online', { id: 'race-1' }));
  await onB.send(xml('presence', { type: 'subscribe', to: bare(b, bob) }, xml('status', {}, 'add me?')));
  // the phone had its offline messages and pending requests already; it gets these without
  // logging in again
  const message = await phone.next((s) => s.is('message') && s.attrs.id === 'race-1', 5000);
  t.is(message.getChildText('body'), 'stored while you came online');
  t.truthy(message.getChild('delay', NS_DELAY), 'from offline storage, stamped');
  const request = await phone.next(isPresence(bare(a, alice), 'subscribe'), 5000);
  t.is(request.getChildText('status'), 'add me?');
  release();
  // delivered once: a login now finds nothing waiting. The phone has acknowledged both first (a
  // stanza still unacknowledged when its stream closes is handled as undelivered, XEP-0198)
  await settle(phone);
  await phone.stop();
  const again = await loginForTest(t, a, bob, 'tablet');
  await getRoster(again);
  await online(again);
  await settle(again);
  t.false(again.received.some((s) => s.is('message') && s.attrs.id === 'race-1'), 'not stored twice');
});

clusterTest("a phone that enabled push on one node is woken by a message that arrives through the other", async (t) => {
  const { app, alice, bob } = await freshAccounts(a, 'app', 'alice', 'bob');
  const relay = await user(t, a, app, 'relay');
  // the fake app server answers each publish with a result
  relay.xmpp.on('stanza', (stanza: Element) => {
    if (stanza.is('iq') && stanza.attrs.type === 'set' && stanza.getChild('pubsub', NS_PUBSUB) !== undefined) {
      void relay.send(xml('iq', { type: 'result', id: stanza.attrs.id, to: stanza.attrs.from }));
    }
  });
  // bob's phone enables push on node a, then its client is gone: bob has no session anywhere
  const phone = await loginForTest(t, a, bob, 'phone');
  const answer = await phone.request(xml('iq', { type: 'set', id: 'enable' }, xml('enable', { xmlns: NS_PUSH, jid: relay.jid, node: 'phone-node' })));
  t.is(answer.attrs.type, 'result');
  await phone.stop();
  // node b had never heard of bob's registration: it learns of the change, and wakes the phone
  const onB = await user(t, b, alice, 'laptop');
  await onB.send(chat(bare(b, bob), 'wake up'));
  const publish = await relay.next((s) => s.is('iq') && s.getChild('pubsub', NS_PUBSUB)?.getChild('publish') !== undefined, 10000);
  t.is(publish.getChild('pubsub', NS_PUBSUB)!.getChild('publish')!.attrs.node, 'phone-node');
});

/** A node in a process of its own (`xmppd start`), to be killed; the test's teardown stops it otherwise. */
async function childNode(t: ExecutionContext, nodeId: string) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `xmppd-node-${nodeId}-`));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const config = path.join(dir, 'xmppd.yml');
  fs.writeFileSync(config, [
    `data_dir: ${JSON.stringify(dir)}`,
    `log: { level: ${process.env.XMPPD_TEST_LOG ? 'debug' : 'info'} }`,
    'hosts: [{ domain: localhost, registration: open, modules: { proxy65: { port: 0 } } }]',
    `storage: ${JSON.stringify(testStorageConfig(sharedDir))}`,
    `cluster: { redis_url: ${JSON.stringify(redis.url)}, node_id: ${nodeId}, heartbeat: 1s, node_timeout: 3s }`,
    'c2s: { listen: [{ host: 127.0.0.1, port: 0, tls: starttls }], overload: { event_loop_lag: never } }',
    'http: { enabled: false }',
  ].join('\n'));
  const { child, server } = await startChild(t, config);
  // debugging: XMPPD_TEST_LOG=/tmp/x.log keeps the node's own log beside it
  if (process.env.XMPPD_TEST_LOG) t.teardown(() => fs.writeFileSync(`${process.env.XMPPD_TEST_LOG}.${nodeId}`, server.output()));
  const ports = startedPorts(server.output());
  return { child, server, node: { domain: 'localhost', port: ports.starttls, directPort: ports.direct, httpPort: 0, httpsPort: 0, dataDir: dir } as TestServer };
}

clusterTest('a node killed with kill -9: its users go offline for their contacts, and messages to them wait in offline storage', async (t) => {
  const { alice, bob } = await freshAccounts(a, 'alice', 'bob');
  const c = await childNode(t, 'c-kill');
  const onA = await user(t, a, alice, 'phone');
  const onC = await user(t, c.node, bob, 'laptop');
  await befriend(onA, onC);
  await onC.send(chat(onA.jid, 'still here', { id: 'k0' }));
  await onA.next((s) => s.is('message') && s.attrs.id === 'k0');

  onC.xmpp.reconnect.stop();
  c.child.kill('SIGKILL');
  // sent at once: node A still has Bob's session, but nobody listens on node c any more
  await onA.send(chat(onC.jid, 'are you there?', { id: 'k1' }));
  // the survivors notice within node_timeout (3 s here) plus a check, and tell Alice he is gone
  const gone = await onA.next(isPresence(onC.jid, 'unavailable'), 20_000);
  t.is(gone.attrs.type, 'unavailable');
  await forgotten(a, onC.jid);
  await forgotten(b, onC.jid);
  t.is(a.server.sessions.find(bare(a, bob), 'laptop'), undefined);
  t.is(b.server.sessions.find(bare(a, bob), 'laptop'), undefined);
  await onA.send(chat(bare(a, bob), 'call me when you are back', { id: 'k2' }));

  // Bob comes back on node B: the message sent once the node was known dead waits for him
  const back = await loginForTest(t, b, bob, 'laptop');
  await online(back);
  t.is((await back.next((s) => s.is('message') && s.attrs.id === 'k2')).getChildText('body'), 'call me when you are back');
  // the one sent in the instant of the kill went to offline storage if Redis had already
  // dropped the dead node's connection, else to the dead node: either way it is in his archive,
  // where a client that missed it pages (XEP-0313, as Conversations does after a reconnect)
  const archived = await mamQuery(back, { with: bare(a, alice) });
  t.true(archived.results.some((r) => r.message.attrs.id === 'k1' && r.body === 'are you there?'));
});

clusterTest('a room with occupants on both nodes: presence, messages and history as on one server; it moves when its node dies', async (t) => {
  const { alice, bob, carol, dave } = await freshAccounts(a, 'alice', 'bob', 'carol', 'dave');
  const room = freshRoom('cluster');
  const c = await childNode(t, 'c-room');
  // the room starts on node c, where its first occupant is
  const onC = await user(t, c.node, alice, 'phone');
  await createPrivateGroup(onC, room, 'Alice', { 'muc#roomconfig_membersonly': '0' });
  const onA = await user(t, a, bob, 'laptop');
  const onB = await user(t, b, carol, 'desk');
  await enter(onA, room, 'Bob');
  await enter(onB, room, 'Carol');
  await onC.next(isPresenceFrom(`${room}/Carol`));
  await onA.next(isPresenceFrom(`${room}/Carol`));

  await onA.send(groupchat(room, 'hello from node a', 'g1'));
  for (const client of [onA, onB, onC]) await client.next(isGroupchat(`${room}/Bob`, 'hello from node a'));
  await onB.send(groupchat(room, 'and from node b', 'g2'));
  for (const client of [onA, onB, onC]) await client.next(isGroupchat(`${room}/Carol`, 'and from node b'));

  // a late joiner on another node gets the history
  const late = await user(t, b, dave, 'tablet');
  await late.send(joinPresence(room, 'Dave'));
  const history = await late.next((s) => s.is('message') && s.getChildText('body') === 'hello from node a' && s.getChild('delay', NS_DELAY) !== undefined);
  t.is(history.attrs.from, `${room}/Bob`);
  await late.next(isSubject(room));

  // the room's node dies: the room comes back on a live node, configuration and history kept
  onC.xmpp.reconnect.stop();
  c.child.kill('SIGKILL');
  await forgotten(a, onC.jid);
  // clients rejoin a room that stopped answering (XEP-0410); the first one brings it up here
  for (let attempt = 0; attempt < 40; attempt++) {
    const self = await join(onA, room, 'Bob');
    if (self.attrs.type !== 'error') break;
    await new Promise((r) => setTimeout(r, 500));
  }
  const again = await onA.next((s) => s.is('message') && s.getChildText('body') === 'and from node b' && s.getChild('delay', NS_DELAY) !== undefined);
  t.is(again.attrs.from, `${room}/Carol`);
  await onA.send(groupchat(room, 'still here', 'g3'));
  await onA.next(isGroupchat(`${room}/Bob`, 'still here'));
});

clusterTest('admin commands see and end sessions on every node', async (t) => {
  const { erin } = await freshAccounts(a, 'erin');
  const onB = await user(t, b, erin, 'laptop');
  await known(a, onB.jid);
  const admin = a.server.admin!();
  const listed = admin.sessions().find((s) => s.jid === onB.jid);
  t.is(listed?.node, 'b');
  t.is(listed?.transport, 'tcp');
  t.true(listed?.secure);
  const ended = new Promise<string>((resolve) => onB.xmpp.on('error', (err: unknown) => resolve((err as { condition?: string }).condition ?? String(err))));
  onB.xmpp.reconnect.stop();
  t.is(admin.kick(onB.jid, 'policy-violation', 'Disconnected by an administrator'), 1);
  t.is(await ended, 'policy-violation');
  await forgotten(a, onB.jid);
  t.falsy(admin.sessions().find((s) => s.jid === onB.jid));
});

clusterTest("deleting an account on one node ends its sessions on the others", async (t) => {
  const { frank } = await freshAccounts(a, 'frank');
  const onB = await user(t, b, frank, 'phone');
  await known(a, onB.jid);
  const ended = new Promise<string>((resolve) => onB.xmpp.on('error', (err: unknown) => resolve((err as { condition?: string }).condition ?? String(err))));
  onB.xmpp.reconnect.stop();
  await a.server.deleteAccount('localhost', frank);
  t.is(await ended, 'not-authorized');
});

clusterTest('a password guesser is throttled on every node, not only on the one it guessed on', async (t) => {
  const { gina } = await freshAccounts(a, 'gina');
  const guesser = '127.0.0.9';
  const attempt = async (node: TestServer, password: string): Promise<string> => {
    const wire = await RawClient.open(node, { localAddress: guesser });
    try {
      await openStream(wire, node.domain);
      const result = await authenticatePlain(wire, gina, password);
      return result.outcome === 'success' ? 'success' : result.condition;
    } finally {
      wire.close();
    }
  };
  t.is(await attempt(a, 'guess 1'), 'not-authorized');
  t.is(await attempt(a, 'guess 2'), 'not-authorized');
  // the other node hears of it over Redis
  for (let i = 0; i < 200 && b.server.authThrottle.blockedFor(guesser, `${gina}@localhost`) === 0; i++) await new Promise((r) => setTimeout(r, 25));
  // on node b, even the right password from that address is refused; from elsewhere it is not
  t.is(await attempt(b, PASSWORD), 'temporary-auth-failure');
  const owner = await loginForTest(t, b, gina, 'phone');
  t.truthy(owner.jid);
});

clusterTest('the limit on registrations per address counts the registrations of every node', async (t) => {
  const address = '127.0.0.11';
  const registerOn = async (node: TestServer, username: string): Promise<string> => {
    const wire = await RawClient.open(node, { localAddress: address });
    try {
      await openStream(wire, node.domain);
      wire.write(`<iq type='set' id='reg'><query xmlns='jabber:iq:register'><username>${username}</username><password>a good password</password></query></iq>`);
      const reply = await readElement(wire, 'iq', 'reg');
      return reply.getChild('error')?.getChildElements()[0]?.name ?? reply.attrs.type!;
    } finally {
      wire.close();
    }
  };
  // the default limit is 5 per address and window: all five on node a
  for (let i = 1; i <= 5; i++) t.is(await registerOn(a, `limited-${process.pid}-${i}`), 'result');
  await new Promise((r) => setTimeout(r, 500)); // node b hears of them over Redis
  t.is(await registerOn(b, `limited-${process.pid}-6`), 'resource-constraint');
});

// --- stream management across nodes (XEP-0198 §5) ----------------------------------------------

const withBody = (text: string) => (e: Element) => e.is('message') && e.getChildText('body') === text;

/** The stream-management queue of node `on`'s session `bareJid/resource` once it holds `count` stanzas. */
async function queued(on: TestServer, bareJid: string, resource: string, count: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const local = on.server.sessions.find(bareJid, resource)?.local as { sm?: { unackedCount: number } | null } | undefined;
    if ((local?.sm?.unackedCount ?? 0) >= count) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`${bareJid}/${resource} never had ${count} stanzas queued`);
}

clusterTest('a phone whose connection to one node drops resumes on another: the session moves with what it had not acknowledged, and its contacts never see it go', async (t) => {
  const { alice, bob } = await freshAccounts(a, 'alice', 'bob');
  await makeFriends(a, alice, bob);
  const desk = await user(t, b, alice, 'desk');
  const phone = await SmClient.login(a, bob, 'phone');
  t.teardown(() => phone.cut());
  const enabled = await phone.enable();
  t.true(enabled.attrs.id!.startsWith('a~'), 'the resumption id names the node that issued it');
  await phone.online();
  await desk.next(isPresence(phone.jid));

  // Alice writes three messages; the phone acknowledges the first only, then loses its network
  for (const text of ['m1', 'm2', 'm3']) await desk.send(chat(phone.jid, text));
  const m1 = await phone.next(withBody('m1'));
  await phone.next(withBody('m3'));
  phone.ack(phone.handledThrough(m1));
  const sentBeforeTheCut = phone.sent;
  phone.cut();
  await desk.send(chat(phone.jid, 'm4'));
  await queued(a, bare(a, bob), 'phone', 3);

  // the phone comes back through node B
  const { client: back, answer } = await SmClient.resume(b, bob, enabled.attrs.id!, phone.handledThrough(m1), phone.jid);
  t.teardown(() => back.cut());
  t.true(answer.is('resumed', NS_SM), answer.toString());
  t.is(answer.attrs.h, String(sentBeforeTheCut), "node A's count of the phone's stanzas");
  await back.next(withBody('m4'));
  await back.settle();
  t.deepEqual(back.bodies(), ['m2', 'm3', 'm4'], 'what it had not acknowledged, and what came meanwhile, once each');
  t.truthy(b.server.sessions.find(bare(a, bob), 'phone')?.local, 'node B holds the session now');
  for (let i = 0; i < 200 && a.server.sessions.find(bare(a, bob), 'phone')?.node !== 'b'; i++) await new Promise((r) => setTimeout(r, 25));
  t.is(a.server.sessions.find(bare(a, bob), 'phone')?.node, 'b', 'and node A knows it');

  // the conversation goes on, both ways
  back.chat(desk.jid, 'back, through node B');
  t.is((await desk.next(withBody('back, through node B'))).attrs.from, phone.jid);
  await desk.send(chat(phone.jid, 'welcome back'));
  await back.next(withBody('welcome back'));
  t.false(desk.received.some((s) => s.is('presence') && s.attrs.from === phone.jid && s.attrs.type === 'unavailable'), 'Alice never saw the phone go offline');

  // cut again and resumed through node A: A, which issued the id, sends the phone on to B
  back.cut();
  await desk.send(chat(phone.jid, 'm5'));
  await queued(b, bare(a, bob), 'phone', 1);
  const { client: third, answer: again } = await SmClient.resume(a, bob, enabled.attrs.id!, back.handled, phone.jid);
  t.teardown(() => third.cut());
  t.true(again.is('resumed', NS_SM), again.toString());
  await third.next(withBody('m5'));
  t.truthy(a.server.sessions.find(bare(a, bob), 'phone')?.local, 'back on node A');
});

clusterTest("resuming after the phone's node was killed fails cleanly, and what that node held for the phone waits in offline storage", async (t) => {
  const { alice, bob } = await freshAccounts(a, 'alice', 'bob');
  await makeFriends(a, alice, bob);
  const c = await childNode(t, 'c-resume');
  const desk = await user(t, a, alice, 'desk');
  const phone = await SmClient.login(c.node, bob, 'phone');
  t.teardown(() => phone.cut());
  const enabled = await phone.enable();
  await phone.online();
  await desk.next(isPresence(phone.jid));

  await desk.send(chat(phone.jid, 'sent before the crash'));
  await phone.next(withBody('sent before the crash'));
  phone.cut(); // not acknowledged: node c keeps it for the phone
  const record = () => a.server.db('c2s_hibernated_sessions').where({ jid: phone.jid }).first();
  for (let i = 0; i < 200 && (await record()) === undefined; i++) await new Promise((r) => setTimeout(r, 25));
  t.is((await record())?.node, 'c-resume', 'node c noted the session waiting for resumption');
  c.child.kill('SIGKILL');

  // the survivors clean up after node c: the phone goes offline for Alice, c's note is taken, and
  // what c held for the phone goes to offline storage
  await desk.next(isPresence(phone.jid, 'unavailable'), 20_000);
  for (let i = 0; i < 400 && (await record()) !== undefined; i++) await new Promise((r) => setTimeout(r, 25));
  t.is(await record(), undefined);

  const { client: back, answer } = await SmClient.resume(b, bob, enabled.attrs.id!, phone.handled, phone.jid);
  t.teardown(() => back.cut());
  t.true(answer.is('failed', NS_SM), answer.toString());
  t.truthy(answer.getChild('item-not-found'), 'XEP-0198 §5: the client binds afresh');
  await back.bind('phone');
  back.presence();
  await back.next(withBody('sent before the crash'));
});

clusterTest('a file shared through one node is served by every node (one uploads directory)', async (t) => {
  const { alice } = await freshAccounts(a, 'alice');
  const onA = await user(t, a, alice, 'phone');
  const bytes = Buffer.from(`a picture for the whole cluster ${Date.now()}`);
  const result = await onA.request(xml('iq', { type: 'get', to: 'upload.localhost' }, xml('request', { xmlns: 'urn:xmpp:http:upload:0', filename: 'cluster.txt', size: String(bytes.length), 'content-type': 'text/plain' })));
  const slot = result.getChild('slot', 'urn:xmpp:http:upload:0')!;
  const put = slot.getChild('put')!;
  const headers: Record<string, string> = { 'content-type': 'text/plain' };
  for (const header of put.getChildren('header')) headers[header.attrs.name as string] = header.getText();
  t.is((await fetch(put.attrs.url as string, { method: 'PUT', headers, body: bytes })).status, 201);
  // fetched through node B's own listener
  const url = new URL(slot.getChild('get')!.attrs.url as string);
  const throughB = await fetch(`http://127.0.0.1:${b.httpPort}${url.pathname}`);
  t.is(throughB.status, 200);
  t.deepEqual(Buffer.from(await throughB.arrayBuffer()), bytes);
});

clusterTest('a SASL2 client resumes inline on another node (XEP-0198 in <authenticate/>) and gets what it missed', async (t) => {
  const { alice, bob } = await freshAccounts(a, 'alice', 'bob');
  const desk = await user(t, a, alice, 'desk');
  const phone = await SmClient.login(a, bob, 'phone');
  t.teardown(() => phone.cut());
  const enabled = await phone.enable();
  phone.cut();
  await desk.send(chat(phone.jid, 'while you were away', { id: 'away-1' }));
  await queued(a, bare(a, bob), 'phone', 1);

  const { wire, socket } = await secured(b);
  t.teardown(() => wire.close());
  const result = await sasl2Scram(wire, 'sha256', bob, {
    binding: { type: 'tls-exporter', data: tlsExporter(socket) },
    inline: `<resume xmlns='${NS_SM}' previd='${enabled.attrs.id!}' h='0'/>`,
  });
  t.is(result.outcome, 'success', result.outcome === 'failure' ? result.failure.toString() : '');
  if (result.outcome !== 'success') return;
  t.truthy(result.success.getChild('resumed', NS_SM), result.success.toString());
  t.is(result.success.getChildText('authorization-identifier'), phone.jid);
  await readElement(wire, 'stream:features');
  t.is((await readElement(wire, 'message')).attrs.id, 'away-1');
  t.truthy(b.server.sessions.find(bare(a, bob), 'phone')?.local, 'node B holds the session now');
});

clusterTest('resumed on another node while its old connection still looks alive, the old connection is closed with <conflict/>', async (t) => {
  const { alice, bob } = await freshAccounts(a, 'alice', 'bob');
  const desk = await user(t, a, alice, 'desk');
  // a phone that switched networks: node A has not noticed its old connection is dead
  const phone = await SmClient.login(a, bob, 'phone');
  t.teardown(() => phone.cut());
  const enabled = await phone.enable();
  const { client: back, answer } = await SmClient.resume(b, bob, enabled.attrs.id!, 0, phone.jid);
  t.teardown(() => back.cut());
  t.true(answer.is('resumed', NS_SM), answer.toString());
  t.is((await phone.streamError()).condition, 'conflict', 'the old connection is told another one took over');
  await desk.send(chat(phone.jid, 'to the new connection', { id: 'new-1' }));
  t.is((await back.next((s) => s.is('message') && s.attrs.id === 'new-1')).getChildText('body'), 'to the new connection');
});

clusterTest('what a node keeps of accounts and avatars follows changes made on another node: a new password, a disabled account, a new photo', async (t) => {
  const { alice, bob } = await freshAccounts(a, 'alice', 'bob');
  /** 'ok' or the SASL failure of a login on `node`, retried while the other node's change travels. */
  const outcome = async (node: TestServer, password: string, until: string): Promise<string> => {
    let last = '';
    for (let attempt = 0; attempt < 40; attempt++) {
      last = await connect(node, alice, { password, resource: `try${attempt}` }).then(
        async (c) => (await c.stop(), 'ok'),
        (err: { condition?: string }) => err.condition ?? String(err),
      );
      if (last === until) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    return last;
  };
  t.is(await outcome(a, PASSWORD, 'ok'), 'ok', 'node A has read (and keeps) her keys');
  t.true(await b.server.accounts.setPassword('localhost', alice, 'a new one'));
  t.is(await outcome(a, PASSWORD, 'not-authorized'), 'not-authorized', 'node A no longer takes the old password');
  t.is(await outcome(a, 'a new one', 'ok'), 'ok');
  t.true(await b.server.accounts.setDisabled('localhost', alice, true, 'on holiday'));
  t.is(await outcome(a, 'a new one', 'account-disabled'), 'account-disabled');
  await b.server.accounts.setDisabled('localhost', alice, false);
  t.is(await outcome(a, 'a new one', 'ok'), 'ok');

  // Bob, online on A, publishes a photo from B: his next presence on A carries its hash
  const bobOnA = await user(t, a, bob, 'desk');
  const bobOnB = await user(t, b, bob, 'phone');
  const photo = Buffer.from('a tiny photo').toString('base64');
  await bobOnB.request(xml('iq', { type: 'set' }, xml('vCard', { xmlns: 'vcard-temp' }, xml('PHOTO', {}, xml('TYPE', {}, 'image/png'), xml('BINVAL', {}, photo)))));
  const expected = createHash('sha1').update(Buffer.from(photo, 'base64')).digest('hex');
  let stamped: string | undefined;
  for (let attempt = 0; attempt < 40 && stamped !== expected; attempt++) {
    await bobOnA.send(xml('presence', {}, xml('status', {}, `try ${attempt}`)));
    const own = await bobOnA.next((s) => s.is('presence') && s.attrs.from === bobOnA.jid && s.getChildText('status') === `try ${attempt}`);
    stamped = own.getChild('x', 'vcard-temp:x:update')?.getChildText('photo') ?? undefined;
    if (stamped !== expected) await new Promise((r) => setTimeout(r, 100));
  }
  t.is(stamped, expected, 'node A stamps the photo hash set through node B');
});
