// Reads prepared once per connection (src/storage/prepared.ts) answer as a knex query would: they
// see every committed write, never another caller's uncommitted one, are prepared again once a
// missing table exists, report failures to storage health, and let the database close.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import type { Knex } from 'knex';
import { testStorageConfig } from '../helpers/postgres.js';
import { openDatabase } from '../../src/storage/db.js';
import { PreparedRead, PreparedWrite } from '../../src/storage/prepared.js';

async function freshDatabase(t: { teardown(fn: () => Promise<void> | void): void }, destroy = true): Promise<{ db: Knex; dir: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-prepared-'));
  const storage = testStorageConfig(dir);
  const db = await openDatabase(storage ? { driver: 'postgres', sqliteFile: '', postgresUrl: storage.postgres_url } : { driver: 'sqlite', sqliteFile: path.join(dir, 'x.sqlite') });
  t.teardown(async () => {
    if (destroy) await db.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { db, dir };
}

const createNotes = (db: Knex) =>
  db.schema.createTable('notes', (t) => {
    t.string('owner').notNullable().primary();
    t.string('text').notNullable();
  });

test('a prepared read sees each committed write, also after it was read once', async (t) => {
  const { db } = await freshDatabase(t);
  await createNotes(db);
  const read = new PreparedRead<{ text: string }>(db, 'select text from notes where owner = ? limit 1');
  t.is(await read.first(['alice']), undefined);
  await db('notes').insert({ owner: 'alice', text: 'one' });
  t.is((await read.first(['alice']))?.text, 'one');
  await db('notes').where({ owner: 'alice' }).update({ text: 'two' });
  t.is((await read.first(['alice']))?.text, 'two');
  // many at once, on the one statement (SQLite) or the pool's connections (PostgreSQL)
  await db('notes').insert({ owner: 'bob', text: 'three' });
  const texts = await Promise.all(Array.from({ length: 50 }, (_, i) => read.first([i % 2 === 0 ? 'alice' : 'bob'])));
  t.deepEqual(new Set(texts.map((row) => row?.text)), new Set(['two', 'three']));
});

test('a prepared write commits its rows, which every read then sees; a failing one is refused and reported', async (t) => {
  const { db } = await freshDatabase(t);
  await createNotes(db);
  const failures: unknown[] = [];
  db.on('query-error', (err: unknown) => failures.push(err));
  const insert = new PreparedWrite(db, 'insert into notes (owner, text) values (?, ?), (?, ?)');
  await insert.run(['carol', "it's", 'dave', 'two']);
  await insert.run(['erin', 'three', 'frank', 'four']);
  t.deepEqual((await db('notes').orderBy('owner').select('owner', 'text')).map((r: { owner: string; text: string }) => `${r.owner}:${r.text}`), ["carol:it's", 'dave:two', 'erin:three', 'frank:four']);
  await t.throwsAsync(insert.run(['carol', 'again', 'gina', 'five'])); // the primary key refuses it, whole
  t.is(failures.length, 1);
  t.is(Number((await db('notes').count({ n: '*' }))[0]!.n), 4);
});

test("a prepared read never sees another caller's uncommitted rows", async (t) => {
  const { db } = await freshDatabase(t);
  await createNotes(db);
  const read = new PreparedRead<{ text: string }>(db, 'select text from notes where owner = ? limit 1');
  t.is(await read.first(['carol']), undefined); // prepared now
  let readDuring: Promise<{ text: string } | undefined> | undefined;
  await db
    .transaction(async (trx) => {
      await trx('notes').insert({ owner: 'carol', text: 'never committed' });
      readDuring = read.first(['carol']);
      // give the read every chance to run on the transaction's connection
      await new Promise((resolve) => setTimeout(resolve, 50));
      throw new Error('rolled back');
    })
    .catch(() => undefined);
  t.is(await readDuring, undefined);
  t.is(await read.first(['carol']), undefined);
});

test('a read of a table that does not exist yet fails, to storage health too, and works once the table exists', async (t) => {
  const { db } = await freshDatabase(t);
  const failures: unknown[] = [];
  db.on('query-error', (err: unknown) => failures.push(err));
  const read = new PreparedRead<{ text: string }>(db, 'select text from notes where owner = ? limit 1');
  await t.throwsAsync(read.first(['dave']), { message: /notes/ });
  t.is(failures.length, 1);
  await createNotes(db);
  await db('notes').insert({ owner: 'dave', text: 'here' });
  t.is((await read.first(['dave']))?.text, 'here');
});

test('the database closes with prepared statements on its connection, and its file can be opened again', async (t) => {
  const { db, dir } = await freshDatabase(t, false);
  await createNotes(db);
  await db('notes').insert({ owner: 'erin', text: 'kept' });
  const read = new PreparedRead<{ text: string }>(db, 'select text from notes where owner = ? limit 1');
  t.is((await read.first(['erin']))?.text, 'kept');
  await db.destroy(); // SQLite refuses to close a connection with statements left: they are finalized first
  const storage = testStorageConfig(dir);
  // closed for real: the last connection to close checkpoints the WAL and removes its file
  if (storage === undefined) t.false(fs.existsSync(path.join(dir, 'x.sqlite-wal')));
  const again = await openDatabase(storage ? { driver: 'postgres', sqliteFile: '', postgresUrl: storage.postgres_url } : { driver: 'sqlite', sqliteFile: path.join(dir, 'x.sqlite') });
  try {
    t.is((await new PreparedRead<{ text: string }>(again, 'select text from notes where owner = ? limit 1').first(['erin']))?.text, 'kept');
  } finally {
    await again.destroy();
  }
});

test('a prepared read goes on after its table changed under it (a newer node migrating a shared database)', async (t) => {
  const { db } = await freshDatabase(t);
  await createNotes(db);
  await db('notes').insert({ owner: 'frank', text: 'before' });
  // `*` on purpose: its result changes shape with the table (PostgreSQL: "cached plan must not change result type")
  const read = new PreparedRead<{ text: string; mood?: string }>(db, 'select * from notes where owner = ? limit 1');
  t.is((await read.first(['frank']))?.text, 'before');
  await db.schema.alterTable('notes', (table) => table.string('mood').notNullable().defaultTo('calm'));
  const again = await Promise.all(Array.from({ length: 12 }, () => read.first(['frank']))); // on several of the pool's connections
  for (const row of again) t.like(row, { text: 'before', mood: 'calm' });
});
