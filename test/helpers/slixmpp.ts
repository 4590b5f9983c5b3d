// Runs the slixmpp scripts in test/interop/ (Debian's python3-slixmpp, and python3-aiohttp for
// its HTTP File Upload plugin). Each script prints one JSON object per line for what happened.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Requirement } from './requirements.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const PYTHON = '/usr/bin/python3';

function canImport(modules: string): boolean {
  return fs.existsSync(PYTHON) && spawnSync(PYTHON, ['-c', `import ${modules}`]).status === 0;
}

export const slixmppRequirement: Requirement = { available: canImport('slixmpp'), what: 'slixmpp (python3 -c "import slixmpp")', debianPackages: 'python3-slixmpp' };
export const slixmppUploadRequirement: Requirement = {
  available: canImport('slixmpp, aiohttp'),
  what: 'slixmpp with aiohttp (python3 -c "import slixmpp, aiohttp")',
  debianPackages: 'python3-slixmpp python3-aiohttp',
};

export interface SlixEvent {
  event: string;
  [key: string]: unknown;
}

/** Runs test/interop/<script> with `args` (and extra environment); resolves once it exits. */
export function runSlixmpp(script: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; events: SlixEvent[]; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(PYTHON, [path.join(root, 'test', 'interop', script), ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => {
      const events = stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as SlixEvent);
      resolve({ code, events, stderr });
    });
  });
}
