// The Redis of a node (node-redis): the commands the cluster uses, over one Redis server or a
// Redis Cluster (`cluster.redis_cluster: true`, the URL naming any of its nodes).
//
// One Redis server: two connections, one for commands and publishing, one for subscriptions (a
// subscribed connection can do nothing else). A Redis Cluster: node-redis's cluster client routes
// each command by its key's slot (every key has a hash tag, ./keys.ts). Each node's own channel
// is then a sharded channel (SPUBLISH/SSUBSCRIBE), because a plain PUBLISH on a Redis Cluster
// answers with the subscribers of one shard only, and "nobody listens" is how a dead node is
// noticed (./link.ts). The channels every node listens to stay plain pub/sub.
//
// Commands fail at once while Redis is unreachable (no offline queue): a stanza for another node
// gets an error rather than waiting unseen; node-redis reconnects by itself and the cluster
// re-registers this node then.
import { createClient, createCluster } from 'redis';

type Listener = (message: string) => void;

export interface SetOptions {
  condition?: 'NX' | 'XX';
  /** Expiry in milliseconds. */
  expiresMs?: number;
}

/** What the cluster asks of Redis. */
export interface RedisClient {
  connect(): Promise<void>;
  close(): Promise<void>;
  /** `role`: which connection failed ('commands' or 'subscriptions'). */
  onError(handler: (role: string, err: Error) => void): void;
  /** The command connection is (again) ready. */
  onReady(handler: () => void): void;

  get(key: string): Promise<string | null>;
  /** null when a condition kept it from being set. */
  set(key: string, value: string, options?: SetOptions): Promise<string | null>;
  del(key: string): Promise<number>;
  exists(key: string): Promise<number>;
  hSet(key: string, field: string, value: string): Promise<number>;
  hDel(key: string, field: string): Promise<number>;
  hGetAll(key: string): Promise<Record<string, string>>;
  sAdd(key: string, member: string): Promise<number>;
  sRem(key: string, member: string): Promise<number>;
  sMembers(key: string): Promise<string[]>;
  /** A Lua script on keys of one slot (./keys.ts scripts). */
  eval(script: string, keys: string[], args: string[]): Promise<unknown>;

  /** To one node's own channel: how many of its subscribers got it (0: the node is gone). */
  publishToNode(channel: string, message: string): Promise<number>;
  subscribeNode(channel: string, listener: Listener): Promise<void>;
  /** To a channel every node listens to. */
  broadcast(channel: string, message: string): Promise<unknown>;
  subscribe(channel: string, listener: Listener): Promise<void>;
}

const socket = {
  connectTimeout: 5000,
  // 50 ms, 100 ms ... up to 2 s between attempts, for ever: Redis coming back is the normal case
  reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, 2000),
};

function setArguments(options: SetOptions | undefined) {
  return {
    ...(options?.condition === undefined ? {} : { condition: options.condition }),
    ...(options?.expiresMs === undefined ? {} : { expiration: { type: 'PX' as const, value: options.expiresMs } }),
  };
}

export function connectRedis(url: string, name: string, cluster: boolean): RedisClient {
  return cluster ? new RedisClusterConnection(url, name) : new RedisServerConnection(url, name);
}

/** One Redis server. */
class RedisServerConnection implements RedisClient {
  private readonly commands: ReturnType<typeof createClient>;
  private readonly subscriber: ReturnType<typeof createClient>;

  constructor(url: string, name: string) {
    this.commands = createClient({ url, name, disableOfflineQueue: true, socket });
    this.subscriber = createClient({ url, name: `${name}-sub`, disableOfflineQueue: true, socket });
  }

  async connect(): Promise<void> {
    await this.commands.connect();
    await this.subscriber.connect();
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.subscriber.close(), this.commands.close()]);
  }

  onError(handler: (role: string, err: Error) => void): void {
    this.commands.on('error', (err: Error) => handler('commands', err));
    this.subscriber.on('error', (err: Error) => handler('subscriptions', err));
  }

  onReady(handler: () => void): void {
    this.commands.on('ready', handler);
  }

  get = (key: string) => this.commands.get(key);
  set = (key: string, value: string, options?: SetOptions) => this.commands.set(key, value, setArguments(options)) as Promise<string | null>;
  del = (key: string) => this.commands.del(key);
  exists = (key: string) => this.commands.exists(key);
  hSet = (key: string, field: string, value: string) => this.commands.hSet(key, field, value);
  hDel = (key: string, field: string) => this.commands.hDel(key, field);
  hGetAll = async (key: string) => (await this.commands.hGetAll(key)) as Record<string, string>;
  sAdd = (key: string, member: string) => this.commands.sAdd(key, member);
  sRem = (key: string, member: string) => this.commands.sRem(key, member);
  sMembers = (key: string) => this.commands.sMembers(key);
  eval = (script: string, keys: string[], args: string[]) => this.commands.eval(script, { keys, arguments: args }) as Promise<unknown>;
  publishToNode = (channel: string, message: string) => this.commands.publish(channel, message);
  subscribeNode = (channel: string, listener: Listener) => this.subscriber.subscribe(channel, listener);
  broadcast = (channel: string, message: string) => this.commands.publish(channel, message);
  subscribe = (channel: string, listener: Listener) => this.subscriber.subscribe(channel, listener);
}

/** A Redis Cluster, reached from any of its nodes. */
class RedisClusterConnection implements RedisClient {
  private readonly cluster: ReturnType<typeof createCluster>;

  constructor(url: string, name: string) {
    this.cluster = createCluster({ rootNodes: [{ url }], defaults: { name, disableOfflineQueue: true, socket } });
  }

  async connect(): Promise<void> {
    await this.cluster.connect();
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.cluster.close()]);
  }

  onError(handler: (role: string, err: Error) => void): void {
    this.cluster.on('error', (err: Error) => handler('cluster', err));
    // a shard's connection: reconnected by the client on its own
    this.cluster.on('node-error', (err: Error) => handler('cluster shard', err));
  }

  onReady(handler: () => void): void {
    // told once per shard connection only: the cluster then retries on a timer (Cluster.rejoin)
    this.cluster.on('node-ready', handler);
  }

  get = (key: string) => this.cluster.get(key);
  set = (key: string, value: string, options?: SetOptions) => this.cluster.set(key, value, setArguments(options)) as Promise<string | null>;
  del = (key: string) => this.cluster.del(key);
  exists = (key: string) => this.cluster.exists(key);
  hSet = (key: string, field: string, value: string) => this.cluster.hSet(key, field, value);
  hDel = (key: string, field: string) => this.cluster.hDel(key, field);
  hGetAll = async (key: string) => (await this.cluster.hGetAll(key)) as Record<string, string>;
  sAdd = (key: string, member: string) => this.cluster.sAdd(key, member);
  sRem = (key: string, member: string) => this.cluster.sRem(key, member);
  sMembers = (key: string) => this.cluster.sMembers(key);
  eval = (script: string, keys: string[], args: string[]) => this.cluster.eval(script, { keys, arguments: args }) as Promise<unknown>;
  publishToNode = (channel: string, message: string) => this.cluster.sPublish(channel, message);
  subscribeNode = (channel: string, listener: Listener) => this.cluster.sSubscribe(channel, listener);
  broadcast = (channel: string, message: string) => this.cluster.publish(channel, message);
  subscribe = (channel: string, listener: Listener) => this.cluster.subscribe(channel, listener);
}
