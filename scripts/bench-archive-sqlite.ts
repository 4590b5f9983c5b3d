// SQLite alone under the archive's writes (src/modules/mam/store.ts): the CPU per message of
// committing a message and both parties' entries, straight or through the stage, on tables that
// already hold an archive; the server's database opened as it opens it (its pragmas) with the
// archive's own migrations, and the stage moved with the server's own SQL (MOVE_STAGE). What
// found the stage and the layout (docs/benchmarks-log.md).
//
//   npm run bench:archive-sqlite -- --batch 4 [--stage 8000] [--prefill 200000] [--timed 20000]
//                                   [--pragma 'locking_mode=EXCLUSIVE'] [--layout rows]
//
// --batch: messages per commit (2,000 msgs/s with the 15 ms commit delay: ~30); --stage: rows per
// move from the stage into the archive (0: straight into the archive). --layout: the server's
// (`server`: the stanza stored once in mam_message, both parties' entries in mam_entry, a table
// ordered by owner, WITHOUT ROWID, sharing their message's id), or one written here: `rows`, the
// server's before migration 004 (both parties' rows, each with the whole stanza, in a table with
// two indexes), or `shared` (the stanza stored once, entries with ids of their own in a rowid
// table with both indexes).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { openDatabase, runMigrations } from '../src/storage/db.js';
import { ENTRY_COLUMNS, MESSAGE_COLUMNS, MOVE_STAGE, archiveMigrations } from '../src/modules/mam/store.js';

const { values: args } = parseArgs({
  options: {
    batch: { type: 'string', default: '4' },
    stage: { type: 'string', default: '0' },
    prefill: { type: 'string', default: '200000' },
    timed: { type: 'string', default: '20000' },
    pragma: { type: 'string', multiple: true, default: [] },
    layout: { type: 'string', default: 'server' },
  },
});
type Layout = 'server' | 'rows' | 'shared';
const layout = args.layout as Layout;
if (!['server', 'rows', 'shared'].includes(layout)) throw new Error(`--layout: server, rows or shared, not ${layout}`);
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

/** The other layouts' tables, beside the server's. */
const ROWS = 'id INTEGER PRIMARY KEY, host TEXT NOT NULL, owner_id INTEGER NOT NULL, with_id INTEGER NOT NULL, with_resource TEXT NOT NULL, nonce INTEGER NOT NULL, stanza TEXT NOT NULL';
const ENTRY = 'id INTEGER PRIMARY KEY, owner_id INTEGER NOT NULL, with_id INTEGER NOT NULL, with_resource TEXT NOT NULL, nonce INTEGER NOT NULL, message_id INTEGER NOT NULL';
const OTHER_TABLES: Record<Exclude<Layout, 'server'>, string> = {
  rows: `CREATE TABLE rows_archive (${ROWS});
    CREATE INDEX rows_by_owner ON rows_archive (owner_id, id);
    CREATE INDEX rows_by_owner_with ON rows_archive (owner_id, with_id, id);
    CREATE TABLE rows_stage (${ROWS});`,
  shared: `CREATE TABLE shared_entry (${ENTRY});
    CREATE INDEX shared_by_owner ON shared_entry (owner_id, id);
    CREATE INDEX shared_by_owner_with ON shared_entry (owner_id, with_id, id);
    CREATE TABLE shared_stage (${ENTRY});`,
};
const MOVE = layout === 'server' ? MOVE_STAGE
  : `BEGIN IMMEDIATE;INSERT INTO ${layout}_${layout === 'rows' ? 'archive' : 'entry'} SELECT * FROM ${layout}_stage;DELETE FROM ${layout}_stage;COMMIT;`;

let nextId = 1;
/** One commit of `messages` messages, both parties' entries, as the server's batches are written (literals). */
function commit(messages: number, staged: boolean): string {
  const rows: string[] = [];
  const stanzas: string[] = [];
  for (let m = 0; m < messages; m++) {
    const a = 1 + Math.floor(Math.random() * OWNERS);
    const b = 1 + ((a + OWNERS / 2 - 1) % OWNERS);
    const message = nextId++;
    if (layout !== 'rows') stanzas.push(`(${message},'localhost',${a},${b},'${STANZA}')`);
    for (const [owner, peer] of [[a, b], [b, a]]) {
      const nonce = (message * 7 + owner!) & 0xffff;
      if (layout === 'rows') rows.push(`(${nextId++},'localhost',${owner},${peer},'res',${nonce},'${STANZA}')`);
      if (layout === 'shared') rows.push(`(${nextId++},${owner},${peer},'res',${nonce},${message})`);
      if (layout === 'server') rows.push(`(${owner},${message},${peer},'res',${nonce})`);
    }
  }
  if (layout === 'rows') return `BEGIN IMMEDIATE;INSERT OR ROLLBACK INTO rows_${staged ? 'stage' : 'archive'} VALUES ${rows.join(',')};COMMIT;`;
  const entries = layout === 'server' ? `${staged ? 'mam_entry_stage' : 'mam_entry'} (${ENTRY_COLUMNS})` : `shared_${staged ? 'stage' : 'entry'}`;
  return `BEGIN IMMEDIATE;INSERT OR ROLLBACK INTO mam_message (${MESSAGE_COLUMNS}) VALUES ${stanzas.join(',')};` +
    `INSERT OR ROLLBACK INTO ${entries} VALUES ${rows.join(',')};COMMIT;`;
}

try {
  for (const pragma of args.pragma) await exec(`PRAGMA ${pragma};`);
  if (layout !== 'server') await exec(OTHER_TABLES[layout]);
  for (let done = 0; done < prefill; done += 1000) await exec(commit(1000, false));
  // the SQL is built before the clock starts: SQLite's work is measured, not this script's
  const statements: string[] = [];
  let staged = 0;
  for (let done = 0; done < timed; done += batch) {
    statements.push(commit(batch, stageRows > 0));
    staged += 2 * batch;
    if (stageRows > 0 && staged >= stageRows) {
      statements.push(MOVE); // the server's own move, or the other layout's
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
