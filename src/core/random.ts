// Random tokens and numbers for what every login or message makes (stream ids, SCRAM nonces,
// resources, XEP-0198 ids, archive nonces), cut from a pool of CSPRNG bytes: node's
// crypto.randomBytes costs some 6-20 µs a call (a job per call), the pool a refill every few
// hundred. The bytes are the same cryptographically strong ones; each is handed out once.
import { randomBytes, randomFillSync } from 'node:crypto';

const POOL_SIZE = 4096;
const pool = Buffer.allocUnsafeSlow(POOL_SIZE);
let used = POOL_SIZE;

/** Where `bytes` fresh bytes start in the pool, refilled when it runs out. */
function take(bytes: number): number {
  if (used + bytes > POOL_SIZE) {
    randomFillSync(pool);
    used = 0;
  }
  const at = used;
  used += bytes;
  return at;
}

/** `bytes` random bytes (at most 256) as text, base64url unless told otherwise. */
export function randomToken(bytes: number, encoding: 'base64url' | 'base64' | 'hex' = 'base64url'): string {
  if (bytes > 256) return randomBytes(bytes).toString(encoding);
  const at = take(bytes);
  return pool.toString(encoding, at, at + bytes);
}

/** A random unsigned 32-bit integer (e.g. the archive's nonces). */
export function randomUint32(): number {
  return pool.readUInt32LE(take(4));
}
