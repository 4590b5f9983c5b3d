// A real Redis for the cluster tests: Debian's redis-server on loopback, on a free port, in a
// throwaway directory, with no persistence (started again it is empty, as a crashed Redis without
// AOF is), stopped by PID. `halt()` then `resume()` bring it back on the same port.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './federation.js';
import type { Requirement } from './requirements.js';

const REDIS_SERVER = '/usr/bin/redis-server';

export const redisRequirement: Requirement = {
  available: fs.existsSync(REDIS_SERVER),
  what: `Redis (${REDIS_SERVER})`,
  debianPackages: 'redis-server',
};

export interface TestRedis {
  url: string;
  port: number;
  /** Stops it for good and removes its directory. */
  stop(): Promise<void>;
  /** Stops the process only (as a crash would), to be started again with resume(). */
  halt(): Promise<void>;
  /** Starts it again on the same port, empty. */
  resume(): Promise<void>;
}


export async function startRedis(): Promise<TestRedis> {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-redis-'));
  let child: ChildProcess | undefined;
  const launch = async () => {
    const started: ChildProcess = spawn(REDIS_SERVER, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    started.stdout!.setEncoding('utf8').on('data', (chunk: string) => (log += chunk));
    started.stderr!.setEncoding('utf8').on('data', (chunk: string) => (log += chunk));
    for (let i = 0; !log.includes('Ready to accept connections'); i++) {
      if (started.exitCode !== null || i > 200) throw new Error(`redis-server did not start (exit ${started.exitCode}):\n${log}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    child = started;
  };
  const stop = async () => {
    const running = child;
    child = undefined;
    if (running === undefined || running.exitCode !== null) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    running.kill('SIGTERM');
    await exited;
  };
  await launch();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async stop() {
      await stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
    halt: stop,
    resume: launch,
  };
}

export interface TestRedisCluster {
  /** One of its nodes, as a client would be configured with (cluster.redis_url). */
  url: string;
  stop(): Promise<void>;
}

/**
 * A real Redis Cluster of `shards` masters (no replicas), each a redis-server on loopback with
 * its cluster bus on a port of its own, joined by `redis-cli --cluster create`; stopped by PID.
 */
export async function startRedisCluster(shards = 3): Promise<TestRedisCluster> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-redis-cluster-'));
  const children: ChildProcess[] = [];
  const ports: number[] = [];
  const stop = async () => {
    await Promise.all(children.map((child) => {
      if (child.exitCode !== null) return undefined;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      return exited;
    }));
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < shards; i++) {
      const [port, bus] = [await freePort(), await freePort()];
      const shardDir = path.join(dir, String(port));
      fs.mkdirSync(shardDir);
      const child = spawn(REDIS_SERVER, [
        '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', shardDir,
        '--cluster-enabled', 'yes', '--cluster-port', String(bus), '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '2000',
      ], { stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(child);
      let log = '';
      child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (log += chunk));
      child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (log += chunk));
      for (let tries = 0; !log.includes('Ready to accept connections'); tries++) {
        if (child.exitCode !== null || tries > 200) throw new Error(`redis-server (cluster) did not start (exit ${child.exitCode}):\n${log}`);
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      ports.push(port);
    }
    const create = spawnSync('/usr/bin/redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'], { encoding: 'utf8' });
    if (create.status !== 0) throw new Error(`redis-cli --cluster create failed:\n${create.stdout}${create.stderr}`);
    // every shard must agree before clients are routed
    for (let tries = 0; ; tries++) {
      const states = ports.map((port) => spawnSync('/usr/bin/redis-cli', ['-p', String(port), 'cluster', 'info'], { encoding: 'utf8' }).stdout);
      if (states.every((info) => info.includes('cluster_state:ok'))) break;
      if (tries > 200) throw new Error(`the Redis Cluster did not become ready:\n${states.join('\n')}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { url: `redis://127.0.0.1:${ports[0]}`, stop };
}
