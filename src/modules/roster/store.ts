// Roster storage (RFC 6121 §2) and the in-memory roster of accounts that are online or being
// worked on. One account's roster changes are serialised (`withRoster`) so that concurrent
// subscription stanzas cannot interleave their read-modify-write.
import type { Knex } from 'knex';
import type { Migration } from '../../storage/db.js';
import { SerialQueue } from '../../core/serial.js';
import { PreparedRead } from '../../storage/prepared.js';

export type Subscription = 'none' | 'to' | 'from' | 'both';

export interface RosterItem {
  jid: string;
  name: string | null;
  subscription: Subscription;
  /** Pending-out: we asked the contact for a subscription (RFC 6121 §3.1.2). */
  ask: boolean;
  groups: string[];
}

export interface Roster {
  /** XEP-0237 roster version: bumped on every change. */
  version: number;
  items: Map<string, RosterItem>;
  /** Pending-in subscription requests (RFC 6121 §3.1.3), kept across logins: contact → the request's status text. */
  pendingIn: Map<string, string | null>;
}

export const rosterMigrations: Migration[] = [
  {
    name: '001-create-roster',
    async up(db) {
      await db.schema.createTable('roster_items', (t) => {
        t.string('host', 255).notNullable();
        t.string('username', 1023).notNullable();
        t.string('contact', 3071).notNullable();
        t.string('name', 1023);
        t.string('subscription', 4).notNullable();
        t.boolean('ask').notNullable().defaultTo(false);
        t.text('groups').notNullable().defaultTo('[]');
        t.primary(['host', 'username', 'contact']);
      });
      await db.schema.createTable('roster_pending_in', (t) => {
        t.string('host', 255).notNullable();
        t.string('username', 1023).notNullable();
        t.string('contact', 3071).notNullable();
        t.text('status');
        t.primary(['host', 'username', 'contact']);
      });
      await db.schema.createTable('roster_versions', (t) => {
        t.string('host', 255).notNullable();
        t.string('username', 1023).notNullable();
        t.bigInteger('version').notNullable();
        t.primary(['host', 'username']);
      });
    },
  },
];

interface ItemRow {
  contact: string;
  name: string | null;
  subscription: Subscription;
  ask: number | boolean;
  groups: string;
}

export class RosterStore {
  private readonly cache = new Map<string, Roster>();
  private readonly loading = new Map<string, Promise<Roster>>();
  private readonly queue = new SerialQueue();
  /** Read at every login's initial presence (prepared: src/storage/prepared.ts). */
  private readonly reads: {
    items: PreparedRead<ItemRow>;
    pendingIn: PreparedRead<{ contact: string; status: string | null }>;
    version: PreparedRead<{ version: number | string }>;
  };

  constructor(
    private readonly db: Knex,
    private readonly host: string,
    /** Told once a change to an account's roster is stored (other nodes then drop their copy). */
    private readonly changed: (username: string) => void = () => {},
  ) {
    this.reads = {
      items: new PreparedRead(db, 'select contact, name, subscription, ask, groups from roster_items where host = ? and username = ?'),
      pendingIn: new PreparedRead(db, 'select contact, status from roster_pending_in where host = ? and username = ?'),
      version: new PreparedRead(db, 'select version from roster_versions where host = ? and username = ? limit 1'),
    };
  }

  /** The roster if it is in memory (for the synchronous hot path), else undefined. */
  cached(username: string): Roster | undefined {
    return this.cache.get(username);
  }

  async load(username: string): Promise<Roster> {
    const cached = this.cache.get(username);
    if (cached) return cached;
    let loading = this.loading.get(username);
    if (!loading) {
      loading = this.read(username).then((roster) => {
        this.cache.set(username, roster);
        this.loading.delete(username);
        return roster;
      }, (err: unknown) => {
        this.loading.delete(username);
        throw err;
      });
      this.loading.set(username, loading);
    }
    return loading;
  }

  /** Drop an account's roster from memory (its last session ended). */
  evict(username: string): void {
    this.cache.delete(username);
  }

  /** Run `work` on the account's roster after any earlier work on it has finished. */
  withRoster<T>(username: string, work: (roster: Roster) => Promise<T> | T): Promise<T> {
    return this.queue.run(username, async () => work(await this.load(username)));
  }

  private async read(username: string): Promise<Roster> {
    const account = [this.host, username];
    const [rows, pending, versionRow] = await Promise.all([this.reads.items.all(account), this.reads.pendingIn.all(account), this.reads.version.first(account)]);
    const items = new Map<string, RosterItem>();
    for (const row of rows) {
      items.set(row.contact, { jid: row.contact, name: row.name, subscription: row.subscription, ask: Boolean(row.ask), groups: JSON.parse(row.groups) as string[] });
    }
    return {
      version: versionRow ? Number(versionRow.version) : 0,
      items,
      pendingIn: new Map(pending.map((p) => [p.contact, p.status])),
    };
  }

  /** Persist one item (or its removal) and bump the version; returns the new version. */
  async saveItem(username: string, roster: Roster, item: RosterItem, removed = false): Promise<number> {
    const version = roster.version + 1;
    await this.db.transaction(async (trx) => {
      const key = { host: this.host, username, contact: item.jid };
      if (removed) await trx('roster_items').where(key).delete();
      else {
        await trx('roster_items')
          .insert({ ...key, name: item.name, subscription: item.subscription, ask: item.ask, groups: JSON.stringify(item.groups) })
          .onConflict(['host', 'username', 'contact'])
          .merge();
      }
      await trx('roster_versions').insert({ host: this.host, username, version }).onConflict(['host', 'username']).merge();
    });
    roster.version = version;
    if (removed) roster.items.delete(item.jid);
    else roster.items.set(item.jid, item);
    this.changed(username);
    return version;
  }

  async setPendingIn(username: string, roster: Roster, contact: string, status: string | null): Promise<void> {
    await this.db('roster_pending_in').insert({ host: this.host, username, contact, status }).onConflict(['host', 'username', 'contact']).merge();
    roster.pendingIn.set(contact, status);
    this.changed(username);
  }

  async clearPendingIn(username: string, roster: Roster, contact: string): Promise<void> {
    if (!roster.pendingIn.has(contact)) return;
    await this.db('roster_pending_in').where({ host: this.host, username, contact }).delete();
    roster.pendingIn.delete(contact);
    this.changed(username);
  }

}

/**
 * A deleted account's roster, and what other local accounts' rosters say about it: their items
 * for it lose their subscription (kept, with subscription none, as after unsubscribe and
 * unsubscribed, RFC 6121 §3.2-3.3) and their pending requests from it are dropped, so that a new
 * account of the same name starts with no one's permission. Their roster versions move on.
 */
export async function removeRosterData(db: Knex, host: string, username: string, bareJid: string): Promise<void> {
  await db.transaction(async (trx) => {
    for (const table of ['roster_items', 'roster_pending_in', 'roster_versions']) {
      await trx(table).where({ host, username }).delete();
    }
    const affected: Array<{ host: string; username: string }> = await trx('roster_items').where({ contact: bareJid }).distinct('host', 'username');
    const pending: Array<{ host: string; username: string }> = await trx('roster_pending_in').where({ contact: bareJid }).distinct('host', 'username');
    await trx('roster_items').where({ contact: bareJid }).update({ subscription: 'none', ask: false });
    await trx('roster_pending_in').where({ contact: bareJid }).delete();
    const owners = new Map([...affected, ...pending].map((o) => [`${o.username}@${o.host}`, o]));
    for (const owner of owners.values()) {
      const bumped = await trx('roster_versions').where(owner).increment('version', 1);
      if (bumped === 0) await trx('roster_versions').insert({ ...owner, version: 1 });
    }
  });
}
