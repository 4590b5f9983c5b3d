// Who is logged in to the dashboard: a random session id in an HttpOnly, SameSite=Strict cookie
// (Secure on TLS), kept here only as its SHA-256 digest, with the per-session token every
// state-changing form carries (CSRF). In memory: a restart, or another node of a cluster, asks
// the admin to log in again.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export interface DashboardLogin {
  /** The admin's bare JID. */
  jid: string;
  /** The token every POST of this login carries. */
  csrf: string;
  lastSeen: number;
  /** A one-shot message for the next page (after a POST, Post/Redirect/Get). */
  flash?: { kind: 'ok' | 'error'; text: string };
}

const digest = (value: string) => createHash('sha256').update(value).digest('base64url');

export function randomToken(): string {
  return randomBytes(32).toString('base64url');
}

/** Constant-time comparison of two tokens (as digests, whatever their lengths). */
export function sameToken(given: string | undefined | null, expected: string): boolean {
  if (given === undefined || given === null) return false;
  return timingSafeEqual(createHash('sha256').update(given).digest(), createHash('sha256').update(expected).digest());
}

export class DashboardLogins {
  private readonly logins = new Map<string, DashboardLogin>();

  /** `idleTimeout`: seconds without a request after which a login ends. */
  constructor(private readonly idleTimeout: number) {}

  /** A new login for `jid`; returns the cookie value (the only place the session id exists). */
  create(jid: string, now = Date.now()): { id: string; login: DashboardLogin } {
    this.sweep(now);
    const id = randomToken();
    const login: DashboardLogin = { jid, csrf: randomToken(), lastSeen: now };
    this.logins.set(digest(id), login);
    return { id, login };
  }

  /** The login a cookie value names, if it has not ended; the request counts as activity. */
  find(id: string | undefined, now = Date.now()): DashboardLogin | undefined {
    if (id === undefined || id === '') return undefined;
    const key = digest(id);
    const login = this.logins.get(key);
    if (login === undefined) return undefined;
    if (now - login.lastSeen > this.idleTimeout * 1000) {
      this.logins.delete(key);
      return undefined;
    }
    login.lastSeen = now;
    return login;
  }

  end(id: string | undefined): void {
    if (id !== undefined) this.logins.delete(digest(id));
  }

  /** Ends every login of `jid` (its admin rights were withdrawn, say). */
  endAllOf(jid: string): void {
    for (const [key, login] of this.logins) if (login.jid === jid) this.logins.delete(key);
  }

  private sweep(now: number): void {
    for (const [key, login] of this.logins) if (now - login.lastSeen > this.idleTimeout * 1000) this.logins.delete(key);
  }

  get size(): number {
    return this.logins.size;
  }
}

/** The value of cookie `name` in a Cookie header. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq !== -1 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
