// Push registrations (XEP-0357 §5), one row per account, app server and node: what a client's
// <enable/> asked for, kept across restarts so that a device whose session is gone (the phone
// asleep, the server restarted) is still woken. The publish-options form is kept as the client
// sent it (its XML), to be sent back in every publish (§5: "the user's server MUST include" it).
import type { Knex } from 'knex';
import type { Migration } from '../../storage/db.js';

export const pushMigrations: Migration[] = [
  {
    name: '001-create-push-registrations',
    async up(db) {
      await db.schema.createTable('push_registrations', (t) => {
        t.string('host', 255).notNullable();
        t.string('username', 1023).notNullable();
        /** The app server's JID (XEP-0357 'jid'). */
        t.string('service', 3071).notNullable();
        /** The node on the app server ('' when the client gave none). */
        t.string('node', 1023).notNullable();
        /** The publish-options data form as the client sent it (XML), or null. */
        t.text('options').nullable();
        t.bigInteger('created_at').notNullable();
        t.primary(['host', 'username', 'service', 'node']);
      });
    },
  },
];

export interface PushRegistration {
  username: string;
  service: string;
  node: string;
  options: string | null;
}

export class PushStore {
  constructor(
    private readonly db: Knex,
    private readonly host: string,
  ) {}

  async list(username: string): Promise<PushRegistration[]> {
    const rows: Array<{ service: string; node: string; options: string | null }> = await this.db('push_registrations')
      .where({ host: this.host, username })
      .select('service', 'node', 'options')
      .orderBy('created_at');
    return rows.map((row) => ({ username, service: row.service, node: row.node, options: row.options }));
  }

  /** The accounts with at least one registration (read once at start). */
  async accountsWithRegistrations(): Promise<string[]> {
    const rows: Array<{ username: string }> = await this.db('push_registrations').where({ host: this.host }).distinct('username');
    return rows.map((row) => row.username);
  }

  /** Adds or replaces (same app server and node: new options) a registration. */
  async enable(registration: PushRegistration): Promise<void> {
    await this.db('push_registrations')
      .insert({ host: this.host, username: registration.username, service: registration.service, node: registration.node, options: registration.options, created_at: Date.now() })
      .onConflict(['host', 'username', 'service', 'node'])
      .merge(['options']);
  }

  /** Removes the registrations with `service` (and `node` when given); returns how many. */
  async disable(username: string, service: string, node?: string): Promise<number> {
    const query = this.db('push_registrations').where({ host: this.host, username, service });
    if (node !== undefined) query.andWhere({ node });
    return query.delete();
  }

  /** How many registrations an account has. */
  async count(username: string): Promise<number> {
    const row = await this.db('push_registrations').where({ host: this.host, username }).count<Array<{ n: number | string }>>({ n: '*' }).first();
    return Number(row?.n ?? 0);
  }

  async total(): Promise<number> {
    const row = await this.db('push_registrations').where({ host: this.host }).count<Array<{ n: number | string }>>({ n: '*' }).first();
    return Number(row?.n ?? 0);
  }
}
