// Temporary chats: messages older than the retention period leave the archive and offline
// storage, per server default or per account; and an archive outlives a restart.
import test, { type ExecutionContext } from 'ava';
import { startServer, type TestServer } from '../helpers/server.js';
import { type TestClient } from '../helpers/clients.js';
import { bare, chat, freshAccounts, messages, online, settle, loginForTest } from '../helpers/conversation.js';
import { mamQuery } from '../helpers/mam.js';
import type { ArchiveService } from '../../src/modules/mam/index.js';
import { RetentionStore } from '../../src/modules/mam/settings.js';
import { IDS_PER_MS } from '../../src/modules/mam/store.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
const DAY = 86_400_000;
const MODULES = { roster: {}, presence: {}, offline: {}, disco: {}, ping: {} };

let server: TestServer;
test.before(async () => {
  server = await startServer({
    config: { modules: { ...MODULES, mam: { archive_expires_after: '1d', expiry_sweep_interval: '300ms', expiry_batch: 2 } } },
  });
});
test.after.always(async () => server?.stop());

const archiveOf = (s: TestServer) => s.server.hosts.get(s.domain)!.services.get('mam') as ArchiveService;

/** Puts a message from `peer` into `owner`'s archive as if it had arrived `age` ms ago. */
async function archivedLongAgo(owner: string, peer: string, body: string, age: number, n: number): Promise<void> {
  const { store } = archiveOf(server);
  const stanza = `<message xmlns="jabber:client" from="${peer}/old" to="${owner}" type="chat"><body>${body}</body></message>`;
  await store.append({ owner, withBare: peer, withResource: 'old', stanza }, (Date.now() - age) * IDS_PER_MS + n).written;
}

async function device(t: ExecutionContext, username: string): Promise<TestClient> {
  const client = await loginForTest(t, server, username, 'phone');
  await online(client);
  return client;
}

/** Queries until `done` holds for the bodies in the archive (the sweep runs on its own clock). */
async function eventually(client: TestClient, done: (bodies: Array<string | null>) => boolean): Promise<Array<string | null>> {
  for (let attempt = 0; ; attempt++) {
    const bodies = (await mamQuery(client, {})).results.map((r) => r.body);
    if (done(bodies) || attempt === 100) return bodies;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

test('messages older than the retention period leave the archive; newer ones stay', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const aliceBare = bare(server, alice);
  const bobBare = bare(server, bob);
  for (let i = 0; i < 5; i++) await archivedLongAgo(bobBare, aliceBare, `old ${i}`, 2 * DAY, i); // more than one batch
  await archivedLongAgo(bobBare, aliceBare, 'yesterday but one hour', DAY - 3_600_000, 0);
  const a = await device(t, alice);
  const b = await device(t, bob);
  await a.send(chat(bobBare, 'fresh'));
  await b.next((s) => s.getChildText('body') === 'fresh');

  const bodies = await eventually(b, (list) => !list.some((body) => body?.startsWith('old')));
  t.deepEqual(bodies, ['yesterday but one hour', 'fresh']);
});

test('an expired offline message is neither delivered nor kept', async (t) => {
  const { alice, carol } = await freshAccounts(server, 'alice', 'carol');
  const db = server.server.db;
  const stale = `<message xmlns="jabber:client" from="${bare(server, alice)}/old" to="${bare(server, carol)}" type="chat"><body>stale</body></message>`;
  await db('offline_messages').insert({ host: server.domain, username: carol, stored_at: Date.now() - 2 * DAY, stanza: stale });
  const a = await device(t, alice);
  await a.send(chat(bare(server, carol), 'current'));
  await settle(a);

  const c = await device(t, carol);
  await c.next((s) => s.getChildText('body') === 'current');
  await settle(c);
  t.deepEqual(messages(c).map((m) => m.getChildText('body')), ['current']);
  for (let attempt = 0; attempt < 100; attempt++) {
    const left = await db('offline_messages').where({ host: server.domain, username: carol }).count({ n: '*' });
    if (Number(left[0]!.n) === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  t.deepEqual(await db('offline_messages').where({ host: server.domain, username: carol }).select('stanza'), []);
});

test('per-account retention: kept forever for one account, one hour for another', async (t) => {
  const { alice, dave, erin, frank } = await freshAccounts(server, 'alice', 'dave', 'erin', 'frank');
  const retention = new RetentionStore(server.server.db, server.domain); // what `xmppd user retention` uses
  await retention.set(dave, null);
  await retention.set(erin, 3600);
  // the server re-reads overrides when a sweep starts: wait for one that knows them, so that no
  // sweep which started earlier takes dave's old message for the default's
  for (let attempt = 0; archiveOf(server).expiryCutoff(dave) !== null && attempt < 100; attempt++) await new Promise((resolve) => setTimeout(resolve, 50));
  t.is(archiveOf(server).expiryCutoff(dave), null);
  const aliceBare = bare(server, alice);
  await archivedLongAgo(bare(server, dave), aliceBare, 'ancient', 30 * DAY, 0);
  await archivedLongAgo(bare(server, erin), aliceBare, 'two hours ago', 2 * 3_600_000, 0);
  await archivedLongAgo(bare(server, erin), aliceBare, 'just now', 60_000, 0);
  await archivedLongAgo(bare(server, frank), aliceBare, 'ancient', 30 * DAY, 1);
  await archivedLongAgo(bare(server, frank), aliceBare, 'two hours ago', 2 * 3_600_000, 1);

  const e = await device(t, erin);
  t.deepEqual(await eventually(e, (list) => list.length === 1), ['just now']);
  const f = await device(t, frank);
  t.deepEqual(await eventually(f, (list) => list.length === 1), ['two hours ago'], 'the default, a day, for frank');
  // sweeps that expired frank's month-old message have passed dave's by
  const d = await device(t, dave);
  t.deepEqual((await mamQuery(d, {})).results.map((r) => r.body), ['ancient']);
});

test('the archive survives a restart, and new messages sort after the old ones', async (t) => {
  const first = await startServer({ config: { modules: { ...MODULES, mam: {} } } });
  const dataDir = first.dataDir;
  let second: TestServer | undefined;
  t.teardown(async () => {
    await first.stop();
    await second?.stop();
  });
  await first.createAccount('alice');
  await first.createAccount('bob');
  const login = async (s: TestServer, username: string) => {
    const client = await loginForTest(t, s, username, 'phone');
    await online(client);
    return client;
  };
  let a = await login(first, 'alice');
  let b = await login(first, 'bob');
  for (const body of ['before 1', 'before 2']) {
    await a.send(chat('bob@localhost', body));
    await b.next((s) => s.getChildText('body') === body);
  }
  const before = await mamQuery(b, {});
  await first.stop();

  second = await startServer({ dataDir, config: { modules: { ...MODULES, mam: {} } } });
  a = await login(second, 'alice');
  b = await login(second, 'bob');
  await a.send(chat('bob@localhost', 'after'));
  await b.next((s) => s.getChildText('body') === 'after');
  const after = await mamQuery(b, {});
  t.deepEqual(after.results.map((r) => r.body), ['before 1', 'before 2', 'after']);
  t.deepEqual(after.results.slice(0, 2).map((r) => r.id), before.results.map((r) => r.id));
  const [x, y, z] = after.results.map((r) => r.id);
  t.true(x! < y! && y! < z!, 'archive ids sort in archive order');
  const page = await mamQuery(b, { after: before.results[1]!.id });
  t.deepEqual(page.results.map((r) => r.body), ['after']);
});
