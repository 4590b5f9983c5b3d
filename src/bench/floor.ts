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
//
// With `--logins N` it measures CPU instead (issue 14: what a login costs the server below
// XMPP): N connections at 50 at a time, each making the round trips of a login with nothing
// behind them (the server answers each client write with bytes of the size xmppd sends), in the
// shapes of the fast scenario (src/bench/scenarios/fast.ts): `scram` (two plain round trips for
// the stream header and STARTTLS, a full TLS handshake, five round trips: stream, SCRAM's two
// steps, the restart, bind), `fast` (the same TLS, two round trips: stream, SASL2 with Bind2),
// `fast_resumed` (that over a resumed TLS 1.3 session), and `plain_tcp` (scram's seven round trips
// without TLS). Two rounds, the second reported; server CPU per connection as the fast scenario
// reads it.
import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { ensureSelfSignedCertificate } from '../tls/certs.js';
import { CpuMeter, serverQuiet } from './cpu.js';
import { runPool, sleep } from './pool.js';

interface FloorOptions {
  connections: number;
  settleSeconds: number;
  direct: boolean;
  greetingBytes: number;
  /** `--logins`: measure CPU per login-shaped connection instead of memory (0: memory). */
  logins: number;
}

function parse(argv: string[]): FloorOptions {
  const options: FloorOptions = { connections: 10_000, settleSeconds: 3, direct: false, greetingBytes: 900, logins: 0 };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = Number(argv[i + 1]);
    if (arg === '--direct') options.direct = true;
    else if (arg === '--connections' && value > 0) (options.connections = value), i++;
    else if (arg === '--settle' && value >= 0) (options.settleSeconds = value), i++;
    else if (arg === '--greeting' && value >= 0) (options.greetingBytes = value), i++;
    else if (arg === '--logins' && value > 0) (options.logins = value), i++;
    else throw new Error(`unknown or invalid option ${arg ?? ''}`);
  }
  return options;
}

// --- the server process ----------------------------------------------------------------------

async function serve(direct: boolean, greetingBytes: number): Promise<void> {
  const { cert, key } = await floorCertificate();
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

/**
 * `--logins`: answers every client write, as xmppd answers a login's steps: two plain answers
 * (stream header and features, STARTTLS's proceed) before the upgrade, unless the client's first
 * byte is `P` (plain TCP throughout); after it, the features first, then small answers.
 */
async function serveLogins(): Promise<void> {
  const { cert, key } = await floorCertificate();
  const context = tls.createSecureContext({ cert, key });
  const [beforeTls, featuresAfterTls, answer] = ['a'.repeat(400), 'f'.repeat(1800), 'x'.repeat(300)];
  const server = net.createServer((raw) => {
    raw.setNoDelay(true);
    raw.on('error', () => {});
    let plainWrites = 0;
    let plainOnly = false;
    const onPlain = (chunk: Buffer) => {
      if (plainWrites++ === 0) plainOnly = chunk[0] === 0x50; // 'P'
      const reply = plainWrites === 1 ? beforeTls : answer;
      if (plainOnly || plainWrites === 1) return void setImmediate(() => raw.write(reply));
      raw.off('data', onPlain);
      raw.write('p', () => {
        const socket = new tls.TLSSocket(raw, { isServer: true, secureContext: context });
        let writes = 0;
        socket.on('data', () => {
          const reply = writes++ === 0 ? featuresAfterTls : answer;
          setImmediate(() => socket.write(reply));
        });
        socket.on('error', () => {});
      });
    };
    raw.on('data', onPlain);
  });
  server.listen(0, '127.0.0.1', () => process.send!({ port: (server.address() as net.AddressInfo).port }));
  process.on('disconnect', () => process.exit(0));
}

async function floorCertificate(): Promise<{ cert: Buffer; key: Buffer }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-floor-'));
  try {
    const files = await ensureSelfSignedCertificate(dir, 'localhost');
    return { cert: fs.readFileSync(files.certFile), key: fs.readFileSync(files.keyFile) };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// --- this process: the clients and the measurement -------------------------------------------

function residentKiB(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (match === null) throw new Error(`no resident size for process ${pid}`);
  return Number(match[1]);
}

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

/** Runs `work` against this file's server started in a child process with `args`, then stops it. */
async function withServer<T>(args: string[], work: (child: ChildProcess, port: number) => Promise<T>): Promise<T> {
  const child = fork(fileURLToPath(import.meta.url), args);
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.once('message', (message) => resolve((message as { port: number }).port));
      child.once('exit', (code) => reject(new Error(`the TLS server exited (${code})`)));
    });
    return await work(child, port);
  } finally {
    child.kill();
  }
}

async function measure(options: FloorOptions): Promise<void> {
  await withServer(['--serve', options.direct ? 'direct' : 'starttls', String(options.greetingBytes)], async (child, port) => {
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
  });
}

type Shape = 'scram' | 'fast' | 'fast_resumed' | 'plain_tcp';
/** Round trips after TLS (plain_tcp: after its two plain ones). */
const ROUND_TRIPS: Record<Shape, number> = { scram: 5, fast: 2, fast_resumed: 2, plain_tcp: 5 };

/** Resolves with the next chunk the socket reads. */
function nextChunk(socket: net.Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer) => (socket.off('error', reject), resolve(chunk));
    socket.once('data', onData);
    socket.once('error', reject);
  });
}

/** One login-shaped connection; `session`: a TLS session to resume. Kept open. */
async function loginShaped(port: number, shape: Shape, session: Buffer | undefined): Promise<{ socket: net.Socket; session: Buffer | null }> {
  const raw = net.connect(port, '127.0.0.1');
  raw.setNoDelay(true);
  await new Promise<void>((resolve, reject) => raw.once('connect', resolve).once('error', reject));
  raw.write(shape === 'plain_tcp' ? 'P' : 'S');
  await nextChunk(raw);
  raw.write('starttls');
  await nextChunk(raw);
  let socket: net.Socket = raw;
  let ticket: Buffer | null = null;
  if (shape !== 'plain_tcp') {
    const secure = tls.connect({ socket: raw, rejectUnauthorized: false, servername: 'localhost', ...(session ? { session } : {}) });
    secure.on('session', (s: Buffer) => (ticket = s));
    await new Promise<void>((resolve, reject) => secure.once('secureConnect', resolve).once('error', reject));
    if (shape === 'fast_resumed' && !secure.isSessionReused()) throw new Error('the TLS session was not resumed');
    socket = secure;
  }
  for (let i = 0; i < ROUND_TRIPS[shape]; i++) {
    socket.write('<step/>');
    await nextChunk(socket);
  }
  return { socket, session: ticket };
}

async function measureLogins(options: FloorOptions): Promise<void> {
  await withServer(['--serve-logins'], async (child, port) => {
    const n = options.logins;
    const sessions: Array<Buffer | undefined> = new Array(n);
    const result: Record<string, unknown> = { scenario: 'tls-floor-logins', logins: n, concurrency: 50, node: process.version };
    for (let round = 1; round <= 2; round++) {
      for (const shape of ['scram', 'fast', 'fast_resumed', 'plain_tcp'] as const) {
        await serverQuiet(child.pid!);
        const open: net.Socket[] = [];
        const meter = new CpuMeter(child.pid!);
        await runPool(n, 50, async (i) => {
          const { socket, session } = await loginShaped(port, shape, sessions[i]);
          open.push(socket);
          // the tickets of the full handshakes are what the resumed phase offers
          if (shape === 'fast' && session !== null) sessions[i] = session;
        });
        const cpu = meter.stop();
        if (open.length < n) throw new Error(`${shape}: ${n - open.length} of ${n} connections failed`);
        for (const socket of open) socket.destroy();
        if (round === 2) result[shape] = { server_cpu_ms_per_login: cpu.server_cpu_ms === null ? null : Math.round((cpu.server_cpu_ms / n) * 1000) / 1000 };
      }
    }
    const perLogin = (shape: Shape) => (result[shape] as { server_cpu_ms_per_login: number | null }).server_cpu_ms_per_login;
    const scram = perLogin('scram');
    if (scram !== null) {
      for (const shape of ['fast', 'fast_resumed', 'plain_tcp'] as const) result[`${shape}_vs_scram`] = Math.round((perLogin(shape)! / scram) * 1000) / 1000;
    }
    process.stdout.write(JSON.stringify(result) + '\n');
  });
}

if (process.argv[2] === '--serve') {
  void serve(process.argv[3] === 'direct', Number(process.argv[4]));
} else if (process.argv[2] === '--serve-logins') {
  void serveLogins();
} else {
  const options = parse(process.argv.slice(2));
  (options.logins > 0 ? measureLogins(options) : measure(options)).catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
