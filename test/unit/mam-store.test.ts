// The archive's write path (src/modules/mam/store.ts) on a real SQLite file: batches of every size
// land whole and in order, on SQLite's own writer as through knex (the path imports take) and on
// PostgreSQL; both parties' entries of a message share one stored stanza, which goes with the last
// of them; a write never joins another caller's transaction on the one pooled connection; and
// once closed the store leaves SQLite nothing that keeps the file from closing.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { onPostgres, testStorageConfig } from '../helpers/postgres.js';
import type { Knex } from 'knex';
import { openDatabase, runMigrations } from '../../src/storage/db.js';
import { ArchiveStore, BATCH_MAX_CHARS, COMMIT_AT_ONCE, IDS_PER_MS, STAGE_ROWS, WRITER_SLOTS, archiveMigrations, parsePublicId, publicId, removeArchive } from '../../src/modules/mam/store.js';

async function freshDb(t: { teardown(fn: () => void): void }): Promise<Knex> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-mam-store-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  // the PostgreSQL pass: a database of this test's own (the knex path; SQLite's own path is skipped)
  const storage = testStorageConfig(dir);
  const db = await openDatabase(storage ? { driver: 'postgres', sqliteFile: '', postgresUrl: storage.postgres_url } : { driver: 'sqlite', sqliteFile: path.join(dir, 'x.sqlite') });
  await runMigrations(db, 'mam', archiveMigrations);
  return db;
}

/**
 * A SQLite file of the test's own, and how to open it with the archive's tables: more than once
 * for a test of what a restart finds.
 */
function sqliteFile(t: { teardown(fn: () => void): void }, name: string): () => Promise<Knex> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `xmppd-mam-${name}-`));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'x.sqlite');
  return async () => {
    const db = await openDatabase({ driver: 'sqlite', sqliteFile: file });
    await runMigrations(db, 'mam', archiveMigrations);
    return db;
  };
}

const row = (i: number, owner = 'alice@localhost') => ({
  owner, withBare: `peer${i % 3}@localhost`, withResource: i % 2 === 0 ? 'phone' : '', stanza: `<message xmlns="jabber:client" id="m${i}"><body>it's ${i} &amp; "so"</body></message>`,
});

/** Message `i` of a chat, as archived for `owner` with `peer` (sharing `sameMessage`'s stored stanza, when given). */
const chatEntry = (owner: string, peer: string, i: number | string, sameMessage?: number) =>
  ({ owner, withBare: peer, withResource: '', stanza: `<message xmlns="jabber:client"><body>${i}</body></message>`, sameMessage });
const bodyOf = (i: number) => chatEntry('', '', i).stanza;

/**
 * A store whose batches would wait an hour for company (a test waiting that long times out), and
 * which expects company after a batch begun within `companyWindowMs` of the one before.
 */
const slowStore = (db: Knex, companyWindowMs: number) =>
  new ArchiveStore(db, 'localhost', undefined, { sqliteDirect: !onPostgres, commitDelayMs: 3_600_000, companyWindowMs });
/** One event-loop turn: a write just settled is done, and the writer idle again (a batch begun during a write goes right after it). */
const writerIdle = () => new Promise((resolve) => setImmediate(resolve));

/** Rows in each table, as numbers (PostgreSQL counts in bigint: a string). */
const rowsIn = async (db: Knex, table: string) => Number((await db(table).count({ n: '*' }))[0]!.n);

/** Every entry with its stored message, in archive order. */
const storedEntries = (db: Knex): Promise<Array<{ host: string; stanza: string; with_resource: string }>> =>
  db({ e: 'mam_entry' }).join({ m: 'mam_message' }, 'm.id', 'e.id').orderBy('e.id').select('m.host', 'm.stanza', 'e.with_resource');

/** About SQLite itself (its own writer, its one pooled connection): not on the PostgreSQL pass. */
const sqliteTest = onPostgres ? test.skip : test;

for (const direct of onPostgres ? [false] : [true, false]) {
  const how = direct ? 'SQLite\'s own writer' : 'knex';
  test(`${how}: batches of 1, 100, 101, 357, 1000 and 2357 rows are written whole, in id order, with their nonces`, async (t) => {
    const db = await freshDb(t);
    const store = new ArchiveStore(db, "o'host", undefined, { sqliteDirect: direct });
    let n = 0;
    for (const size of [1, 100, 101, 357, 1000, 2357]) {
      const appended = Array.from({ length: size }, () => store.append(row(n++)));
      t.true(new Set(appended.map((a) => a.written)).size === 1, 'one promise per event-loop turn');
      t.true(await appended[0]!.written);
      const page = await store.page({ owner: 'alice@localhost' }, 5000, false);
      t.is(page.rows.length, n);
      t.deepEqual(page.rows.slice(-size).map((r) => [r.id, r.nonce]), appended.map((a) => [a.id, a.nonce]));
    }
    const stored = await storedEntries(db);
    t.true(stored.every((r) => r.host === "o'host"), 'the host, written into the SQL, is quoted');
    t.is(stored[5]!.stanza, row(5).stanza);
    t.is(stored[5]!.with_resource, '');
    await store.close();
    await db.destroy();
  });
}

test('in a large batch, quotes and what would be SQL in a resource or a stanza are stored as given', async (t) => {
  const db = await freshDb(t);
  const store = new ArchiveStore(db, 'localhost');
  const hostile = "x'); DELETE FROM mam_message; --";
  const appended = Array.from({ length: 250 }, (_, i) => store.append({ ...row(i), withResource: i === 7 ? hostile : "o'clock", stanza: `<message xmlns="jabber:client" id="q${i}"><body>${hostile} ''${i === 9 ? '\0' : ''}</body></message>` }));
  t.true(await appended[0]!.written);
  await store.written();
  const stored = await storedEntries(db);
  t.is(stored.length, 250);
  t.is(stored[7]!.with_resource, hostile);
  t.is(stored[8]!.with_resource, "o'clock");
  t.true(stored[9]!.stanza.includes(`${hostile} ''\ufffd</body>`), 'a NUL (which no parsed stanza has) fails nothing: stored as U+FFFD');
  t.is(stored[249]!.stanza, `<message xmlns="jabber:client" id="q249"><body>${hostile} ''</body></message>`);
  await store.close();
  await db.destroy();
});

sqliteTest('an archive write waits for another transaction on the connection: it is not rolled back with it', async (t) => {
  const db = await freshDb(t);
  await db.schema.createTable('other', (table) => table.integer('n'));
  const store = new ArchiveStore(db, 'localhost');
  let inside!: () => void;
  const started = new Promise<void>((resolve) => (inside = resolve));
  const failing = db.transaction(async (trx) => {
    await trx('other').insert({ n: 1 });
    inside();
    await new Promise((resolve) => setTimeout(resolve, 100));
    throw new Error('rolled back');
  });
  await started;
  const { written } = store.append(row(1));
  await t.throwsAsync(failing, { message: 'rolled back' });
  t.true(await written);
  await store.written();
  t.is(await rowsIn(db, 'mam_entry'), 1);
  t.is(await rowsIn(db, 'other'), 0);
  await store.close();
  await db.destroy();
});

test('a failed write resolves false and is reported; the store goes on writing', async (t) => {
  const db = await freshDb(t);
  const errors: number[] = [];
  const store = new ArchiveStore(db, 'localhost', (_err, rows) => errors.push(rows));
  const first = store.append(row(1), 5 * IDS_PER_MS);
  t.true(await first.written);
  const duplicate = store.append(row(2), 5 * IDS_PER_MS); // the same id: the primary key refuses the batch
  const sameBatch = store.append(row(3), 6 * IDS_PER_MS);
  t.false(await duplicate.written);
  t.is(sameBatch.written, duplicate.written);
  t.deepEqual(errors, [2]);
  await store.written();
  t.is(await rowsIn(db, 'mam_entry'), 1, 'the batch is all or nothing');
  t.true(await store.append(row(4)).written);
  await store.close();
  await db.destroy();
});

test('a batch of several statements that fails in a later one is rolled back whole, and the next batch is written', async (t) => {
  const db = await freshDb(t);
  const errors: number[] = [];
  const store = new ArchiveStore(db, 'localhost', (_err, rows) => errors.push(rows));
  t.true(await store.append(row(0), 5 * IDS_PER_MS).written);
  // 1,150 rows: one statement of 1,000 rows, then one of 100 that repeats the id already stored
  const appended = Array.from({ length: 1150 }, (_, i) => store.append(row(i + 1), i === 1050 ? 5 * IDS_PER_MS : (10 + i) * IDS_PER_MS));
  t.false(await appended[0]!.written);
  t.deepEqual(errors, [1150]);
  await store.written();
  t.is(await rowsIn(db, 'mam_entry'), 1, 'none of the batch is kept');
  t.true(await store.append(row(2000)).written, 'no transaction is left open');
  await store.written();
  t.is(await rowsIn(db, 'mam_entry'), 2);
  await store.close();
  await db.destroy();
});

sqliteTest('closed, even with a write still to come, the store lets the database close', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-mam-close-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const db = await openDatabase({ driver: 'sqlite', sqliteFile: path.join(dir, 'x.sqlite') });
  await runMigrations(db, 'mam', archiveMigrations);
  const store = new ArchiveStore(db, 'localhost');
  t.true(await store.append(row(1)).written);
  const late = store.append(row(2)); // written by close()
  await store.close();
  t.true(await late.written);
  // SQLite refuses to close a connection with statements still prepared (SQLITE_BUSY), and then
  // leaves the WAL file behind: knex's close finalizes them first (src/storage/prepared.ts)
  await db.destroy();
  t.false(fs.existsSync(path.join(dir, 'x.sqlite-wal')), 'closed for real: the WAL checkpointed and removed');
});

sqliteTest('SQLite: rows are committed into the stage, and moved into the archive in one go once STAGE_ROWS have gathered, before the next batch', async (t) => {
  const db = await freshDb(t);
  const store = new ArchiveStore(db, 'localhost');
  const many = Array.from({ length: STAGE_ROWS - 1 }, (_, i) => store.append(row(i)));
  t.true(await many[0]!.written);
  t.is(await rowsIn(db, 'mam_entry_stage'), STAGE_ROWS - 1, 'acknowledged once committed into the stage');
  t.is(await rowsIn(db, 'mam_entry'), 0);
  t.true(await store.append(row(STAGE_ROWS)).written); // the stage is full: its move is asked for
  const next = store.append(row(STAGE_ROWS + 1));
  t.true(await next.written);
  t.is(await rowsIn(db, 'mam_entry'), STAGE_ROWS);
  t.is(await rowsIn(db, 'mam_entry_stage'), 1, 'the next batch waited for the move, and is staged in turn');
  await store.close();
  t.is(await rowsIn(db, 'mam_entry_stage'), 0, 'close moves what is left');
  t.is(await rowsIn(db, 'mam_entry'), STAGE_ROWS + 1);
  await db.destroy();
});

sqliteTest('SQLite: a batch of STAGE_ROWS rows or more (the max rate\'s) is written straight into the archive', async (t) => {
  const db = await freshDb(t);
  const store = new ArchiveStore(db, 'localhost');
  t.true(await store.append(row(0)).written);
  const large = Array.from({ length: STAGE_ROWS }, (_, i) => store.append(row(i + 1)));
  t.true(await large[0]!.written);
  t.is(await rowsIn(db, 'mam_entry'), STAGE_ROWS);
  t.is(await rowsIn(db, 'mam_entry_stage'), 1, 'what was staged before stays staged');
  const page = await store.page({ owner: 'alice@localhost' }, 3, false);
  t.deepEqual(page.rows.map((r) => r.stanza), [row(0).stanza, row(1).stanza, row(2).stanza], 'in id order across both');
  await store.close();
  await db.destroy();
});

sqliteTest('SQLite: staged rows of a process killed before moving them are in the archive after the next start, and new ids come after theirs', async (t) => {
  const open = sqliteFile(t, 'stage');
  const before = await open();
  const killed = new ArchiveStore(before, 'localhost');
  await killed.init();
  const appended = [killed.append(row(1)), killed.append(row(2)), killed.append(row(3))];
  t.true(await appended[0]!.written);
  await before.destroy(); // no close(): nothing moved
  const after = await open();
  t.is(await rowsIn(after, 'mam_entry_stage'), 3);
  const restarted = new ArchiveStore(after, 'localhost');
  await restarted.init();
  t.is(await rowsIn(after, 'mam_entry_stage'), 0);
  t.deepEqual((await restarted.page({ owner: 'alice@localhost' }, 10, false)).rows.map((r) => r.id), appended.map((a) => a.id));
  const later = restarted.append(row(4));
  t.true(later.id > appended[2]!.id);
  t.true(await later.written);
  await restarted.close();
  await after.destroy();
});

sqliteTest('SQLite: two hosts on one database: one host\'s move takes the other\'s staged rows along, and each finds its own; a start moves the rows of a host no longer served', async (t) => {
  const open = sqliteFile(t, 'hosts');
  const db = await open();
  const one = new ArchiveStore(db, 'one.example');
  const two = new ArchiveStore(db, 'two.example');
  const ofTwo = two.append(row(1, 'bob@two.example'));
  t.true(await ofTwo.written);
  const ofOne = one.append(row(2, 'alice@one.example'));
  t.true(await ofOne.written);
  t.is(await rowsIn(db, 'mam_entry_stage'), 2);
  // one's query moves the stage: two's row goes with it
  t.deepEqual((await one.page({ owner: 'alice@one.example' }, 10, false)).rows.map((r) => r.id), [ofOne.id]);
  t.is(await rowsIn(db, 'mam_entry_stage'), 0);
  t.deepEqual((await two.page({ owner: 'bob@two.example' }, 10, false)).rows.map((r) => r.id), [ofTwo.id], 'two moves an empty stage and finds its row');
  // a row of two's left staged, and the next start serves only one.example: moved all the same
  const left = two.append(row(3, 'bob@two.example'));
  t.true(await left.written);
  await db.destroy(); // no close(): nothing moved
  const after = await open();
  const onlyOne = new ArchiveStore(after, 'one.example');
  await onlyOne.init();
  t.is(await rowsIn(after, 'mam_entry_stage'), 0);
  t.deepEqual((await after('mam_message').where('host', 'two.example').orderBy('id').select('id')).map((r: { id: number }) => r.id), [ofTwo.id, left.id]);
  t.is(await rowsIn(after, 'mam_entry'), 3);
  await onlyOne.close();
  await after.destroy();
});

sqliteTest('SQLite: a query whose staged rows cannot be moved fails, is reported, and sees them once the move works', async (t) => {
  const db = await freshDb(t);
  const errors: string[] = [];
  const store = new ArchiveStore(db, 'localhost', (err) => errors.push((err as Error).message));
  const staged = store.append(row(1));
  t.true(await staged.written);
  // an entry of the same owner and id in the archive: the move's INSERT fails (as a full disk would fail it)
  const alice = db('mam_jid').where('jid', 'alice@localhost').select('id');
  await db('mam_entry').insert({ owner_id: alice, id: staged.id, with_id: 999, with_resource: '', nonce: 0 });
  await t.throwsAsync(store.page({ owner: 'alice@localhost' }, 10, false), { message: /could not be moved/ });
  t.true(errors.some((e) => e.includes('from mam_entry_stage into mam_entry failed')));
  t.is(await rowsIn(db, 'mam_entry_stage'), 1, 'the staged row is kept');
  await db('mam_entry').where('id', staged.id).andWhere('with_id', 999).delete();
  t.deepEqual((await store.page({ owner: 'alice@localhost' }, 10, false)).rows.map((r) => r.id), [staged.id]);
  await store.close();
  await db.destroy();
});

test('an account removed with rows still staged has none left in its archive', async (t) => {
  const db = await freshDb(t);
  const store = new ArchiveStore(db, 'localhost');
  t.true(await store.append(row(1)).written);
  t.true(await store.append(row(2, 'bob@localhost')).written);
  await removeArchive(db, 'alice@localhost');
  t.deepEqual((await store.page({ owner: 'alice@localhost' }, 10, false)).rows, []);
  t.is((await store.page({ owner: 'bob@localhost' }, 10, false)).rows.length, 1);
  await store.close();
  await db.destroy();
});

test('a stored row is found by its public id', async (t) => {
  const db = await freshDb(t);
  const store = new ArchiveStore(db, 'localhost');
  const { id, nonce, written } = store.append(row(1));
  t.true(await written);
  const parsed = parsePublicId(publicId(id, nonce))!;
  t.true(await store.exists('alice@localhost', parsed.id, parsed.nonce));
  t.false(await store.exists('alice@localhost', parsed.id, (parsed.nonce + 1) % 2 ** 25));
  await store.close();
  await db.destroy();
});

test('a query sees every row archived before it was asked, written or not yet', async (t) => {
  const db = await freshDb(t);
  const store = new ArchiveStore(db, 'localhost');
  const first = store.append(row(1));
  const pageAfterOne = store.page({ owner: 'alice@localhost' }, 10, false);
  t.true(await first.written); // the first batch is written: the next rows are another, not yet written when the queries below come
  const second = store.append(row(2));
  const third = store.append(row(3));
  t.is(second.written, third.written);
  t.not(first.written, second.written);
  const [count, ends, page] = await Promise.all([store.count({ owner: 'alice@localhost' }), store.ends('alice@localhost'), store.page({ owner: 'alice@localhost' }, 10, false)]);
  t.is(count, 3);
  t.is(ends?.last.id, third.id);
  t.deepEqual(page.rows.map((r) => r.id), [first.id, second.id, third.id]);
  t.true((await pageAfterOne).rows.some((r) => r.id === first.id));
  await store.close();
  await db.destroy();
});

/** A cluster on one PostgreSQL: each node (its own pool) claims a writer slot of its own. */
const postgresTest = onPostgres ? test : test.skip;

postgresTest('two nodes in one process on one database each write ids in their own writer slot', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-mam-slots-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const url = testStorageConfig(dir)!.postgres_url; // one database, two pools: two nodes
  const first = await openDatabase({ driver: 'postgres', sqliteFile: '', postgresUrl: url });
  await runMigrations(first, 'mam', archiveMigrations);
  const second = await openDatabase({ driver: 'postgres', sqliteFile: '', postgresUrl: url });
  const a = new ArchiveStore(first, 'localhost', undefined, { sqliteDirect: false });
  const b = new ArchiveStore(second, 'localhost', undefined, { sqliteDirect: false });
  t.teardown(async () => {
    await Promise.all([a.close(), b.close()]);
    await Promise.all([first.destroy(), second.destroy()]);
  });
  await a.init();
  await b.init(); // claims the next slot, after a's
  const slotOf = (id: number) => Math.floor((id % IDS_PER_MS) / (IDS_PER_MS / WRITER_SLOTS));
  const fromA = a.append(row(1));
  const fromB = b.append(row(2));
  t.true(await fromA.written);
  t.true(await fromB.written);
  t.not(slotOf(fromA.id), slotOf(fromB.id), 'a node that started first keeps its slot');
});

/** One chat message archived for both parties, as the module does: the sender's entry, then the recipient's naming it. */
function appendBoth(store: ArchiveStore, i: number) {
  const stanza = `<message xmlns="jabber:client" id="c${i}"><body>both ${i}</body></message>`;
  const sent = store.append({ owner: 'alice@localhost', withBare: 'bob@localhost', withResource: 'phone', stanza });
  const received = store.append({ owner: 'bob@localhost', withBare: 'alice@localhost', withResource: 'laptop', stanza, sameMessage: sent.id });
  return { sent, received, stanza };
}

for (const direct of onPostgres ? [false] : [true, false]) {
  test(`${direct ? 'SQLite\'s own writer' : 'knex'}: both parties' entries of a message share its id and one stored stanza, each with its own nonce`, async (t) => {
    const db = await freshDb(t);
    const store = new ArchiveStore(db, 'localhost', undefined, { sqliteDirect: direct });
    const { sent, received, stanza } = appendBoth(store, 1);
    t.is(sent.id, received.id);
    t.true(await received.written);
    await store.written();
    t.is(await rowsIn(db, 'mam_message'), 1, 'the stanza is stored once');
    t.is(await rowsIn(db, 'mam_entry'), 2);
    t.deepEqual((await store.page({ owner: 'alice@localhost', withBare: 'bob@localhost' }, 10, false)).rows, [{ id: sent.id, nonce: sent.nonce, stanza }]);
    t.deepEqual((await store.page({ owner: 'bob@localhost', withBare: 'alice@localhost', withResource: 'laptop' }, 10, false)).rows, [{ id: sent.id, nonce: received.nonce, stanza }]);
    t.true(await store.exists('bob@localhost', received.id, received.nonce));
    t.false(await store.exists('bob@localhost', sent.id, sent.nonce) && sent.nonce !== received.nonce, "a public id of one archive is not the other's");
    await store.close();
    await db.destroy();
  });
}

test('a burst of messages shares each stored stanza with its other party\'s entry; once its batch is written the stanza is stored again', async (t) => {
  const db = await freshDb(t);
  const store = new ArchiveStore(db, 'localhost');
  // a client's burst: the sender's entries first, the recipients' after (offline storage decides later)
  const sent = [1, 2, 3].map((i) => store.append(chatEntry('alice@localhost', 'bob@localhost', i)));
  const received = [1, 2, 3].map((i) => store.append(chatEntry('bob@localhost', 'alice@localhost', i, sent[i - 1]!.id)));
  t.deepEqual(received.map((r) => r.id), sent.map((s) => s.id));
  const other = store.append(chatEntry('carol@localhost', 'alice@localhost', 'other', sent[0]!.id));
  t.false(sent.some((s) => s.id === other.id), 'another stanza is not shared');
  t.true(await received[0]!.written);
  const late = store.append(chatEntry('dave@localhost', 'alice@localhost', 3, sent[2]!.id));
  t.true(late.id > other.id, 'its batch is written: an id of its own');
  t.true(await late.written);
  await store.written();
  t.is(await rowsIn(db, 'mam_message'), 5);
  t.is(await rowsIn(db, 'mam_entry'), 8);
  t.deepEqual((await store.page({ owner: 'bob@localhost' }, 10, false)).rows.map((r) => r.stanza), [1, 2, 3].map(bodyOf));
  t.deepEqual((await store.page({ owner: 'dave@localhost' }, 10, false)).rows.map((r) => r.stanza), [bodyOf(3)]);
  await store.close();
  await db.destroy();
});

test('an entry shares its message only when that keeps its archive in the order entries came: one that comes after a newer entry of the same archive takes an id of its own', async (t) => {
  const db = await freshDb(t);
  const store = new ArchiveStore(db, 'localhost');
  // alice's burst to bob, who is offline: her entries now, his once the lookup of his account is
  // answered; meanwhile the batch holding her first message was written, so his first entry
  // takes a new id, above the ids of her later messages still gathering
  const first = store.append(chatEntry('alice@localhost', 'bob@localhost', 1));
  t.true(await first.written);
  const second = store.append(chatEntry('alice@localhost', 'bob@localhost', 2));
  const firstForBob = store.append(chatEntry('bob@localhost', 'alice@localhost', 1, first.id));
  const secondForBob = store.append(chatEntry('bob@localhost', 'alice@localhost', 2, second.id));
  t.true(firstForBob.id > second.id, 'the first one\'s batch is written: an id of its own');
  t.true(secondForBob.id > firstForBob.id, 'the second one does not share an id below the first one\'s');
  await store.written();
  t.deepEqual((await store.page({ owner: 'bob@localhost' }, 10, false)).rows.map((r) => r.stanza), [bodyOf(1), bodyOf(2)], 'bob\'s archive in the order his entries came');
  t.deepEqual((await store.page({ owner: 'alice@localhost' }, 10, false)).rows.map((r) => r.stanza), [bodyOf(1), bodyOf(2)]);
  await store.close();
  await db.destroy();
});

test('a shared message outlives the first party\'s deletion and expiry, and goes with the last', async (t) => {
  const db = await freshDb(t);
  const store = new ArchiveStore(db, 'localhost');
  const chats = [appendBoth(store, 1), appendBoth(store, 2), appendBoth(store, 3)];
  const staged = appendBoth(store, 4); // bob's entry of it still staged on SQLite when alice goes
  t.true(await staged.received.written);
  await removeArchive(db, 'alice@localhost');
  t.is(await store.count({ owner: 'alice@localhost' }), 0);
  t.deepEqual((await store.page({ owner: 'bob@localhost' }, 10, false)).rows.map((r) => r.stanza), [...chats, staged].map((c) => c.stanza));
  t.is(await rowsIn(db, 'mam_message'), 4, 'bob still holds them all');

  // carol and dave chat; the sweep expires carol's old entries only (dave's retention keeps his)
  await store.written();
  const old = [appendBoth(store, 5)];
  t.true(await old[0]!.received.written);
  const cutoff = store.nextId() + 1;
  t.is(await store.expireOwnerBatch('bob@localhost', cutoff, 2), 2, 'bob\'s two oldest');
  t.is(await rowsIn(db, 'mam_message'), 3, 'no archive holds the first two any more');
  let expired = 0;
  for (let after = 0, next; (next = await store.expireBatch(after, cutoff, (owner) => owner === 'alice@localhost', 100)) !== null; after = next.lastId) expired += next.deleted;
  t.is(expired, 3, 'bob\'s last two and message 5\'s bob entry');
  t.deepEqual((await store.page({ owner: 'alice@localhost' }, 10, false)).rows.map((r) => r.stanza), [old[0]!.stanza], 'kept: alice\'s entry and its message');
  t.is(await rowsIn(db, 'mam_message'), 1);
  t.is(await rowsIn(db, 'mam_entry') + await rowsIn(db, 'mam_entry_stage'), 1);
  await store.close();
  await db.destroy();
});

test('a batch is closed at its limit of characters (BATCH_MAX_CHARS): the next messages go into another, written after it, all of them kept in order', async (t) => {
  t.true(BATCH_MAX_CHARS < 2 ** 29 / 4, 'the real limit: far below V8\'s longest string, quotes doubled');
  const db = await freshDb(t);
  const limit = 64 * 1024;
  const store = new ArchiveStore(db, 'localhost', undefined, { sqliteDirect: !onPostgres, batchMaxChars: limit });
  const large = (i: number) => `<message xmlns="jabber:client" id="big${i}"><body>${String(i).padEnd(4096, "'")}</body></message>`;
  const perBatch = Math.ceil(limit / large(0).length);
  const appended = Array.from({ length: perBatch + 3 }, (_, i) => store.append({ owner: 'alice@localhost', withBare: 'bob@localhost', withResource: '', stanza: large(i) }));
  t.is(appended[perBatch - 1]!.written, appended[0]!.written, 'the first batch, up to the limit');
  t.not(appended[perBatch]!.written, appended[0]!.written, 'then another');
  t.true(await appended[perBatch + 2]!.written);
  t.true(await appended[0]!.written);
  const page = await store.page({ owner: 'alice@localhost' }, 100, false);
  t.deepEqual(page.rows.map((r) => r.id), appended.map((a) => a.id));
  t.is(page.rows[perBatch]!.stanza, large(perBatch));
  await store.close();
  await db.destroy();
});

test('a batch waits for company only when company is likely: begun soon after the batch before it, not after a pause', async (t) => {
  const db = await freshDb(t);
  const paused = slowStore(db, 0);
  await paused.init();
  t.true(await paused.append(row(0)).written); // no batch before it
  await writerIdle();
  t.true(await paused.append(row(1)).written); // every batch "after a pause": written in the next turn
  await paused.close();
  const busy = slowStore(db, 3_600_000);
  await busy.init();
  t.true(await busy.append(row(2)).written);
  await writerIdle();
  const second = busy.append(row(3)); // begun within the window: it waits out the delay
  const settled = await Promise.race([second.written.then(() => 'written'), new Promise((resolve) => setTimeout(resolve, 200, 'waiting'))]);
  t.is(settled, 'waiting');
  await busy.close(); // (a close writes what is gathered without waiting)
  t.true(await second.written);
  await db.destroy();
});

test('a batch on an idle writer is written once it holds COMMIT_AT_ONCE messages, without waiting out the commit delay: a burst held by back-pressure is not idled', async (t) => {
  const db = await freshDb(t);
  // never a pause long enough to skip the hour's wait: only the batch's size can have it written
  const store = slowStore(db, 3_600_000);
  await store.init();
  // the first batch of all follows no other: written at once; the next begins within the window, so it waits for company
  t.true(await [store.append(row(0)), store.append(row(1))][1]!.written);
  await writerIdle(); // so that the next batch is one begun on an idle writer
  const appended = Array.from({ length: COMMIT_AT_ONCE }, (_, i) => store.append(row(i + 2)));
  t.true(await appended[COMMIT_AT_ONCE - 1]!.written);
  t.is((await store.page({ owner: 'alice@localhost' }, 100, false)).rows.length, COMMIT_AT_ONCE + 2);
  await store.close();
  await db.destroy();
});
