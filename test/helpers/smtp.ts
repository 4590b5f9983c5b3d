// A real SMTP server for the mail tests: Debian's python3-aiosmtpd with its Debugging handler,
// which prints every message it receives on stdout; started on a free loopback port, stopped by PID.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { freePort } from './federation.js';
import type { Requirement } from './requirements.js';

const PYTHON = '/usr/bin/python3';

export const smtpRequirement: Requirement = {
  available: fs.existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import aiosmtpd']).status === 0,
  what: 'aiosmtpd (python3 -c "import aiosmtpd")',
  debianPackages: 'python3-aiosmtpd',
};

export interface Mail {
  to: string;
  subject: string;
  body: string;
}

export interface TestSmtp {
  url: string;
  /** Mails received so far. */
  mails: Mail[];
  /** The next mail to `to` (one already received counts). */
  next(to: string, timeoutMs?: number): Promise<Mail>;
  stop(): void;
}


export async function startSmtp(): Promise<TestSmtp> {
  const port = await freePort();
  const child: ChildProcess = spawn(PYTHON, ['-u', '-m', 'aiosmtpd', '-n', '-l', `127.0.0.1:${port}`, '-c', 'aiosmtpd.handlers.Debugging'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const mails: Mail[] = [];
  const taken = new Set<Mail>();
  let output = '';
  let listeners: Array<() => void> = [];
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    output += chunk;
    let end: number;
    while ((end = output.indexOf('------------ END MESSAGE ------------')) !== -1) {
      const text = output.slice(output.indexOf('---------- MESSAGE FOLLOWS ----------') + 38, end);
      output = output.slice(end + 37);
      const [head = '', ...rest] = text.split('\n\n');
      const header = (name: string) => head.match(new RegExp(`^${name}: (.*)$`, 'mi'))?.[1]?.trim() ?? '';
      let body = rest.join('\n\n');
      if (/quoted-printable/i.test(header('Content-Transfer-Encoding'))) {
        body = Buffer.from(body.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16))), 'latin1').toString('utf8');
      }
      mails.push({ to: header('To'), subject: header('Subject'), body });
      for (const l of listeners) l();
    }
  });
  // ready once it accepts connections
  for (let i = 0; ; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => resolve(socket.end() !== undefined));
      socket.on('error', () => resolve(false));
    });
    if (ok) break;
    if (i > 100) throw new Error('aiosmtpd did not start');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    url: `smtp://127.0.0.1:${port}`,
    mails,
    next(to, timeoutMs = 15000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const mail = mails.find((m) => m.to === to && !taken.has(m));
          if (mail === undefined) return false;
          taken.add(mail);
          listeners = listeners.filter((l) => l !== listener);
          clearTimeout(timer);
          resolve(mail);
          return true;
        };
        const listener = () => void check();
        const timer = setTimeout(() => {
          listeners = listeners.filter((l) => l !== listener);
          reject(new Error(`no mail to ${to}`));
        }, timeoutMs);
        if (!check()) listeners.push(listener);
      });
    },
    stop: () => void child.kill('SIGTERM'),
  };
}
