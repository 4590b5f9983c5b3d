// A real Redis for the cluster tests: Debian's redis-server on loopback, on a free port, in a
// throwaway directory, with no persistence (started again it is empty, as a crashed Redis without
// AOF is), stopped by PID. `halt()` then `resume()` bring it back on the same port.
import { spawn, type ChildProcess } from 'node:child_process';
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
