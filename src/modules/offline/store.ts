// Offline message storage (XEP-0160): messages kept, in arrival order, for an account with no
// available resource. A message leaves the store only once delivery is confirmed (see index.ts).
import type { Knex } from 'knex';
import type { Migration } from '../../storage/db.js';
import { PreparedRead, PreparedWrite } from '../../storage/prepared.js';

export const offlineMigrations: Migration[] = [
  {
    name: '001-create-offline-messages',
    async up(db) {
      await db.schema.createTable('offline_messages', (t) => {
        t.bigIncrements('id').primary();
        t.string('host', 255).notNullable();
        t.string('username', 1023).notNullable();
        /** ms since the epoch: the XEP-0203 delay stamp */
        t.bigInteger('stored_at').notNullable();
        /** the message as received, serialised once */
        t.text('stanza').notNullable();
        t.index(['host', 'username', 'id'], 'offline_messages_by_account');
      });
    },
  },
];

export interface StoredMessage {
  id: number;
  storedAt: number;
  stanza: string;
}

/** Rows per INSERT statement: 4 bound values each, under SQLite's limit of 999. */
const INSERT_CHUNK = 200;

interface PendingRow {
  row: { host: string; username: string; stored_at: number; stanza: string };
  resolve(): void;
  reject(err: unknown): void;
}

export class OfflineStore {
  /** Rows stored since the write under way began: the next batch (group commit). */
  private pending: PendingRow[] = [];
  /** The write under way: one at a time, so batches commit in arrival order (ids too, on PostgreSQL). */
  private writing: Promise<void> | null = null;

  /** The INSERT of each batch size up to INSERT_CHUNK, prepared (a message to an offline user is often a batch of one). */
  private readonly inserts: PreparedWrite[] = [];

  /** Read at every login's initial presence (prepared: src/storage/prepared.ts). */
  private readonly listRead: PreparedRead<{ id: number | string; stored_at: number | string; stanza: string }>;

  constructor(
    private readonly db: Knex,
    private readonly host: string,
  ) {
    this.listRead = new PreparedRead(db, 'select id, stored_at, stanza from offline_messages where host = ? and username = ? and id > ? order by id limit ?');
  }

  count(username: string): Promise<number> {
    return this.db('offline_messages')
      .where({ host: this.host, username })
      .count<Array<{ n: number | string }>>({ n: '*' })
      .then((rows) => Number(rows[0]?.n ?? 0));
  }

  /** Messages stored for the whole host (read when /metrics is scraped, not per message). */
  total(): Promise<number> {
    return this.db('offline_messages')
      .where({ host: this.host })
      .count<Array<{ n: number | string }>>({ n: '*' })
      .then((rows) => Number(rows[0]?.n ?? 0));
  }

  /**
   * Stores a message; resolves once it is committed. Messages stored in the same event-loop turn,
   * or while the previous batch is being written, go into one transaction (group commit), so a
   * burst costs a few commits, not one each, and nothing waits behind a queue of small ones.
   */
  add(username: string, stanza: string, storedAt = Date.now()): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.pending.length === 0 && this.writing === null) setImmediate(() => this.writeNext());
      this.pending.push({ row: { host: this.host, username, stored_at: storedAt, stanza }, resolve, reject });
    });
  }

  /** Settles once every message added so far is committed (or failed). */
  async settled(): Promise<void> {
    while (this.writing !== null || this.pending.length > 0) {
      await (this.writing ?? new Promise<void>((resolve) => setImmediate(resolve)));
    }
  }

  private writeNext(): void {
    if (this.writing !== null || this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    this.writing = this.write(batch).then(() => {
      this.writing = null;
      this.writeNext();
    });
  }

  private async write(batch: PendingRow[]): Promise<void> {
    try {
      if (batch.length <= INSERT_CHUNK) {
        // one statement commits by itself: no BEGIN/COMMIT round trips
        const insert = (this.inserts[batch.length] ??= new PreparedWrite(this.db, `insert into offline_messages (host, username, stored_at, stanza) values ${Array(batch.length).fill('(?, ?, ?, ?)').join(', ')}`));
        const values: Array<string | number> = [];
        for (const { row } of batch) values.push(row.host, row.username, row.stored_at, row.stanza);
        await insert.run(values);
      } else {
        await this.db.transaction(async (trx) => {
          // chunks keep each statement under SQLite's bound-parameter limit
          for (let i = 0; i < batch.length; i += INSERT_CHUNK) await trx('offline_messages').insert(batch.slice(i, i + INSERT_CHUNK).map((p) => p.row));
        });
      }
      for (const p of batch) p.resolve();
    } catch (err) {
      for (const p of batch) p.reject(err);
    }
  }

  /** The account's messages in arrival order (those after `afterId`: an export reads them page by page). */
  async list(username: string, limit = 10_000, afterId = 0): Promise<StoredMessage[]> {
    const rows = await this.listRead.all([this.host, username, afterId, limit]);
    return rows.map((r) => ({ id: Number(r.id), storedAt: Number(r.stored_at), stanza: r.stanza }));
  }

  /** Up to `limit` of the account's messages stored after `after` (ms), oldest first. */
  async storedAfter(username: string, after: number, limit: number): Promise<StoredMessage[]> {
    const rows: Array<{ id: number | string; stored_at: number | string; stanza: string }> = await this.db('offline_messages')
      .where({ host: this.host, username })
      .andWhere('stored_at', '>', after)
      .orderBy('id')
      .limit(limit)
      .select('id', 'stored_at', 'stanza');
    return rows.map((r) => ({ id: Number(r.id), storedAt: Number(r.stored_at), stanza: r.stanza }));
  }

  async remove(ids: readonly number[]): Promise<void> {
    for (let i = 0; i < ids.length; i += 500) {
      await this.db('offline_messages').whereIn('id', ids.slice(i, i + 500)).delete();
    }
  }

  /**
   * Deletes, in batches of `batch` rows in arrival order, the host's messages stored before
   * `cutoff` (ms), except those of accounts `keep` names; returns how many. Stops at the first
   * batch that reaches messages newer than the cutoff.
   */
  async expire(cutoff: number, keep: (username: string) => boolean, batch: number, pause: () => Promise<void>): Promise<number> {
    let deleted = 0;
    for (let cursor = 0; ;) {
      const rows: Array<{ id: number | string; username: string; stored_at: number | string }> = await this.db('offline_messages')
        .where('host', this.host).andWhere('id', '>', cursor).orderBy('id').limit(batch).select('id', 'username', 'stored_at');
      if (rows.length === 0) return deleted;
      const doomed = rows.filter((r) => Number(r.stored_at) < cutoff && !keep(r.username)).map((r) => Number(r.id));
      if (doomed.length > 0) await this.remove(doomed);
      deleted += doomed.length;
      if (rows.length < batch || Number(rows[rows.length - 1]!.stored_at) >= cutoff) return deleted;
      cursor = Number(rows[rows.length - 1]!.id);
      await pause();
    }
  }

  /** Deletes one account's messages stored before `cutoff` (ms); returns how many. */
  expireAccount(username: string, cutoff: number): Promise<number> {
    return this.db('offline_messages').where({ host: this.host, username }).andWhere('stored_at', '<', cutoff).delete();
  }
}
