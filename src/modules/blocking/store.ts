// Block lists (XEP-0191) on disk, and in memory for the accounts the router asks about. Most
// accounts block nobody: the names of those that do are loaded at start, so a stanza for anyone
// else is let through without a query, and a list is read from disk at most once while cached.
import type { Knex } from 'knex';
import type { Migration } from '../../storage/db.js';

export const blockingMigrations: Migration[] = [
  {
    name: '001-create-blocklist',
    async up(db) {
      await db.schema.createTable('blocklist', (t) => {
        t.string('host', 255).notNullable();
        t.string('username', 1023).notNullable();
        /** a normalised JID: user@domain/resource, user@domain, domain/resource or domain (§4) */
        t.string('jid', 3071).notNullable();
        t.primary(['host', 'username', 'jid']);
      });
    },
  },
];

/** Lists of accounts without a session kept in memory at most (the rest are read again when needed). */
const MAX_IDLE_CACHED = 1000;
const EMPTY: ReadonlySet<string> = new Set();

export class BlocklistStore {
  /** Accounts with at least one blocked JID. */
  private readonly blocking = new Set<string>();
  private readonly cache = new Map<string, Set<string>>();
  private readonly loading = new Map<string, Promise<Set<string>>>();

  constructor(
    private readonly db: Knex,
    private readonly host: string,
    /** Whether the account has a session here (its list then stays cached). */
    private readonly online: (username: string) => boolean,
    /** Told once a change to an account's list is stored (other nodes then drop their copy). */
    private readonly changed: (username: string) => void = () => {},
  ) {}

  /** Another node changed the account's list: read it again when next needed. */
  changedElsewhere(username: string): void {
    this.blocking.add(username); // may block someone now: cached() must not answer "nobody"
    this.cache.delete(username);
  }

  /** Reads which accounts block anyone; called once at start. */
  async init(): Promise<void> {
    const rows: Array<{ username: string }> = await this.db('blocklist').where({ host: this.host }).distinct('username');
    for (const row of rows) this.blocking.add(row.username);
  }

  /** The account's list if known without I/O (an account that blocks nobody always is), else undefined. */
  cached(username: string): ReadonlySet<string> | undefined {
    if (!this.blocking.has(username)) return EMPTY;
    return this.cache.get(username);
  }

  /** The account's list, read from disk if it is not in memory (one read for concurrent callers). */
  load(username: string): Promise<ReadonlySet<string>> {
    const known = this.cached(username);
    if (known !== undefined) return Promise.resolve(known);
    return this.loadMutable(username);
  }

  private loadMutable(username: string): Promise<Set<string>> {
    const cached = this.cache.get(username);
    if (cached !== undefined) return Promise.resolve(cached);
    let loading = this.loading.get(username);
    if (loading === undefined) {
      loading = this.db('blocklist').where({ host: this.host, username }).orderBy('jid').select('jid').then(
        (rows: Array<{ jid: string }>) => {
          this.loading.delete(username);
          const list = new Set(rows.map((r) => r.jid));
          this.cache.set(username, list);
          this.trim();
          return list;
        },
        (err: unknown) => {
          this.loading.delete(username);
          throw err;
        },
      );
      this.loading.set(username, loading);
    }
    return loading;
  }

  /** Adds JIDs; returns the ones that were not blocked yet. */
  async add(username: string, jids: readonly string[]): Promise<string[]> {
    const list = await this.loadMutable(username);
    const added = jids.filter((jid) => !list.has(jid));
    if (added.length === 0) return [];
    await this.db('blocklist').insert(added.map((jid) => ({ host: this.host, username, jid }))).onConflict(['host', 'username', 'jid']).ignore();
    for (const jid of added) list.add(jid);
    this.blocking.add(username);
    this.changed(username);
    return added;
  }

  /** Removes JIDs, or every one when `jids` is null; returns the ones that were blocked. */
  async remove(username: string, jids: readonly string[] | null): Promise<string[]> {
    const list = await this.loadMutable(username);
    const removed = jids === null ? [...list] : jids.filter((jid) => list.has(jid));
    if (removed.length === 0) return [];
    const query = this.db('blocklist').where({ host: this.host, username });
    if (jids !== null) {
      for (let i = 0; i < removed.length; i += 500) await query.clone().whereIn('jid', removed.slice(i, i + 500)).delete();
    } else {
      await query.delete();
    }
    for (const jid of removed) list.delete(jid);
    if (list.size === 0) this.blocking.delete(username);
    this.changed(username);
    return removed;
  }

  /** Drops a deleted account's list from memory (its rows go with the account's data). */
  forget(username: string): void {
    this.blocking.delete(username);
    this.cache.delete(username);
  }

  /** Keeps the lists of accounts without sessions to a bounded number (called as sessions end, too). */
  trim(): void {
    if (this.cache.size <= MAX_IDLE_CACHED) return;
    for (const username of this.cache.keys()) {
      if (this.cache.size <= MAX_IDLE_CACHED) break;
      if (!this.online(username)) this.cache.delete(username);
    }
  }
}
