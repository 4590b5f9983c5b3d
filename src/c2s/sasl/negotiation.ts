// The SASL exchange of one client stream, whatever the profile: RFC 6120 §6.4 (<auth/>,
// <challenge/>/<response/>, then <success/> or <failure/>) or XEP-0388 SASL2 (<authenticate/>...).
// The exchange itself yields steps (SaslStep); each profile writes them in its own namespace.
// Mechanisms: SCRAM-SHA-512, SCRAM-SHA-256 and SCRAM-SHA-1 (RFC 5802/7677,
// draft-melnikov-scram-sha-512), their -PLUS variants with channel binding on TLS we terminate
// (./channel-binding.ts), and PLAIN (RFC 4616, offered only inside TLS); failures are throttled
// (./throttle.ts): the guesser, not the account's owner.
import crypto from 'node:crypto';
import type Element from 'ltx/lib/Element.js';
import type { Kernel } from '../../core/kernel.js';
import { normalizeUsername } from '../../core/jid.js';
import { authzidIsOwnBareJid, decodeUtf8, type SaslFailure } from './common.js';
import { parsePlain } from './plain.js';
import { SCRAM_HASHES, verifyPassword, type ScramHash } from '../../accounts/credentials.js';
import { SCRAM_MECHANISMS, ScramServerExchange } from './scram.js';
import type { AuthThrottle } from './throttle.js';
import type { ChannelBinding } from './channel-binding.js';

const NS_SASL = 'urn:ietf:params:xml:ns:xmpp-sasl';
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** One step of an exchange, for the profile (SASL or SASL2) to write in its own namespace. */
export type SaslStep =
  | { kind: 'challenge'; data: Buffer }
  /** `data`: the mechanism's additional data with success (SCRAM's server-final-message, HT's responder hash). */
  | { kind: 'success'; username: string; mechanism: string; data: Buffer | null }
  | { kind: 'failure'; condition: string; text?: string };

/** The RFC 6120 §6.4 profile's view of a step: the XML, the username on success, whether it is over. */
export interface SaslOutcome {
  /** XML to send back. */
  reply: string;
  /** Set on success: the authenticated (normalised) username. */
  username?: string;
  /** The exchange is over (success, failure or abort). */
  done: boolean;
}

/**
 * XEP-0484 FAST: finds a token of `username` usable with `mechanism` whose key `proves` accepts
 * (the client's HMAC checks with it), and returns that key, or null. Provided by whoever keeps
 * the tokens (the fast module), through the SASL2 feature.
 */
/** A token that proved the login: its key, and the account's disabled state read with it. */
export interface TokenProof {
  key: Buffer;
  /** The reason when the account is disabled ('' when none was given); null when it is not. */
  disabled: string | null;
}

export type TokenVerifier = (username: string, mechanism: string, proves: (key: Buffer) => boolean) => Promise<TokenProof | null>;

/** The hash of each SCRAM mechanism name (without -PLUS). */
const MECHANISM_HASH = new Map<string, ScramHash>(SCRAM_HASHES.map((hash) => [SCRAM_MECHANISMS[hash], hash]));

/**
 * The mechanisms a stream offers, in order of preference (strongest first): the features
 * advertise this list and XEP-0474 hashes the same one. SCRAM only with the `hashes` every
 * account of the host has keys for (AccountStore.offeredHashes); -PLUS only where the connection
 * has channel bindings.
 */
export function offeredMechanisms(secure: boolean, binding: ChannelBinding | null, hashes: readonly ScramHash[] = SCRAM_HASHES): string[] {
  const scram = SCRAM_HASHES.filter((hash) => hashes.includes(hash)).reverse().map((hash) => SCRAM_MECHANISMS[hash]);
  const plus = binding !== null && binding.types.length > 0 ? scram.map((mechanism) => `${mechanism}-PLUS`) : [];
  return [...plus, ...scram, ...(secure ? ['PLAIN'] : [])];
}

/**
 * XEP-0484 §3 / draft-schmaus-kitten-sasl-ht: the token mechanisms of a connection. -EXPR binds
 * to tls-exporter (TLS 1.3 we terminate); -NONE binds to nothing (TLS still required).
 */
export function tokenMechanisms(binding: ChannelBinding | null): string[] {
  return binding?.types.includes('tls-exporter') ? ['HT-SHA-256-EXPR', 'HT-SHA-256-NONE'] : ['HT-SHA-256-NONE'];
}

function failure(condition: string, text?: string): SaslStep {
  return text === undefined ? { kind: 'failure', condition } : { kind: 'failure', condition, text };
}

function fromSaslFailure(f: SaslFailure): SaslStep {
  return failure(f.condition, f.text);
}

/** A step in the RFC 6120 §6.4 profile. */
export function legacyStepXml(step: SaslStep): string {
  switch (step.kind) {
    case 'challenge':
      return `<challenge xmlns='${NS_SASL}'>${step.data.toString('base64')}</challenge>`;
    case 'success':
      // §6.3.10: additional data with success, base64 ('=' would be an empty one)
      return step.data === null ? `<success xmlns='${NS_SASL}'/>` : `<success xmlns='${NS_SASL}'>${step.data.toString('base64')}</success>`;
    case 'failure': {
      const textXml = step.text ? `<text xml:lang='en'>${step.text.replace(/[&<>]/g, '')}</text>` : '';
      return `<failure xmlns='${NS_SASL}'><${step.condition}/>${textXml}</failure>`;
    }
  }
}

export interface SaslNegotiationOptions {
  /** XEP-0484: tokens are accepted (SASL2 only), checked by this. */
  tokens?: TokenVerifier;
}

export class SaslNegotiation {
  private scram: ScramServerExchange | null = null;
  private scramUser: string | undefined;
  /** The account's disabled state, read with its keys (so a login costs one account query). */
  private scramDisabled: string | null = null;
  /** What this stream's features offered (the same list for XEP-0474). */
  private readonly offered: string[];

  constructor(
    private readonly server: Kernel,
    private readonly throttle: AuthThrottle,
    private readonly host: string,
    private readonly address: string,
    secure: boolean,
    private readonly binding: ChannelBinding | null = null,
    private readonly options: SaslNegotiationOptions = {},
  ) {
    this.offered = offeredMechanisms(secure, binding, server.accounts.offeredHashes(host));
  }

  /** The RFC 6120 §6.4 profile: an <auth/>, <response/> or <abort/> in, the XML to answer out. */
  async handle(element: Element): Promise<SaslOutcome> {
    let step: SaslStep;
    switch (element.name) {
      case 'auth': {
        const initial = decodeLegacy(element);
        step = initial === null ? failure('incorrect-encoding') : await this.start(element.attrs.mechanism ?? '', initial);
        break;
      }
      case 'response':
        step = await this.respond(decodeLegacy(element));
        break;
      case 'abort':
        step = this.abort();
        break;
      default:
        step = failure('malformed-request', `unexpected <${element.name}/>`);
    }
    const reply = legacyStepXml(step);
    if (step.kind === 'success') return { reply, username: step.username, done: true };
    return { reply, done: step.kind === 'failure' };
  }

  abort(): SaslStep {
    this.scram = null;
    return failure('aborted');
  }

  private throttled(account?: string): SaslStep | null {
    const wait = this.throttle.blockedFor(this.address, account);
    if (wait === 0) return null;
    // a stable line for fail2ban (README): the address first, then the account
    this.server.log.warn({ ip: this.address, jid: account, wait }, `authentication throttled from ${this.address} for ${account ?? '-'}`);
    return failure('temporary-auth-failure', `Too many failed attempts; try again in ${wait} s`);
  }

  /** Counts the failure, logs it, and answers it (after a delay once the account is past its soft limit). */
  private async failed(account: string | undefined, outcome: SaslStep): Promise<SaslStep> {
    const delay = this.throttle.failed(this.address, account);
    // a stable line for fail2ban (README): the address first, then the account
    this.server.log.warn({ ip: this.address, jid: account, host: this.host }, `authentication failed from ${this.address} for ${account ?? '-'}`);
    this.server.events.fire('auth/failed', { address: this.address, account });
    if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay).unref());
    return outcome;
  }

  /** `disabled`: the account's state, read with the credentials that proved the login. */
  private succeeded(username: string, mechanism: string, data: Buffer | null, disabled: string | null): SaslStep {
    this.throttle.succeeded(this.address, `${username}@${this.host}`);
    // RFC 6120 §6.5.1: told only once the credentials proved right, so that it says nothing
    // about an account to someone who does not know its password
    if (disabled !== null) {
      this.server.log.info({ ip: this.address, jid: `${username}@${this.host}` }, 'login refused: the account is disabled');
      return failure('account-disabled', disabled || 'This account is disabled');
    }
    return { kind: 'success', username, mechanism, data };
  }

  /** The client's first message: a mechanism and its initial response (empty when it sent none). */
  async start(mechanism: string, initial: Buffer): Promise<SaslStep> {
    this.scram = null;
    const blocked = this.throttled();
    if (blocked) return blocked;
    if (this.options.tokens !== undefined && tokenMechanisms(this.binding).includes(mechanism)) return this.token(mechanism, initial);
    if (!this.offered.includes(mechanism)) return failure('invalid-mechanism');
    const plus = mechanism.endsWith('-PLUS');
    const hash = MECHANISM_HASH.get(plus ? mechanism.slice(0, -'-PLUS'.length) : mechanism);
    if (hash !== undefined) {
      this.scram = new ScramServerExchange(hash, (name) => this.lookup(name, hash), {
        iterations: this.server.accounts.iterations,
        plus,
        channelBinding: this.binding,
        offered: { mechanisms: this.offered, channelBindings: this.binding?.types ?? [] },
      });
      const started = await this.scram.start(initial);
      if ('failure' in started) {
        this.scram = null;
        return this.failed(undefined, fromSaslFailure(started.failure));
      }
      return { kind: 'challenge', data: started.challenge };
    }
    if (mechanism === 'PLAIN') return this.plain(initial);
    return failure('invalid-mechanism');
  }

  private async lookup(name: string, hash: ScramHash) {
    const username = normalizeUsername(name);
    this.scramUser = username ?? undefined;
    if (username === null) return null;
    if (this.throttled(`${username}@${this.host}`)) return null; // fails at the end like a wrong password
    const credentials = await this.server.accounts.credentials(this.host, username, hash);
    this.scramDisabled = credentials?.disabled ?? null;
    return credentials;
  }

  /** A response to our challenge; null when it was not valid base64. */
  async respond(data: Buffer | null): Promise<SaslStep> {
    const exchange = this.scram;
    this.scram = null;
    if (exchange === null) return failure('malformed-request', 'no exchange in progress');
    if (data === null) return failure('incorrect-encoding');
    const account = this.scramUser === undefined ? undefined : `${this.scramUser}@${this.host}`;
    const finished = exchange.finish(data);
    if ('failure' in finished) {
      return this.throttled(account) ?? this.failed(account, fromSaslFailure(finished.failure));
    }
    const username = this.scramUser!;
    if (finished.authzid && !authzidIsOwnBareJid(finished.authzid, username, this.host)) return failure('invalid-authzid');
    return this.succeeded(username, exchange.mechanism, finished.success, this.scramDisabled);
  }

  private async plain(message: Buffer): Promise<SaslStep> {
    const parsed = parsePlain(message);
    if ('condition' in parsed) return this.failed(undefined, fromSaslFailure(parsed));
    const username = normalizeUsername(parsed.username);
    if (username === null) return this.failed(undefined, failure('not-authorized'));
    const account = `${username}@${this.host}`;
    const blocked = this.throttled(account);
    if (blocked) return blocked;
    // checked against the strongest keys the account has: an imported one may have SHA-1 keys only
    const held = await this.server.accounts.heldCredentials(this.host, username);
    const hash = held === null ? undefined : [...SCRAM_HASHES].reverse().find((h) => held[h] !== null);
    if (held === null || hash === undefined || !(await verifyPassword(parsed.password, held[hash]!, hash))) {
      return this.failed(account, failure('not-authorized'));
    }
    if (parsed.authzid && !authzidIsOwnBareJid(parsed.authzid, username, this.host)) return failure('invalid-authzid');
    if (SCRAM_HASHES.some((h) => held[h] === null)) {
      // the password is known now: the keys the account lacks (imported with other hashes, made
      // before SHA-512) are derived from it, and the host may offer those mechanisms again
      const added = await this.server.accounts.addMissingKeys(this.host, username, parsed.password);
      if (added.length > 0) {
        const mechanisms = added.map((h) => SCRAM_MECHANISMS[h]).join(', ');
        this.server.log.info({ jid: account, added: mechanisms }, `${mechanisms} keys derived at a PLAIN login`);
      }
    }
    return this.succeeded(username, 'PLAIN', null, held.disabled);
  }

  /**
   * draft-schmaus-kitten-sasl-ht §3 (XEP-0484): initiator-msg = authcid NUL initiator-hashed-token,
   * where the hash is HMAC-SHA-256(token, "Initiator" || cb-data); we answer with
   * HMAC-SHA-256(token, "Responder" || cb-data) as additional data, so the client knows us too.
   */
  private async token(mechanism: string, message: Buffer): Promise<SaslStep> {
    const separator = message.indexOf(0);
    if (separator <= 0) return this.failed(undefined, failure('malformed-request', 'expected authcid NUL hash'));
    const name = decodeUtf8(message.subarray(0, separator));
    const proof = message.subarray(separator + 1);
    const username = name === null ? null : normalizeUsername(name);
    if (username === null || proof.length !== 32) return this.failed(undefined, failure('not-authorized'));
    const account = `${username}@${this.host}`;
    const blocked = this.throttled(account);
    if (blocked) return blocked;
    const cbData = mechanism.endsWith('-EXPR') ? this.binding?.data('tls-exporter') ?? null : Buffer.alloc(0);
    if (cbData === null) return failure('invalid-mechanism');
    const proven = await this.options.tokens!(username, mechanism, (candidate) =>
      crypto.timingSafeEqual(htHash(candidate, 'Initiator', cbData), proof),
    );
    if (proven === null) return this.failed(account, failure('not-authorized'));
    return this.succeeded(username, mechanism, htHash(proven.key, 'Responder', cbData), proven.disabled);
  }
}

/** HMAC-SHA-256(key, label || cb-data), the HT mechanisms' hashed token. */
export function htHash(key: Buffer, label: 'Initiator' | 'Responder', cbData: Buffer): Buffer {
  return crypto.createHmac('sha256', key).update(label).update(cbData).digest();
}

/** RFC 6120 §6.4.2: base64 text, where '=' (or nothing) is an empty response; null when not base64. */
function decodeLegacy(element: Element): Buffer | null {
  const text = element.getText().trim();
  if (text === '=' || text === '') return Buffer.alloc(0);
  return BASE64.test(text) ? Buffer.from(text, 'base64') : null;
}

/** XEP-0388: base64 text with no special case; null when not base64. */
export function decodeBase64(text: string): Buffer | null {
  const trimmed = text.replace(/\s+/g, '');
  return BASE64.test(trimmed) ? Buffer.from(trimmed, 'base64') : null;
}
