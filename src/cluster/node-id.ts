// A node's default name in the cluster, kept apart from ./index.ts so that reading the
// configuration does not load the cluster (and node-redis) for a server that runs alone.
import os from 'node:os';

export function defaultNodeId(): string {
  return `${os.hostname()}-${process.pid}`;
}
