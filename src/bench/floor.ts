// The memory floor of an idle TLS connection on this Node, for the idle figures (issue 17: an idle
// authenticated connection should cost within 1.15x of it). A server process that does nothing
// but TLS: it accepts TCP, upgrades the socket the way c2s STARTTLS does (a TLSSocket over the
// accepted socket; `--direct`: a TLS listener, as for XEP-0368), answers the client's first
// words with a greeting (by default of the size of a stream header and features written as
// xmppd writes them, see c2s/transport.ts), and keeps the connection. This process opens the connections
// and reads the server's resident memory before and after, as ../shared/bench's idle scenario does.
//
//   node dist/src/bench/floor.js [--connections 10000] [--settle 3] [--direct] [--greeting 900]
//
// Prints one JSON line: {"scenario":"tls-floor","connections":...,"kib_per_conn":...}.
import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { ensureSelfSignedCertificate } from '../tls/certs.js';

interface FloorOptions {
  connections: number;
  settleSeconds: number;
  direct: boolean;
  greetingBytes: number;
}

function parse(argv: string[]): FloorOptions {
  const options: FloorOptions = { connections: 10_000, settleSeconds: 3, direct: false, greetingBytes: 900 };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = Number(argv[i + 1]);
    if (arg === '--direct') options.direct = true;
    else if (arg === '--connections' && value > 0) (options.connections = value), i++;
    else if (arg === '--settle' && value >= 0) (options.settleSeconds = value), i++;
    else if (arg === '--greeting' && value >= 0) (options.greetingBytes = value), i++;
    else throw new Error(`unknown or invalid option ${arg ?? ''}`);
  }
  return options;
}

// --- the server process ----------------------------------------------------------------------

async function serve(direct: boolean, greetingBytes: number): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-floor-'));
  const files = await ensureSelfSignedCertificate(dir, 'localhost');
  const cert = fs.readFileSync(files.certFile);
  const key = fs.readFileSync(files.keyFile);
  fs.rmSync(dir, { recursive: true, force: true });
  const context = tls.createSecureContext({ cert, key });
  const greeting = 'x'.repeat(greetingBytes);
  // answered once the client has spoken, in the next turn as a stream writes its output (the
  // same turn would share Node's output buffer with the TLS 1.3 session tickets on their way out)
  const secured = (socket: tls.TLSSocket) => {
    socket.once('data', () => setImmediate(() => socket.write(greeting)));
    socket.on('error', () => {});
  };
  const server = direct
    ? tls.createServer({ cert, key }, secured)
    : net.createServer((raw) => {
        const socket = new tls.TLSSocket(raw, { isServer: true, secureContext: context });
        socket.once('secure', () => secured(socket));
        socket.on('error', () => {});
      });
  server.listen(0, '127.0.0.1', () => process.send!({ port: (server.address() as net.AddressInfo).port }));
  process.on('disconnect', () => process.exit(0));
}

// --- this process: the clients and the measurement -------------------------------------------

function residentKiB(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (match === null) throw new Error(`no resident size for process ${pid}`);
  return Number(match[1]);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function connect(port: number, direct: boolean, greetingBytes: number): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const options = { rejectUnauthorized: false, servername: 'localhost' };
    const socket = direct
      ? tls.connect({ ...options, host: '127.0.0.1', port })
      : tls.connect({ ...options, socket: net.connect(port, '127.0.0.1') });
    let received = 0;
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received >= greetingBytes) resolve(socket);
    });
    socket.once('error', reject);
    socket.once('secureConnect', () => {
      socket.write('hello');
      if (greetingBytes === 0) resolve(socket);
    });
  });
}

async function measure(options: FloorOptions): Promise<void> {
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), ['--serve', options.direct ? 'direct' : 'starttls', String(options.greetingBytes)]);
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.once('message', (message) => resolve((message as { port: number }).port));
      child.once('exit', (code) => reject(new Error(`the TLS server exited (${code})`)));
    });
    await sleep(options.settleSeconds * 1000);
    const before = residentKiB(child.pid!);
    const sockets: tls.TLSSocket[] = [];
    // 50 handshakes at a time, as the idle scenario logs in its clients in parallel
    let next = 0;
    await Promise.all(
      Array.from({ length: 50 }, async () => {
        while (next < options.connections) {
          next++;
          sockets.push(await connect(port, options.direct, options.greetingBytes));
        }
      }),
    );
    await sleep(options.settleSeconds * 1000);
    const after = residentKiB(child.pid!);
    for (const socket of sockets) socket.destroy();
    const round = (x: number) => Math.round(x * 100) / 100;
    process.stdout.write(
      JSON.stringify({
        scenario: 'tls-floor',
        mode: options.direct ? 'direct TLS' : 'STARTTLS',
        connections: sockets.length,
        rss_before_mib: round(before / 1024),
        rss_after_mib: round(after / 1024),
        kib_per_conn: round((after - before) / sockets.length),
        node: process.version,
      }) + '\n',
    );
  } finally {
    child.kill();
  }
}

if (process.argv[2] === '--serve') {
  void serve(process.argv[3] === 'direct', Number(process.argv[4]));
} else {
  measure(parse(process.argv.slice(2))).catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
