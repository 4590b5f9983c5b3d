// The SASL exchange of one client stream (RFC 6120 §6.4): <auth/>, <challenge/>/<response/>,
// then <success/> or <failure/>. Mechanisms: SCRAM-SHA-256 and SCRAM-SHA-1 (RFC 5802/7677), their
// -PLUS variants with channel binding on TLS we terminate (./channel-binding.ts), and PLAIN
// (RFC 4616, offered only inside TLS); failures are throttled (./throttle.ts): the guesser, not
// the account's owner.
import type Element from 'ltx/lib/Element.js';
import type { Kernel } from '../../core/kernel.js';
import { normalizeUsername } from '../../core/jid.js';
import { authzidIsOwnBareJid, type SaslFailure } from './common.js';
import { parsePlain } from './plain.js';
import { verifyPassword } from '../../accounts/credentials.js';
import { ScramServerExchange } from './scram.js';
import type { AuthThrottle } from './throttle.js';
import type { ScramHash } from '../../accounts/credentials.js';
import type { ChannelBinding } from './channel-binding.js';

const NS_SASL = 'urn:ietf:params:xml:ns:xmpp-sasl';
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

export interface SaslOutcome {
  /** XML to send back. */
  reply: string;
  /** Set on success: the authenticated (normalised) username. */
  username?: string;
  /** The exchange is over (success, failure or abort). */
  done: boolean;
}

const SCRAM_HASHES: Record<string, ScramHash> = { 'SCRAM-SHA-1': 'sha1', 'SCRAM-SHA-256': 'sha256' };

/**
 * The mechanisms a stream offers, in order of preference: the features advertise this list and
 * XEP-0474 hashes the same one. -PLUS only where the connection has channel bindings.
 */
export function offeredMechanisms(secure: boolean, binding: ChannelBinding | null): string[] {
  const plus = binding !== null && binding.types.length > 0 ? ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-1-PLUS'] : [];
  return [...plus, 'SCRAM-SHA-256', 'SCRAM-SHA-1', ...(secure ? ['PLAIN'] : [])];
}

function failure(condition: string, text?: string): SaslOutcome {
  const textXml = text ? `<text xml:lang='en'>${text.replace(/[&<>]/g, '')}</text>` : '';
  return { reply: `<failure xmlns='${NS_SASL}'><${condition}/>${textXml}</failure>`, done: true };
}

function fromSaslFailure(f: SaslFailure): SaslOutcome {
  return failure(f.condition, f.text);
}

export class SaslNegotiation {
  private scram: ScramServerExchange | null = null;
  private scramUser: string | undefined;
  /** What this stream's features offered (the same list for XEP-0474). */
  private readonly offered: string[];

  constructor(
    private readonly server: Kernel,
    private readonly throttle: AuthThrottle,
    private readonly host: string,
    private readonly address: string,
    secure: boolean,
    private readonly binding: ChannelBinding | null = null,
  ) {
    this.offered = offeredMechanisms(secure, binding);
  }

  async handle(element: Element): Promise<SaslOutcome> {
    switch (element.name) {
      case 'auth':
        return this.auth(element);
      case 'response':
        return this.response(element);
      case 'abort':
        this.scram = null;
        return failure('aborted');
      default:
        return failure('malformed-request', `unexpected <${element.name}/>`);
    }
  }

  private decode(element: Element): Buffer | null {
    const text = element.getText().trim();
    if (text === '=' || text === '') return Buffer.alloc(0); // RFC 6120 §6.4.2: '=' is an empty response
    return BASE64.test(text) ? Buffer.from(text, 'base64') : null;
  }

  private throttled(account?: string): SaslOutcome | null {
    const wait = this.throttle.blockedFor(this.address, account);
    if (wait === 0) return null;
    // a stable line for fail2ban (README): the address first, then the account
    this.server.log.warn({ ip: this.address, jid: account, wait }, `authentication throttled from ${this.address} for ${account ?? '-'}`);
    return failure('temporary-auth-failure', `Too many failed attempts; try again in ${wait} s`);
  }

  /** Counts the failure, logs it, and answers it (after a delay once the account is past its soft limit). */
  private async failed(account: string | undefined, outcome: SaslOutcome): Promise<SaslOutcome> {
    const delay = this.throttle.failed(this.address, account);
    // a stable line for fail2ban (README): the address first, then the account
    this.server.log.warn({ ip: this.address, jid: account, host: this.host }, `authentication failed from ${this.address} for ${account ?? '-'}`);
    this.server.events.fire('auth/failed', { address: this.address, account });
    if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay).unref());
    return outcome;
  }

  private async succeeded(username: string, reply: string): Promise<SaslOutcome> {
    this.throttle.succeeded(this.address, `${username}@${this.host}`);
    // RFC 6120 §6.5.1: told only once the credentials proved right, so that it says nothing
    // about an account to someone who does not know its password
    const disabled = await this.server.accounts.disabledReason(this.host, username);
    if (disabled !== null) {
      this.server.log.info({ ip: this.address, jid: `${username}@${this.host}` }, 'login refused: the account is disabled');
      return failure('account-disabled', disabled || 'This account is disabled');
    }
    return { reply, username, done: true };
  }

  private async auth(element: Element): Promise<SaslOutcome> {
    this.scram = null;
    const blocked = this.throttled();
    if (blocked) return blocked;
    const mechanism = element.attrs.mechanism ?? '';
    const initial = this.decode(element);
    if (initial === null) return failure('incorrect-encoding');

    if (!this.offered.includes(mechanism)) return failure('invalid-mechanism');
    const plus = mechanism.endsWith('-PLUS');
    const hash = SCRAM_HASHES[plus ? mechanism.slice(0, -'-PLUS'.length) : mechanism];
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
      return { reply: `<challenge xmlns='${NS_SASL}'>${started.challenge.toString('base64')}</challenge>`, done: false };
    }
    if (mechanism === 'PLAIN') return this.plain(initial);
    return failure('invalid-mechanism');
  }

  private async lookup(name: string, hash: ScramHash) {
    const username = normalizeUsername(name);
    this.scramUser = username ?? undefined;
    if (username === null) return null;
    if (this.throttled(`${username}@${this.host}`)) return null; // fails at the end like a wrong password
    return this.server.accounts.credentials(this.host, username, hash);
  }

  private async response(element: Element): Promise<SaslOutcome> {
    const exchange = this.scram;
    this.scram = null;
    if (exchange === null) return failure('malformed-request', 'no exchange in progress');
    const data = this.decode(element);
    if (data === null) return failure('incorrect-encoding');
    const account = this.scramUser === undefined ? undefined : `${this.scramUser}@${this.host}`;
    const finished = exchange.finish(data);
    if ('failure' in finished) {
      return this.throttled(account) ?? this.failed(account, fromSaslFailure(finished.failure));
    }
    const username = this.scramUser!;
    if (finished.authzid && !authzidIsOwnBareJid(finished.authzid, username, this.host)) return failure('invalid-authzid');
    return this.succeeded(username, `<success xmlns='${NS_SASL}'>${finished.success.toString('base64')}</success>`);
  }

  private async plain(message: Buffer): Promise<SaslOutcome> {
    const parsed = parsePlain(message);
    if ('condition' in parsed) return this.failed(undefined, fromSaslFailure(parsed));
    const username = normalizeUsername(parsed.username);
    if (username === null) return this.failed(undefined, failure('not-authorized'));
    const account = `${username}@${this.host}`;
    const blocked = this.throttled(account);
    if (blocked) return blocked;
    const credentials = await this.server.accounts.credentials(this.host, username, 'sha256');
    if (credentials === null || !(await verifyPassword(parsed.password, credentials, 'sha256'))) {
      return this.failed(account, failure('not-authorized'));
    }
    if (parsed.authzid && !authzidIsOwnBareJid(parsed.authzid, username, this.host)) return failure('invalid-authzid');
    return this.succeeded(username, `<success xmlns='${NS_SASL}'/>`);
  }
}
