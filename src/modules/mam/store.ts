// The message archive (XEP-0313). A message is stored once (mam_message: its stanza, its host,
// and the one or two archives that hold it), and each archive that holds it (a user's, or a
// room's) has an entry in mam_entry, in archive order. The id is the order: milliseconds since
// the epoch times 1024 plus the writer's slot and a counter, so ids sort by time, a `start`/`end`
// window is an id range, and every query is a range scan on mam_entry's primary key (owner_id, id)
// or its index (owner_id, with_id, id), never a table scan, however large the archive
// (test/unit/mam-query-plan.test.ts checks it). Both parties' entries of a message archived in
// the same batch share its id and its stored stanza (NewArchiveRow.sameMessage): before, each
// party's row carried the whole stanza. Owners and peers are bare JIDs interned as integers
// (mam_jid): index rows of three integers instead of two or three JID strings. On SQLite,
// mam_entry is a WITHOUT ROWID table, ordered by its primary key: one B-tree holds both the
// entries and the (owner_id, id) index; entries are first committed into mam_entry_stage and moved
// into mam_entry in bulk (STAGE_ROWS): a query moves them first, so it reads mam_entry alone.
import { randomUUID } from 'node:crypto';
import { randomUint32 } from '../../core/random.js';
import type { Knex } from 'knex';
import type { Migration } from '../../storage/db.js';

/** Ids per millisecond: the low 10 bits are the writer's slot and a counter, so 2^53 lasts until the year 2248. */
export const IDS_PER_MS = 1024;
/**
 * Writers sharing one database (processes of a cluster on PostgreSQL): each claims one of
 * WRITER_SLOTS slots (mam_writers) and makes ids with its slot in bits 6-9, so two processes
 * never make the same id even in the same millisecond; the counter (bits 0-5) gives 64 ids per
 * ms per process, and past that the next millisecond's (ids run a little ahead of the clock).
 */
export const WRITER_SLOTS = 16;
const IDS_PER_SLOT = IDS_PER_MS / WRITER_SLOTS;
/** A claim not renewed for this long (ms) is taken as dead (a process killed without releasing it). */
const SLOT_STALE_MS = 120_000;
const SLOT_RENEW_MS = 30_000;
/** Interned JIDs kept in memory, per database; beyond that the map starts over (rows are never renumbered). */
const JID_CACHE_MAX = 200_000;
/** Public ids: the row id in 11 base-32 digits (55 bits), then the nonce in 5 (25 bits). */
const ID_DIGITS = 11;
const NONCE_DIGITS = 5;
const NONCE_BITS = 25;
/** Ids handed out before the base-32 format: base 36, then a nonce in 4 base-36 digits (still accepted). */
const LEGACY_NONCE_LENGTH = 4;
/** SQLite through knex (imports, tests): rows per INSERT. */
const INSERT_CHUNK = 100;
/** SQLite's own path: a batch is one transaction of INSERTs of up to this many rows each, in one SQL text (ArchiveStore.batchSql). */
const LARGE_INSERT = 1000;
/**
 * How long a batch started on an idle writer waits for more rows (ms). A statement costs ~70 µs
 * of CPU (a third on the event loop) besides ~4.5 µs per row on SQLite: at 2,000 messages/s,
 * one commit per message pair spent more than the rest of the message's path. What waits is the
 * sender's acknowledgement (XEP-0198), never the delivery; at a high rate batches form while the
 * previous one is written and nothing waits for this timer. Each commit also wakes a thread of
 * the pool from sleep and rewrites the last, partly filled page of each table it appends to
 * (WAL frames are whole pages), so at a low rate the cost per message follows the number of
 * commits. Measured (the store alone, 2,000 messages/s for 8 s, three alternated runs, CPU per
 * message including a 16.5 µs pacing baseline): 6 ms 55-66 µs, 15 ms 43-48, 25 ms 44-49; in the
 * server at 2,000 msgs/s (five alternated rounds) the threads beside the event loop went from
 * 1.49 s to 1.06 s (medians). 15 ms is far below what a phone's round trip adds to the ack.
 *
 * It waits only when company is likely: when the batch before it began less than the delay
 * earlier (messages come faster than one per delay; PostgreSQL's commit_delay likewise waits only
 * with commit_siblings). Otherwise it is written in the next event-loop turn: an occasional
 * message gains nothing from the wait, and its sender's ack would take 17 ms instead of 2.
 */
const COMMIT_DELAY_MS = 15;
/**
 * A batch started on an idle writer is written once it holds this many messages, without waiting
 * out COMMIT_DELAY_MS: a commit's fixed cost is then a few µs per message already, and a client
 * sending faster than the delay allows (a burst to a contact who is offline) has its reading
 * stopped at 64 stanzas waiting for storage (MAX_STORING, src/c2s/stream.ts), so every delay
 * would only idle it.
 */
export const COMMIT_AT_ONCE = 32;
/**
 * SQLite: entries are committed into mam_entry_stage, ordered by id (so rows append to its last
 * page), and moved into mam_entry in one transaction once this many have gathered,
 * STAGE_MAX_AGE_MS after the first, before any query, and at close and start. Each entry lands in
 * its owner's pages of mam_entry and of its index, and a commit writes every page it touched to
 * the WAL whole (and a checkpoint writes it again): commits of a few rows each wrote ~2 index
 * pages per row, while a move of thousands of rows writes each owner's pages once. Measured
 * (SQLite alone, 400 owners, 200,000 messages archived before, rows as they were before
 * mam_entry): 108 -> 54 µs of CPU per message in commits of 4 messages, 62 -> 27 in commits of
 * 500; moves of 4,000 rows saved less (35). A batch of STAGE_ROWS entries or more (a high rate:
 * the messages that came while the last batch was written, tens of thousands at the max rate) is
 * written straight into mam_entry: it is such a move. Stored stanzas go straight into
 * mam_message, whose rows append in id order.
 */
export const STAGE_ROWS = 8_000;
/**
 * A batch whose stanzas reach this many characters is closed, and the next message starts
 * another (written after it): SQLite's writer builds one SQL text per batch, and a text beyond
 * V8's longest string (2^29 - 24 characters; quotes doubled, a stanza's text can double) would
 * fail the whole batch, everyone's messages in it. Thousands of connections sending stanzas of
 * the largest size while a long write is under way could gather that much.
 */
export const BATCH_MAX_CHARS = 32 * 1024 * 1024;
const STAGE_MAX_AGE_MS = 5_000;
/** The columns of mam_message, in the order every INSERT gives them (owner_b 0: held by one archive). */
export const MESSAGE_COLUMNS = 'id, host, owner_a, owner_b, stanza';
/** The columns of mam_entry and mam_entry_stage, in the order every INSERT gives them. */
export const ENTRY_COLUMNS = 'owner_id, id, with_id, with_resource, nonce';
/**
 * PostgreSQL: a batch's messages and entries as one array per column (ArchiveStore.writePostgres),
 * in one statement: a data-modifying WITH runs to completion whether or not it is referenced.
 */
const PG_UNNEST_INSERT = `WITH messages AS (INSERT INTO mam_message (${MESSAGE_COLUMNS})
    SELECT id, ?, owner_a, owner_b, stanza FROM unnest(?::bigint[], ?::bigint[], ?::bigint[], ?::text[]) AS m (id, owner_a, owner_b, stanza))
  INSERT INTO mam_entry (${ENTRY_COLUMNS})
  SELECT * FROM unnest(?::bigint[], ?::bigint[], ?::bigint[], ?::text[], ?::integer[])`;

/** The interned id of a bare JID, as SQL: NULL (so no row matches) when the JID was never archived. */
const jidId = (db: Knex, jid: string): Knex.Raw => db.raw('(SELECT id FROM mam_jid WHERE jid = ?)', [jid]);

/**
 * Deletes the entries (owner_id, id) of `entries`, and the stored messages among them that no
 * archive holds any longer (the other party's entry gone too, from mam_entry and from the stage);
 * returns how many entries were deleted.
 */
async function deleteEntries(db: Knex, entries: ReadonlyArray<readonly [number, number]>): Promise<number> {
  let deleted = 0;
  for (let i = 0; i < entries.length; i += 400) {
    const chunk = entries.slice(i, i + 400);
    deleted += await db('mam_entry').whereIn(['owner_id', 'id'], chunk as Array<[number, number]>).delete();
    await db('mam_message').whereIn('id', [...new Set(chunk.map(([, id]) => id))])
      .whereNotExists(db('mam_entry').whereRaw('mam_entry.owner_id IN (mam_message.owner_a, mam_message.owner_b)').andWhereRaw('mam_entry.id = mam_message.id').select(db.raw('1')))
      .whereNotExists(db('mam_entry_stage').whereRaw('mam_entry_stage.id = mam_message.id').select(db.raw('1')))
      .delete();
  }
  return deleted;
}

/** Deletes an account's whole archive, in batches so that a large one does not hold the database. */
export async function removeArchive(db: Knex, owner: string): Promise<void> {
  const row = (await db('mam_jid').where('jid', owner).first('id')) as { id: number | string } | undefined;
  if (row === undefined) return;
  const ownerId = Number(row.id);
  await db('mam_entry_stage').where('owner_id', ownerId).delete();
  for (;;) {
    const ids: Array<{ id: number | string }> = await db('mam_entry').where('owner_id', ownerId).orderBy('id').limit(1000).select('id');
    await deleteEntries(db, ids.map((r) => [ownerId, Number(r.id)] as const));
    if (ids.length < 1000) return;
  }
}

/**
 * 002: owners and peers interned (narrower rows in both indexes), existing rows carried over
 * with their ids; and the writer slots that keep ids unique across processes.
 */
async function internJids(db: Knex): Promise<void> {
  const postgres = (db.client as { config: { client: string } }).config.client === 'pg';
  await db.schema.createTable('mam_jid', (t) => {
    t.specificType('id', postgres ? 'bigserial' : 'integer').primary();
    t.string('jid', 3071).notNullable().unique('mam_jid_by_jid');
  });
  await db.schema.createTable('mam_writers', (t) => {
    t.integer('slot').primary();
    t.string('holder', 64).notNullable();
    /** ms since the epoch: last renewed */
    t.bigInteger('seen').notNullable();
  });
  await db.raw('INSERT INTO mam_jid (jid) SELECT owner FROM mam_archive UNION SELECT with_bare FROM mam_archive');
  await db.schema.renameTable('mam_archive', 'mam_archive_001');
  if (postgres) await db.raw('ALTER TABLE mam_archive_001 RENAME CONSTRAINT mam_archive_pkey TO mam_archive_001_pkey');
  // PostgreSQL renames the old indexes with their table's name kept: free the names for the new ones
  await db.schema.alterTable('mam_archive_001', (t) => {
    t.dropIndex([], 'mam_archive_by_owner');
    t.dropIndex([], 'mam_archive_by_owner_with');
  });
  await db.schema.createTable('mam_archive', (t) => {
    // SQLite: an INTEGER primary key is the rowid itself, so the table is ordered by it
    t.specificType('id', postgres ? 'bigint' : 'integer').primary();
    t.string('host', 255).notNullable();
    /** The archive (mam_jid): an account, or a room. */
    t.bigInteger('owner_id').notNullable();
    /** The other party's bare JID (mam_jid; for a room: the room, and the nick in with_resource). */
    t.bigInteger('with_id').notNullable();
    t.string('with_resource', 1023).notNullable().defaultTo('');
    /** Random part of the public id, so that ids cannot be guessed from the time alone (25 bits; 36^4 before). */
    t.integer('nonce').notNullable();
    /** The message as it was sent, serialised once, with xmlns='jabber:client'. */
    t.text('stanza').notNullable();
  });
  await db.raw(`INSERT INTO mam_archive (id, host, owner_id, with_id, with_resource, nonce, stanza)
    SELECT a.id, a.host, o.id, w.id, a.with_resource, a.nonce, a.stanza FROM mam_archive_001 a
    JOIN mam_jid o ON o.jid = a.owner JOIN mam_jid w ON w.jid = a.with_bare`);
  await db.schema.dropTable('mam_archive_001');
  // built after the copy: one sort each instead of a million index inserts
  await db.schema.alterTable('mam_archive', (t) => {
    t.index(['owner_id', 'id'], 'mam_archive_by_owner');
    t.index(['owner_id', 'with_id', 'id'], 'mam_archive_by_owner_with');
  });
}

/**
 * 004: a message stored once (mam_message) and an entry per archive that holds it (mam_entry):
 * both parties' entries of a message share its stanza, where mam_archive kept it in each party's
 * row. Measured with SQLite alone (`npm run bench:archive-sqlite -- --layout`, 400 owners): 38 ->
 * 28 µs of CPU per message in commits of 12 messages through the stage, 21 -> 15 in batches of
 * 17,000, and 706 -> 392 bytes of database per message. Rows already archived become a message
 * each, held by their one archive, with their ids and nonces: every public id stays valid.
 */
async function storeStanzasOnce(db: Knex): Promise<void> {
  const postgres = (db.client as { config: { client: string } }).config.client === 'pg';
  const idType = postgres ? 'bigint' : 'integer';
  // what a stopped process left staged, into the archive first
  await db.raw('INSERT INTO mam_archive SELECT * FROM mam_stage');
  await db.schema.dropTable('mam_stage');
  await db.schema.createTable('mam_message', (t) => {
    // SQLite: an INTEGER primary key is the rowid itself, so the table is ordered by it
    t.specificType('id', idType).primary();
    t.string('host', 255).notNullable();
    /** The archives (mam_jid) holding it: one, or both parties of a chat (owner_b 0: one). */
    t.bigInteger('owner_a').notNullable();
    t.bigInteger('owner_b').notNullable().defaultTo(0);
    /** The message as it was sent, serialised once, with xmlns='jabber:client'. */
    t.text('stanza').notNullable();
  });
  // SQLite: WITHOUT ROWID, so that the table is its primary key's B-tree (knex cannot say so)
  const entryTable = (name: string, key: string) => db.raw(`CREATE TABLE ${name} (
    owner_id ${idType} NOT NULL, id ${idType} NOT NULL, with_id ${idType} NOT NULL,
    with_resource varchar(1023) NOT NULL DEFAULT '', nonce integer NOT NULL,
    CONSTRAINT ${name}_pkey PRIMARY KEY (${key}))${postgres ? '' : ' WITHOUT ROWID'}`);
  /** The archive (owner_id, an account or a room) holding message id; with_id: the other party (for a room: the room, and the nick in with_resource). */
  await entryTable('mam_entry', 'owner_id, id');
  /** SQLite's writer commits entries here first (STAGE_ROWS), in id order; PostgreSQL's never. */
  await entryTable('mam_entry_stage', 'id, owner_id');
  await db.raw('INSERT INTO mam_message (id, host, owner_a, owner_b, stanza) SELECT id, host, owner_id, 0, stanza FROM mam_archive');
  await db.raw('INSERT INTO mam_entry (owner_id, id, with_id, with_resource, nonce) SELECT owner_id, id, with_id, with_resource, nonce FROM mam_archive ORDER BY owner_id, id');
  await db.schema.dropTable('mam_archive');
  // built after the copy: one sort instead of an insert per row
  await db.raw('CREATE INDEX mam_entry_by_owner_with ON mam_entry (owner_id, with_id, id)');
}

export const archiveMigrations: Migration[] = [
  {
    name: '001-create-archive',
    async up(db) {
      const postgres = (db.client as { config: { client: string } }).config.client === 'pg';
      await db.schema.createTable('mam_archive', (t) => {
        // SQLite: an INTEGER primary key is the rowid itself, so the table is ordered by it
        t.specificType('id', postgres ? 'bigint' : 'integer').primary();
        t.string('host', 255).notNullable();
        /** The archive's bare JID: an account, or a room. */
        t.string('owner', 3071).notNullable();
        /** The other party's bare JID (for a room: the sender's occupant JID). */
        t.string('with_bare', 3071).notNullable();
        t.string('with_resource', 1023).notNullable().defaultTo('');
        /** Random part of the public id, so that ids cannot be guessed from the time alone (25 bits; 36^4 before). */
        t.integer('nonce').notNullable();
        /** The message as it was sent, serialised once, with xmlns='jabber:client'. */
        t.text('stanza').notNullable();
        t.index(['owner', 'id'], 'mam_archive_by_owner');
        t.index(['owner', 'with_bare', 'id'], 'mam_archive_by_owner_with');
      });
      // XEP-0313 §7 preferences; an account without a row has the server's default
      await db.schema.createTable('mam_prefs', (t) => {
        t.string('host', 255).notNullable();
        t.string('username', 1023).notNullable();
        t.string('default_policy', 16).notNullable();
        /** JSON arrays of JIDs */
        t.text('always').notNullable();
        t.text('never').notNullable();
        t.primary(['host', 'username']);
      });
      // per-account retention, set by the admin (`xmppd user retention`)
      await db.schema.createTable('mam_retention', (t) => {
        t.string('host', 255).notNullable();
        t.string('username', 1023).notNullable();
        /** seconds; null: kept forever */
        t.bigInteger('expires_after').nullable();
        t.primary(['host', 'username']);
      });
    },
  },
  { name: '002-intern-jids', up: internJids },
  {
    // SQLite's archive writer commits rows here first (STAGE_ROWS); PostgreSQL's writes straight
    // into mam_archive, and this table stays empty there. mam_archive's columns as 002 made them,
    // written out again rather than shared: a migration is not changed once released
    name: '003-archive-stage',
    async up(db) {
      const postgres = (db.client as { config: { client: string } }).config.client === 'pg';
      await db.schema.createTable('mam_stage', (t) => {
        t.specificType('id', postgres ? 'bigint' : 'integer').primary();
        t.string('host', 255).notNullable();
        t.bigInteger('owner_id').notNullable();
        t.bigInteger('with_id').notNullable();
        t.string('with_resource', 1023).notNullable().defaultTo('');
        t.integer('nonce').notNullable();
        t.text('stanza').notNullable();
      });
    },
  },
  { name: '004-stored-once', up: storeStanzasOnce },
];

export interface ArchiveRow {
  id: number;
  nonce: number;
  stanza: string;
}

export interface NewArchiveRow {
  owner: string;
  withBare: string;
  withResource: string;
  stanza: string;
  /** When its row cannot be written, `stanza` is handed back to `onError` (its sender is told). */
  tellSender?: boolean;
  /**
   * The id of the same stanza archived before for the other party of the chat: when that message
   * is in the batch still being gathered, this entry shares its id and its stored stanza;
   * otherwise (written already) the stanza is stored again under an id of its own.
   */
  sameMessage?: number | undefined;
}

/** What a query selects (XEP-0313 §4.1), already resolved to id bounds. */
export interface ArchiveFilter {
  owner: string;
  withBare?: string | undefined;
  withResource?: string | undefined;
  /** inclusive bounds on the id */
  minId?: number | undefined;
  maxId?: number | undefined;
  /** only these ids (XEP-0313 §4.1.4 `ids`) */
  ids?: number[] | undefined;
}

export interface Page {
  rows: ArchiveRow[];
  /** No more rows beyond this page in the direction of the query. */
  complete: boolean;
}

/** Digits in ASCII order, so that fixed-width ids sort as strings the way they sort as numbers. */
const DIGITS = '0123456789abcdefghijklmnopqrstuv';
const DIGIT_CODES = Uint8Array.from(DIGITS, (c) => c.charCodeAt(0));
const DIGIT_VALUES = new Int8Array(128).fill(-1);
for (let i = 0; i < DIGITS.length; i++) DIGIT_VALUES[DIGITS.charCodeAt(i)] = i;
const LOW_BITS = 2 ** 30;

/**
 * `1k824dbdc0000005`: the id in 11 base-32 digits (fixed width until the year 2248, so the
 * strings sort like the ids), then the nonce in 5. One string built from its character codes,
 * a tenth of what Number#toString(36) costs on the hot path.
 */
export function publicId(id: number, nonce: number): string {
  const high = Math.floor(id / LOW_BITS); // < 2^23 for a safe integer
  const low = id - high * LOW_BITS;
  const d = DIGIT_CODES;
  return String.fromCharCode(
    d[(high >>> 20) & 31]!, d[(high >>> 15) & 31]!, d[(high >>> 10) & 31]!, d[(high >>> 5) & 31]!, d[high & 31]!,
    d[low >>> 25]!, d[(low >>> 20) & 31]!, d[(low >>> 15) & 31]!, d[(low >>> 10) & 31]!, d[(low >>> 5) & 31]!, d[low & 31]!,
    d[(nonce >>> 20) & 31]!, d[(nonce >>> 15) & 31]!, d[(nonce >>> 10) & 31]!, d[(nonce >>> 5) & 31]!, d[nonce & 31]!,
  );
}

/** The value of `digits` base-32 digits of `text` from `start`, or -1. */
function base32(text: string, start: number, digits: number): number {
  let value = 0;
  for (let i = start; i < start + digits; i++) {
    const code = text.charCodeAt(i);
    const digit = code < 128 ? DIGIT_VALUES[code]! : -1;
    if (digit < 0) return -1;
    value = value * 32 + digit;
  }
  return value;
}

/** The row id and nonce of a public id (this format or the base-36 one before it), or null when it cannot be one. */
export function parsePublicId(text: string): { id: number; nonce: number } | null {
  if (text.length === ID_DIGITS + NONCE_DIGITS) {
    const high = base32(text, 0, 5);
    const low = base32(text, 5, ID_DIGITS - 5);
    const nonce = base32(text, ID_DIGITS, NONCE_DIGITS);
    if (high < 0 || low < 0 || nonce < 0) return null;
    const id = high * LOW_BITS + low;
    return Number.isSafeInteger(id) ? { id, nonce } : null;
  }
  if (!/^[0-9a-z]{5,14}$/.test(text)) return null;
  const id = Number.parseInt(text.slice(0, -LEGACY_NONCE_LENGTH), 36);
  const nonce = Number.parseInt(text.slice(-LEGACY_NONCE_LENGTH), 36);
  return Number.isSafeInteger(id) ? { id, nonce } : null;
}

export const idToTime = (id: number): number => Math.floor(id / IDS_PER_MS);

/** A random nonce, from the process's pool of random bytes (one system call per thousand). */
const nextNonce = (): number => randomUint32() >>> (32 - NONCE_BITS);

/** Whether SQLite's own path writes a batch of `entries` entries into the stage rather than into mam_entry. */
const throughStage = (entries: number): boolean => entries < STAGE_ROWS;
/**
 * The move of the stage into mam_entry: every host's staged entries, whichever host's store runs
 * it (an entry is the same entry whoever moves it, and a store whose entries another has moved
 * moves an empty stage next), in mam_entry's order. A DELETE without a WHERE clause is SQLite's
 * truncate optimisation: the stage's pages are freed whole, where `WHERE host = ?` rewrote each
 * one into the WAL as it took its rows out (measured alone, commits of 12 messages, moves of
 * 8,000 rows, six alternated runs: median 33.3 against 38.2 µs of CPU per message;
 * sqlite.org/lang_delete.html, "The Truncate Optimization").
 */
export const MOVE_STAGE = `BEGIN IMMEDIATE;INSERT INTO mam_entry (${ENTRY_COLUMNS}) SELECT ${ENTRY_COLUMNS} FROM mam_entry_stage ORDER BY owner_id, id;DELETE FROM mam_entry_stage;COMMIT;`;
const rowsStaged = async (db: Knex): Promise<number> => Number((await db('mam_entry_stage').count({ n: '*' }))[0]!.n);

/** `text` as an SQL string literal (ArchiveStore.append has replaced any NUL). */
const sqlText = (text: string): string => "'" + (text.includes("'") ? text.replaceAll("'", "''") : text) + "'";

/**
 * NUL as U+FFFD. XML cannot carry a NUL and the parser refuses one, but a stanza built from other
 * input must not fail a whole batch, everyone's messages with it: PostgreSQL refuses NUL in text,
 * and in SQLite's SQL text it would end the statement.
 */
const withoutNul = (text: string): string => (text.includes('\0') ? text.replaceAll('\0', '\ufffd') : text);

/** node-sqlite3's connection, as far as the archive uses it. */
interface SqliteConnection {
  exec(sql: string, done: (err: Error | null) => void): void;
}
/** knex's client: its pool hands out the one SQLite connection. */
interface PoolClient {
  config: { client: string };
  acquireConnection(): Promise<unknown>;
  releaseConnection(connection: unknown): unknown;
}

const exec = (connection: SqliteConnection, sql: string) =>
  new Promise<void>((resolve, reject) => connection.exec(sql, (err) => (err ? reject(err) : resolve())));

/** A `BEGIN ... COMMIT` text in one sqlite3_exec call, rolled back when any of it fails. */
async function execTransaction(connection: SqliteConnection, sql: string): Promise<void> {
  try {
    await exec(connection, sql);
  } catch (err) {
    // (a constraint error under INSERT OR ROLLBACK has rolled it back already: nothing to end then)
    await exec(connection, 'ROLLBACK').catch(() => {});
    throw err;
  }
}

/**
 * The messages and entries of one event-loop turn (or more, while the last batch was written),
 * written in one transaction; `written` settles for all of them. Values are all strings, flat:
 * node-sqlite3 bound a number only after looking up the global RegExp constructor (~0.3 µs each),
 * and PostgreSQL casts integer text; the JIDs are replaced by their interned ids at write time.
 */
interface Batch {
  /** id, owner_a, owner_b ('' until a second archive holds it), stanza of each message. */
  messages: string[];
  /** owner, id, with_bare, with_resource, nonce of each entry. */
  entries: string[];
  /** The characters of its stored stanzas and its resources (BATCH_MAX_CHARS). */
  chars: number;
  /** The id of each message, in the order appended (increasing: NewArchiveRow.sameMessage finds it by binary search). */
  ids: number[];
  /**
   * The messages whose senders are told of a failed write (NewArchiveRow.tellSender), by index.
   * Not the messages themselves: kept until the commit, they would outlive the young generation
   * (tens of thousands at a high rate) and be copied and promoted; their XML is kept anyway.
   */
  tellSenders: number[];
  /**
   * The highest id given to each archive's entries in this batch. An entry shares its message's
   * id only above it: an archive is read in id order, which must be the order its entries came in
   * (the other party's entry can come late, after an account lookup, when earlier messages of the
   * chat were written already and their entries took new ids); and an archive that already holds
   * the message (its sender's) has that id or a higher one.
   */
  lastIdOf: Map<string, number>;
  written: Promise<boolean>;
  settle(stored: boolean): void;
}

/** The index of message `id` among a batch's `ids` (increasing), or -1. */
function messageIndex(ids: readonly number[], id: number): number {
  let low = 0;
  let high = ids.length - 1;
  while (low <= high) {
    const middle = (low + high) >>> 1;
    const found = ids[middle]!;
    if (found === id) return middle;
    if (found < id) low = middle + 1;
    else high = middle - 1;
  }
  return -1;
}

const PER_MESSAGE = 4;
const PER_ENTRY = 5;
const entryCount = (batch: Batch): number => batch.entries.length / PER_ENTRY;
const OWNER_B = 2;
const STANZA = 3;

/**
 * The last id handed out in this process, shared by every host's store: the hosts write into one
 * table, so two of them archiving in the same millisecond must not take the same id. Other
 * processes (a cluster on one PostgreSQL) use other slots.
 */
let lastMs = 0;
let lastCounter = IDS_PER_SLOT - 1;

/** A process's claim on a writer slot, per database, shared by its hosts' stores. */
interface SlotClaim {
  slot: Promise<number>;
  users: number;
  holder: string;
  timer: NodeJS.Timeout | null;
}
const claims = new WeakMap<Knex, SlotClaim>();

/**
 * Claims a free slot in mam_writers (or one whose holder stopped renewing it: a process killed
 * without releasing it) and renews it while the store is open. SQLite: slot 0, no claim — one
 * process writes an SQLite archive (a cluster needs PostgreSQL).
 */
async function claimSlot(db: Knex, claim: SlotClaim): Promise<number> {
  if ((db.client as PoolClient).config.client === 'sqlite3') return 0;
  for (let attempt = 0; attempt < 3; attempt++) {
    const now = Date.now();
    const taken: Array<{ slot: number; holder: string; seen: number | string }> = await db('mam_writers').select('slot', 'holder', 'seen');
    const used = new Set(taken.map((r) => r.slot));
    for (let slot = 0; slot < WRITER_SLOTS; slot++) {
      if (used.has(slot)) continue;
      const inserted: unknown[] = await db('mam_writers').insert({ slot, holder: claim.holder, seen: now }).onConflict('slot').ignore().returning('slot');
      if (inserted.length === 1) return slot;
    }
    const stale = taken.filter((r) => now - Number(r.seen) > SLOT_STALE_MS).sort((a, b) => Number(a.seen) - Number(b.seen));
    for (const row of stale) {
      // compare-and-swap on the old claim: two processes cannot both take it
      const updated = await db('mam_writers').where({ slot: row.slot, holder: row.holder, seen: row.seen }).update({ holder: claim.holder, seen: now });
      if (updated === 1) return row.slot;
    }
  }
  throw new Error(`more than ${WRITER_SLOTS} processes write this archive (mam_writers): archive ids could collide`);
}

function acquireSlot(db: Knex): SlotClaim {
  let claim = claims.get(db);
  if (claim === undefined) {
    const fresh: SlotClaim = { slot: Promise.resolve(0), users: 0, holder: randomUUID(), timer: null };
    fresh.slot = claimSlot(db, fresh).then((slot) => {
      if ((db.client as PoolClient).config.client !== 'sqlite3') {
        fresh.timer = setInterval(() => {
          db('mam_writers').where({ slot, holder: fresh.holder }).update({ seen: Date.now() }).catch(() => {});
        }, SLOT_RENEW_MS);
        fresh.timer.unref();
      }
      return slot;
    });
    claims.set(db, (claim = fresh));
  }
  claim.users++;
  return claim;
}

async function releaseSlot(db: Knex): Promise<void> {
  const claim = claims.get(db);
  if (claim === undefined || --claim.users > 0) return;
  claims.delete(db);
  if (claim.timer !== null) clearInterval(claim.timer);
  if ((db.client as PoolClient).config.client === 'sqlite3') return;
  const slot = await claim.slot.catch(() => null);
  if (slot !== null) await db('mam_writers').where({ slot, holder: claim.holder }).delete().catch(() => {});
}

/**
 * Bare JIDs interned as integers (mam_jid), cached per database. Rows are added with
 * ON CONFLICT DO NOTHING and read back, so processes sharing one database agree on the numbers.
 */
class JidIds {
  private static readonly caches = new WeakMap<Knex, Map<string, number>>();
  private readonly cache: Map<string, number>;

  constructor(private readonly db: Knex) {
    let cache = JidIds.caches.get(db);
    if (cache === undefined) JidIds.caches.set(db, (cache = new Map()));
    this.cache = cache;
  }

  get(jid: string): number | undefined {
    return this.cache.get(jid);
  }

  /** Makes sure every JID of `jids` has its number in the cache. */
  async intern(jids: Iterable<string>): Promise<void> {
    const missing = new Set<string>();
    for (const jid of jids) if (!this.cache.has(jid)) missing.add(jid);
    if (missing.size === 0) return;
    if (this.cache.size + missing.size > JID_CACHE_MAX) this.cache.clear();
    const list = [...missing];
    for (let i = 0; i < list.length; i += 500) {
      const chunk = list.slice(i, i + 500);
      await this.read(chunk);
      const absent = chunk.filter((jid) => !this.cache.has(jid));
      if (absent.length === 0) continue;
      await this.db('mam_jid').insert(absent.map((jid) => ({ jid }))).onConflict('jid').ignore();
      await this.read(absent);
    }
  }

  private async read(jids: string[]): Promise<void> {
    const rows: Array<{ id: number | string; jid: string }> = await this.db('mam_jid').whereIn('jid', jids).select('id', 'jid');
    for (const row of rows) this.cache.set(row.jid, Number(row.id));
  }
}

export class ArchiveStore {
  /** The batch being gathered, and those closed at BATCH_MAX_CHARS and waiting to be written, oldest first. */
  private batch: Batch | null = null;
  private readonly closedBatches: Batch[] = [];
  private readonly sqlite: boolean;
  /** Whether batches are written by the store itself on node-sqlite3's connection (SQLite: batchSql), not through knex. */
  private readonly direct: boolean;
  /** The write under way, or the move of the stage: one at a time per store. */
  private writing: Promise<void> | null = null;
  /** SQLite: entries this store committed into mam_entry_stage since its last move (another host's store may have moved them: MOVE_STAGE). */
  private staged = 0;
  /** A move of the stage asked for and not yet begun: it runs before the next batch is written. */
  private stageMove: { done: Promise<boolean>; resolve: (moved: boolean) => void } | null = null;
  private stageTimer: NodeJS.Timeout | null = null;
  /** The wait of a batch started on an idle writer (COMMIT_DELAY_MS). */
  private commitTimer: NodeJS.Timeout | null = null;
  private readonly batchMaxChars: number;
  private readonly commitDelayMs: number;
  /** A batch begun within this long (ms) of the one before waits for company (COMMIT_DELAY_MS); tests set it apart. */
  private readonly companyWindowMs: number;
  /** When the last batch began (Date.now()). */
  private lastBatchBegan = -Infinity;
  private readonly jids: JidIds;
  /** SQLite: the host is the same in every row of this store, written into the SQL rather than bound each time. */
  private readonly hostLiteral: string;
  private slotHeld = false;
  /**
   * This store's writer slot in its database. Kept per store, not per process: two cluster nodes
   * run in one process (the tests do) hold different slots of one database.
   */
  private writerSlot = 0;

  /** `onError` hears of a batch that could not be written (its `written` resolves to false). */
  constructor(
    private readonly db: Knex,
    private readonly host: string,
    /** `stanzas`: the XML of the rows whose senders are to be told (NewArchiveRow.tellSender), each once */
    private readonly onError: (err: unknown, rows: number, stanzas: readonly string[]) => void = () => {},
    options: {
      /** false: write through knex on SQLite too, as on PostgreSQL (imports, and tests of that path) */
      sqliteDirect?: boolean;
      /** BATCH_MAX_CHARS, COMMIT_DELAY_MS and the window of company (the delay), other in tests */
      batchMaxChars?: number;
      commitDelayMs?: number;
      companyWindowMs?: number;
    } = {},
  ) {
    this.batchMaxChars = options.batchMaxChars ?? BATCH_MAX_CHARS;
    this.commitDelayMs = options.commitDelayMs ?? COMMIT_DELAY_MS;
    this.companyWindowMs = options.companyWindowMs ?? this.commitDelayMs;
    this.sqlite = (db.client as PoolClient).config.client === 'sqlite3';
    this.direct = this.sqlite && (options.sqliteDirect ?? true);
    this.hostLiteral = sqlText(host);
    this.jids = new JidIds(db);
  }

  /** Claims this process's writer slot and reads the highest id, so that ids stay increasing across restarts. */
  async init(): Promise<void> {
    this.slotHeld = true;
    this.writerSlot = await acquireSlot(this.db).slot;
    // every entry's id is its message's: mam_message holds the highest
    const highest = Number((await this.db('mam_message').max<{ id: number | string | null }>({ id: 'id' }).first())?.id ?? 0);
    const ms = Math.floor(highest / IDS_PER_MS);
    if (ms >= lastMs) {
      lastMs = ms;
      lastCounter = IDS_PER_SLOT - 1; // the next id is in the next millisecond: above every id written
    }
    if (this.direct) {
      // entries a stopped process had committed and not moved yet
      // (any host's: a host since removed from the configuration would leave its entries there for good)
      this.staged = await rowsStaged(this.db);
      if (this.staged > 0) await this.moveStage();
    }
  }

  /** The next id at `time` (ms): increasing even when the clock or a burst says otherwise. */
  nextId(time = Date.now()): number {
    if (time > lastMs) {
      lastMs = time;
      lastCounter = 0;
    } else if (++lastCounter === IDS_PER_SLOT) {
      lastMs++;
      lastCounter = 0;
    }
    return lastMs * IDS_PER_MS + this.writerSlot * IDS_PER_SLOT + lastCounter;
  }

  /**
   * Archives a message for `row.owner` under an id taken now (or its other party's, when it
   * shares their stored stanza: NewArchiveRow.sameMessage). `written` resolves once it is on disk
   * (true) or could not be written (false). Messages archived in the same event-loop turn share
   * one transaction and one promise; while a batch is being written the next one grows (group
   * commit), so a burst of messages costs a few large writes, never a queue of small ones waiting
   * for the connection.
   */
  append(row: NewArchiveRow, id?: number): { id: number; nonce: number; written: Promise<boolean> } {
    const nonce = nextNonce();
    const batch = this.batch ?? this.newBatch();
    const messages = batch.messages;
    const sameMessage = row.sameMessage;
    let index = sameMessage === undefined || sameMessage <= (batch.lastIdOf.get(row.owner) ?? 0) ? -1 : messageIndex(batch.ids, sameMessage);
    const at = index * PER_MESSAGE;
    if (index >= 0 && messages[at + OWNER_B] === '' && messages[at + STANZA] === row.stanza) {
      messages[at + OWNER_B] = row.owner; // the other party's entry: the stanza stored once
    } else {
      index = batch.ids.push(id ?? this.nextId()) - 1;
      messages.push(String(batch.ids[index]), row.owner, '', withoutNul(row.stanza));
      batch.chars += row.stanza.length;
      // (the rest of this event-loop turn's messages still join it)
      if (batch.ids.length === COMMIT_AT_ONCE && this.writing === null) setImmediate(this.writeNext);
    }
    batch.entries.push(row.owner, messages[index * PER_MESSAGE]!, row.withBare, withoutNul(row.withResource), String(nonce));
    batch.lastIdOf.set(row.owner, batch.ids[index]!);
    if (row.tellSender === true) batch.tellSenders.push(index);
    batch.chars += row.withResource.length;
    if (batch.chars >= this.batchMaxChars) {
      this.closedBatches.push(batch);
      this.batch = null;
    }
    return { id: batch.ids[index]!, nonce, written: batch.written };
  }

  private newBatch(): Batch {
    let settle!: (stored: boolean) => void;
    const written = new Promise<boolean>((resolve) => (settle = resolve));
    const batch: Batch = { messages: [], entries: [], chars: 0, ids: [], tellSenders: [], lastIdOf: new Map(), written, settle };
    this.batch = batch;
    // written when the write under way is done (a high rate); else COMMIT_DELAY_MS from now, the
    // rows of the next few messages joining it, when company is likely (the last batch began
    // within the delay), or in the next turn (the rest of this turn's messages still join it)
    const now = Date.now();
    if (this.writing === null) {
      if (now - this.lastBatchBegan < this.companyWindowMs) this.commitTimer = setTimeout(this.writeNext, this.commitDelayMs);
      else setImmediate(this.writeNext);
    }
    this.lastBatchBegan = now;
    return batch;
  }

  /** Moves the stage if asked, or writes the batch that has grown, if any; and then the next. */
  private readonly writeNext = (): void => {
    // (whatever is written now, the batch being gathered is taken by this call or the one after it)
    if (this.commitTimer !== null) {
      clearTimeout(this.commitTimer);
      this.commitTimer = null;
    }
    if (this.writing !== null) return;
    const move = this.stageMove;
    const batch = this.batch;
    let work: Promise<void>;
    if (move !== null) {
      this.stageMove = null;
      work = this.writeStage().then(move.resolve);
    } else if (this.closedBatches.length > 0) {
      work = this.write(this.closedBatches.shift()!);
    } else if (batch !== null) {
      this.batch = null;
      work = this.write(batch);
    } else {
      return;
    }
    this.writing = work.then(() => {
      this.writing = null;
      this.writeNext();
    });
  };

  /**
   * Resolves once the entries staged so far are in mam_entry (true), or their move failed and was
   * reported (false): after the write under way, before the next batch.
   */
  private moveStage(): Promise<boolean> {
    if (this.stageMove !== null) return this.stageMove.done;
    let resolve!: (moved: boolean) => void;
    const done = new Promise<boolean>((settle) => (resolve = settle));
    this.stageMove = { done, resolve };
    this.writeNext(); // (begins it at once when the writer is idle)
    return done;
  }

  /** Counts entries just committed into the stage, and asks for its move when it is due. */
  private stagedRows(entries: number): void {
    this.staged += entries;
    if (this.staged >= STAGE_ROWS) void this.moveStage();
    else if (this.stageTimer === null) {
      this.stageTimer = setTimeout(() => void this.moveStage(), STAGE_MAX_AGE_MS);
      this.stageTimer.unref();
    }
  }

  /** The staged entries into mam_entry, in one transaction (STAGE_ROWS, MOVE_STAGE); whether they are there. */
  private async writeStage(): Promise<boolean> {
    if (this.stageTimer !== null) clearTimeout(this.stageTimer);
    this.stageTimer = null;
    if (this.staged === 0) return true;
    try {
      await this.onConnection((connection) => execTransaction(connection, MOVE_STAGE));
      this.staged = 0;
      return true;
    } catch (err) {
      // the entries are committed in mam_entry_stage: kept, and moved at the next attempt
      this.onError(new Error(`moving ${this.staged} archive entries from mam_entry_stage into mam_entry failed: ${(err as Error).message}`, { cause: err }), 0, []);
      return false;
    }
  }

  private async write(batch: Batch): Promise<void> {
    try {
      await this.internJids(batch);
      await (this.direct ? this.writeSqlite(batch) : this.sqlite ? this.writeKnex(batch) : this.writePostgres(batch));
      if (this.direct && throughStage(entryCount(batch))) this.stagedRows(entryCount(batch));
      batch.settle(true);
    } catch (err) {
      this.onError(err, entryCount(batch), [...new Set(batch.tellSenders.map((message) => batch.messages[message * PER_MESSAGE + STANZA]!))]);
      batch.settle(false);
    }
  }

  /** The JIDs of the batch's messages and entries replaced, in place, by their interned ids (owner_b '' by 0). */
  private async internJids(batch: Batch): Promise<void> {
    const { messages, entries } = batch;
    const jids = new Set<string>();
    for (let i = 0; i < entries.length; i += PER_ENTRY) jids.add(entries[i]!).add(entries[i + 2]!);
    await this.jids.intern(jids);
    const number = (jid: string): string => {
      const interned = this.jids.get(jid);
      if (interned === undefined) throw new Error('a JID of the archive has no number');
      return String(interned);
    };
    for (let i = 0; i < entries.length; i += PER_ENTRY) {
      entries[i] = number(entries[i]!);
      entries[i + 2] = number(entries[i + 2]!);
    }
    for (let i = 0; i < messages.length; i += PER_MESSAGE) {
      messages[i + 1] = number(messages[i + 1]!);
      messages[i + OWNER_B] = messages[i + OWNER_B] === '' ? '0' : number(messages[i + OWNER_B]!);
    }
  }

  /**
   * PostgreSQL: the whole batch in one statement over unnest() of an array per column, whatever
   * its size: one round trip. (Multi-row VALUES lists are limited to 65,535 bound values, and each
   * further statement of a batch waited for a round trip and an event-loop turn, long under load,
   * before the next could start.)
   */
  private async writePostgres(batch: Batch): Promise<void> {
    const columns = (values: readonly string[], width: number): string[][] => {
      const lists: string[][] = Array.from({ length: width }, () => []);
      for (let i = 0; i < values.length; i += width) for (let c = 0; c < width; c++) lists[c]!.push(values[i + c]!);
      return lists;
    };
    await this.db.raw(PG_UNNEST_INSERT, [this.host, ...columns(batch.messages, PER_MESSAGE), ...columns(batch.entries, PER_ENTRY)]);
  }

  /** SQLite through knex (imports, tests of that path): multi-row INSERTs in one transaction, entries straight into mam_entry. */
  private async writeKnex(batch: Batch): Promise<void> {
    const { messages, entries } = batch;
    const messageRows: Array<Record<string, string>> = [];
    for (let m = 0; m < messages.length; m += PER_MESSAGE) {
      messageRows.push({ id: messages[m], host: this.host, owner_a: messages[m + 1], owner_b: messages[m + OWNER_B], stanza: messages[m + STANZA] });
    }
    const entryRows: Array<Record<string, string>> = [];
    for (let e = 0; e < entries.length; e += PER_ENTRY) {
      entryRows.push({ owner_id: entries[e], id: entries[e + 1], with_id: entries[e + 2], with_resource: entries[e + 3], nonce: entries[e + 4] });
    }
    await this.db.transaction(async (trx) => {
      await this.db.batchInsert('mam_message', messageRows, INSERT_CHUNK).transacting(trx);
      await this.db.batchInsert('mam_entry', entryRows, INSERT_CHUNK).transacting(trx);
    });
  }

  /**
   * SQLite: the batch as one transaction in one SQL text (batchSql), for one call of
   * sqlite3_exec; its entries into the stage, or into mam_entry when they are as many as a move.
   * The commit is in the WAL, as a knex transaction's would be, before `written` resolves.
   */
  private writeSqlite(batch: Batch): Promise<void> {
    return this.onConnection((connection) => execTransaction(connection, this.batchSql(batch)));
  }

  /**
   * `work` on the pooled SQLite connection, taken from knex's pool for its time (so that it never
   * runs inside another caller's transaction).
   */
  private async onConnection(work: (connection: SqliteConnection) => Promise<void>): Promise<void> {
    const client = this.db.client as PoolClient;
    const connection = (await client.acquireConnection()) as SqliteConnection;
    try {
      await work(connection);
    } finally {
      client.releaseConnection(connection);
    }
  }

  /**
   * A batch as one transaction in one SQL text, its values written in as literals, for one call
   * of sqlite3_exec: node-sqlite3 starts each statement only from the event loop once the last is
   * done, and under load a loop turn takes tens of milliseconds; a 36,000-row batch in 1,000-row
   * statements took 880 ms, of which SQLite needed a fifth, and every sender's acknowledgement
   * waited. Parsing the literals costs SQLite what binding them does (measured: 21.7–23.1 µs per
   * row in all, either way), and the event loop less: binding copied each value on it (at 12
   * messages per commit, 5.0 against 7.3-7.9 µs per message; a batch of one message costs ~8 µs
   * more in all, SQLite compiling each text). The integer columns are our own digits; the texts
   * are quoted, a quote doubled (SQL's only escape; NUL is replaced by append). `INSERT OR
   * ROLLBACK`: a multi-row INSERT inside a transaction otherwise keeps a statement journal (a
   * temporary file) to undo its own rows alone on a constraint error, a write for each page it
   * touches, which was half of SQLite's work per archived message (sqlite.org/tempfiles.html
   * §2.5); a batch fails as a whole anyway.
   */
  private batchSql(batch: Batch): string {
    const { messages, entries } = batch;
    let sql = 'BEGIN IMMEDIATE;';
    const rows = (values: readonly string[], width: number, into: string, row: (i: number) => string) => {
      const perInsert = LARGE_INSERT * width;
      for (let first = 0; first < values.length; first += perInsert) {
        sql += 'INSERT OR ROLLBACK INTO ' + into + ' VALUES ';
        const end = Math.min(values.length, first + perInsert);
        for (let i = first; i < end; i += width) sql += (i === first ? '(' : ',(') + row(i) + ')';
        sql += ';';
      }
    };
    rows(messages, PER_MESSAGE, `mam_message (${MESSAGE_COLUMNS})`, (i) =>
      messages[i] + ',' + this.hostLiteral + ',' + messages[i + 1] + ',' + messages[i + OWNER_B] + ',' + sqlText(messages[i + STANZA]!));
    rows(entries, PER_ENTRY, `${throughStage(entryCount(batch)) ? 'mam_entry_stage' : 'mam_entry'} (${ENTRY_COLUMNS})`, (i) =>
      entries[i] + ',' + entries[i + 1] + ',' + entries[i + 2] + ',' + sqlText(entries[i + 3]!) + ',' + entries[i + 4]);
    return sql + 'COMMIT;';
  }

  /** Writes what is left and lets go of the writer slot (the statements go with the connection). */
  async close(): Promise<void> {
    // what was archived before the streams closed is written first, without waiting out the delay
    while (this.writing !== null || this.batch !== null || this.closedBatches.length > 0) {
      this.writeNext();
      await (this.writing ?? new Promise((resolve) => setImmediate(resolve)));
    }
    if (this.staged > 0) await this.moveStage();
    if (this.slotHeld) {
      this.slotHeld = false;
      await releaseSlot(this.db);
    }
  }

  /**
   * Settles once what was archived so far is written: a query waits for it, so that it sees every
   * message archived before it was asked (a client that received a message finds it there).
   * Rejects when staged rows could not be moved: a query would miss the newest messages, and
   * answers an error rather than an archive that looks complete.
   */
  async written(): Promise<void> {
    // batches are written in order: the newest settles last
    const newest = this.batch ?? this.closedBatches[this.closedBatches.length - 1];
    if (newest !== undefined) await newest.written;
    else if (this.writing !== null) await this.writing;
    if (this.staged > 0 && !(await this.moveStage())) throw new Error('the archive\'s newest messages could not be moved into it (the log says why)');
  }

  /**
   * A message brought by an import (`xmppd import`), archived at the time it was first archived:
   * its id is the first free one of that millisecond, so it sorts among the archive by when it
   * was sent and MAM's time filters find it. Written at once through knex (the import's
   * transaction), not batched.
   */
  async importRow(row: Omit<NewArchiveRow, 'message'>, time: number): Promise<void> {
    await this.jids.intern([row.owner, row.withBare]);
    const base = Math.max(0, Math.floor(time)) * IDS_PER_MS;
    const taken: Array<{ id: number | string }> = await this.db('mam_message').where('id', '>=', base).andWhere('id', '<', base + IDS_PER_MS).select('id');
    const used = new Set(taken.map((r) => Number(r.id)));
    let id = base;
    while (used.has(id)) id++;
    if (id >= base + IDS_PER_MS) throw new Error(`more than ${IDS_PER_MS} archived messages in one millisecond (${new Date(time).toISOString()})`);
    const owner = this.jids.get(row.owner)!;
    await this.db('mam_message').insert({ id, host: this.host, owner_a: owner, owner_b: 0, stanza: withoutNul(row.stanza) });
    await this.db('mam_entry').insert({ owner_id: owner, id, with_id: this.jids.get(row.withBare), with_resource: withoutNul(row.withResource), nonce: nextNonce() });
  }

  /** Whether the archive holds this entry (for after-id, before-id and RSM cursors). */
  async exists(owner: string, id: number, nonce: number): Promise<boolean> {
    await this.written();
    const row = await this.db('mam_entry').where('owner_id', jidId(this.db, owner)).andWhere('id', id).first('nonce');
    return row !== undefined && Number((row as { nonce: number }).nonce) === nonce;
  }

  /** The entries a filter selects, as `e`. */
  private filtered(filter: ArchiveFilter): Knex.QueryBuilder {
    // With both ends of an id range SQLite's planner (without ANALYZE statistics) prefers
    // (owner, id) even for one conversation, and then reads the whole archive's entries in the
    // range to find that conversation's: 7 ms instead of 1 on a million messages. Name the index.
    const table = this.db.raw(filter.withBare !== undefined && this.sqlite ? 'mam_entry AS e INDEXED BY mam_entry_by_owner_with' : 'mam_entry AS e');
    const query = this.db.from(table).where('e.owner_id', jidId(this.db, filter.owner));
    if (filter.withBare !== undefined) query.andWhere('e.with_id', jidId(this.db, filter.withBare));
    if (filter.withResource !== undefined) query.andWhere('e.with_resource', filter.withResource);
    if (filter.minId !== undefined) query.andWhere('e.id', '>=', filter.minId);
    if (filter.maxId !== undefined) query.andWhere('e.id', '<=', filter.maxId);
    if (filter.ids !== undefined) query.whereIn('e.id', filter.ids);
    return query;
  }

  /** The SQL of a page query, for tests that check its plan: the entries, each with its stored message. */
  pageQuery(filter: ArchiveFilter, max: number, backwards: boolean): Knex.QueryBuilder {
    return this.filtered(filter).join({ m: 'mam_message' }, 'm.id', 'e.id').orderBy('e.id', backwards ? 'desc' : 'asc').limit(max + 1)
      .select('e.id', 'e.nonce', 'm.stanza');
  }

  /**
   * Up to `max` entries in archive order: the first ones, or with `backwards` the last ones. One
   * more is read to tell whether the page is the last in that direction.
   */
  async page(filter: ArchiveFilter, max: number, backwards: boolean): Promise<Page> {
    await this.written();
    const rows: Array<{ id: number | string; nonce: number | string; stanza: string }> = await this.pageQuery(filter, max, backwards);
    const complete = rows.length <= max;
    const page = rows.slice(0, max).map((r) => ({ id: Number(r.id), nonce: Number(r.nonce), stanza: r.stanza }));
    if (backwards) page.reverse();
    return { rows: page, complete };
  }

  /** How many entries match (RSM <max>0</max>): counted on the index. */
  async count(filter: ArchiveFilter): Promise<number> {
    await this.written();
    const rows: Array<{ n: number | string }> = await this.countQuery(filter);
    return Number(rows[0]?.n ?? 0);
  }

  /** The archive's first and last entries (XEP-0441), or null when it is empty. */
  async ends(owner: string): Promise<{ first: { id: number; nonce: number }; last: { id: number; nonce: number } } | null> {
    await this.written();
    const first = await this.db('mam_entry').where('owner_id', jidId(this.db, owner)).orderBy('id', 'asc').first('id', 'nonce');
    const last = await this.db('mam_entry').where('owner_id', jidId(this.db, owner)).orderBy('id', 'desc').first('id', 'nonce');
    if (first === undefined || last === undefined) return null;
    const row = (r: { id: number | string; nonce: number | string }) => ({ id: Number(r.id), nonce: Number(r.nonce) });
    return { first: row(first as { id: number; nonce: number }), last: row(last as { id: number; nonce: number }) };
  }

  /** Deletes one owner's whole archive (a removed room's). */
  removeOwner(owner: string): Promise<void> {
    return removeArchive(this.db, owner);
  }

  /**
   * Deletes the entries of this host's messages older than `beforeId`, oldest first, from
   * `afterId` on, up to `batch` messages, except those of `keep`'s owners (and a message once no
   * archive holds it); returns the last message id looked at (the next call's `afterId`) and how
   * many entries were deleted, or null when there is nothing older left.
   */
  async expireBatch(afterId: number, beforeId: number, keep: (owner: string) => boolean, batch: number): Promise<{ lastId: number; deleted: number } | null> {
    await this.written();
    const rows: Array<{ id: number | string; host: string; owner_a: number | string; owner_b: number | string; jid_a: string; jid_b: string | null }> =
      await this.expiryScanQuery(afterId, beforeId, batch);
    if (rows.length === 0) return null;
    const doomed: Array<readonly [number, number]> = [];
    for (const r of rows) {
      if (r.host !== this.host) continue;
      if (!keep(r.jid_a)) doomed.push([Number(r.owner_a), Number(r.id)]);
      if (r.jid_b !== null && !keep(r.jid_b)) doomed.push([Number(r.owner_b), Number(r.id)]);
    }
    return { lastId: Number(rows[rows.length - 1]!.id), deleted: await deleteEntries(this.db, doomed) };
  }

  /** Deletes up to `batch` of one archive's entries older than `beforeId` (and the messages no archive holds then); returns how many. */
  async expireOwnerBatch(owner: string, beforeId: number, batch: number): Promise<number> {
    await this.written();
    const rows: Array<{ owner_id: number | string; id: number | string }> = await this.ownerExpiryQuery(owner, beforeId, batch);
    return deleteEntries(this.db, rows.map((r) => [Number(r.owner_id), Number(r.id)] as const));
  }

  /**
   * The sweep's scan of the oldest messages, on mam_message's primary key, with the archives that
   * hold them (public for the query-plan test). Other hosts' messages are passed over by the
   * cursor: one index fewer on every insert.
   */
  expiryScanQuery(afterId: number, beforeId: number, batch: number): Knex.QueryBuilder {
    return this.db({ m: 'mam_message' }).join({ a: 'mam_jid' }, 'a.id', 'm.owner_a').leftJoin({ b: 'mam_jid' }, 'b.id', 'm.owner_b')
      .where('m.id', '>', afterId).andWhere('m.id', '<', beforeId).orderBy('m.id').limit(batch)
      .select('m.id', 'm.host', 'm.owner_a', 'm.owner_b', { jid_a: 'a.jid', jid_b: 'b.jid' });
  }

  /** One archive's oldest entries before `beforeId` (public for the query-plan test). */
  ownerExpiryQuery(owner: string, beforeId: number, batch: number): Knex.QueryBuilder {
    return this.db('mam_entry').where('owner_id', jidId(this.db, owner)).andWhere('id', '<', beforeId).orderBy('id').limit(batch).select('owner_id', 'id');
  }

  /** The count of a filter (public for the query-plan test). */
  countQuery(filter: ArchiveFilter): Knex.QueryBuilder {
    return this.filtered(filter).count({ n: '*' });
  }
}
