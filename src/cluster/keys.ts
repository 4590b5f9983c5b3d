// Redis key and channel names of a cluster. Every key carries a hash tag ({...}) naming what it
// belongs to (an account, a node, the cluster), so keys used together sit in one slot and the
// same code runs on a Redis Cluster (https://redis.io/docs/latest/operate/oss_and_stack/reference/cluster-spec/#hash-tags).
// A node's own channel is sharded on a Redis Cluster (./redis.ts); the others reach every node.

const PREFIX = 'xmppd';

export const keys = {
  /** Set of the node ids that joined and have not left or been reaped. */
  nodes: `${PREFIX}:{cluster}:nodes`,
  /** A node's heartbeat: exists while the node lives (expires after node_timeout). */
  alive: (node: string) => `${PREFIX}:{node:${node}}:alive`,
  /** A node's bound sessions: hash full JID → session record (JSON). */
  sessions: (node: string) => `${PREFIX}:{node:${node}}:sessions`,
  /** Held by the one survivor cleaning up after a dead node. */
  reaper: (node: string) => `${PREFIX}:{node:${node}}:reaper`,
  /** The lease of the node running a room (room@service), renewed with its heartbeat. */
  room: (room: string) => `${PREFIX}:{room:${room}}:node`,
  /** An account's resources: hash resource → node (RFC 6120 §7.7.2.2 conflicts across nodes). */
  resources: (bare: string) => `${PREFIX}:{${bare}}:resources`,
};

/** Lua scripts, each on one key (so one slot of a Redis Cluster). */
export const scripts = {
  /** Claims hash field ARGV[1] for ARGV[2]; returns who held it before. */
  claimField: "local old = redis.call('HGET', KEYS[1], ARGV[1]); redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]); return old",
  /** Deletes hash field ARGV[1] if ARGV[2] still holds it. */
  releaseField: "if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end return 0",
  /** Deletes the key if its value is still ARGV[1]. */
  deleteIfValue: "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
};

export const channels = {
  /** Stanzas and commands for one node. */
  node: (node: string) => `${PREFIX}:node:${node}`,
  /** Session records as they change, for every node's copy of the directory. */
  sessions: `${PREFIX}:sessions`,
  /** "This cached entry changed" notices (src/core/caches.ts). */
  caches: `${PREFIX}:caches`,
};
