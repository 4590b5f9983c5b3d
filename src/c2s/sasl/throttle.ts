// Failed-authentication throttling: after `attempts` failures within `window` seconds from one IP
// address, or against one account, further attempts are refused until the window passes. This
// turns online password guessing into a crawl without locking a user out for long.

export interface ThrottleLimit {
  attempts: number;
  /** seconds */
  window: number;
}

interface Counter {
  failures: number;
  windowStart: number;
}

class FailureCounter {
  private readonly counters = new Map<string, Counter>();

  constructor(private readonly limit: ThrottleLimit) {}

  /** Seconds until `key` may try again, or 0 when it may try now. */
  blockedFor(key: string, now: number): number {
    const counter = this.counters.get(key);
    if (counter === undefined) return 0;
    const windowEnd = counter.windowStart + this.limit.window * 1000;
    if (now >= windowEnd) {
      this.counters.delete(key);
      return 0;
    }
    return counter.failures >= this.limit.attempts ? Math.ceil((windowEnd - now) / 1000) : 0;
  }

  fail(key: string, now: number): void {
    const counter = this.counters.get(key);
    if (counter === undefined || now >= counter.windowStart + this.limit.window * 1000) {
      this.counters.set(key, { failures: 1, windowStart: now });
    } else {
      counter.failures++;
    }
  }

  forget(key: string): void {
    this.counters.delete(key);
  }

  sweep(now: number): void {
    for (const [key, counter] of this.counters) {
      if (now >= counter.windowStart + this.limit.window * 1000) this.counters.delete(key);
    }
  }
}

export class AuthThrottle {
  private readonly byAddress: FailureCounter;
  private readonly byAccount: FailureCounter;

  constructor(limits: { perIp: ThrottleLimit; perAccount: ThrottleLimit }) {
    this.byAddress = new FailureCounter(limits.perIp);
    this.byAccount = new FailureCounter(limits.perAccount);
  }

  /** Seconds to wait before this address may authenticate (as this account, when known). */
  blockedFor(address: string, account: string | undefined, now = Date.now()): number {
    const byAddress = this.byAddress.blockedFor(address, now);
    const byAccount = account === undefined ? 0 : this.byAccount.blockedFor(account, now);
    return Math.max(byAddress, byAccount);
  }

  failed(address: string, account: string | undefined, now = Date.now()): void {
    this.byAddress.fail(address, now);
    if (account !== undefined) this.byAccount.fail(account, now);
  }

  /** A success clears the account's count (not the address's: one good account must not reset a guesser). */
  succeeded(account: string): void {
    this.byAccount.forget(account);
  }

  sweep(now = Date.now()): void {
    this.byAddress.sweep(now);
    this.byAccount.sweep(now);
  }
}
