// Private XML (XEP-0049) on disk: one serialised element per account, element name and namespace.
import type { Knex } from 'knex';
import type { Migration } from '../../storage/db.js';

export const privateMigrations: Migration[] = [
  {
    name: '001-create-private-storage',
    async up(db) {
      await db.schema.createTable('private_storage', (t) => {
        t.string('host', 255).notNullable();
        t.string('username', 1023).notNullable();
        t.string('namespace', 1023).notNullable();
        t.string('name', 255).notNullable();
        t.text('data').notNullable(); // the element as the client stored it
        t.primary(['host', 'username', 'namespace', 'name']);
      });
    },
  },
];

export interface PrivateItem {
  namespace: string;
  name: string;
  data: string;
}

export class PrivateStore {
  constructor(
    private readonly db: Knex,
    private readonly host: string,
  ) {}

  async get(username: string, namespace: string, name: string): Promise<string | undefined> {
    const row: { data: string } | undefined = await this.db('private_storage')
      .where({ host: this.host, username, namespace, name })
      .first('data');
    return row?.data;
  }

  /** Every element the account stored (for an export). */
  async list(username: string): Promise<PrivateItem[]> {
    return this.db('private_storage').where({ host: this.host, username }).orderBy(['namespace', 'name']).select('namespace', 'name', 'data');
  }

  /** Stores all items or none. */
  async set(username: string, items: readonly PrivateItem[]): Promise<void> {
    await this.db.transaction(async (trx) => {
      for (const item of items) {
        await trx('private_storage')
          .insert({ host: this.host, username, ...item })
          .onConflict(['host', 'username', 'namespace', 'name'])
          .merge();
      }
    });
  }
}
