// SQLite alone under the archive's writes (src/modules/mam/store.ts): the CPU per message of
// committing both parties' rows into mam_archive, straight or through mam_stage, on a table that
// already holds an archive; the server's database opened as it opens it (its pragmas) with the
// archive's own migrations, and the stage moved with the server's own SQL (MOVE_STAGE). What
// found the stage (docs/benchmarks.md).
//
//   npm run bench:archive-sqlite -- --batch 4 [--stage 8000] [--prefill 200000] [--timed 20000]
//                                   [--pragma 'locking_mode=EXCLUSIVE'] [--layout shared]
//
// --batch: messages per commit (2,000 msgs/s with a 6 ms commit delay: ~12); --stage: rows per
// move from mam_stage into mam_archive (0: rows straight into mam_archive). --layout: the
// server's (`current`: both parties' rows, each with the stanza), or a candidate written here,
// where a message's stanza is stored once and each party's archive has a narrow entry:
// `shared` (entries with their own ids, indexed as mam_archive is) or `clustered` (entries in a
// table ordered by owner, WITHOUT ROWID, sharing their message's id).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { openDatabase, runMigrations } from '../src/storage/db.js';
import { COLUMN_LIST, MOVE_STAGE, archiveMigrations } from '../src/modules/mam/store.js';

const { values: args } = parseArgs({
  options: {
    batch: { type: 'string', default: '4' },
    stage: { type: 'string', default: '0' },
    prefill: { type: 'string', default: '200000' },
    timed: { type: 'string', default: '20000' },
    pragma: { type: 'string', multiple: true, default: [] },
    layout: { type: 'string', default: 'current' },
  },
});
type Layout = 'current' | 'shared' | 'clustered';
const layout = args.layout as Layout;
if (!['current', 'shared', 'clustered'].includes(layout)) throw new Error(`--layout: current, shared or clustered, not ${layout}`);
const batch = Number(args.batch);
const stageRows = Number(args.stage);
const prefill = Number(args.prefill);
const timed = Number(args.timed);
/** Accounts chatting in pairs, as the msg scenario's 200 pairs. */
const OWNERS = 400;
const STANZA = '<message xmlns="jabber:client" from="user123@localhost/res" to="user456@localhost" type="chat" id="abcdef-123456"><body>' +
  'x'.repeat(100) + '</body><request xmlns="urn:xmpp:receipts"/></message>';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-bench-archive-'));
const db = await openDatabase({ driver: 'sqlite', sqliteFile: path.join(dir, 'archive.sqlite') });
await runMigrations(db, 'mam', archiveMigrations);
/** The pooled node-sqlite3 connection itself, as the archive's writer uses it. */
const pool = db.client as { acquireConnection(): Promise<unknown>; releaseConnection(connection: unknown): unknown };
const connection = (await pool.acquireConnection()) as { exec(sql: string, done: (err: Error | null) => void): void };
const exec = (sql: string) => new Promise<void>((resolve, reject) => connection.exec(sql, (err) => (err ? reject(err) : resolve())));

/** The candidates' tables; `entry` columns in the order `commit` gives them. */
const ENTRY = 'id INTEGER NOT NULL, owner_id INTEGER NOT NULL, with_id INTEGER NOT NULL, with_resource TEXT NOT NULL, nonce INTEGER NOT NULL';
const CANDIDATE_TABLES: Record<Exclude<Layout, 'current'>, string> = {
  shared: `CREATE TABLE mam_message (id INTEGER PRIMARY KEY, host TEXT NOT NULL, stanza TEXT NOT NULL);
    CREATE TABLE mam_entry (${ENTRY}, message_id INTEGER NOT NULL, PRIMARY KEY (id));
    CREATE INDEX mam_entry_by_owner ON mam_entry (owner_id, id);
    CREATE INDEX mam_entry_by_owner_with ON mam_entry (owner_id, with_id, id);
    CREATE TABLE mam_entry_stage (${ENTRY}, message_id INTEGER NOT NULL, PRIMARY KEY (id));`,
  // the message knows its entries' owners, for deleting it with the last of them
  clustered: `CREATE TABLE mam_message (id INTEGER PRIMARY KEY, host TEXT NOT NULL, owner_a INTEGER NOT NULL, owner_b INTEGER, stanza TEXT NOT NULL);
    CREATE TABLE mam_entry (${ENTRY}, PRIMARY KEY (owner_id, id)) WITHOUT ROWID;
    CREATE INDEX mam_entry_by_owner_with ON mam_entry (owner_id, with_id, id);
    CREATE TABLE mam_entry_stage (${ENTRY});`,
};
const MOVE = layout === 'current' ? MOVE_STAGE
  : `BEGIN IMMEDIATE;INSERT INTO mam_entry SELECT * FROM mam_entry_stage${layout === 'clustered' ? ' ORDER BY owner_id, id' : ''};DELETE FROM mam_entry_stage;COMMIT;`;

let nextId = 1;
/** One commit of `messages` messages, both parties' rows, as the server's large batches are written (literals). */
function commit(messages: number, staged: boolean): string {
  const rows: string[] = [];
  const stanzas: string[] = [];
  for (let m = 0; m < messages; m++) {
    const a = 1 + Math.floor(Math.random() * OWNERS);
    const b = 1 + ((a + OWNERS / 2 - 1) % OWNERS);
    const message = nextId++;
    if (layout === 'shared') stanzas.push(`(${message},'localhost','${STANZA}')`);
    if (layout === 'clustered') stanzas.push(`(${message},'localhost',${a},${b},'${STANZA}')`);
    for (const [owner, peer] of [[a, b], [b, a]]) {
      const nonce = (message * 7 + owner) & 0xffff;
      if (layout === 'current') rows.push(`(${nextId++},'localhost',${owner},${peer},'res',${nonce},'${STANZA}')`);
      if (layout === 'shared') rows.push(`(${nextId++},${owner},${peer},'res',${nonce},${message})`);
      if (layout === 'clustered') rows.push(`(${message},${owner},${peer},'res',${nonce})`);
    }
  }
  if (layout === 'current') return `BEGIN IMMEDIATE;INSERT OR ROLLBACK INTO ${staged ? 'mam_stage' : 'mam_archive'} (${COLUMN_LIST}) VALUES ${rows.join(',')};COMMIT;`;
  return `BEGIN IMMEDIATE;INSERT OR ROLLBACK INTO mam_message VALUES ${stanzas.join(',')};` +
    `INSERT OR ROLLBACK INTO ${staged ? 'mam_entry_stage' : 'mam_entry'} VALUES ${rows.join(',')};COMMIT;`;
}

try {
  for (const pragma of args.pragma) await exec(`PRAGMA ${pragma};`);
  if (layout !== 'current') await exec(CANDIDATE_TABLES[layout]);
  for (let done = 0; done < prefill; done += 1000) await exec(commit(1000, false));
  // the SQL is built before the clock starts: SQLite's work is measured, not this script's
  const statements: string[] = [];
  let staged = 0;
  for (let done = 0; done < timed; done += batch) {
    statements.push(commit(batch, stageRows > 0));
    staged += 2 * batch;
    if (stageRows > 0 && staged >= stageRows) {
      statements.push(MOVE); // the server's own move, or the candidate's
      staged = 0;
    }
  }
  const cpu = process.cpuUsage();
  const start = performance.now();
  for (const sql of statements) await exec(sql);
  const used = process.cpuUsage(cpu);
  const perMessage = (micros: number) => (micros / timed).toFixed(1);
  const fileBytes = fs.statSync(path.join(dir, 'archive.sqlite')).size;
  console.log(`${layout}: batch ${batch} msgs, stage ${stageRows} rows${args.pragma.length ? `, ${args.pragma.join(', ')}` : ''}: ` +
    `${perMessage(used.user + used.system)} µs CPU per message (user ${perMessage(used.user)}, system ${perMessage(used.system)}), ` +
    `${perMessage((performance.now() - start) * 1000)} µs wall, ${(fileBytes / (prefill + timed)).toFixed(0)} bytes of database per message`);
} finally {
  pool.releaseConnection(connection);
  await db.destroy();
  fs.rmSync(dir, { recursive: true, force: true });
}
