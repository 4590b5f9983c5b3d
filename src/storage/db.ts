// The database: knex over SQLite (a file under the data directory, WAL mode) or PostgreSQL.
// Each feature owns its tables and declares its migrations; this runner applies the ones not yet
// recorded in `xmppd_migrations`, in declaration order, once per database.
import fs from 'node:fs';
import path from 'node:path';
import knexFactory, { type Knex } from 'knex';
import { finalizeBeforeClose } from './prepared.js';

/** SQLite page cache per connection, KiB (PRAGMA cache_size takes a negative number as KiB). */
const SQLITE_CACHE_KIB = 32_000;

export type Database = Knex;

export interface Migration {
  /** Unique within its module, e.g. '001-create-roster'. Never rename one that has shipped. */
  name: string;
  up(db: Knex): Promise<void>;
}

export interface StorageOptions {
  driver: 'sqlite' | 'postgres';
  sqliteFile: string; // path or ':memory:'
  postgresUrl?: string;
}

export async function openDatabase(options: StorageOptions): Promise<Knex> {
  if (options.driver === 'postgres') {
    const db = knexFactory({ client: 'pg', connection: options.postgresUrl, pool: { min: 1, max: 10 } });
    try {
      await db.raw('select 1');
    } catch (err) {
      await db.destroy().catch(() => undefined);
      throw new Error(`cannot reach PostgreSQL at ${redactedUrl(options.postgresUrl)} (storage.postgres_url): ${(err as Error).message}`, { cause: err });
    }
    return db;
  }
  if (options.sqliteFile !== ':memory:') fs.mkdirSync(path.dirname(path.resolve(options.sqliteFile)), { recursive: true });
  const db = knexFactory({
    client: 'sqlite3',
    connection: { filename: options.sqliteFile },
    useNullAsDefault: true,
    // One connection: SQLite serialises writers anyway, and ':memory:' must be one connection.
    pool: {
      min: 1,
      max: 1,
      afterCreate(conn: { run(sql: string, cb: (err: Error | null) => void): void }, done: (err: Error | null, conn: unknown) => void) {
        // WAL lets readers proceed during writes; NORMAL sync is durable across process crashes.
        conn.run('PRAGMA journal_mode = WAL', (err) => {
          if (err) return done(err, conn);
          conn.run('PRAGMA synchronous = NORMAL', (err2) => {
            if (err2) return done(err2, conn);
            conn.run('PRAGMA foreign_keys = ON', (err3) => {
              if (err3) return done(err3, conn);
              // SQLite's default page cache is 2 MB: the archive's two indexes take rows for every
              // account at once, and past a few hundred accounts their pages no longer fit. 32 MB
              // (allocated only as pages are read) took the archive's cost per row from 29 to 18 µs
              // on a 480,000-row archive of 400 accounts.
              conn.run(`PRAGMA cache_size = -${SQLITE_CACHE_KIB}`, (err4) => done(err4, conn));
            });
          });
        });
      },
    },
  });
  finalizeBeforeClose(db);
  return db;
}

/** The URL without its password, for messages. */
function redactedUrl(url: string | undefined): string {
  if (url === undefined) return '(no postgres_url)';
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return 'an unparsable URL';
  }
}

/** An arbitrary constant: the PostgreSQL advisory lock that serialises migrations between processes. */
export const MIGRATION_LOCK = 0x786d7070; // "xmpp"

/**
 * Runs `work` (the migrations) while no other process migrates the same database: the nodes of
 * a cluster start together on one PostgreSQL database, and two of them creating the same table
 * at once fail. The lock is held by a transaction on a connection of its own (released at its
 * end, or when the process dies); `work` runs on the pool. SQLite is one process's file.
 */
export async function withMigrationLock<T>(db: Knex, driver: StorageOptions['driver'], work: () => Promise<T>): Promise<T> {
  if (driver !== 'postgres') return work();
  return db.transaction(async (trx) => {
    await trx.raw('select pg_advisory_xact_lock(?)', [MIGRATION_LOCK]);
    return work();
  });
}

/**
 * Each part's migrations, under the migration lock: for what migrates outside the kernel (a CLI
 * command or an import while the server is stopped, which may be a cluster node's first start on
 * the same database at that moment).
 */
export async function migrateLocked(db: Knex, parts: ReadonlyArray<readonly [module: string, migrations: readonly Migration[]]>): Promise<void> {
  const driver = (db.client as { config: { client: string } }).config.client === 'pg' ? 'postgres' : 'sqlite';
  await withMigrationLock(db, driver, async () => {
    for (const [module, migrations] of parts) await runMigrations(db, module, migrations);
  });
}

export async function runMigrations(db: Knex, module: string, migrations: readonly Migration[]): Promise<string[]> {
  if (!(await db.schema.hasTable('xmppd_migrations'))) {
    await db.schema.createTable('xmppd_migrations', (t) => {
      t.string('module', 64).notNullable();
      t.string('name', 128).notNullable();
      t.bigInteger('applied_at').notNullable();
      t.primary(['module', 'name']);
    });
  }
  const done = new Set(
    (await db('xmppd_migrations').where({ module }).select('name')).map((row: { name: string }) => row.name),
  );
  const applied: string[] = [];
  for (const migration of migrations) {
    if (done.has(migration.name)) continue;
    await db.transaction(async (trx) => {
      await migration.up(trx);
      await trx('xmppd_migrations').insert({ module, name: migration.name, applied_at: Date.now() });
    });
    applied.push(migration.name);
  }
  return applied;
}
