// Inbound rate limit per connection (a token bucket, like ejabberd's shapers): a client may send
// `rate` bytes per second on average and bursts of up to `burst` bytes. A client going faster is
// not disconnected: we stop reading from its socket until it is back within its allowance, so a
// flood slows only the flooder and TCP pushes back on it.
export class RateLimiter {
  private allowance: number;
  private updatedAt: number;

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    now = Date.now(),
  ) {
    this.allowance = burst;
    this.updatedAt = now;
  }

  /** Takes `bytes` from the allowance; returns how many ms to stop reading (0: go on). */
  consume(bytes: number, now = Date.now()): number {
    this.allowance = Math.min(this.burst, this.allowance + ((now - this.updatedAt) * this.rate) / 1000);
    this.updatedAt = now;
    this.allowance -= bytes;
    return this.allowance >= 0 ? 0 : Math.ceil((-this.allowance * 1000) / this.rate);
  }
}
