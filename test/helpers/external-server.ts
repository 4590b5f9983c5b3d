// A third-party server process for interop tests (Prosody, ejabberd): started by the test,
// ready once a port of it accepts connections, stopped by its PID.
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';

export interface ExternalProcess {
  pid: number;
  /** SIGTERM, then SIGKILL if it has not exited after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

export async function startExternal(
  name: string,
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; readyPort: number; timeoutMs: number },
): Promise<ExternalProcess> {
  const child: ChildProcess = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: options.env ?? process.env });
  let output = '';
  const keep = (d: Buffer) => (output = (output + d.toString()).slice(-4000));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${name} exited at start: ${output}`);
    if (await accepts(options.readyPort)) break;
    if (Date.now() > deadline) {
      process.kill(child.pid!, 'SIGKILL');
      throw new Error(`${name} did not start listening on ${options.readyPort}: ${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    pid: child.pid!,
    async stop(graceMs = 10000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      process.kill(child.pid!, 'SIGTERM');
      const timer = setTimeout(() => child.exitCode === null && process.kill(child.pid!, 'SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}
