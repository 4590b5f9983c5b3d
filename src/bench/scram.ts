// SASL SCRAM client (RFC 5802) for the load generator: SCRAM-SHA-1 and SCRAM-SHA-256,
// without channel binding ("n,,", c=biws) or, for SASL2's -PLUS, with tls-exporter.
import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';

export type ScramHash = 'sha1' | 'sha256';

export const SCRAM_MECHANISMS: Readonly<Record<string, ScramHash>> = {
  'SCRAM-SHA-1': 'sha1',
  'SCRAM-SHA-256': 'sha256',
};

const KEY_LENGTH: Record<ScramHash, number> = { sha1: 20, sha256: 32 };

/**
 * SaltedPassword per (hash, user, salt, iterations). Real clients cache it too (RFC 5802
 * §5.1 suggests it), so only the first login of an account pays for PBKDF2 — as it would
 * for a person who logs in again and again.
 */
const saltedPasswordCache = new Map<string, Buffer>();

export function clearScramCache(): void {
  saltedPasswordCache.clear();
}

function saltedPassword(hash: ScramHash, user: string, password: string, salt: string, iterations: number): Promise<Buffer> {
  const key = `${hash}\0${user}\0${salt}\0${iterations}`;
  const cached = saltedPasswordCache.get(key);
  if (cached) return Promise.resolve(cached);
  return new Promise((resolve, reject) => {
    // async PBKDF2 runs on libuv's thread pool and keeps the event loop free
    pbkdf2(password, Buffer.from(salt, 'base64'), iterations, KEY_LENGTH[hash], hash, (err, derived) => {
      if (err) { reject(err); return; }
      saltedPasswordCache.set(key, derived);
      resolve(derived);
    });
  });
}

/** RFC 5802 §5.1: ',' and '=' in the username are escaped as =2C and =3D. */
function saslName(user: string): string {
  return user.replace(/=/g, '=3D').replace(/,/g, '=2C');
}

function parseAttributes(message: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of message.split(',')) {
    if (part.length >= 2 && part[1] === '=') out.set(part[0]!, part.slice(2));
  }
  return out;
}

/** One SCRAM exchange: clientFirst() → clientFinal(serverFirst) → verifyServerFinal(serverFinal). */
export class ScramClient {
  private readonly clientFirstBare: string;
  private serverSignature: Buffer | null = null;

  constructor(
    private readonly hash: ScramHash,
    private readonly user: string,
    private readonly password: string,
    private readonly clientNonce: string = randomBytes(18).toString('base64'),
    /** -PLUS: the channel binding type and this connection's data for it (RFC 5802 §6). */
    private readonly binding?: { type: string; data: Buffer },
  ) {
    this.clientFirstBare = `n=${saslName(user)},r=${clientNonce}`;
  }

  private get gs2Header(): string {
    return this.binding === undefined ? 'n,,' : `p=${this.binding.type},,`;
  }

  clientFirst(): string {
    return this.gs2Header + this.clientFirstBare;
  }

  async clientFinal(serverFirst: string): Promise<string> {
    const attrs = parseAttributes(serverFirst);
    const nonce = attrs.get('r');
    const salt = attrs.get('s');
    const iterations = Number(attrs.get('i'));
    if (attrs.has('m')) throw new Error('SCRAM: unsupported mandatory extension');
    if (!nonce || !nonce.startsWith(this.clientNonce)) throw new Error('SCRAM: server nonce does not extend ours');
    if (!salt || !Number.isInteger(iterations) || iterations < 1) throw new Error('SCRAM: bad server-first-message');

    const salted = await saltedPassword(this.hash, this.user, this.password, salt, iterations);
    const header = Buffer.from(this.gs2Header, 'utf8');
    const cbind = this.binding === undefined ? header : Buffer.concat([header, this.binding.data]);
    const withoutProof = `c=${cbind.toString('base64')},r=${nonce}`;
    const authMessage = `${this.clientFirstBare},${serverFirst},${withoutProof}`;
    const clientKey = this.hmac(salted, 'Client Key');
    const storedKey = createHash(this.hash).update(clientKey).digest();
    const clientSignature = this.hmac(storedKey, authMessage);
    const proof = Buffer.alloc(clientKey.length);
    for (let i = 0; i < proof.length; i++) proof[i] = clientKey[i]! ^ clientSignature[i]!;
    this.serverSignature = this.hmac(this.hmac(salted, 'Server Key'), authMessage);
    return `${withoutProof},p=${proof.toString('base64')}`;
  }

  /** True when the server proved it knows the password too ("v=" matches). */
  verifyServerFinal(serverFinal: string): boolean {
    const v = parseAttributes(serverFinal).get('v');
    if (!v || !this.serverSignature) return false;
    const got = Buffer.from(v, 'base64');
    return got.length === this.serverSignature.length && timingSafeEqual(got, this.serverSignature);
  }

  private hmac(key: Buffer, data: string): Buffer {
    return createHmac(this.hash, key).update(data).digest();
  }
}
