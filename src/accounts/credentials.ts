// Account credentials: SCRAM salted keys (RFC 5802 §3, RFC 7677, draft-melnikov-scram-sha-512),
// derived once when a password
// is set and checked when a password is offered (PLAIN). Passwords are never stored. The SASL
// mechanisms' wire exchange is in src/c2s/sasl; this is the data it works on.
import crypto from 'node:crypto';
import { promisify } from 'node:util';
import saslprep from 'saslprep';

export type ScramHash = 'sha1' | 'sha256' | 'sha512';

/** Every hash an account keeps keys for, weakest first. */
export const SCRAM_HASHES: readonly ScramHash[] = ['sha1', 'sha256', 'sha512'];

/** The SASL mechanism name each hash's keys answer (-PLUS being the same keys, bound to the channel). */
export const SCRAM_MECHANISMS: Record<ScramHash, string> = {
  sha1: 'SCRAM-SHA-1',
  sha256: 'SCRAM-SHA-256',
  sha512: 'SCRAM-SHA-512',
};

/** What we store per user and hash: never the password itself (RFC 5802 §3, "server stores"). */
export interface ScramCredentials {
  salt: string /* base64 */;
  iterations: number;
  storedKey: string /* base64 */;
  serverKey: string /* base64 */;
}


/** RFC 7677 §4 recommends at least 4096 iterations. */
export const DEFAULT_SCRAM_ITERATIONS = 4096;

export const HASH_LENGTH: Record<ScramHash, number> = { sha1: 20, sha256: 32, sha512: 64 };
const pbkdf2 = promisify(crypto.pbkdf2);

// ---------------------------------------------------------------------------------------------
// The RFC 5802 §3 functions.

/** SaltedPassword := Hi(Normalize(password), salt, i), where Hi is PBKDF2 with HMAC-H. Async:
 * thousands of HMAC rounds must not block the event loop. `password` is already SASLprepped. */
export function saltedPassword(password: string, salt: Buffer, iterations: number, hash: ScramHash): Promise<Buffer> {
  return pbkdf2(Buffer.from(password, 'utf8'), salt, iterations, HASH_LENGTH[hash], hash);
}

export function hmac(hash: ScramHash, key: Buffer, data: string | Buffer): Buffer {
  return crypto.createHmac(hash, key).update(data).digest();
}

export function digest(hash: ScramHash, data: Buffer): Buffer {
  return crypto.createHash(hash).update(data).digest();
}

/** ClientKey := HMAC(SaltedPassword, "Client Key"); StoredKey := H(ClientKey). */
export function storedKeyFromSaltedPassword(salted: Buffer, hash: ScramHash): Buffer {
  return digest(hash, hmac(hash, salted, 'Client Key'));
}

/**
 * Credentials for a password with a given salt (deterministic, used by the RFC test vectors and
 * by imports of existing salts). The password is SASLprepped with the "stored strings" profile
 * (RFC 4013 §2, RFC 3454 §7: no unassigned code points); throws if it has prohibited characters.
 */
export async function computeScramCredentials(
  password: string,
  hash: ScramHash,
  salt: Buffer,
  iterations = DEFAULT_SCRAM_ITERATIONS,
): Promise<ScramCredentials> {
  let prepared: string;
  try {
    prepared = saslprep(password);
  } catch (err) {
    throw new Error(`password cannot be used: ${(err as Error).message}`);
  }
  return credentialsFromSaltedPassword(await saltedPassword(prepared, salt, iterations, hash), salt, iterations, hash);
}

/**
 * The stored keys of a SaltedPassword (RFC 5802 §3): what a password gives, and what a client
 * sends in a XEP-0480 SCRAM upgrade task (it computes the SaltedPassword itself).
 */
export function credentialsFromSaltedPassword(salted: Buffer, salt: Buffer, iterations: number, hash: ScramHash): ScramCredentials {
  return {
    salt: salt.toString('base64'),
    iterations,
    storedKey: storedKeyFromSaltedPassword(salted, hash).toString('base64'),
    serverKey: hmac(hash, salted, 'Server Key').toString('base64'),
  };
}

/** Fresh credentials for a new or changed password: random 16-byte salt. */
export function deriveScramCredentials(
  password: string,
  hash: ScramHash,
  iterations = DEFAULT_SCRAM_ITERATIONS,
): Promise<ScramCredentials> {
  return computeScramCredentials(password, hash, crypto.randomBytes(16), iterations);
}

/** RFC 5802 §3 from the server's side: StoredKey = H(HMAC(Hi(password, salt, i), "Client Key")). */
export async function verifyPassword(password: string, creds: ScramCredentials, hash: ScramHash): Promise<boolean> {
  const salted = await saltedPassword(password, Buffer.from(creds.salt, 'base64'), creds.iterations, hash);
  const candidate = storedKeyFromSaltedPassword(salted, hash);
  const stored = Buffer.from(creds.storedKey, 'base64');
  return candidate.length === stored.length && crypto.timingSafeEqual(candidate, stored);
}
