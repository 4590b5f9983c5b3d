// The real `xmppd` command in a child process, for tests of the admin surfaces: one-shot runs,
// and long-running `xmppd start` children whose output a test can wait on.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ExecutionContext } from 'ava';
import { testStorageConfig } from './postgres.js';

// dist/test/helpers/cli.js → the repository root
export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const main = path.join(root, 'dist', 'src', 'main.js');

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `xmppd <args>` to completion, with `input` on its standard input. */
export function xmppd(args: string[], input = ''): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [main, ...args], { cwd: root, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}

export interface Workspace {
  dir: string;
  config: string;
  cli(...args: string[]): Promise<Run>;
}

/** A data directory and a configuration file (`yaml`, else one host) for one test; both removed afterwards. */
export function workspace(t: ExecutionContext, yaml?: (dir: string, storage: string) => string): Workspace {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-admin-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const config = path.join(dir, 'xmppd.yml');
  // on the PostgreSQL pass, the database the test server on this data directory uses too
  const storageConfig = testStorageConfig(dir);
  const storage = `storage: ${storageConfig ? JSON.stringify(storageConfig) : '{}'}`;
  fs.writeFileSync(config, yaml ? yaml(dir, storage) : `data_dir: ${JSON.stringify(dir)}\nlog: { level: silent }\nhosts:\n  - domain: localhost\n${storage}\n`);
  return { dir, config, cli: (...args) => xmppd(['--config', config, ...args]) };
}

export interface Running {
  output(): string;
  waitFor(text: string | RegExp): Promise<void>;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** A long-running child whose output the test can wait on, and its end. */
export function running(child: ChildProcessWithoutNullStreams): Running {
  let output = '';
  const waiters: Array<{ text: string | RegExp; resolve: () => void }> = [];
  const seen = (text: string | RegExp) => (typeof text === 'string' ? output.includes(text) : text.test(output));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  const onData = (chunk: Buffer) => {
    output += chunk.toString('utf8');
    for (const w of [...waiters]) if (seen(w.text)) (waiters.splice(waiters.indexOf(w), 1), w.resolve());
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  return {
    output: () => output,
    exit,
    waitFor: (text) =>
      seen(text)
        ? Promise.resolve()
        : Promise.race([
            new Promise<void>((resolve) => waiters.push({ text, resolve })),
            exit.then((end) => Promise.reject(new Error(`exited (${end.code ?? end.signal}) before printing "${String(text)}"; output:\n${output}`))),
          ]),
  };
}

/** `xmppd start` on a configuration, stopped (SIGTERM, then SIGKILL) by the test's teardown. */
export async function startChild(t: ExecutionContext, config: string): Promise<{ child: ChildProcessWithoutNullStreams; server: Running }> {
  const started = spawnServer(t, config);
  await started.server.waitFor('xmppd started');
  return started;
}

/** `xmppd start` launched, not waited for (a test that acts during the start-up); stopped as startChild's. */
export function spawnServer(t: ExecutionContext, config: string): { child: ChildProcessWithoutNullStreams; server: Running } {
  const child = spawn(process.execPath, [main, '--config', config, 'start'], { cwd: root });
  const server = running(child);
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await server.exit;
    clearTimeout(timer);
  });
  return { child, server };
}

/** The ports from the "xmppd started" log line (JSON logs). */
export function startedPorts(output: string): { starttls: number; direct: number } {
  const line = output.split('\n').find((l) => l.includes('"xmppd started"'));
  if (line === undefined) throw new Error(`no start line in:\n${output}`);
  const listeners = (JSON.parse(line) as { listeners: Array<{ port: number; tls: string }> }).listeners;
  return { starttls: listeners.find((l) => l.tls === 'starttls')?.port ?? 0, direct: listeners.find((l) => l.tls === 'direct')?.port ?? 0 };
}
