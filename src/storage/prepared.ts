// Reads on the hot paths (a login's account row and photo hash, an initial presence's roster and
// stored offline messages) as statements prepared once per connection instead of a knex query
// each time. knex builds the SQL string again for every query, and node-sqlite3 prepares and
// finalizes a statement for each (the finalize on the event loop): about 0.1 ms of CPU per read,
// a few percent of a login. A prepared statement is bound and stepped only. On PostgreSQL the
// same read is a named statement (parsed and planned once per connection by the server).
//
// Statements run on a connection taken from knex's pool, so that they never run inside another
// caller's transaction (SQLite has one connection; a read there would see uncommitted rows).
import type { Knex } from 'knex';

/** A value bound to a placeholder: strings and numbers are all the hot reads need. */
export type Param = string | number;

/** node-sqlite3's connection and statement, as far as prepared statements use them. */
export interface SqliteStatement {
  all(params: readonly Param[], done: (err: Error | null, rows: unknown[]) => void): void;
  run(params: readonly Param[], done: (err: Error | null) => void): void;
  finalize(done: () => void): void;
}
interface SqliteConnection {
  prepare(sql: string, done: (err: Error | null) => void): SqliteStatement;
}
/** node-postgres's client, as far as prepared reads use it. */
interface PgConnection {
  query(config: { name: string; text: string; values: readonly Param[] }): Promise<{ rows: unknown[] }>;
}
/** knex's client: its pool hands out connections. */
interface PoolClient {
  config: { client: string };
  acquireConnection(): Promise<unknown>;
  releaseConnection(connection: unknown): unknown;
  destroyRawConnection(connection: unknown): Promise<void>;
}

/**
 * The statements prepared on each SQLite connection, by SQL, once prepared (node-sqlite3 drops
 * the calls queued on a statement whose preparation fails without calling them back).
 */
const sqliteStatements = new WeakMap<object, Map<string, Promise<SqliteStatement>>>();

/**
 * Finalizes the statements prepared on SQLite connections before knex closes them (SQLite
 * refuses to close a connection with statements left). Installed once by openDatabase.
 */
export function finalizeBeforeClose(db: Knex): void {
  const client = db.client as PoolClient;
  const destroy = client.destroyRawConnection.bind(client);
  client.destroyRawConnection = async (connection: unknown) => {
    const statements = sqliteStatements.get(connection as object);
    if (statements !== undefined) {
      sqliteStatements.delete(connection as object);
      const finalize = (statement: SqliteStatement) => new Promise<void>((resolve) => statement.finalize(resolve));
      await Promise.all([...statements.values()].map((prepared) => prepared.then(finalize, () => undefined)));
    }
    return destroy(connection);
  };
}

let pgNames = 0;

/** One read with `?` placeholders, prepared once per connection of `db`. */
export class PreparedRead<Row> {
  private readonly sqlite: boolean;
  /** PostgreSQL: the statement's name on each connection, and its text with $n placeholders. */
  private pgName: string;
  private readonly pgText: string;

  constructor(
    private readonly db: Knex,
    private readonly sql: string,
  ) {
    this.sqlite = (db.client as PoolClient).config.client === 'sqlite3';
    this.pgName = `xmppd_read_${++pgNames}`;
    let n = 0;
    this.pgText = sql.replace(/\?/g, () => `$${++n}`);
  }

  /** The first row, or undefined (the SQL says `limit 1` when more could match). */
  async first(params: readonly Param[]): Promise<Row | undefined> {
    return (await this.all(params))[0];
  }

  async all(params: readonly Param[]): Promise<Row[]> {
    const client = this.db.client as PoolClient;
    const connection = await client.acquireConnection();
    try {
      if (!this.sqlite) return await this.pgQuery(connection as PgConnection, params);
      const statement = await preparedOn(connection, this.sql);
      return await new Promise<Row[]>((resolve, reject) => statement.all(params, (err, rows) => (err ? reject(err) : resolve(rows as Row[]))));
    } catch (err) {
      // as a knex query's failure would be: storage health watches for these (src/storage/health.ts)
      this.db.emit('query-error', err, { sql: this.sql, bindings: params });
      throw err;
    } finally {
      client.releaseConnection(connection);
    }
  }

  private async pgQuery(connection: PgConnection, params: readonly Param[]): Promise<Row[]> {
    try {
      return (await connection.query({ name: this.pgName, text: this.pgText, values: params })).rows as Row[];
    } catch (err) {
      // 0A000 "cached plan must not change result type": a table this statement reads was changed
      // (another node's migration) since the connection prepared it, and node-postgres would keep
      // sending the stale name: the read is prepared again under a new name on every connection
      // (SQLite prepares again by itself)
      if ((err as { code?: unknown }).code !== '0A000') throw err;
      this.pgName = `xmppd_read_${++pgNames}`;
      return (await connection.query({ name: this.pgName, text: this.pgText, values: params })).rows as Row[];
    }
  }
}

/**
 * A write with `?` placeholders (an INSERT), prepared once per connection as a read is: knex
 * builds and compiles an INSERT at each call, 0.3 ms of CPU besides what SQLite does (a one-row
 * INSERT: 403 µs through knex, 124 µs prepared). Runs outside any transaction: on SQLite's one
 * connection it waits for one that is under way (so never inside a knex transaction's callback).
 */
export class PreparedWrite extends PreparedRead<never> {
  async run(params: readonly Param[]): Promise<void> {
    await this.all(params);
  }
}

/**
 * The statement for `sql` prepared on a pooled SQLite connection (taken from knex's pool by the
 * caller), prepared at its first use there and kept until knex closes the connection
 * (finalizeBeforeClose).
 */
export function preparedOn(connection: unknown, sql: string): Promise<SqliteStatement> {
  let statements = sqliteStatements.get(connection as object);
  if (statements === undefined) sqliteStatements.set(connection as object, (statements = new Map()));
  let prepared = statements.get(sql);
  if (prepared === undefined) {
    const preparing = new Promise<SqliteStatement>((resolve, reject) => {
      const statement = (connection as SqliteConnection).prepare(sql, (err) => {
        if (err === null) return resolve(statement);
        // prepared again next time, e.g. once the table exists
        if (statements.get(sql) === preparing) statements.delete(sql);
        reject(err);
      });
    });
    prepared = preparing;
    statements.set(sql, prepared);
  }
  return prepared;
}
