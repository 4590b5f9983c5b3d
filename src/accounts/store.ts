// Accounts and their credentials. Passwords are never stored: only SCRAM salted keys for
// SHA-1, SHA-256 and SHA-512 (RFC 5802 §3, RFC 7677, draft-melnikov-scram-sha-512), which is all
// SCRAM needs and what PLAIN is checked against.
import type { Knex } from 'knex';
import type { Migration } from '../storage/db.js';
import { PreparedRead } from '../storage/prepared.js';
import { SCRAM_HASHES, deriveScramCredentials, type ScramCredentials, type ScramHash } from './credentials.js';

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
  {
    // draft-melnikov-scram-sha-512: accounts made before have no SHA-512 keys ('') until a PLAIN
    // login, a XEP-0480 upgrade task or a new password gives them some (see missingKeys)
    name: '003-sha512-keys',
    async up(db) {
      await db.schema.alterTable('accounts', (t) => {
        t.string('sha512_salt').notNullable().defaultTo('');
        t.string('sha512_stored_key').notNullable().defaultTo('');
        t.string('sha512_server_key').notNullable().defaultTo('');
      });
    },
  },
];

/** The three columns of each hash's keys; '' when the account has none of that hash. */
type KeyColumns = { [H in ScramHash as `${H}_salt` | `${H}_stored_key` | `${H}_server_key`]: string };

function keyColumns(hash: ScramHash, credentials: ScramCredentials | undefined): Record<string, string> {
  return {
    [`${hash}_salt`]: credentials?.salt ?? '',
    [`${hash}_stored_key`]: credentials?.storedKey ?? '',
    [`${hash}_server_key`]: credentials?.serverKey ?? '',
  };
}

interface AccountRow extends KeyColumns {
  host: string;
  username: string;
  iterations: number;
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
 * ejabberd's export): any of the hashes. A hash not given cannot be used until the account gets
 * its keys (a PLAIN login, a XEP-0480 upgrade task or a new password: see missingKeys).
 */
export type ImportedCredentials = Partial<Record<ScramHash, ScramCredentials>>;

/** What an export writes of an account's keys: the hashes it holds. */
export type HeldCredentials = Record<ScramHash, ScramCredentials | null> & { createdAt: number; disabled: string | null };

/** The columns of imported keys; a hash not given is stored empty (never matches a proof). */
function importedColumns(credentials: ImportedCredentials) {
  // one iteration count per account: keys of another count than the SHA-256 ones cannot be kept
  const iterations = (credentials.sha256 ?? credentials.sha512 ?? credentials.sha1)?.iterations ?? 0;
  const columns: Record<string, string | number> = { iterations };
  for (const hash of SCRAM_HASHES) {
    const given = credentials[hash];
    Object.assign(columns, keyColumns(hash, given?.iterations === iterations ? given : undefined));
  }
  return columns;
}

/** An account's keys of one hash as a login reads them, with its disabled state. */
export interface LoginCredentials extends ScramCredentials {
  /** The reason when the account is disabled ('' when none was given); null when it is not. */
  disabled: string | null;
}

function disabledOf(row: Pick<AccountRow, 'disabled_at' | 'disabled_reason'>): string | null {
  return row.disabled_at === null ? null : row.disabled_reason ?? '';
}

/** Per hash, how many accounts lack its keys. */
export type MissingKeys = Record<ScramHash, number>;

/** The hashes whose keys an account lacks, and its one iteration count (for keys made for it). */
export interface AccountKeys {
  iterations: number;
  missing: ScramHash[];
}

/**
 * Bounded memo of accounts known to exist, so routing to an offline account is not a query per
 * stanza. Only "exists" is remembered: an account created by the CLI while the server runs must
 * not be taken for missing. (A CLI deletion is seen at the next login, which fails.)
 */
const EXISTENCE_CACHE_LIMIT = 50_000;

/**
 * Bounded memo of recently read account rows (keys, disabled state): a phone that reconnects
 * dozens of times a day logs in without a query. Every write here drops the row (and tells the
 * other nodes of a cluster, src/core/caches.ts); a row read while a write was under way is not kept.
 */
const ROW_CACHE_LIMIT = 20_000;

export class AccountStore {
  private readonly existence = new Map<string, true>();
  /** Deletions under way (the data goes after the row): the name is not given out again until done. */
  private readonly deletions = new Map<string, Promise<unknown>>();

  /** Told when an account is deleted here, for other nodes' memos (src/core/caches.ts). */
  deleted: ((key: string) => void) | undefined;

  private readonly rows = new Map<string, AccountRow>();
  /** Bumped by every write, so that a read that raced one does not keep what it read. */
  private rowWrites = 0;
  /** Told when an account's row changed here (`user@host`), for other nodes' memos. */
  rowChanged: ((key: string) => void) | undefined;

  /** A login's read (prepared: src/storage/prepared.ts). */
  private readonly rowRead: PreparedRead<AccountRow>;

  constructor(
    private readonly db: Knex,
    readonly iterations = 4096,
  ) {
    // the columns named, not *: a statement prepared on PostgreSQL fails once a column is added
    // to its table by a newer node's migration if its result's shape would change
    const keys = SCRAM_HASHES.flatMap((hash) => [`${hash}_salt`, `${hash}_stored_key`, `${hash}_server_key`]).join(', ');
    this.rowRead = new PreparedRead(db, `select host, username, iterations, created_at, disabled_at, disabled_reason, ${keys} from accounts where host = ? and username = ? limit 1`);
  }

  /** The account's row, from the memo when it was read lately. */
  private async row(host: string, username: string): Promise<AccountRow | undefined> {
    const key = `${username}@${host}`;
    // an account being deleted is gone already: its sessions are being closed, and a login
    // racing the deletion must not find the row in the memo (or, on PostgreSQL's pool, in the
    // table before the delete commits)
    if (this.deletions.has(key)) return undefined;
    const cached = this.rows.get(key);
    if (cached !== undefined) {
      // least recently used first out: a hit moves to the end
      this.rows.delete(key);
      this.rows.set(key, cached);
      return cached;
    }
    const writes = this.rowWrites;
    const row = await this.rowRead.first([host, username]);
    if (row !== undefined && writes === this.rowWrites) {
      if (this.rows.size >= ROW_CACHE_LIMIT) this.rows.delete(this.rows.keys().next().value!);
      this.rows.set(key, row);
    }
    return row;
  }

  /** The account's row changed (`user@host`), here or on another node: the memo drops it. */
  forgetRow(key: string): void {
    this.rowWrites++;
    this.rows.delete(key);
  }

  /** After a write here: dropped from our memo and from the other nodes'. */
  private written(host: string, username: string): void {
    const key = `${username}@${host}`;
    this.forgetRow(key);
    this.rowChanged?.(key);
  }

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
      this.written(host, username);
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
    this.written(host, username);
    this.remember(host, username, true);
    return true;
  }

  /** Replaces an account's keys with imported ones. */
  async setImportedCredentials(host: string, username: string, credentials: ImportedCredentials): Promise<void> {
    await this.db('accounts').where({ host, username }).update(importedColumns(credentials));
    this.written(host, username);
  }

  /** Every hash's keys as stored, for an export or a password check; null when there is no such account. */
  async heldCredentials(host: string, username: string): Promise<HeldCredentials | null> {
    const row = await this.row(host, username);
    if (row === undefined) return null;
    return { sha1: this.rowCredentials(row, 'sha1'), sha256: this.rowCredentials(row, 'sha256'), sha512: this.rowCredentials(row, 'sha512'), createdAt: Number(row.created_at), disabled: disabledOf(row) };
  }

  async setPassword(host: string, username: string, password: string): Promise<boolean> {
    const changed = await this.db('accounts').where({ host, username }).update(await this.credentialColumns(password));
    this.written(host, username);
    await this.keysAdded(host);
    return changed > 0;
  }

  /**
   * Per host, how many accounts lack each hash's keys (imported from Prosody 0.12 or ejabberd
   * with SHA-1 keys only, or made before SHA-512 keys were kept). A SCRAM mechanism is offered on
   * a host only while every account there can answer it: a client that picks the strongest
   * mechanism offered (Conversations) would be refused for an account without its keys, and keys
   * for another hash cannot be made without the password. A PLAIN login, a XEP-0480 upgrade task
   * or a new password gives an account the keys it lacks; the last one brings the mechanism back.
   * Accounts with no keys at all (imported without a password) log in with nothing until their
   * password is set, so they hold back nothing.
   */
  private readonly missing = new Map<string, MissingKeys>();

  /** Told when the last account of `host` lacking `hash`'s keys got them here (the mechanism is offered again). */
  keysComplete: ((host: string, hash: ScramHash) => void) | undefined;

  /** Counts them again (at start, after an upgrade, or told by another node); the counts of `host`. */
  async countMissingKeys(host: string): Promise<MissingKeys> {
    const lacks = (hash: ScramHash) => this.db.raw(`SUM(CASE WHEN ?? = '' THEN 1 ELSE 0 END) AS ??`, [`${hash}_stored_key`, hash]);
    const row: Partial<Record<ScramHash, number | string | null>> | undefined = await this.db('accounts')
      .where({ host })
      .andWhere((q) => {
        for (const hash of SCRAM_HASHES) q.orWhereNot(`${hash}_stored_key`, '');
      })
      .select(SCRAM_HASHES.map(lacks))
      .first();
    const counts = Object.fromEntries(SCRAM_HASHES.map((hash) => [hash, Number(row?.[hash] ?? 0)])) as MissingKeys;
    const before = this.missing.get(host);
    this.missing.set(host, counts);
    for (const hash of SCRAM_HASHES) if ((before?.[hash] ?? 0) > 0 && counts[hash] === 0) this.keysComplete?.(host, hash);
    return counts;
  }

  /** The SCRAM hashes every account of `host` has keys for: the mechanisms it may offer (see `missing`). */
  offeredHashes(host: string): ScramHash[] {
    const counts = this.missing.get(host);
    return SCRAM_HASHES.filter((hash) => (counts?.[hash] ?? 0) === 0);
  }

  /** An account of `host` got keys: while the host has accounts lacking some, count again. */
  private async keysAdded(host: string): Promise<void> {
    const counts = this.missing.get(host);
    if (counts !== undefined && SCRAM_HASHES.some((hash) => counts[hash] > 0)) await this.countMissingKeys(host);
  }

  /** Which hashes' keys an account lacks; null when there is no such account. */
  async missingKeys(host: string, username: string): Promise<AccountKeys | null> {
    const row = await this.row(host, username);
    if (row === undefined) return null;
    return { iterations: row.iterations, missing: SCRAM_HASHES.filter((hash) => this.rowCredentials(row, hash) === null) };
  }

  /**
   * Stores keys of `hash` the account lacked (a XEP-0480 upgrade task computed them, at the
   * account's iteration count); never replaces keys it has. False when nothing was stored.
   */
  async addKeys(host: string, username: string, hash: ScramHash, credentials: ScramCredentials): Promise<boolean> {
    const changed = await this.db('accounts')
      .where({ host, username, iterations: credentials.iterations, [`${hash}_stored_key`]: '' })
      .update(keyColumns(hash, credentials));
    this.written(host, username);
    if (changed > 0) await this.keysAdded(host);
    return changed > 0;
  }

  /**
   * Derives from the password (just checked against the keys the account has) the keys it
   * lacks, at its iteration count, keeping the ones it has (and so the FAST tokens tied to them).
   * Returns the hashes added.
   */
  async addMissingKeys(host: string, username: string, password: string): Promise<ScramHash[]> {
    const account = await this.missingKeys(host, username);
    if (account === null || account.iterations <= 0) return [];
    const added: ScramHash[] = [];
    for (const hash of account.missing) {
      const credentials = await deriveScramCredentials(password, hash, account.iterations);
      const changed = await this.db('accounts')
        .where({ host, username, iterations: account.iterations, [`${hash}_stored_key`]: '' })
        .update(keyColumns(hash, credentials));
      if (changed > 0) added.push(hash);
    }
    this.written(host, username);
    if (added.length > 0) await this.keysAdded(host);
    return added;
  }

  async delete(host: string, username: string): Promise<boolean> {
    // dropped before as well as after: no node logs the account in from its memo meanwhile
    this.written(host, username);
    const deleted = await this.db('accounts').where({ host, username }).delete();
    this.written(host, username);
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
    const row = await this.row(host, username);
    if (row === undefined) return null;
    // PostgreSQL returns bigint columns as strings
    return { createdAt: Number(row.created_at), disabledAt: row.disabled_at === null ? null : Number(row.disabled_at), disabledReason: row.disabled_reason };
  }

  /** Disables (with a reason shown at login) or re-enables an account; false when there is none. */
  async setDisabled(host: string, username: string, disabled: boolean, reason?: string): Promise<boolean> {
    const changed = await this.db('accounts')
      .where({ host, username })
      .update(disabled ? { disabled_at: Date.now(), disabled_reason: reason ?? null } : { disabled_at: null, disabled_reason: null });
    this.written(host, username);
    return changed > 0;
  }

  /** The reason text when the account is disabled ('' when none was given), else null. */
  async disabledReason(host: string, username: string): Promise<string | null> {
    const row = await this.row(host, username);
    return row === undefined ? null : disabledOf(row);
  }

  /**
   * An account's keys of one hash, and whether it is disabled: read in one query, as a login
   * needs both (the disabled state is told only once the keys proved the password).
   */
  async credentials(host: string, username: string, hash: ScramHash): Promise<LoginCredentials | null> {
    const row = await this.row(host, username);
    if (row === undefined) return null;
    const credentials = this.rowCredentials(row, hash);
    return credentials === null ? null : { ...credentials, disabled: disabledOf(row) };
  }

  /** null when the account has no keys for this hash (imported with other hashes only, made before SHA-512, or none). */
  private rowCredentials(row: AccountRow, hash: ScramHash): ScramCredentials | null {
    const storedKey = row[`${hash}_stored_key`];
    if (storedKey === '') return null;
    return { salt: row[`${hash}_salt`], iterations: row.iterations, storedKey, serverKey: row[`${hash}_server_key`] };
  }

  /** Every hash's keys for a new or changed password. */
  private async credentialColumns(password: string) {
    const derived = await Promise.all(SCRAM_HASHES.map((hash) => deriveScramCredentials(password, hash, this.iterations)));
    const columns: Record<string, string | number> = { iterations: this.iterations };
    SCRAM_HASHES.forEach((hash, i) => Object.assign(columns, keyColumns(hash, derived[i])));
    return columns;
  }
}
