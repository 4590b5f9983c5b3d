// Invitations (XEP-0401): a random token that lets someone register an account on this host
// (XEP-0445), become a contact of the user who made it (XEP-0379), or both. Single use, with an
// expiry; a token is only spent when what it was for succeeded.
import crypto from 'node:crypto';
import type { Knex } from 'knex';
import type { Migration } from '../../storage/db.js';

export const inviteMigrations: Migration[] = [
  {
    name: '001-create-invites',
    async up(db) {
      await db.schema.createTable('invites', (t) => {
        t.string('token', 64).primary();
        t.string('host', 255).notNullable();
        /** account: register only; contact: become the inviter's contact, registering first if allowed */
        t.string('kind', 16).notNullable();
        /** The user who made it (null: the admin). */
        t.string('inviter', 1023).nullable();
        /** The only username it may register, when the admin reserved one. */
        t.string('username', 1023).nullable();
        /** A contact invitation may also register an account on the inviter's host (ibr=y). */
        t.boolean('may_register').notNullable();
        t.bigInteger('created_at').notNullable();
        t.bigInteger('expires_at').notNullable();
        t.index(['host', 'inviter']);
      });
    },
  },
];

export interface Invite {
  token: string;
  host: string;
  kind: 'account' | 'contact';
  inviter: string | null;
  username: string | null;
  mayRegister: boolean;
  createdAt: number;
  expiresAt: number;
}

interface InviteRow {
  token: string;
  host: string;
  kind: string;
  inviter: string | null;
  username: string | null;
  may_register: boolean | number;
  created_at: number | string;
  expires_at: number | string;
}

function fromRow(row: InviteRow): Invite {
  return {
    token: row.token,
    host: row.host,
    kind: row.kind === 'contact' ? 'contact' : 'account',
    inviter: row.inviter,
    username: row.username,
    mayRegister: Boolean(row.may_register),
    createdAt: Number(row.created_at),
    expiresAt: Number(row.expires_at),
  };
}

export interface NewInvite {
  kind: 'account' | 'contact';
  inviter?: string | null;
  username?: string | null;
  mayRegister?: boolean;
  /** Seconds it stays valid. */
  ttl: number;
}

/**
 * RFC 4086: 18 random bytes, URL-safe; unguessable, and short enough for a QR code. Never with a
 * leading '-': an admin pastes it after `xmppd invite revoke`, where it would read as an option
 * (one token in 64 did; the CI failure of 2026-12-04).
 */
export function newToken(): string {
  for (;;) {
    const token = crypto.randomBytes(18).toString('base64url');
    if (!token.startsWith('-')) return token;
  }
}

export class InviteStore {
  constructor(private readonly db: Knex) {}

  async create(host: string, invite: NewInvite, now = Date.now()): Promise<Invite> {
    const row = {
      token: newToken(),
      host,
      kind: invite.kind,
      inviter: invite.inviter ?? null,
      username: invite.username ?? null,
      may_register: invite.kind === 'account' || invite.mayRegister === true,
      created_at: now,
      expires_at: now + invite.ttl * 1000,
    };
    await this.db('invites').insert(row);
    return fromRow(row);
  }

  /** A valid (known, unexpired) invitation of this host, or null. */
  async find(host: string, token: string, now = Date.now()): Promise<Invite | null> {
    if (token === '' || token.length > 64) return null;
    const row = (await this.db('invites').where({ token, host }).where('expires_at', '>', now).first()) as InviteRow | undefined;
    return row === undefined ? null : fromRow(row);
  }

  /** Spends an invitation: true for the one caller that got it, false if it was spent or revoked meanwhile. */
  async spend(host: string, token: string): Promise<boolean> {
    return (await this.db('invites').where({ token, host }).delete()) === 1;
  }

  /** Puts back an invitation spent for something that then failed (a username already taken). */
  async restore(invite: Invite): Promise<void> {
    await this.db('invites').insert({
      token: invite.token, host: invite.host, kind: invite.kind, inviter: invite.inviter, username: invite.username,
      may_register: invite.mayRegister, created_at: invite.createdAt, expires_at: invite.expiresAt,
    });
  }

  async list(host: string, inviter?: string | null, now = Date.now()): Promise<Invite[]> {
    const query = this.db('invites').where({ host }).where('expires_at', '>', now).orderBy('created_at');
    if (inviter !== undefined) query.where(inviter === null ? { inviter: null } : { inviter });
    return ((await query) as InviteRow[]).map(fromRow);
  }

  async revoke(host: string, token: string): Promise<boolean> {
    return this.spend(host, token);
  }

  async removeExpired(now = Date.now()): Promise<number> {
    return this.db('invites').where('expires_at', '<=', now).delete();
  }
}

/**
 * Whether an invitation may register an account: not where registration is closed, and a user's
 * contact invitation only when `modules.invites.users_invite_accounts` lets it.
 */
export function invitationRegisters(invite: Invite, registration: 'open' | 'invite' | 'closed', usersInviteAccounts: boolean): boolean {
  return registration !== 'closed' && invite.mayRegister && (invite.kind === 'account' || usersInviteAccounts);
}

/**
 * XEP-0401 §4 / XEP-0379 §2: the xmpp: URI of an invitation. `ibr=y` tells the client that the
 * token also registers an account on the inviter's host.
 */
export function inviteUri(invite: Invite, canRegister: boolean): string {
  if (invite.kind === 'contact' && invite.inviter !== null) {
    return `xmpp:${invite.inviter}@${invite.host}?roster;preauth=${invite.token}${canRegister ? ';ibr=y' : ''}`;
  }
  return `xmpp:${invite.username === null ? invite.host : `${invite.username}@${invite.host}`}?register;preauth=${invite.token}`;
}
