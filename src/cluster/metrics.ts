// The cluster's figures on this node's /metrics: nodes seen, sessions of other nodes, stanzas
// between nodes, cache notices and Redis latency (the heartbeat's round trip).
import { Counter, Gauge, type Registry } from 'prom-client';
import type { RedisCacheBus } from './caches.js';
import type { ClusterDirectory } from './directory.js';
import type { RedisNodeLink } from './link.js';
import type { Liveness } from './liveness.js';

/** A counter whose value is read from `read` at each scrape. */
function counterOf(registry: Registry, name: string, help: string, labelNames: string[], read: () => Array<[Record<string, string>, number]>): void {
  new Counter({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      for (const [labels, value] of read()) this.inc(labels, value);
    },
  });
}

export function registerClusterMetrics(registry: Registry, link: RedisNodeLink, directory: ClusterDirectory, liveness: Liveness, caches: RedisCacheBus): void {
  new Gauge({
    name: 'xmppd_cluster_nodes',
    help: 'Nodes in the cluster, this one included, as of the last liveness check',
    registers: [registry],
    collect() {
      this.set(liveness.nodeCount);
    },
  });
  new Gauge({
    name: 'xmppd_cluster_remote_sessions',
    help: 'Sessions held by the other nodes, as this node knows them',
    registers: [registry],
    collect() {
      this.set(directory.remoteCount);
    },
  });
  new Gauge({
    name: 'xmppd_cluster_redis_latency_seconds',
    help: 'Round trip of the last heartbeat write to Redis',
    registers: [registry],
    collect() {
      this.set(liveness.lastBeatSeconds);
    },
  });
  counterOf(registry, 'xmppd_cluster_stanzas_total', 'Stanzas sent to and received from other nodes', ['direction'], () => [
    [{ direction: 'out' }, link.counters.stanzasOut],
    [{ direction: 'in' }, link.counters.stanzasIn],
  ]);
  counterOf(registry, 'xmppd_cluster_batches_total', 'PUBLISH commands carrying stanzas to other nodes', [], () => [[{}, link.counters.batchesOut]]);
  counterOf(registry, 'xmppd_cluster_undeliverable_total', 'Stanzas for another node that did not reach it (node gone or Redis unreachable)', [], () => [[{}, link.counters.undeliverable]]);
  counterOf(registry, 'xmppd_cluster_cache_notices_total', 'Cache change notices sent to and received from other nodes', ['direction'], () => [
    [{ direction: 'out' }, caches.sent],
    [{ direction: 'in' }, caches.received],
  ]);
  counterOf(registry, 'xmppd_cluster_nodes_reaped_total', 'Dead nodes this node cleaned up after', [], () => [[{}, liveness.reaped]]);
}
