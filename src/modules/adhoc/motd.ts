// The message of the day (XEP-0133 §4.24-4.26): one per host, kept in the database, sent as a
// headline to each user when they come online.
import Element from 'ltx/lib/Element.js';
import type { Knex } from 'knex';
import type { Migration } from '../../storage/db.js';

export const motdMigrations: Migration[] = [
  {
    name: '001-create-motd',
    async up(db) {
      await db.schema.createTable('motd', (t) => {
        t.string('host', 255).primary();
        t.string('subject', 1023).nullable();
        t.text('body').notNullable();
      });
    },
  },
];

declare module '../../core/module.js' {
  interface Services {
    adhoc: MotdService;
  }
}

/** What the adhoc module offers the admin commands (`motd set` / `motd clear`). */
export interface MotdService {
  setMotd(subject: string | undefined, body: string | null): Promise<void>;
}

export class MotdStore {
  /** Cached: read once at start, written through. */
  current: { subject: string | undefined; body: string } | null = null;

  constructor(
    private readonly db: Knex,
    private readonly host: string,
  ) {}

  async load(): Promise<void> {
    const row: { subject: string | null; body: string } | undefined = await this.db('motd').where({ host: this.host }).first();
    this.current = row === undefined ? null : { subject: row.subject ?? undefined, body: row.body };
  }

  async set(subject: string | undefined, body: string | null): Promise<void> {
    if (body === null) await this.db('motd').where({ host: this.host }).delete();
    else await this.db('motd').insert({ host: this.host, subject: subject ?? null, body }).onConflict('host').merge();
    this.current = body === null ? null : { subject, body };
  }
}

/** XEP-0133 §4.23/4.24: an announcement or the message of the day, as a headline. */
export function headline(from: string, to: string, subject: string | undefined, body: string): Element {
  const message = new Element('message', { type: 'headline', from, to });
  if (subject !== undefined && subject !== '') message.c('subject').t(subject);
  message.c('body').t(body);
  return message;
}
