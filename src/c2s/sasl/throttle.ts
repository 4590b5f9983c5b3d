// Failed-authentication throttling: the guesser is slowed down, never the owner of the account.
//
// - per address: failures from one IP address (an IPv6 /64), whatever the account. At the limit the address is
//   refused (temporary-auth-failure) for `window`, then twice as long at each new offence, up to
//   `maxBackoff`. One machine guessing many accounts.
// - per account and address: failures for one account from one address, refused the same way.
//   One machine guessing one account: it is refused even when it then sends the right password,
//   while the owner, logging in from elsewhere, is not.
// - per account: failures for one account from anywhere (many addresses guessing one account).
//   A soft limit: past it, each further failure is answered only after a delay (1 s, doubling to
//   30 s), and the account is never refused, so a right password still logs in at once.
//
// A correct password from an address that has not been refused always succeeds. Only failures
// count; a success forgets that account's failures from that address.

import type { SharedCaches } from '../../core/caches.js';

export interface ThrottleLimit {
  attempts: number;
  /** seconds */
  window: number;
}

export interface AuthThrottleSettings {
  perIp: ThrottleLimit;
  perAccountAndIp: ThrottleLimit;
  /** Soft: past it failures are delayed, never refused. */
  perAccount: ThrottleLimit;
  /** seconds: the longest an address is refused after repeated offences */
  maxBackoff: number;
}

/** The longest a failure is held back once an account is past its soft limit. */
const MAX_FAILURE_DELAY_MS = 30_000;

interface Counter {
  failures: number;
  windowStart: number;
  /** epoch ms until which the key is refused (0: not refused) */
  blockedUntil: number;
  /** times the key was refused, for the backoff; forgotten after a quiet `maxBackoff` */
  offences: number;
}

class FailureCounter {
  private readonly counters = new Map<string, Counter>();

  constructor(
    private readonly limit: ThrottleLimit,
    private readonly maxBackoffMs: number,
  ) {}

  /** Milliseconds until `key` may try again, or 0 when it may try now. */
  blockedFor(key: string, now: number): number {
    const counter = this.counters.get(key);
    return counter === undefined || counter.blockedUntil <= now ? 0 : counter.blockedUntil - now;
  }

  /** Counts a failure; returns the failures in the current window (this one included). */
  fail(key: string, now: number): number {
    let counter = this.counters.get(key);
    if (counter === undefined) {
      counter = { failures: 0, windowStart: now, blockedUntil: 0, offences: 0 };
      this.counters.set(key, counter);
    } else if (now >= counter.windowStart + this.limit.window * 1000) {
      counter.failures = 0;
      counter.windowStart = now;
    }
    const failures = ++counter.failures;
    if (failures >= this.limit.attempts && this.maxBackoffMs > 0) {
      // refused for the window, doubled at each offence: a guesser that waits out one block
      // and goes on waits longer each time
      const block = Math.min(this.limit.window * 1000 * 2 ** counter.offences, this.maxBackoffMs);
      counter.blockedUntil = now + block;
      counter.offences++;
      counter.failures = 0;
      counter.windowStart = counter.blockedUntil;
    }
    return failures;
  }

  forget(key: string): void {
    this.counters.delete(key);
  }

  sweep(now: number): void {
    const quiet = Math.max(this.limit.window * 1000, this.maxBackoffMs);
    for (const [key, counter] of this.counters) {
      const lastActive = Math.max(counter.windowStart, counter.blockedUntil);
      if (now >= lastActive + (counter.offences > 0 ? quiet : this.limit.window * 1000)) this.counters.delete(key);
    }
  }

  get size(): number {
    return this.counters.size;
  }
}

export class AuthThrottle {
  private readonly byAddress: FailureCounter;
  private readonly byAccountAndAddress: FailureCounter;
  /** Soft limit: counted without refusing (backoff 0), the count sets the delay. */
  private readonly byAccount: FailureCounter;

  /**
   * Told of each failure ("f now address account") and success ("s 0 address account") counted
   * here; in a cluster the other nodes count them too (shareAcross): a guesser gains nothing by
   * spreading its guesses over the nodes.
   */
  private tell: (event: string) => void = () => {};

  constructor(private readonly settings: AuthThrottleSettings) {
    const maxBackoffMs = settings.maxBackoff * 1000;
    this.byAddress = new FailureCounter(settings.perIp, maxBackoffMs);
    this.byAccountAndAddress = new FailureCounter(settings.perAccountAndIp, maxBackoffMs);
    this.byAccount = new FailureCounter(settings.perAccount, 0);
  }

  /**
   * Seconds this address must wait before it may authenticate (as `account`, when known), or 0.
   * The account's own count never refuses: that would lock its owner out.
   */
  blockedFor(address: string, account: string | undefined, now = Date.now()): number {
    const byAddress = this.byAddress.blockedFor(addressKey(address), now);
    const byPair = account === undefined ? 0 : this.byAccountAndAddress.blockedFor(pairKey(account, address), now);
    return Math.ceil(Math.max(byAddress, byPair) / 1000);
  }

  /**
   * Counts a failure; returns how long (ms) to hold back the failure's answer: 0 until the
   * account is past its soft limit, then 1 s doubling to 30 s for each further failure.
   */
  failed(address: string, account: string | undefined, now = Date.now()): number {
    this.tell(`f ${now} ${address} ${account ?? ''}`);
    return this.count(address, account, now);
  }

  /**
   * Counts what the other nodes of a cluster count, through the kernel's shared caches
   * (src/core/caches.ts: in one process nothing travels).
   */
  shareAcross(caches: SharedCaches): () => void {
    const scope = 'c2s/auth-throttle';
    this.tell = (event) => caches.changed(scope, event);
    return caches.register(scope, (event) => {
      const [kind, now, address, account] = event.split(' ') as [string, string, string, string];
      if (kind === 'f') this.count(address, account === '' ? undefined : account, Number(now));
      else this.byAccountAndAddress.forget(pairKey(account, address));
    });
  }

  private count(address: string, account: string | undefined, now: number): number {
    this.byAddress.fail(addressKey(address), now);
    if (account === undefined) return 0;
    this.byAccountAndAddress.fail(pairKey(account, address), now);
    const excess = this.byAccount.fail(account, now) - this.settings.perAccount.attempts;
    return excess <= 0 ? 0 : Math.min(1000 * 2 ** (excess - 1), MAX_FAILURE_DELAY_MS);
  }

  /**
   * A success forgets this address's failures for the account (the owner's typos), not the
   * address's count (one good account must not reset a guesser), nor the account's (the owner
   * logging in must not reset a distributed guesser's delay).
   */
  succeeded(address: string, account: string): void {
    this.tell(`s 0 ${address} ${account}`);
    this.byAccountAndAddress.forget(pairKey(account, address));
  }

  sweep(now = Date.now()): void {
    this.byAddress.sweep(now);
    this.byAccountAndAddress.sweep(now);
    this.byAccount.sweep(now);
  }

  /** Entries held (for tests and metrics). */
  get size(): number {
    return this.byAddress.size + this.byAccountAndAddress.size + this.byAccount.size;
  }
}

function pairKey(account: string, address: string): string {
  return `${account} ${addressKey(address)}`;
}

/**
 * The unit an address is counted in: an IPv4 address (also when IPv4-mapped), or an IPv6 /64 —
 * one customer's network, in which a guesser could otherwise take a new address per guess.
 */
export function addressKey(address: string): string {
  if (address.startsWith('::ffff:') && address.includes('.')) return address.slice(7);
  if (!address.includes(':')) return address;
  const [head = '', tail = ''] = address.toLowerCase().split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === '' ? [] : tail.split(':');
  const groups = address.includes('::') ? [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right] : left;
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`;
}
