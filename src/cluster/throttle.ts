// The login throttle (src/c2s/sasl/throttle.ts) across the cluster: every failure and success a
// node counts is told to the others, which count it too, so a guesser spreading its guesses over
// the nodes is refused as on one server. Best effort: while Redis is unreachable each node
// counts its own.
import type { Logger } from 'pino';
import type { AuthThrottle } from '../c2s/sasl/throttle.js';
import { channels } from './keys.js';
import type { RedisClient } from './redis.js';

export class SharedThrottle {
  constructor(
    private readonly node: string,
    private readonly redis: RedisClient,
    private readonly throttle: AuthThrottle,
    private readonly log: Logger,
  ) {}

  attach(): void {
    this.throttle.shared = {
      failed: (address, account, now) => this.publish(`f\t${address}\t${account ?? ''}\t${now}`),
      succeeded: (address, account) => this.publish(`s\t${address}\t${account}\t0`),
    };
  }

  detach(): void {
    this.throttle.shared = undefined;
  }

  private publish(event: string): void {
    this.redis.publish(channels.auth, `${this.node}\t${event}`).catch((err: unknown) => {
      this.log.debug({ err: (err as Error).message }, 'a login failure was not shared with the cluster (Redis unreachable)');
    });
  }

  /** An event from the auth channel. */
  receive(message: string): void {
    const [node, kind, address, account, now] = message.split('\t');
    if (node === this.node || address === undefined || account === undefined) return;
    if (kind === 'f') this.throttle.failedElsewhere(address, account === '' ? undefined : account, Number(now));
    else if (kind === 's') this.throttle.succeededElsewhere(address, account);
  }
}
