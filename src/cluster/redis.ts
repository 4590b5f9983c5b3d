// The Redis connections of a node (node-redis): one for commands and publishing, one for
// subscriptions (a subscribed connection can do nothing else). Commands fail at once while Redis
// is unreachable (no offline queue): a stanza for another node gets an error rather than waiting
// unseen; node-redis reconnects by itself and the cluster re-registers this node then.
import { createClient } from 'redis';

export type RedisClient = ReturnType<typeof createClient>;

export function connectRedis(url: string, name: string): RedisClient {
  return createClient({
    url,
    name,
    disableOfflineQueue: true,
    socket: {
      connectTimeout: 5000,
      // 50 ms, 100 ms ... up to 2 s between attempts, for ever: Redis coming back is the normal case
      reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, 2000),
    },
  });
}
