// Accounts and their credentials. Passwords are never stored: only SCRAM salted keys for
// SHA-1 and SHA-256 (RFC 5802 §3, RFC 7677), which is all SCRAM needs and what PLAIN is checked against.
import type { Knex } from 'knex';
import type { Migration } from '../storage/db.js';
import { deriveScramCredentials, type ScramCredentials, type ScramHash } from './credentials.js';

export const accountMigrations: Migration[] = [
  {
    name: '001-create-accounts',
    async up(db) {
      await db.schema.createTable('accounts', (t) => {
        t.string('host', 255).notNullable();
        t.string('username', 1023).notNullable();
        t.integer('iterations').notNullable();
        t.string('sha1_salt').notNullable();
        t.string('sha1_stored_key').notNullable();
        t.string('sha1_server_key').notNullable();
        t.string('sha256_salt').notNullable();
        t.string('sha256_stored_key').notNullable();
        t.string('sha256_server_key').notNullable();
        t.bigInteger('created_at').notNullable();
        t.primary(['host', 'username']);
      });
    },
  },
  {
    // a disabled account keeps its data but cannot log in (RFC 6120 §6.5.1 <account-disabled/>)
    name: '002-account-disabled',
    async up(db) {
      await db.schema.alterTable('accounts', (t) => {
        t.bigInteger('disabled_at').nullable();
        t.string('disabled_reason', 1023).nullable();
      });
    },
  },
];

interface AccountRow {
  host: string;
  username: string;
  iterations: number;
  sha1_salt: string;
  sha1_stored_key: string;
  sha1_server_key: string;
  sha256_salt: string;
  sha256_stored_key: string;
  sha256_server_key: string;
  created_at: number;
  disabled_at: number | string | null;
  disabled_reason: string | null;
}

/** What `xmppd user info` shows of an account. */
export interface AccountInfo {
  createdAt: number;
  /** Epoch ms it was disabled; null when it may log in. */
  disabledAt: number | null;
  disabledReason: string | null;
}

export class AccountExistsError extends Error {}

/**
 * Keys brought by an import (XEP-0227 1.1 `<scram-credentials/>`, Prosody's accounts store,
 * ejabberd's export): either hash or both. A hash not given cannot be used until the account's
 * password is set again (a PLAIN login does it: see c2s/sasl/negotiation.ts).
 */
export interface ImportedCredentials {
  sha1?: ScramCredentials;
  sha256?: ScramCredentials;
}

/** What an export writes of an account's keys: the hashes it holds. */
export interface HeldCredentials {
  sha1: ScramCredentials | null;
  sha256: ScramCredentials | null;
  createdAt: number;
}

/** The columns of imported keys; a hash not given is stored empty (never matches a proof). */
function importedColumns(credentials: ImportedCredentials) {
  const { sha1, sha256 } = credentials;
  // one iteration count per account: keys of another count than the SHA-256 ones cannot be kept
  const iterations = sha256?.iterations ?? sha1?.iterations ?? 0;
  const keep1 = sha1 !== undefined && sha1.iterations === iterations;
  return {
    iterations,
    sha1_salt: keep1 ? sha1.salt : '',
    sha1_stored_key: keep1 ? sha1.storedKey : '',
    sha1_server_key: keep1 ? sha1.serverKey : '',
    sha256_salt: sha256?.salt ?? '',
    sha256_stored_key: sha256?.storedKey ?? '',
    sha256_server_key: sha256?.serverKey ?? '',
  };
}

/**
 * Bounded memo of accounts known to exist, so routing to an offline account is not a query per
 * stanza. Only "exists" is remembered: an account created by the CLI while the server runs must
 * not be taken for missing. (A CLI deletion is seen at the next login, which fails.)
 */
const EXISTENCE_CACHE_LIMIT = 50_000;

export class AccountStore {
  private readonly existence = new Map<string, true>();
  /** Deletions under way (the data goes after the row): the name is not given out again until done. */
  private readonly deletions = new Map<string, Promise<unknown>>();

  /** Told when an account is deleted here, for other nodes' memos (src/core/caches.ts). */
  deleted: ((key: string) => void) | undefined;

  constructor(
    private readonly db: Knex,
    readonly iterations = 4096,
  ) {}

  /** Another node deleted this account (`user@host`): no longer known to exist. */
  forgetExistence(key: string): void {
    this.existence.delete(key);
  }

  private remember(host: string, username: string, exists: boolean): void {
    const key = `${username}@${host}`;
    if (!exists) return void this.existence.delete(key);
    if (this.existence.size >= EXISTENCE_CACHE_LIMIT) this.existence.clear();
    this.existence.set(key, true);
  }

  /**
   * Runs a deletion's `work` (registered at once, before it starts): a new account of the same
   * name is created only after it, so the old data's removal never touches the new account's.
   */
  whileDeleting<T>(host: string, username: string, work: () => Promise<T>): Promise<T> {
    const key = `${username}@${host}`;
    const previous = this.deletions.get(key) ?? Promise.resolve();
    const done = previous.catch(() => undefined).then(work);
    this.deletions.set(key, done);
    const forget = () => void (this.deletions.get(key) === done && this.deletions.delete(key));
    done.then(forget, forget);
    return done;
  }

  async create(host: string, username: string, password: string): Promise<void> {
    await this.deletions.get(`${username}@${host}`)?.catch(() => undefined);
    const row = { host, username, ...(await this.credentialColumns(password)), created_at: Date.now() };
    try {
      await this.db('accounts').insert(row);
    } catch (err) {
      if (await this.exists(host, username)) throw new AccountExistsError(`${username}@${host} already exists`);
      throw err;
    }
    this.remember(host, username, true);
  }

  /**
   * An imported account with the keys it came with (none: it cannot log in until its password
   * is set). False when the account exists already: an import never overwrites one.
   */
  async createImported(host: string, username: string, credentials: ImportedCredentials, createdAt = Date.now()): Promise<boolean> {
    if ((await this.db('accounts').where({ host, username }).first('username')) !== undefined) return false;
    await this.db('accounts').insert({ host, username, ...importedColumns(credentials), created_at: createdAt });
    this.remember(host, username, true);
    return true;
  }

  /** Replaces an account's keys with imported ones. */
  async setImportedCredentials(host: string, username: string, credentials: ImportedCredentials): Promise<void> {
    await this.db('accounts').where({ host, username }).update(importedColumns(credentials));
  }

  /** Both hashes' keys as stored, for an export; null when there is no such account. */
  async heldCredentials(host: string, username: string): Promise<HeldCredentials | null> {
    const row: AccountRow | undefined = await this.db('accounts').where({ host, username }).first();
    if (row === undefined) return null;
    return { sha1: this.rowCredentials(row, 'sha1'), sha256: this.rowCredentials(row, 'sha256'), createdAt: Number(row.created_at) };
  }

  async setPassword(host: string, username: string, password: string): Promise<boolean> {
    const changed = await this.db('accounts').where({ host, username }).update(await this.credentialColumns(password));
    if ((this.sha1Only.get(host) ?? 0) > 0) await this.countSha1Only(host);
    return changed > 0;
  }

  /**
   * Accounts per host with SHA-1 keys only (imported from Prosody 0.12 or ejabberd). While a host
   * has any, SCRAM-SHA-256 is not offered there: a client that picks the strongest mechanism
   * offered (Conversations) would be refused for such an account, and keys for another hash
   * cannot be made without the password. A PLAIN login or a new password gives the account
   * SHA-256 keys (c2s/sasl/negotiation.ts); the last one brings SCRAM-SHA-256 back.
   */
  private readonly sha1Only = new Map<string, number>();

  /** Counts them again (at start, after an import or an upgrade); the count of `host`, or of all. */
  async countSha1Only(host?: string): Promise<number> {
    const query = this.db('accounts').where('sha256_stored_key', '').select('host').count<Array<{ host: string; n: number | string }>>({ n: '*' }).groupBy('host');
    const rows = await (host === undefined ? query : query.andWhere({ host }));
    if (host === undefined) this.sha1Only.clear();
    else this.sha1Only.delete(host);
    for (const row of rows) this.sha1Only.set(row.host, Number(row.n));
    return host === undefined ? [...this.sha1Only.values()].reduce((a, b) => a + b, 0) : this.sha1Only.get(host) ?? 0;
  }

  /** Whether SCRAM-SHA-256 may be offered on `host` (see sha1Only). */
  offersSha256(host: string): boolean {
    return (this.sha1Only.get(host) ?? 0) === 0;
  }

  async delete(host: string, username: string): Promise<boolean> {
    const deleted = await this.db('accounts').where({ host, username }).delete();
    this.remember(host, username, false);
    this.deleted?.(`${username}@${host}`);
    return deleted > 0;
  }

  async exists(host: string, username: string): Promise<boolean> {
    const known = this.existence.get(`${username}@${host}`);
    if (known !== undefined) return known;
    const row = await this.db('accounts').where({ host, username }).first('username');
    this.remember(host, username, row !== undefined);
    return row !== undefined;
  }

  /** Cached answer only: `undefined` when unknown (the caller then asks `exists`). */
  knownToExist(host: string, username: string): boolean | undefined {
    return this.existence.get(`${username}@${host}`);
  }

  /** Up to `limit` usernames after `after`, in order (an export reads them page by page). */
  async listPage(host: string, after: string, limit: number): Promise<string[]> {
    const rows: Array<{ username: string }> = await this.db('accounts').where({ host }).andWhere('username', '>', after).orderBy('username').limit(limit).select('username');
    return rows.map((r) => r.username);
  }

  async list(host: string): Promise<string[]> {
    const rows: Array<{ username: string }> = await this.db('accounts').where({ host }).orderBy('username').select('username');
    return rows.map((r) => r.username);
  }

  /** How many accounts a host has, and how many of them are disabled. */
  async count(host: string): Promise<{ registered: number; disabled: number }> {
    const row = (await this.db('accounts').where({ host }).first(
      this.db.raw('count(*) as registered'),
      this.db.raw('count(disabled_at) as disabled'),
    )) as { registered: number | string; disabled: number | string } | undefined;
    // PostgreSQL returns counts as strings
    return { registered: Number(row?.registered ?? 0), disabled: Number(row?.disabled ?? 0) };
  }

  async info(host: string, username: string): Promise<AccountInfo | null> {
    const row: AccountRow | undefined = await this.db('accounts').where({ host, username }).first();
    if (row === undefined) return null;
    // PostgreSQL returns bigint columns as strings
    return { createdAt: Number(row.created_at), disabledAt: row.disabled_at === null ? null : Number(row.disabled_at), disabledReason: row.disabled_reason };
  }

  /** Disables (with a reason shown at login) or re-enables an account; false when there is none. */
  async setDisabled(host: string, username: string, disabled: boolean, reason?: string): Promise<boolean> {
    const changed = await this.db('accounts')
      .where({ host, username })
      .update(disabled ? { disabled_at: Date.now(), disabled_reason: reason ?? null } : { disabled_at: null, disabled_reason: null });
    return changed > 0;
  }

  /** The reason text when the account is disabled ('' when none was given), else null. */
  async disabledReason(host: string, username: string): Promise<string | null> {
    const row: Pick<AccountRow, 'disabled_at' | 'disabled_reason'> | undefined = await this.db('accounts').where({ host, username }).first('disabled_at', 'disabled_reason');
    if (row === undefined || row.disabled_at === null) return null;
    return row.disabled_reason ?? '';
  }

  async credentials(host: string, username: string, hash: ScramHash): Promise<ScramCredentials | null> {
    const row: AccountRow | undefined = await this.db('accounts').where({ host, username }).first();
    return row === undefined ? null : this.rowCredentials(row, hash);
  }

  /** null when the account has no keys for this hash (imported with the other hash only, or none). */
  private rowCredentials(row: AccountRow, hash: ScramHash): ScramCredentials | null {
    const credentials = hash === 'sha1'
      ? { salt: row.sha1_salt, iterations: row.iterations, storedKey: row.sha1_stored_key, serverKey: row.sha1_server_key }
      : { salt: row.sha256_salt, iterations: row.iterations, storedKey: row.sha256_stored_key, serverKey: row.sha256_server_key };
    return credentials.storedKey === '' ? null : credentials;
  }

  private async credentialColumns(password: string) {
    const [sha1, sha256] = await Promise.all([
      deriveScramCredentials(password, 'sha1', this.iterations),
      deriveScramCredentials(password, 'sha256', this.iterations),
    ]);
    return {
      iterations: this.iterations,
      sha1_salt: sha1.salt,
      sha1_stored_key: sha1.storedKey,
      sha1_server_key: sha1.serverKey,
      sha256_salt: sha256.salt,
      sha256_stored_key: sha256.storedKey,
      sha256_server_key: sha256.serverKey,
    };
  }
}
