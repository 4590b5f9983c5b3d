// SQLite alone under the archive's writes (src/modules/mam/store.ts): the CPU per message of
// committing both parties' rows into mam_archive, straight or through mam_stage, on a table that
// already holds an archive; the server's database opened as it opens it (its pragmas) with the
// archive's own migrations, and the stage moved with the server's own SQL (MOVE_STAGE). What
// found the stage (docs/benchmarks.md).
//
//   npm run bench:archive-sqlite -- --batch 4 [--stage 8000] [--prefill 200000] [--timed 20000]
//                                   [--pragma 'locking_mode=EXCLUSIVE']
//
// --batch: messages per commit (2,000 msgs/s with a 2 ms commit delay: 4); --stage: rows per
// move from mam_stage into mam_archive (0: rows straight into mam_archive).
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
  },
});
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

let nextId = 1;
/** One commit of `messages` messages, both parties' rows, as the server's large batches are written (literals). */
function commit(messages: number, table: string): string {
  const rows: string[] = [];
  for (let m = 0; m < messages; m++) {
    const a = 1 + Math.floor(Math.random() * OWNERS);
    const b = 1 + ((a + OWNERS / 2 - 1) % OWNERS);
    for (const [owner, peer] of [[a, b], [b, a]]) rows.push(`(${nextId++},'localhost',${owner},${peer},'res',${nextId & 0xffff},'${STANZA}')`);
  }
  return `BEGIN IMMEDIATE;INSERT OR ROLLBACK INTO ${table} (${COLUMN_LIST}) VALUES ${rows.join(',')};COMMIT;`;
}

try {
  for (const pragma of args.pragma) await exec(`PRAGMA ${pragma};`);
  for (let done = 0; done < prefill; done += 1000) await exec(commit(1000, 'mam_archive'));
  // the SQL is built before the clock starts: SQLite's work is measured, not this script's
  const statements: string[] = [];
  let staged = 0;
  for (let done = 0; done < timed; done += batch) {
    statements.push(commit(batch, stageRows > 0 ? 'mam_stage' : 'mam_archive'));
    staged += 2 * batch;
    if (stageRows > 0 && staged >= stageRows) {
      statements.push(MOVE_STAGE); // the server's own move
      staged = 0;
    }
  }
  const cpu = process.cpuUsage();
  const start = performance.now();
  for (const sql of statements) await exec(sql);
  const used = process.cpuUsage(cpu);
  const perMessage = (micros: number) => (micros / timed).toFixed(1);
  console.log(`batch ${batch} msgs, stage ${stageRows} rows${args.pragma.length ? `, ${args.pragma.join(', ')}` : ''}: ` +
    `${perMessage(used.user + used.system)} µs CPU per message (user ${perMessage(used.user)}, system ${perMessage(used.system)}), ` +
    `${perMessage((performance.now() - start) * 1000)} µs wall`);
} finally {
  pool.releaseConnection(connection);
  await db.destroy();
  fs.rmSync(dir, { recursive: true, force: true });
}
