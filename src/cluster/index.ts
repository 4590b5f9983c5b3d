// Cluster mode: many nodes serving the same hosts, sharing PostgreSQL (every store) and Redis
// (where sessions are, node liveness, stanzas between nodes). Without `cluster:` in the
// configuration none of this is loaded: one process, no Redis. docs/architecture.md "Cluster".
//
// What a node connects to the kernel:
// - a ClusterDirectory as the observer of the kernel's session directory (this node's sessions
//   go to Redis; the other nodes' come back as RemoteSession refs in the same directory),
// - a RedisNodeLink as Delivery's NodeLink (stanzas for those refs, batched per node),
// - Liveness (heartbeat; a survivor cleans up after a dead node).
import type { Logger } from 'pino';
import type { Kernel } from '../core/kernel.js';
import { RedisCacheBus } from './caches.js';
import { ClusterDirectory } from './directory.js';
import { channels, keys } from './keys.js';
import { RedisNodeLink } from './link.js';
import { registerClusterMetrics } from './metrics.js';
import { RoomPlacement } from './placement.js';
import { Liveness, type LivenessSettings } from './liveness.js';
import { connectRedis, type RedisClient } from './redis.js';
import { handedOffRecord } from './remote-session.js';

/** How often a node that lost Redis tries to register again. */
const REJOIN_RETRY_MS = 2000;

export interface ClusterSettings extends LivenessSettings {
  redisUrl: string;
  /** The URL names a node of a Redis Cluster (./redis.ts). */
  redisCluster: boolean;
  /** Unique among the nodes; default hostname-pid. */
  nodeId: string;
}

export class Cluster {
  private readonly redis: RedisClient;
  readonly link: RedisNodeLink;
  readonly directory: ClusterDirectory;
  readonly liveness: Liveness;
  readonly caches: RedisCacheBus;
  readonly placement: RoomPlacement;
  private started = false;
  /** Redis was lost since the last (re)registration. */
  private lost = false;
  private retrying: NodeJS.Timeout | undefined;
  private rejoining = false;

  constructor(
    private readonly kernel: Kernel,
    readonly settings: ClusterSettings,
    private readonly log: Logger,
  ) {
    this.redis = connectRedis(settings.redisUrl, `xmppd-${settings.nodeId}`, settings.redisCluster);
    this.link = new RedisNodeLink(kernel, this.redis, log, settings.nodeId);
    this.directory = new ClusterDirectory(kernel, settings.nodeId, this.redis, this.link, log);
    // a node that no longer listens (killed: Redis closed its connection) is gone for routing at once;
    // Liveness still waits for its heartbeat to expire before cleaning up after it
    this.link.onNodeGone = (node) => this.directory.forgetNode(node);
    this.link.onHandedOver = (handOff, node) => this.directory.handedOver(handedOffRecord(handOff, node));
    this.placement = new RoomPlacement(kernel, settings.nodeId, this.redis, this.link, settings.nodeTimeoutMs, log);
    this.directory.nodeForgotten = (node) => this.placement.forgetNode(node);
    this.caches = new RedisCacheBus(settings.nodeId, this.redis, kernel.caches, log);
    this.liveness = new Liveness(kernel, settings.nodeId, this.redis, this.directory, settings, log);
    this.liveness.onBeat = () => this.placement.renew();
    registerClusterMetrics(kernel.metrics.registry, this.link, this.directory, this.liveness, this.caches);
    this.redis.onError((role, err) => {
      if (!this.lost && this.started) this.log.error({ role, err: err.message }, 'Redis connection lost; users on this node keep chatting, other nodes are out of reach until it is back');
      this.lost = this.started;
      // a Redis Cluster's shards reconnect without a ready event of the client's: try again until it works
      if (this.lost && this.retrying === undefined) {
        this.retrying = setInterval(() => void this.rejoin(), REJOIN_RETRY_MS);
        this.retrying.unref();
      }
    });
    this.redis.onReady(() => {
      if (this.lost) void this.rejoin();
    });
  }

  get nodeId(): string {
    return this.settings.nodeId;
  }

  /** Connects, joins and takes the other nodes' sessions; then connects to the kernel. */
  async start(): Promise<void> {
    const node = this.settings.nodeId;
    await this.redis.connect();
    if ((await this.redis.exists(keys.alive(node))) === 1) {
      throw new Error(`cluster node_id "${node}" is in use by a running node; give each node its own`);
    }
    await this.redis.subscribeNode(channels.node(node), (message) => this.link.receive(message));
    await this.redis.subscribe(channels.sessions, (message) => this.directory.receive(message));
    await this.redis.subscribe(channels.caches, (message) => this.caches.receive(message));
    await this.liveness.join();
    await this.directory.loadSnapshot(await this.liveness.members());
    this.kernel.sessions.observer = this.directory;
    this.kernel.connectNodes(this.link);
    this.kernel.caches.bus = this.caches;
    this.kernel.router.placement = this.placement;
    this.liveness.start();
    this.started = true;
    this.log.info({ nodes: await this.liveness.members(), remoteSessions: this.directory.remoteCount }, 'joined the cluster');
  }

  /** After Redis came back: this node's sessions and heartbeat again, and a fresh copy of the others'. */
  private async rejoin(): Promise<void> {
    if (this.rejoining || !this.lost) return;
    this.rejoining = true;
    try {
      this.liveness.holdOff();
      await this.liveness.join();
      await this.directory.registerAll();
      this.lost = false;
      clearInterval(this.retrying);
      this.retrying = undefined;
      this.log.info('Redis is back; this node is registered again');
      // the others' copy is read again once every live node has had the time to register again
      // (a restarted Redis is empty); until then the copy we have stands, updated by what they publish
      const timer = setTimeout(() => {
        this.liveness
          .members()
          .then((members) => this.directory.loadSnapshot(members))
          .then(
            () => this.log.info({ remoteSessions: this.directory.remoteCount }, 'the other nodes\' sessions read again after Redis came back'),
            (err: unknown) => this.log.warn({ err: (err as Error).message }, 'reading the other nodes\' sessions again failed'),
          );
      }, this.settings.nodeTimeoutMs);
      timer.unref();
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'registering again with Redis failed; retrying when it reconnects');
    } finally {
      this.rejoining = false;
    }
  }

  /** Leaves the cluster (after the c2s listeners closed: the sessions' ends are already shared). */
  async stop(): Promise<void> {
    clearInterval(this.retrying);
    this.liveness.stop();
    this.kernel.connectNodes(undefined);
    this.kernel.caches.bus = undefined;
    this.kernel.router.placement = undefined;
    this.kernel.sessions.observer = undefined;
    try {
      await new Promise((resolve) => setImmediate(resolve)); // the last coalesced writes
      await this.placement.release();
      await this.liveness.leave();
      await this.directory.announceGone(this.settings.nodeId);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'leaving the cluster cleanly failed (Redis unreachable); the others will see this node time out');
    }
    await this.redis.close();
  }
}
