// The CacheBus (src/core/caches.ts) of a cluster: "entry changed" notices on one channel, sent
// at once on the connection that also carries stanza batches (which wait for the end of the
// event-loop turn), so a node drops its copy before it sees a stanza that followed the change.
import type { Logger } from 'pino';
import type { SharedCaches } from '../core/caches.js';
import type { CacheBus } from '../core/ports.js';
import { channels } from './keys.js';
import type { RedisClient } from './redis.js';

export class RedisCacheBus implements CacheBus {
  /** Notices sent and received, for /metrics. */
  sent = 0;
  received = 0;

  constructor(
    private readonly node: string,
    private readonly redis: RedisClient,
    private readonly caches: SharedCaches,
    private readonly log: Logger,
  ) {}

  changed(scope: string, key: string): void {
    this.sent++;
    this.redis.broadcast(channels.caches, `${this.node}\t${scope}\t${key}`).catch((err: unknown) => {
      this.log.warn({ err: (err as Error).message, scope, key }, 'a cache change could not be told to the other nodes (Redis unreachable); their copies are read again when Redis is back');
    });
  }

  /** A notice from the caches channel. */
  receive(message: string): void {
    const [node, scope, key] = message.split('\t');
    if (node === this.node || scope === undefined || key === undefined) return;
    this.received++;
    this.caches.changedElsewhere(scope, key);
  }
}
