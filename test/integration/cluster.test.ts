// Cluster mode (issue 12): two nodes sharing one PostgreSQL database and one Redis, each with its
// own listeners and data directory; users on different nodes chat, see each other's presence,
// sync devices and get the same errors as on one server. Runs on the PostgreSQL pass (a cluster
// needs a shared database); Redis is Debian's redis-server, started here and stopped by PID.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import type Element from 'ltx/lib/Element.js';
import { onPostgres, startServer, testStorageConfig, type TestServer } from '../helpers/server.js';
import { xml, type TestClient } from '../helpers/clients.js';
import { bare, befriend, chat, errorCondition, freshAccounts, getRoster, loginForTest, online, ping, isPresence } from '../helpers/conversation.js';
import { redisRequirement, startRedis, type TestRedis } from '../helpers/redis.js';
import { testNeeding } from '../helpers/requirements.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
const NS_CARBONS = 'urn:xmpp:carbons:2';

// a cluster shares one database: only the PostgreSQL pass has one
const clusterTest = onPostgres ? testNeeding(redisRequirement) : (title: string) => test.skip(`${title} (PostgreSQL pass only)`, () => {});

let redis: TestRedis;
let a: TestServer;
let b: TestServer;

async function startNode(nodeId: string, shared: string, redisUrl: string): Promise<TestServer> {
  return startServer({
    config: {
      storage: testStorageConfig(shared),
      cluster: { redis_url: redisUrl, node_id: nodeId, heartbeat: '1s', node_timeout: '3s' },
    },
  });
}

test.before(async () => {
  if (!onPostgres || !redisRequirement.available) return;
  redis = await startRedis();
  const shared = fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-cluster-db-'));
  a = await startNode('a', shared, redis.url);
  b = await startNode('b', shared, redis.url);
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
  const failure = await onA.request(ping(`${bare(a, bob)}/nowhere`)).then(() => 'answered', (err: { element?: Element }) => (err.element ? errorCondition(err.element) : String(err)));
  t.is(failure, 'service-unavailable');
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
