// A real TURN server for the call tests: Debian's coturn (turnserver), on loopback with the TURN
// REST shared secret (use-auth-secret), started on a free port and stopped by PID; and its
// turnutils_uclient, which allocates a relay and sends through it.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './federation.js';
import type { Requirement } from './requirements.js';

const TURNSERVER = '/usr/bin/turnserver';
const UCLIENT = '/usr/bin/turnutils_uclient';

export const coturnRequirement: Requirement = {
  available: fs.existsSync(TURNSERVER) && fs.existsSync(UCLIENT),
  what: `coturn (${TURNSERVER}, ${UCLIENT})`,
  debianPackages: 'coturn',
};

export interface TestTurn {
  port: number;
  stop(): void;
}


export async function startTurn(secret: string): Promise<TestTurn> {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-turn-'));
  const child: ChildProcess = spawn(TURNSERVER, [
    '-n', '--listening-ip=127.0.0.1', '--relay-ip=127.0.0.1', `--listening-port=${port}`,
    '--use-auth-secret', `--static-auth-secret=${secret}`, '--realm=localhost',
    '--no-tls', '--no-dtls', '--no-cli', '--allow-loopback-peers', '--log-file=stdout',
    `--pidfile=${path.join(dir, 'turnserver.pid')}`, `--userdb=${path.join(dir, 'turndb')}`,
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (log += chunk));
  for (let i = 0; !log.includes('Total General servers'); i++) {
    if (child.exitCode !== null || i > 200) throw new Error(`turnserver did not start:\n${log}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    port,
    stop() {
      child.kill('SIGTERM');
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Allocates a relay with these credentials and sends a few messages through it; true if it worked. */
export function allocateRelay(port: number, username: string, password: string): Promise<{ ok: boolean; output: string }> {
  return new Promise((resolve) => {
    execFile(UCLIENT, ['-u', username, '-w', password, '-p', String(port), '-n', '2', '-m', '1', '-y', '127.0.0.1'], { timeout: 20000 }, (err, stdout, stderr) => {
      const output = stdout + stderr;
      resolve({ ok: err === null && !output.includes('Cannot complete Allocation') && /tot_recv_msgs=[1-9]/.test(output), output });
    });
  });
}
