// FAST tokens (XEP-0484), one row per account and user agent (the client installation named by
// XEP-0388's <user-agent id/>), with room for two tokens: the one issued last and the one before
// it, which stays valid until the new one has been used once (the client may not have received
// the new one: its connection can drop right after <success/>).
//
// What is stored is SHA-256 of the token, never the token. The HT mechanisms key HMAC-SHA-256
// with the token, and HMAC first hashes a key longer than its 64-byte block (RFC 2104 §2); our
// tokens are longer, so HMAC(token, m) = HMAC(SHA-256(token), m) and the hash is all the check
// needs. It still lets whoever reads the table log in with it until it expires, as any bearer
// token store does; the password's SCRAM keys are what it cannot reveal.
import crypto from 'node:crypto';
import type { Knex } from 'knex';
import type { Migration } from '../../storage/db.js';
import { PreparedRead } from '../../storage/prepared.js';

export const fastMigrations: Migration[] = [
  {
    name: '001-create-fast-tokens',
    async up(db) {
      await db.schema.createTable('fast_tokens', (t) => {
        t.string('host', 255).notNullable();
        t.string('username', 1023).notNullable();
        t.string('user_agent', 256).notNullable();
        t.string('software', 256).nullable();
        t.string('device', 256).nullable();
        /** The mechanism it was issued for (XEP-0484 §4: bound to it). */
        t.string('mechanism', 32).notNullable();
        /** base64 SHA-256 of the current token, its expiry (epoch ms), the highest 'count' seen with it. */
        t.string('key', 44).notNullable();
        t.bigInteger('expires_at').notNullable();
        t.bigInteger('count').nullable();
        /** The token before it, valid until the current one is first used. */
        t.string('previous_key', 44).nullable();
        t.bigInteger('previous_expires_at').nullable();
        t.bigInteger('previous_count').nullable();
        /** Which password it was issued under: a new password ends every token (see credentialTag). */
        t.string('credential_tag', 44).notNullable();
        t.bigInteger('created_at').notNullable();
        t.bigInteger('used_at').nullable();
        t.primary(['host', 'username', 'user_agent']);
      });
    },
  },
];

export interface FastTokenRow {
  host: string;
  username: string;
  user_agent: string;
  software: string | null;
  device: string | null;
  mechanism: string;
  key: string;
  expires_at: number | string;
  count: number | string | null;
  previous_key: string | null;
  previous_expires_at: number | string | null;
  previous_count: number | string | null;
  credential_tag: string;
  created_at: number | string;
  used_at: number | string | null;
}

/** A device's tokens as a user sees them (`xmppd`/ad-hoc listing). */
export interface FastDevice {
  userAgent: string;
  software: string | null;
  device: string | null;
  mechanism: string;
  createdAt: number;
  usedAt: number | null;
  expiresAt: number;
}

/** A new token (what the client gets) and the key stored for it. */
export function newToken(): { token: string; key: Buffer } {
  // 54 random bytes, 72 base64url characters: longer than HMAC-SHA-256's 64-byte block (above)
  const token = crypto.randomBytes(54).toString('base64url');
  return { token, key: tokenKey(token) };
}

export function tokenKey(token: string): Buffer {
  return crypto.createHash('sha256').update(token, 'utf8').digest();
}

/** Which credentials are current: changes whenever the password does (new salt, new keys). */
export function credentialTag(salt: string, storedKey: string): string {
  return crypto.createHash('sha256').update(`${salt}\0${storedKey}`).digest('base64');
}

/**
 * Recently read token rows, shared by every store on one database (the module's and the admin
 * commands'), so that a device reconnecting with its token costs no query. Every write drops
 * what it touched, here and (through `notify`, set by the module per host) on the other nodes
 * of a cluster; a row read while a write was under way is not kept.
 */
class TokenMemo {
  readonly rows = new Map<string, FastTokenRow>();
  writes = 0;
  readonly notify = new Map<string, (key: string) => void>();

  static readonly LIMIT = 20_000;
}

const memos = new WeakMap<Knex, TokenMemo>();

function memoKey(host: string, username: string, userAgent: string): string {
  return `${host}\0${username}\0${userAgent}`;
}

export class FastTokenStore {
  private readonly memo: TokenMemo;
  /** A FAST login whose row is not in the memo reads it: prepared once (src/storage/prepared.ts). */
  private readonly rowRead: PreparedRead<FastTokenRow>;

  constructor(private readonly db: Knex) {
    let memo = memos.get(db);
    if (memo === undefined) memos.set(db, (memo = new TokenMemo()));
    this.memo = memo;
    this.rowRead = new PreparedRead(db, `select host, username, user_agent, software, device, mechanism, "key", expires_at, count,
      previous_key, previous_expires_at, previous_count, credential_tag, created_at, used_at
      from fast_tokens where host = ? and username = ? and user_agent = ? limit 1`);
  }

  async get(host: string, username: string, userAgent: string): Promise<FastTokenRow | undefined> {
    const key = memoKey(host, username, userAgent);
    const cached = this.memo.rows.get(key);
    if (cached !== undefined) return cached;
    const writes = this.memo.writes;
    const row = await this.rowRead.first([host, username, userAgent]);
    if (row !== undefined && writes === this.memo.writes) {
      if (this.memo.rows.size >= TokenMemo.LIMIT) this.memo.rows.delete(this.memo.rows.keys().next().value!);
      this.memo.rows.set(key, row);
    }
    return row;
  }

  /** Another node changed `key` (from `changed`): dropped here. */
  forget(key: string): void {
    this.memo.writes++;
    if (key.endsWith('\0')) {
      // every device of an account
      for (const cached of this.memo.rows.keys()) if (cached.startsWith(key)) this.memo.rows.delete(cached);
    } else {
      this.memo.rows.delete(key);
    }
  }

  /** Tells this node's memo and the other nodes' (per host: `notifyOthers`) that rows changed. */
  private changed(host: string, username: string, userAgent?: string): void {
    const key = userAgent === undefined ? `${host}\0${username}\0` : memoKey(host, username, userAgent);
    this.forget(key);
    this.memo.notify.get(host)?.(key);
  }

  /** How another node learns of this node's changes to `host`'s tokens; returns its removal. */
  notifyOthers(host: string, notify: (key: string) => void): () => void {
    this.memo.notify.set(host, notify);
    return () => void (this.memo.notify.get(host) === notify && this.memo.notify.delete(host));
  }

  /**
   * Stores a new token for the device. The token the client logged in with (`used`), or else
   * the current one, becomes the previous one.
   */
  async issue(
    row: Omit<FastTokenRow, 'previous_key' | 'previous_expires_at' | 'previous_count' | 'count' | 'used_at' | 'created_at'>,
    previous: { key: string; expiresAt: number } | null,
    now = Date.now(),
  ): Promise<void> {
    const values = {
      ...row,
      count: null,
      previous_key: previous?.key ?? null,
      previous_expires_at: previous?.expiresAt ?? null,
      previous_count: null,
      created_at: now,
      used_at: null,
    };
    await this.db('fast_tokens').insert(values).onConflict(['host', 'username', 'user_agent']).merge();
    this.changed(row.host, row.username, row.user_agent);
  }

  /** The current token was used: the previous one is no longer needed. */
  async usedCurrent(row: FastTokenRow, count: number | null, now = Date.now()): Promise<void> {
    await this.db('fast_tokens')
      .where({ host: row.host, username: row.username, user_agent: row.user_agent, key: row.key })
      .update({ used_at: now, count, previous_key: null, previous_expires_at: null, previous_count: null });
    this.changed(row.host, row.username, row.user_agent);
  }

  async usedPrevious(row: FastTokenRow, count: number | null, now = Date.now()): Promise<void> {
    await this.db('fast_tokens')
      .where({ host: row.host, username: row.username, user_agent: row.user_agent, previous_key: row.previous_key })
      .update({ used_at: now, previous_count: count });
    this.changed(row.host, row.username, row.user_agent);
  }

  async revoke(host: string, username: string, userAgent?: string): Promise<number> {
    const query = this.db('fast_tokens').where({ host, username });
    if (userAgent !== undefined) query.andWhere({ user_agent: userAgent });
    const revoked = await query.delete();
    this.changed(host, username, userAgent);
    return revoked;
  }

  async devices(host: string, username: string, now = Date.now()): Promise<FastDevice[]> {
    const rows: FastTokenRow[] = await this.db<FastTokenRow>('fast_tokens').where({ host, username }).orderBy('created_at');
    return rows
      .map((row) => ({
        userAgent: row.user_agent,
        software: row.software,
        device: row.device,
        mechanism: row.mechanism,
        createdAt: Number(row.created_at),
        usedAt: row.used_at === null ? null : Number(row.used_at),
        expiresAt: Math.max(Number(row.expires_at), Number(row.previous_expires_at ?? 0)),
      }))
      .filter((device) => device.expiresAt > now);
  }

  /** Drops what has expired (both tokens), for the periodic cleanup. */
  async expire(now = Date.now()): Promise<number> {
    const expired = await this.db('fast_tokens')
      .where('expires_at', '<=', now)
      .andWhere((q) => q.whereNull('previous_expires_at').orWhere('previous_expires_at', '<=', now))
      .delete();
    // what expired is refused by its expiry anyway; only the memory is given back
    if (expired > 0) {
      this.memo.writes++;
      this.memo.rows.clear();
    }
    return expired;
  }
}
