// Accounts' email addresses (never shown to other users) and password reset tokens, stored
// hashed: a database dump does not hand out working reset links.
import crypto from 'node:crypto';
import type { Knex } from 'knex';
import type { Migration } from '../../storage/db.js';

export const mailMigrations: Migration[] = [
  {
    name: '001-create-account-emails-and-resets',
    async up(db) {
      await db.schema.createTable('account_emails', (t) => {
        t.string('host', 255).notNullable();
        t.string('username', 1023).notNullable();
        t.string('email', 320).notNullable();
        t.primary(['host', 'username']);
      });
      await db.schema.createTable('password_resets', (t) => {
        t.string('token_hash', 64).primary();
        t.string('host', 255).notNullable();
        t.string('username', 1023).notNullable();
        t.bigInteger('expires_at').notNullable();
        t.index(['host', 'username']);
      });
    },
  },
  {
    // accounts that asked for a mail when messages wait for them (opt-in), and when the last went
    name: '002-create-mail-digests',
    async up(db) {
      await db.schema.createTable('mail_digests', (t) => {
        t.string('host', 255).notNullable();
        t.string('username', 1023).notNullable();
        /** ms: the last digest mailed (messages stored before it are not told again); 0 none yet */
        t.bigInteger('last_sent_at').notNullable().defaultTo(0);
        t.primary(['host', 'username']);
      });
    },
  },
];

const hashOf = (token: string) => crypto.createHash('sha256').update(token).digest('hex');

export class MailStore {
  constructor(
    private readonly db: Knex,
    private readonly host: string,
  ) {}

  async emailOf(username: string): Promise<string | null> {
    const row = (await this.db('account_emails').where({ host: this.host, username }).first()) as { email: string } | undefined;
    return row?.email ?? null;
  }

  async setEmail(username: string, email: string | null): Promise<void> {
    await this.db.transaction(async (trx) => {
      await trx('account_emails').where({ host: this.host, username }).delete();
      if (email !== null) await trx('account_emails').insert({ host: this.host, username, email });
    });
  }

  /** A new single-use reset token for the account; the earlier ones of the account stop working. */
  async createReset(username: string, ttlSeconds: number, now = Date.now()): Promise<string> {
    const token = crypto.randomBytes(24).toString('base64url');
    await this.db.transaction(async (trx) => {
      await trx('password_resets').where({ host: this.host, username }).delete();
      await trx('password_resets').insert({ token_hash: hashOf(token), host: this.host, username, expires_at: now + ttlSeconds * 1000 });
    });
    return token;
  }

  /** The account a valid reset token is for, or null. */
  async resetFor(token: string, now = Date.now()): Promise<string | null> {
    if (!/^[A-Za-z0-9_-]{16,64}$/.test(token)) return null;
    const row = (await this.db('password_resets').where({ token_hash: hashOf(token), host: this.host }).where('expires_at', '>', now).first()) as
      | { username: string }
      | undefined;
    return row?.username ?? null;
  }

  /** Spends a token: true for the one caller that got it. */
  async spendReset(token: string): Promise<boolean> {
    return (await this.db('password_resets').where({ token_hash: hashOf(token), host: this.host }).delete()) === 1;
  }

  /** Whether the account asked for digests. */
  async digestWanted(username: string): Promise<boolean> {
    return (await this.db('mail_digests').where({ host: this.host, username }).first('username')) !== undefined;
  }

  /** Turns the account's digests on or off. */
  async setDigest(username: string, wanted: boolean): Promise<void> {
    await this.db('mail_digests').where({ host: this.host, username }).delete();
    if (wanted) await this.db('mail_digests').insert({ host: this.host, username, last_sent_at: Date.now() });
  }

  /** The accounts of the host that want digests, with their address and the time of their last one. */
  async digestAccounts(): Promise<Array<{ username: string; email: string; lastSentAt: number }>> {
    const rows: Array<{ username: string; email: string; last_sent_at: number | string }> = await this.db('mail_digests')
      .join('account_emails', (on) => on.on('account_emails.host', 'mail_digests.host').andOn('account_emails.username', 'mail_digests.username'))
      .where('mail_digests.host', this.host)
      .select('mail_digests.username', 'account_emails.email', 'mail_digests.last_sent_at');
    return rows.map((r) => ({ username: r.username, email: r.email, lastSentAt: Number(r.last_sent_at) }));
  }

  async digestSent(username: string, at: number): Promise<void> {
    await this.db('mail_digests').where({ host: this.host, username }).update({ last_sent_at: at });
  }

  async removeExpired(now = Date.now()): Promise<void> {
    await this.db('password_resets').where('expires_at', '<=', now).delete();
  }
}

/** A plausible address: one @, no spaces or angle brackets, a dot in the domain (RFC 5321 is wider; this is for people). */
export function isEmailAddress(text: string): boolean {
  return text.length <= 320 && /^[^\s@<>()",;]+@[^\s@<>()",;]+\.[^\s@<>()",;]+$/.test(text);
}
