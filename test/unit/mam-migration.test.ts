// The archive's migrations 002 and 004 (src/modules/mam/store.ts): an archive written by the
// first schema (owner and with_bare as JID strings in every row and index) is carried over whole —
// same ids, nonces and stanzas, the same answers to every query shape — with owners and peers
// interned in mam_jid (002), and each row a stored message with its archive's entry (004), rows a
// stopped process left staged included; and new messages archived afterwards take ids above the
// old ones. On SQLite and, on the PostgreSQL pass, on a database of its own.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import type { Knex } from 'knex';
import { testStorageConfig } from '../helpers/postgres.js';
import { openDatabase, runMigrations } from '../../src/storage/db.js';
import { ArchiveStore, IDS_PER_MS, archiveMigrations, removeArchive } from '../../src/modules/mam/store.js';

async function freshDb(t: { teardown(fn: () => void): void }): Promise<Knex> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-mam-migration-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const storage = testStorageConfig(dir);
  return openDatabase(storage ? { driver: 'postgres', sqliteFile: '', postgresUrl: storage.postgres_url } : { driver: 'sqlite', sqliteFile: path.join(dir, 'x.sqlite') });
}

const T0 = 1_700_000_000_000;
/** Rows as the first schema stored them: three owners (one a room), four peers. */
function oldRows(): Array<Record<string, string | number>> {
  const rows = [];
  for (let i = 0; i < 300; i++) {
    const room = i % 3 === 2;
    rows.push({
      id: (T0 + i * 1000) * IDS_PER_MS + (i % 7),
      host: 'localhost',
      owner: room ? 'room@conference.localhost' : `user${i % 3}@localhost`,
      with_bare: room ? 'room@conference.localhost' : `peer${i % 4}@localhost`,
      with_resource: room ? `nick${i % 5}` : i % 2 === 0 ? 'phone' : '',
      nonce: (i * 7919) % 2 ** 25,
      stanza: `<message xmlns="jabber:client" id="m${i}"><body>old ${i} &amp; "quoted"</body></message>`,
    });
  }
  return rows;
}

test('an archive written by the first schema is carried over whole and answers as before', async (t) => {
  const db = await freshDb(t);
  t.teardown(() => db.destroy());
  await runMigrations(db, 'mam', archiveMigrations.slice(0, 1));
  const rows = oldRows();
  for (let i = 0; i < rows.length; i += 50) await db('mam_archive').insert(rows.slice(i, i + 50));

  t.deepEqual(await runMigrations(db, 'mam', archiveMigrations), ['002-intern-jids', '003-archive-stage', '004-stored-once']);
  const store = new ArchiveStore(db, 'localhost');
  await store.init();
  t.teardown(() => store.close());

  const expect = (owner: string, withBare?: string, withResource?: string) =>
    rows.filter((r) => r.owner === owner && (withBare === undefined || r.with_bare === withBare) && (withResource === undefined || r.with_resource === withResource))
      .map((r) => ({ id: Number(r.id), nonce: Number(r.nonce), stanza: String(r.stanza) }));
  for (const owner of ['user0@localhost', 'user1@localhost', 'room@conference.localhost']) {
    t.deepEqual((await store.page({ owner }, 1000, false)).rows, expect(owner), owner);
    t.is(await store.count({ owner }), expect(owner).length);
  }
  t.deepEqual((await store.page({ owner: 'user1@localhost', withBare: 'peer2@localhost' }, 1000, false)).rows, expect('user1@localhost', 'peer2@localhost'));
  t.deepEqual((await store.page({ owner: 'user0@localhost', withBare: 'peer0@localhost', withResource: 'phone' }, 1000, true)).rows, expect('user0@localhost', 'peer0@localhost', 'phone'));
  t.deepEqual((await store.page({ owner: 'room@conference.localhost', withBare: 'room@conference.localhost', withResource: 'nick2' }, 1000, false)).rows, expect('room@conference.localhost', 'room@conference.localhost', 'nick2'));
  const some = expect('user0@localhost')[10]!;
  t.true(await store.exists('user0@localhost', some.id, some.nonce));
  t.false(await store.exists('user1@localhost', some.id, some.nonce), 'another archive\'s row is not this one\'s');
  t.deepEqual(await store.page({ owner: 'nobody@localhost' }, 10, false), { rows: [], complete: true });
  const ends = await store.ends('user0@localhost');
  t.is(ends?.first.id, expect('user0@localhost')[0]!.id);

  // new messages: above every old id, and found with the old ones
  const appended = store.append({ owner: 'user0@localhost', withBare: 'peer0@localhost', withResource: '', stanza: '<message xmlns="jabber:client"><body>new</body></message>' });
  t.true(await appended.written);
  t.true(appended.id > Number(rows[rows.length - 1]!.id));
  const page = await store.page({ owner: 'user0@localhost', withBare: 'peer0@localhost' }, 1000, false);
  t.is(page.rows[page.rows.length - 1]!.id, appended.id);

  // an account's deletion takes its archive and nothing of the others'
  await removeArchive(db, 'user1@localhost');
  t.is(await store.count({ owner: 'user1@localhost' }), 0);
  t.is(await store.count({ owner: 'user2@localhost' }), expect('user2@localhost').length);
});

test('ids stay unique between two stores of one database, in the same millisecond', async (t) => {
  const db = await freshDb(t);
  t.teardown(() => db.destroy());
  await runMigrations(db, 'mam', archiveMigrations);
  const a = new ArchiveStore(db, 'a.example');
  const b = new ArchiveStore(db, 'b.example');
  await Promise.all([a.init(), b.init()]);
  const now = Date.now();
  const ids = new Set<number>();
  for (let i = 0; i < 200; i++) ids.add(a.nextId(now)).add(b.nextId(now));
  t.is(ids.size, 400);
  await a.close();
  await b.close();
});

test('rows that 003 left staged are carried over with the archived ones', async (t) => {
  const db = await freshDb(t);
  t.teardown(() => db.destroy());
  await runMigrations(db, 'mam', archiveMigrations.slice(0, 3));
  await db('mam_jid').insert([{ jid: 'user0@localhost' }, { jid: 'peer0@localhost' }]);
  const [owner, peer] = (await db('mam_jid').orderBy('jid', 'desc').select('id')).map((r: { id: number | string }) => Number(r.id));
  const row = (i: number) => ({ id: (T0 + i) * IDS_PER_MS, host: 'localhost', owner_id: owner, with_id: peer, with_resource: 'phone', nonce: i, stanza: `<message xmlns="jabber:client"><body>${i}</body></message>` });
  await db('mam_archive').insert([row(1), row(2)]);
  await db('mam_stage').insert([row(3)]);
  t.deepEqual(await runMigrations(db, 'mam', archiveMigrations), ['004-stored-once']);
  const store = new ArchiveStore(db, 'localhost');
  await store.init();
  t.teardown(() => store.close());
  const page = await store.page({ owner: 'user0@localhost', withBare: 'peer0@localhost', withResource: 'phone' }, 10, false);
  t.deepEqual(page.rows, [1, 2, 3].map((i) => ({ id: row(i).id, nonce: i, stanza: row(i).stanza })));
});
