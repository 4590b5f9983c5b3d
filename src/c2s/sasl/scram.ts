// Server side of SCRAM-SHA-1 (RFC 5802), SCRAM-SHA-256 (RFC 7677) and SCRAM-SHA-512
// (draft-melnikov-scram-sha-512: RFC 7677 with SHA-512), with their -PLUS variants
// (channel binding, RFC 5802 §6, ./channel-binding.ts) on TLS connections, and the XEP-0474
// downgrade protection hash in the server-first-message.
//
//   C: n,,n=user,r=<client nonce>                          client-first-message   → start()
//   S: r=<client nonce><server nonce>,s=<salt>,i=<count>   server-first-message
//   C: c=biws,r=<nonce>,p=<ClientProof>                    client-final-message   → finish()
//   S: v=<ServerSignature>                                 server-final-message
import crypto from 'node:crypto';
import { type SaslFailure, decodeUtf8, saslFailure, saslprepQuery } from './common.js';
import type { ChannelBinding } from './channel-binding.js';

export type { SaslFailure } from './common.js';
export { authzidIsOwnBareJid } from './common.js';
import { type ScramCredentials, type ScramHash, DEFAULT_SCRAM_ITERATIONS, HASH_LENGTH, SCRAM_MECHANISMS, digest, hmac } from '../../accounts/credentials.js';
import { randomToken } from '../../core/random.js';

export { SCRAM_MECHANISMS } from '../../accounts/credentials.js';

// ---------------------------------------------------------------------------------------------
// Message parsing (RFC 5802 §7 grammar).

/** RFC 5802 §7: printable = %x21-2B / %x2D-7E (any printable ASCII except ','). */
const NONCE = /^[\x21-\x2b\x2d-\x7e]+$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** saslname: ',' and '=' travel as "=2C" and "=3D"; any other '=' is malformed (RFC 5802 §5.1). */
function decodeSaslname(value: string): string | null {
  if (value === '' || /=(?!2C|3D)/.test(value)) return null;
  return value.replace(/=2C/g, ',').replace(/=3D/g, '=');
}

interface ClientFirst {
  gs2Header: string;
  /** The channel binding type the client asked for with 'p=' (only with a -PLUS mechanism). */
  channelBinding: string | null;
  authzid: string;
  username: string;
  clientNonce: string;
  bare: string;
}

/**
 * How the gs2-cbind-flag must look (RFC 5802 §6): with a -PLUS mechanism, 'p=<type>' for a type
 * this connection supports; without, 'n' (the client cannot bind) or 'y' (it can but thinks we
 * cannot), and 'y' is refused when we did offer -PLUS: someone removed it on the way (a downgrade).
 */
function checkCbindFlag(flag: string, plus: boolean, binding: ChannelBinding | null): { type: string | null } | { failure: SaslFailure } {
  if (plus) {
    if (!flag.startsWith('p=')) return saslFailure('malformed-request', 'a -PLUS mechanism needs channel binding (p=type)');
    const type = flag.slice(2);
    if (binding === null || binding.data(type) === null) return saslFailure('malformed-request', `unsupported channel binding type ${type.slice(0, 40)}`);
    return { type };
  }
  if (flag.startsWith('p=')) return saslFailure('malformed-request', 'channel binding needs a -PLUS mechanism');
  if (flag === 'y' && binding !== null && binding.types.length > 0) {
    return saslFailure('not-authorized', 'channel binding was offered: the mechanism list was tampered with');
  }
  if (flag !== 'n' && flag !== 'y') return saslFailure('malformed-request', 'bad gs2-cbind-flag');
  return { type: null };
}

function parseClientFirst(message: Buffer, plus: boolean, binding: ChannelBinding | null): ClientFirst | { failure: SaslFailure } {
  const text = decodeUtf8(message);
  if (text === null) return saslFailure('malformed-request', 'not UTF-8');
  // Attribute values never contain ',' (saslname escapes it), so splitting is exact.
  const [flag, authzPart, ...bareParts] = text.split(',');
  if (flag === undefined || authzPart === undefined || bareParts.length < 2) {
    return saslFailure('malformed-request', 'expected gs2-header and client-first-message-bare');
  }

  const cbind = checkCbindFlag(flag, plus, binding);
  if ('failure' in cbind) return cbind;

  let authzid = '';
  if (authzPart !== '') {
    const decoded = authzPart.startsWith('a=') ? decodeSaslname(authzPart.slice(2)) : null;
    if (decoded === null) return saslFailure('malformed-request', 'bad authzid');
    authzid = decoded;
  }

  const [userPart, noncePart] = bareParts as [string, string];
  // RFC 5802 §5.1 'm': reserved for mandatory extensions; a server that does not know them MUST
  // fail the authentication.
  if (userPart.startsWith('m=')) return saslFailure('malformed-request', 'unsupported mandatory extension');
  if (!userPart.startsWith('n=')) return saslFailure('malformed-request', 'expected n=username');
  const rawUsername = decodeSaslname(userPart.slice(2));
  // RFC 5802 §5.1: the server SASLpreps the username before looking it up.
  const username = rawUsername === null ? null : saslprepQuery(rawUsername);
  if (username === null) return saslFailure('malformed-request', 'bad username');

  if (!noncePart.startsWith('r=') || !NONCE.test(noncePart.slice(2))) {
    return saslFailure('malformed-request', 'expected r=nonce');
  }
  // Further optional extensions are allowed by the grammar; we ignore them.
  return {
    gs2Header: `${flag},${authzPart},`,
    channelBinding: cbind.type,
    authzid,
    username,
    clientNonce: noncePart.slice(2),
    bare: bareParts.join(','),
  };
}

// ---------------------------------------------------------------------------------------------
// Unknown users get a made-up salt derived from a per-process secret, so repeated probes for the
// same name see the same salt, like a real account, and the exchange looks complete until the
// final not-authorized (RFC 5802 §9 warns about user enumeration).
const FAKE_SALT_SECRET = crypto.randomBytes(32);

function fakeCredentials(username: string, hash: ScramHash, iterations: number): ScramCredentials {
  const salt = hmac('sha256', FAKE_SALT_SECRET, `${hash}\0${username}`).subarray(0, 16);
  return {
    salt: salt.toString('base64'),
    iterations,
    storedKey: crypto.randomBytes(HASH_LENGTH[hash]).toString('base64'),
    serverKey: crypto.randomBytes(HASH_LENGTH[hash]).toString('base64'),
  };
}

function isUsable(creds: ScramCredentials, hash: ScramHash): boolean {
  return (
    Number.isInteger(creds.iterations) &&
    creds.iterations > 0 &&
    BASE64.test(creds.salt) &&
    Buffer.from(creds.storedKey, 'base64').length === HASH_LENGTH[hash] &&
    Buffer.from(creds.serverKey, 'base64').length === HASH_LENGTH[hash]
  );
}

export interface ScramServerOptions {
  /** Fixed server nonce part. Only for tests against the RFC examples: it must be random. */
  serverNonce?: string;
  /** Iteration count shown to unknown users; should match what real accounts use. */
  iterations?: number;
  /** The -PLUS variant: the client must bind to the channel. */
  plus?: boolean;
  /** The connection's channel bindings when it is TLS (then -PLUS was offered), else null. */
  channelBinding?: ChannelBinding | null;
  /** XEP-0474: what was offered, hashed into the server-first-message as d=. */
  offered?: { mechanisms: readonly string[]; channelBindings: readonly string[] };
}

/**
 * XEP-0474 §3: the mechanisms offered, sorted by octets and joined by U+001E, then U+001F and the
 * channel binding types likewise (when there are any), hashed with the mechanism's hash. The
 * client compares it with what it saw; the AuthMessage covers it, so it cannot be forged.
 */
export function downgradeProtectionHash(hash: ScramHash, mechanisms: readonly string[], channelBindings: readonly string[]): string {
  // the same few lists on every login (per TLS version and host): hashed once each
  const key = `${hash}\x1d${mechanisms.join('\x1e')}\x1f${channelBindings.join('\x1e')}`;
  let value = downgradeHashes.get(key);
  if (value === undefined) {
    const byOctets = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));
    let input = [...mechanisms].sort(byOctets).join('\x1e');
    if (channelBindings.length > 0) input += '\x1f' + [...channelBindings].sort(byOctets).join('\x1e');
    value = digest(hash, Buffer.from(input, 'utf8')).toString('base64');
    if (downgradeHashes.size >= 64) downgradeHashes.clear();
    downgradeHashes.set(key, value);
  }
  return value;
}
const downgradeHashes = new Map<string, string>();

export type ScramStartResult = { challenge: Buffer } | { failure: SaslFailure };
export type ScramFinishResult =
  | { success: Buffer; username: string; authzid: string }
  | { failure: SaslFailure };

/**
 * One SCRAM authentication attempt. `start` takes the client-first-message and returns the
 * server-first-message as a challenge; `finish` takes the client-final-message and returns the
 * server-final-message (to send as additional data with <success/>, RFC 6120 §6.3.10).
 * The caller must check the returned authzid, e.g. with authzidIsOwnBareJid.
 */
export class ScramServerExchange {
  private state: 'initial' | 'challenged' | 'done' = 'initial';
  private first: ClientFirst | undefined;
  private serverFirst = '';
  private nonce = '';
  private credentials: ScramCredentials | undefined;
  private knownUser = false;

  constructor(
    private readonly hash: ScramHash,
    private readonly lookup: (username: string) => Promise<ScramCredentials | null>,
    private readonly options: ScramServerOptions = {},
  ) {
    if (options.serverNonce !== undefined && !NONCE.test(options.serverNonce)) {
      throw new Error('serverNonce must be printable ASCII without ","');
    }
  }

  get mechanism(): string {
    return SCRAM_MECHANISMS[this.hash] + (this.options.plus === true ? '-PLUS' : '');
  }

  async start(clientFirst: Buffer): Promise<ScramStartResult> {
    if (this.state !== 'initial') return this.fail('malformed-request', 'exchange already started');
    this.state = 'done'; // until the challenge is ready: a failure below ends the exchange
    const first = parseClientFirst(clientFirst, this.options.plus === true, this.options.channelBinding ?? null);
    if ('failure' in first) return first;

    let credentials: ScramCredentials | null;
    try {
      credentials = await this.lookup(first.username);
    } catch {
      return saslFailure('temporary-auth-failure');
    }
    if (credentials !== null && !isUsable(credentials, this.hash)) {
      return saslFailure('temporary-auth-failure', 'stored credentials are damaged');
    }
    this.knownUser = credentials !== null;
    this.credentials =
      credentials ?? fakeCredentials(first.username, this.hash, this.options.iterations ?? DEFAULT_SCRAM_ITERATIONS);
    this.first = first;

    // RFC 5802 §5.1 'r': the server appends its own fresh nonce to the client's.
    this.nonce = first.clientNonce + (this.options.serverNonce ?? randomToken(18, 'base64'));
    this.serverFirst = `r=${this.nonce},s=${this.credentials.salt},i=${this.credentials.iterations}`;
    const offered = this.options.offered;
    if (offered !== undefined) this.serverFirst += `,d=${downgradeProtectionHash(this.hash, offered.mechanisms, offered.channelBindings)}`;
    this.state = 'challenged';
    return { challenge: Buffer.from(this.serverFirst, 'utf8') };
  }

  finish(clientFinal: Buffer): ScramFinishResult {
    if (this.state !== 'challenged' || !this.first || !this.credentials) {
      return this.fail('malformed-request', 'unexpected response');
    }
    this.state = 'done';
    const text = decodeUtf8(clientFinal);
    if (text === null) return saslFailure('malformed-request', 'not UTF-8');

    // client-final-message = c=...,r=...[,extensions],p=proof — the proof comes last, and
    // everything before it is client-final-message-without-proof, which the AuthMessage covers.
    const proofAt = text.lastIndexOf(',p=');
    if (proofAt < 0) return saslFailure('malformed-request', 'expected p=proof');
    const withoutProof = text.slice(0, proofAt);
    const proofB64 = text.slice(proofAt + 3);
    const [cbPart, noncePart] = withoutProof.split(',');
    if (!cbPart?.startsWith('c=') || !noncePart?.startsWith('r=')) {
      return saslFailure('malformed-request', 'expected c=channel-binding,r=nonce');
    }
    const proof = Buffer.from(proofB64, 'base64');
    if (!BASE64.test(proofB64) || proof.length !== HASH_LENGTH[this.hash]) {
      return saslFailure('malformed-request', 'bad proof');
    }

    // RFC 5802 §5.1 'c': the base64 of the gs2-header followed by the channel binding data (none
    // without binding). A mismatch means the header was altered on the way (e.g. 'y' turned into
    // 'n'), or the client's TLS connection is not ours: someone in the middle.
    const header = Buffer.from(this.first.gs2Header, 'utf8');
    const bound = this.first.channelBinding === null ? null : (this.options.channelBinding?.data(this.first.channelBinding) ?? null);
    const expected = (bound === null ? header : Buffer.concat([header, bound])).toString('base64');
    if (cbPart.slice(2) !== expected) {
      return saslFailure('not-authorized', 'channel binding data does not match');
    }
    if (noncePart.slice(2) !== this.nonce) return saslFailure('not-authorized', 'nonce does not match');

    // RFC 5802 §3:
    //   AuthMessage     := client-first-message-bare + "," + server-first-message + "," +
    //                      client-final-message-without-proof
    //   ClientSignature := HMAC(StoredKey, AuthMessage)
    //   ClientKey       := ClientProof XOR ClientSignature;  valid iff H(ClientKey) = StoredKey
    //   ServerSignature := HMAC(ServerKey, AuthMessage)
    const authMessage = `${this.first.bare},${this.serverFirst},${withoutProof}`;
    const storedKey = Buffer.from(this.credentials.storedKey, 'base64');
    const clientSignature = hmac(this.hash, storedKey, authMessage);
    const clientKey = Buffer.alloc(proof.length);
    for (let i = 0; i < proof.length; i++) clientKey[i] = proof[i]! ^ clientSignature[i]!;
    const proofValid = crypto.timingSafeEqual(digest(this.hash, clientKey), storedKey);
    // Unknown users went through the same work with random keys and fail here, with the same
    // answer as a wrong password.
    if (!proofValid || !this.knownUser) return saslFailure('not-authorized');

    const serverSignature = hmac(this.hash, Buffer.from(this.credentials.serverKey, 'base64'), authMessage);
    return {
      success: Buffer.from(`v=${serverSignature.toString('base64')}`, 'utf8'),
      username: this.first.username,
      authzid: this.first.authzid,
    };
  }

  private fail(condition: SaslFailure['condition'], text: string): { failure: SaslFailure } {
    this.state = 'done';
    return saslFailure(condition, text);
  }
}
