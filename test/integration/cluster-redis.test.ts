// Cluster mode when Redis goes away (issue 12): users on one node keep chatting, a stanza for
// another node gets a `wait` error instead of vanishing, and once Redis is back (restarted empty,
// as without persistence) the nodes register again and chat across nodes resumes, with no client
// dropped. Its own Redis and nodes: restarting Redis would disturb the other cluster tests.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { onPostgres, startServer, testStorageConfig, type TestServer } from '../helpers/server.js';
import { bare, befriend, chat, freshAccounts, getRoster, loginForTest, online } from '../helpers/conversation.js';
import { redisRequirement, startRedis, type TestRedis } from '../helpers/redis.js';
import { testNeeding } from '../helpers/requirements.js';
import type { TestClient } from '../helpers/clients.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';

const clusterTest = onPostgres ? testNeeding(redisRequirement) : (title: string) => test.skip(`${title} (PostgreSQL pass only)`, () => {});

let redis: TestRedis;
let a: TestServer;
let b: TestServer;

test.before(async () => {
  if (!onPostgres || !redisRequirement.available) return;
  redis = await startRedis();
  const shared = fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-cluster-db-'));
  const node = (id: string) =>
    startServer({ config: { storage: testStorageConfig(shared), cluster: { redis_url: redis.url, node_id: id, heartbeat: '1s', node_timeout: '3s' } } });
  a = await node('ra');
  b = await node('rb');
});
test.after.always(async () => {
  await a?.stop();
  await b?.stop();
  await redis?.stop();
});

/** Sends until one arrives (the nodes re-register on their own schedule once Redis is back). */
async function sendUntilDelivered(from: TestClient, to: TestClient, body: string): Promise<number> {
  for (let attempt = 1; attempt <= 60; attempt++) {
    const id = `retry-${attempt}`;
    await from.send(chat(to.jid, body, { id }));
    const got = await to.next((s) => s.is('message') && s.attrs.id === id, 500).catch(() => undefined);
    if (got !== undefined) return attempt;
  }
  throw new Error('never delivered after Redis came back');
}

clusterTest('Redis restarted: same-node chat goes on, cross-node stanzas get a wait error, then everything resumes', async (t) => {
  const { alice, bob, carol } = await freshAccounts(a, 'alice', 'bob', 'carol');
  const onA = await loginForTest(t, a, alice, 'phone');
  const carolOnA = await loginForTest(t, a, carol, 'desk');
  const onB = await loginForTest(t, b, bob, 'laptop');
  await Promise.all([getRoster(onA), getRoster(onB), getRoster(carolOnA)]);
  await Promise.all([online(onA), online(onB), online(carolOnA)]);
  await befriend(onA, onB);

  await redis.halt();
  // on one node, nothing changes
  await onA.send(chat(carolOnA.jid, 'Redis is down, but we are on the same node', { id: 'same' }));
  t.is((await carolOnA.next((s) => s.is('message') && s.attrs.id === 'same')).getChildText('body'), 'Redis is down, but we are on the same node');
  // across nodes: an error the sender can act on (RFC 6120 §8.3.3.15, type wait), not silence
  await onA.send(chat(onB.jid, 'are you there?', { id: 'cross' }));
  const error = await onA.next((s) => s.is('message') && s.attrs.id === 'cross' && s.attrs.type === 'error', 10_000);
  t.is(error.getChild('error')?.attrs.type, 'wait');
  t.truthy(error.getChild('error')?.getChild('recipient-unavailable'));

  await redis.resume();
  const attempts = await sendUntilDelivered(onA, onB, 'and now?');
  t.log(`delivered across nodes after ${attempts} attempt(s)`);
  // nobody was disconnected: the same streams carry on, both ways
  await onB.send(chat(bare(a, alice), 'yes, here', { id: 'back' }));
  t.is((await onA.next((s) => s.is('message') && s.attrs.id === 'back')).getChildText('body'), 'yes, here');
  t.true(onA.xmpp.status === 'online' && onB.xmpp.status === 'online');
});
