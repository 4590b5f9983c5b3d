// The local control socket: a Unix socket `control.sock` in the data directory, mode 0600 (only
// the server's own user may connect), through which the CLI asks a running server to run an
// admin command (commands.ts) — e.g. to delete an account and end its sessions, which the
// database alone cannot do. One JSON request per line, one JSON answer per line:
//   → {"command":"user.delete","args":{"jid":"alice@localhost"}}
//   ← {"ok":true,"result":{...}}   or   {"ok":false,"error":"..."}
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Logger } from 'pino';
import { runCommand } from './commands.js';
import { CommandError, type LiveAdminContext } from './registry.js';

export const CONTROL_SOCKET = 'control.sock';
/** A request longer than this is not one of ours: the connection is closed. */
const MAX_REQUEST_BYTES = 64 * 1024;
/** sockaddr_un.sun_path is 108 bytes on Linux (104 on BSDs), terminator included. */
const MAX_SOCKET_PATH = 103;

export function controlSocketPath(dataDir: string): string {
  return path.join(path.resolve(dataDir), CONTROL_SOCKET);
}

interface ControlledServer {
  settings: { dataDir: string };
  log: Logger;
  /** The admin commands' context on this server (set by the composition root, src/app.ts). */
  admin: ((hosts?: readonly string[]) => LiveAdminContext) | undefined;
}

export class ControlSocket {
  private readonly connections = new Set<net.Socket>();

  private constructor(
    private readonly server: net.Server,
    readonly path: string,
  ) {}

  /** Listens, or logs why not and returns undefined (the server runs without it). */
  static async open(owner: ControlledServer): Promise<ControlSocket | undefined> {
    const log = owner.log.child({ component: 'control' });
    const file = controlSocketPath(owner.settings.dataDir);
    if (Buffer.byteLength(file) > MAX_SOCKET_PATH) {
      log.warn({ path: file }, 'control socket not opened: the data directory path is too long for a Unix socket; `xmppd user del` will not reach this server');
      return undefined;
    }
    if (fs.existsSync(file)) {
      if (await answers(file)) {
        log.warn({ path: file }, 'control socket not opened: another server on this data directory has it');
        return undefined;
      }
      fs.rmSync(file, { force: true }); // left by a server that did not stop cleanly
    }
    fs.mkdirSync(path.dirname(file), { recursive: true });
    if (owner.admin === undefined) {
      log.warn('control socket not opened: no admin commands wired to this server');
      return undefined;
    }
    // whoever can connect is the server's own user: every command, on every host
    const context = owner.admin();
    const control = new ControlSocket(net.createServer((socket) => control.serve(socket, context, log)), file);
    // created 0600 from the start: no moment in which another user could connect. The umask is
    // the process's: restored at once (listen binds a Unix socket synchronously), before any
    // other code of this process creates a file.
    const listening = new Promise<void>((resolve, reject) => {
      control.server.once('error', reject);
      control.server.once('listening', () => {
        control.server.off('error', reject);
        resolve();
      });
    });
    const umask = process.umask(0o177);
    try {
      control.server.listen(file);
    } finally {
      process.umask(umask);
    }
    await listening;
    fs.chmodSync(file, 0o600);
    log.debug({ path: file }, 'control socket listening');
    return control;
  }

  private serve(socket: net.Socket, context: LiveAdminContext, log: Logger): void {
    this.connections.add(socket);
    socket.on('close', () => this.connections.delete(socket));
    socket.on('error', () => undefined);
    socket.setEncoding('utf8');
    let buffered = '';
    let busy = Promise.resolve();
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      if (buffered.length > MAX_REQUEST_BYTES && !buffered.includes('\n')) {
        log.warn('control socket: request too long, connection closed');
        socket.end(`${JSON.stringify({ ok: false, error: 'request too long' })}\n`);
        return;
      }
      for (let newline = buffered.indexOf('\n'); newline !== -1; newline = buffered.indexOf('\n')) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        if (line.trim() === '') continue;
        // answers go out in request order
        busy = busy.then(() => answer(line, context, log)).then((reply) => void socket.write(`${JSON.stringify(reply)}\n`));
      }
    });
  }

  async close(): Promise<void> {
    for (const socket of this.connections) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    fs.rmSync(this.path, { force: true });
  }
}

async function answer(line: string, context: LiveAdminContext, log: Logger): Promise<{ ok: true; result: unknown } | { ok: false; error: string }> {
  let request: { command?: unknown; args?: unknown };
  try {
    request = JSON.parse(line) as typeof request;
  } catch {
    return { ok: false, error: 'not a JSON request' };
  }
  if (typeof request !== 'object' || request === null || typeof request.command !== 'string') return { ok: false, error: 'a request is {"command": "...", "args": {...}}' };
  try {
    const result = await runCommand(context, request.command, request.args);
    // never the password in the log
    const args = typeof request.args === 'object' && request.args !== null ? { ...request.args, ...('password' in request.args ? { password: '(hidden)' } : {}) } : request.args;
    log.info({ command: request.command, args }, 'control command done');
    return { ok: true, result };
  } catch (err) {
    if (err instanceof CommandError) return { ok: false, error: err.message };
    log.error({ err, command: request.command }, 'control command failed');
    return { ok: false, error: `internal error: ${(err as Error).message}` };
  }
}

/** Whether a server answers on the socket (a connection is accepted). */
function answers(file: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(file);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Runs a command on the server running on `dataDir`, if one answers: its result, or a
 * CommandError with the server's refusal. `undefined` when no server listens there (the caller
 * then acts on the database itself).
 */
export function callControl(dataDir: string, command: string, args: unknown, timeoutMs = 30_000): Promise<{ result: unknown } | undefined> {
  const file = controlSocketPath(dataDir);
  if (!fs.existsSync(file)) return Promise.resolve(undefined);
  return new Promise((resolve, reject) => {
    const socket = net.connect(file);
    let connected = false;
    let buffered = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the server on ${file} did not answer within ${timeoutMs / 1000}s`));
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.once('connect', () => {
      connected = true;
      socket.write(`${JSON.stringify({ command, args })}\n`);
    });
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      const newline = buffered.indexOf('\n');
      if (newline === -1) return;
      clearTimeout(timer);
      socket.end();
      const reply = JSON.parse(buffered.slice(0, newline)) as { ok: boolean; result?: unknown; error?: string };
      if (reply.ok) resolve({ result: reply.result });
      else reject(new CommandError(reply.error ?? 'refused'));
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      // a socket file with nobody behind it: a server that did not stop cleanly
      if (!connected && (err.code === 'ECONNREFUSED' || err.code === 'ENOENT')) resolve(undefined);
      else reject(err);
    });
  });
}
