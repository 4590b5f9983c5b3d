// Random tokens for what every login makes a few of (stream ids, SCRAM nonces, resources, XEP-0198
// ids), cut from a pool of CSPRNG bytes: node's crypto.randomBytes costs some 20 µs a call (a
// job per call), the pool a refill every few hundred tokens. The bytes are the same
// cryptographically strong ones; each is handed out once.
import { randomBytes, randomFillSync } from 'node:crypto';

const POOL_SIZE = 4096;
const pool = Buffer.allocUnsafeSlow(POOL_SIZE);
let used = POOL_SIZE;

/** `bytes` random bytes (at most 256) as text, base64url unless told otherwise. */
export function randomToken(bytes: number, encoding: 'base64url' | 'base64' | 'hex' = 'base64url'): string {
  if (bytes > 256) return randomBytes(bytes).toString(encoding);
  if (used + bytes > POOL_SIZE) {
    randomFillSync(pool);
    used = 0;
  }
  const token = pool.toString(encoding, used, used + bytes);
  used += bytes;
  return token;
}
