// Cluster mode on a Redis Cluster (`cluster.redis_cluster: true`): three Redis masters started
// here (Debian's redis-server, `redis-cli --cluster create`), two xmppd nodes sharing one
// PostgreSQL database, and a third node in its own process to kill. The same conversations as on
// one Redis: each command goes to its key's shard, each node's channel is a sharded channel.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { onPostgres, startServer, testStorageConfig, type TestServer } from '../helpers/server.js';
import type { TestClient } from '../helpers/clients.js';
import { bare, befriend, chat, freshAccounts, getRoster, isPresence, loginForTest, online, ping } from '../helpers/conversation.js';
import { startChild, startedPorts } from '../helpers/cli.js';
import { eventually } from '../helpers/federation.js';
import { createPrivateGroup, enter, freshRoom, groupchat, isGroupchat, isPresenceFrom } from '../helpers/muc.js';
import { NS_SM, SmClient } from '../helpers/sm-client.js';
import { redisRequirement, startRedisCluster, type TestRedisCluster } from '../helpers/redis.js';
import { serialTestNeeding } from '../helpers/requirements.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';

const clusterTest = onPostgres ? serialTestNeeding(redisRequirement) : (title: string) => test.skip(`${title} (PostgreSQL pass only)`, () => {});

let redis: TestRedisCluster;
let a: TestServer;
let b: TestServer;
let sharedDir: string;

function clusterConfig(nodeId: string) {
  return { redis_url: redis.url, redis_cluster: true, node_id: nodeId, heartbeat: '1s', node_timeout: '3s' };
}

test.before(async () => {
  if (!onPostgres || !redisRequirement.available) return;
  redis = await startRedisCluster(3);
  sharedDir = fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-rcluster-db-'));
  [a, b] = await Promise.all(['ra', 'rb'].map((nodeId) => startServer({ config: { storage: testStorageConfig(sharedDir), cluster: clusterConfig(nodeId) } })));
});
test.after.always(async () => {
  await a?.stop();
  await b?.stop();
  await redis?.stop();
});

async function user(t: ExecutionContext, node: TestServer, username: string, resource: string): Promise<TestClient> {
  const client = await loginForTest(t, node, username, resource);
  await getRoster(client);
  await online(client);
  return client;
}

const withBody = (text: string) => (s: { is(name: string): boolean; getChildText(name: string): string | null }) => s.is('message') && s.getChildText('body') === text;

clusterTest('users on two nodes befriend, chat by bare and full JID and ping each other, through a Redis Cluster', async (t) => {
  const { alice, bob } = await freshAccounts(a, 'alice', 'bob');
  const onA = await user(t, a, alice, 'phone');
  const onB = await user(t, b, bob, 'laptop');
  // the nodes' directory copies update asynchronously: under a full run's load a presence
  // subscription sent before node rb knew the phone once reached the roster but not the phone
  await eventually(() => a.server.sessions.find(bare(a, bob), 'laptop') !== undefined && b.server.sessions.find(bare(b, alice), 'phone') !== undefined, 10_000, 'each node knows the other\'s session');
  await befriend(onA, onB);
  await onA.send(chat(bare(a, bob), 'over three shards', { id: 'rc1' }));
  t.is((await onB.next((s) => s.is('message') && s.attrs.id === 'rc1')).attrs.from, onA.jid);
  await onB.send(chat(onA.jid, 'and back', { id: 'rc2' }));
  await onA.next((s) => s.is('message') && s.attrs.id === 'rc2');
  t.is((await onA.request(ping(onB.jid))).attrs.type, 'result');
});

clusterTest('a phone resumes on the other node: the session is handed over through the sharded node channels', async (t) => {
  const { alice, bob } = await freshAccounts(a, 'alice', 'bob');
  const desk = await user(t, b, alice, 'desk');
  const phone = await SmClient.login(a, bob, 'phone');
  t.teardown(() => phone.cut());
  const enabled = await phone.enable();
  // node rb learns where the phone is bound from the sessions channel, a moment after the bind:
  // a message sent before that would rightly go to offline storage, not to the session
  await eventually(() => b.server.sessions.find(bare(a, bob), 'phone') !== undefined, 10_000, 'node rb knows the phone');
  phone.cut();
  await desk.send(chat(phone.jid, 'waiting for you'));
  const unacked = () => (a.server.sessions.find(bare(a, bob), 'phone')?.local as { sm?: { unackedCount: number } } | undefined)?.sm?.unackedCount ?? 0;
  await eventually(() => unacked() >= 1, 10_000, 'the message waits on node ra for the phone');
  const { client: back, answer } = await SmClient.resume(b, bob, enabled.attrs.id!, 0, phone.jid);
  t.teardown(() => back.cut());
  t.true(answer.is('resumed', NS_SM), answer.toString());
  await back.next(withBody('waiting for you'));
});

clusterTest('a room with occupants on both nodes, and a node killed with kill -9 noticed by the others', async (t) => {
  const { alice, bob, carol } = await freshAccounts(a, 'alice', 'bob', 'carol');
  const room = freshRoom('rcluster');
  const onA = await user(t, a, alice, 'phone');
  const onB = await user(t, b, bob, 'laptop');
  await createPrivateGroup(onA, room, 'Alice', { 'muc#roomconfig_membersonly': '0' });
  await enter(onB, room, 'Bob');
  await onA.next(isPresenceFrom(`${room}/Bob`));
  await onB.send(groupchat(room, 'from node rb', 'rg1'));
  for (const client of [onA, onB]) await client.next(isGroupchat(`${room}/Bob`, 'from node rb'));

  // a third node in its own process, killed
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-node-rc-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const config = path.join(dir, 'xmppd.yml');
  fs.writeFileSync(config, [
    `data_dir: ${JSON.stringify(dir)}`,
    'log: { level: info }',
    'hosts: [{ domain: localhost, registration: open, modules: { proxy65: { port: 0 } } }]',
    `storage: ${JSON.stringify(testStorageConfig(sharedDir))}`,
    `cluster: ${JSON.stringify(clusterConfig('rc-kill'))}`,
    'c2s: { listen: [{ host: 127.0.0.1, port: 0, tls: starttls }], overload: { event_loop_lag: never } }',
    'http: { enabled: false }',
  ].join('\n'));
  const { child, server } = await startChild(t, config);
  const c = { domain: 'localhost', port: startedPorts(server.output()).starttls, dataDir: dir } as TestServer;
  const onC = await user(t, c, carol, 'tablet');
  // the directory copies are updated asynchronously: a subscription sent before node ra knows the
  // tablet is stored for later instead of reaching it (the CI-like load of a full run once took longer than 5 s)
  await eventually(() => a.server.sessions.find(bare(a, carol), 'tablet') !== undefined, 10_000, 'node ra knows the tablet');
  await befriend(onA, onC);
  onC.xmpp.reconnect.stop();
  child.kill('SIGKILL');
  const gone = await onA.next(isPresence(onC.jid, 'unavailable'), 20_000);
  t.is(gone.attrs.type, 'unavailable');
});
