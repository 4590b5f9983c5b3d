// Server Dialback keys (XEP-0220, keys generated as XEP-0185 recommends) and the secret they are
// derived from, kept in the data directory so that keys stay valid across restarts.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export const NS_DIALBACK = 'jabber:server:dialback';
export const NS_DIALBACK_FEATURE = 'urn:xmpp:features:dialback';

/** XEP-0185 §3: HMAC-SHA256(SHA256(secret), receiving + ' ' + originating + ' ' + streamId), hex. */
export function dialbackKey(secret: string, receiving: string, originating: string, streamId: string): string {
  const hashedSecret = crypto.createHash('sha256').update(secret).digest('hex');
  return crypto.createHmac('sha256', hashedSecret).update(`${receiving} ${originating} ${streamId}`).digest('hex');
}

/** Constant-time comparison of a key received with the one we compute. */
export function dialbackKeyMatches(secret: string, receiving: string, originating: string, streamId: string, key: string): boolean {
  const expected = Buffer.from(dialbackKey(secret, receiving, originating, streamId));
  const given = Buffer.from(key.trim());
  return given.length === expected.length && crypto.timingSafeEqual(given, expected);
}

/** The configured secret, else the one in <dataDir>/s2s-dialback-secret (created on first use). */
export function loadDialbackSecret(configured: string | undefined, dataDir: string): string {
  if (configured !== undefined) return configured;
  const file = path.join(dataDir, 's2s-dialback-secret');
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const secret = crypto.randomBytes(32).toString('hex');
  fs.mkdirSync(dataDir, { recursive: true });
  fs.writeFileSync(file, secret + '\n', { mode: 0o600, flag: 'wx' });
  return secret;
}

/** 'result' or 'verify' when `element` is a dialback element (prefixed `db:` or with the namespace). */
export function dialbackElement(element: { name: string; attrs: Record<string, string | undefined> }): 'result' | 'verify' | null {
  const name = element.name;
  if (name === 'db:result' || (name === 'result' && element.attrs.xmlns === NS_DIALBACK)) return 'result';
  if (name === 'db:verify' || (name === 'verify' && element.attrs.xmlns === NS_DIALBACK)) return 'verify';
  return null;
}
