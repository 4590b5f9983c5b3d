// Whether the database can keep what the server acknowledges. At start: an integrity check
// (SQLite `PRAGMA quick_check`) and a write probe, so a corrupted or read-only database stops the
// server with one line naming the file instead of a server that reports ready and loses
// messages or fails every login. While running: a storage-level failure of any write (read-only,
// disk full, I/O error, corruption) marks storage as failed — /health/ready answers 503 and
// modules refuse what they would have to store — until a write probe succeeds again (never
// after corruption: that needs a restart, and its integrity check).
import path from 'node:path';
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import type { Migration, StorageOptions } from './db.js';

/** A database that cannot be used, named by its file (or PostgreSQL server and database). */
export class StorageError extends Error {}

export const storageMigrations: Migration[] = [
  {
    name: '001-create-storage-probe',
    async up(db) {
      await db.schema.createTable('xmppd_storage_probe', (t) => {
        t.integer('id').primary();
        t.bigInteger('written_at').notNullable();
      });
    },
  },
];

// SQLite result codes (node-sqlite3's err.code) and PostgreSQL SQLSTATEs that say the storage
// itself failed, as opposed to a query's own error (a constraint, a bad value).
const SQLITE_STORAGE_FAILURES = new Set(['SQLITE_READONLY', 'SQLITE_IOERR', 'SQLITE_CORRUPT', 'SQLITE_NOTADB', 'SQLITE_FULL', 'SQLITE_CANTOPEN', 'SQLITE_PERM']);
const CORRUPTION = new Set(['SQLITE_CORRUPT', 'SQLITE_NOTADB', 'XX001', 'XX002']);
const RETRY_MS = 5000;

function failureCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return undefined;
  if (SQLITE_STORAGE_FAILURES.has(code)) return code;
  // PostgreSQL: 53 insufficient resources (disk full), 58 system (I/O) errors, XX internal
  // (corruption), 25006 read-only transaction (a standby)
  if (/^(53|58|XX)/.test(code) || code === '25006') return code;
  return undefined;
}

export class StorageHealth {
  /** The database as an admin knows it: the SQLite file's path, or PostgreSQL's host and database. */
  readonly name: string;
  private failure: { code: string; message: string } | null = null;
  private corrupt = false;
  private retry: NodeJS.Timeout | undefined;

  constructor(
    private readonly db: Knex,
    options: StorageOptions,
    private readonly log: Logger,
  ) {
    this.name = describe(options);
    db.on('query-error', (err: unknown) => this.failed(err));
  }

  /** False once a write failed for a storage reason, until a probe writes again. One field read: for hot paths. */
  get healthy(): boolean {
    return this.failure === null;
  }

  /** Why storage is failed (for /health/ready), or null. */
  get problem(): string | null {
    return this.failure === null ? null : this.failure.message;
  }

  /** At start, before anything else reads it: SQLite's quick_check. Throws a StorageError naming the database. */
  async checkIntegrity(): Promise<void> {
    if (this.db.client.config.client !== 'sqlite3') return; // PostgreSQL checks its own pages
    let rows: Array<{ quick_check: string }>;
    try {
      rows = (await this.db.raw('PRAGMA quick_check')) as Array<{ quick_check: string }>;
    } catch (err) {
      // a read-only file already fails here: opening it switches on WAL mode
      const code = failureCode(err);
      if (code !== undefined && CORRUPTION.has(code)) throw corrupted(this.name, [this.detail(err).replace(/^PRAGMA quick_check - /, '')]);
      const state = code === 'SQLITE_READONLY' || code === 'SQLITE_PERM' ? 'is not writable' : 'cannot be read';
      throw new StorageError(`database ${this.name} ${state}: ${this.detail(err)}`);
    }
    const problems = rows.map((row) => row.quick_check).filter((line) => line !== 'ok');
    if (problems.length > 0) throw corrupted(this.name, problems);
  }

  /** At start, after the migrations: a write. Throws a StorageError naming the database. */
  async checkWritable(): Promise<void> {
    try {
      await this.writeProbe();
    } catch (err) {
      throw new StorageError(`database ${this.name} is not writable: ${this.detail(err)}`);
    }
  }

  private detail(err: unknown): string {
    const message = (err as Error).message;
    return message.startsWith(`${this.name}: `) ? message.slice(this.name.length + 2) : message;
  }

  /** For /health/ready: a write now; true when storage is usable. */
  async probe(): Promise<boolean> {
    if (this.corrupt) return false;
    try {
      await this.writeProbe();
      this.recovered();
      return true;
    } catch (err) {
      this.failed(err);
      return false;
    }
  }

  /**
   * A query failed: when for a storage reason, storage is marked failed (logged once, naming
   * the database) and probed again every few seconds. Other errors are the query's own.
   */
  failed(err: unknown): void {
    const code = failureCode(err);
    if (code === undefined) return;
    // every log line of this error, wherever it is caught, names the database
    const error = err as Error;
    if (!error.message.startsWith(this.name)) error.message = `${this.name}: ${error.message}`;
    if (CORRUPTION.has(code)) this.corrupt = true;
    if (this.failure !== null) return;
    this.failure = { code, message: error.message };
    this.log.error({ err, database: this.name, code }, `storage failed: ${error.message}; refusing what must be stored until it works again`);
    this.scheduleRetry();
  }

  stop(): void {
    clearTimeout(this.retry);
    this.retry = undefined;
  }

  private scheduleRetry(): void {
    if (this.corrupt || this.retry !== undefined) return;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      void this.probe().then((ok) => {
        if (!ok) this.scheduleRetry();
      });
    }, RETRY_MS);
    this.retry.unref();
  }

  private recovered(): void {
    if (this.failure === null || this.corrupt) return;
    this.log.warn({ database: this.name }, `storage works again: ${this.name}`);
    this.failure = null;
    this.stop();
  }

  private async writeProbe(): Promise<void> {
    await this.db('xmppd_storage_probe').insert({ id: 1, written_at: Date.now() }).onConflict('id').merge();
  }
}

function corrupted(name: string, problems: string[]): StorageError {
  return new StorageError(`database ${name} is corrupted (PRAGMA quick_check: ${problems.slice(0, 3).join('; ')}); restore it from a backup, or repair it with the sqlite3 shell's .recover`);
}

function describe(options: StorageOptions): string {
  if (options.driver === 'sqlite') return options.sqliteFile === ':memory:' ? ':memory:' : path.resolve(options.sqliteFile);
  try {
    const url = new URL(options.postgresUrl ?? '');
    return `postgres://${url.host}${url.pathname}`; // never the password
  } catch {
    return 'postgres';
  }
}
