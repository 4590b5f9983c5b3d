// `xmppd check ports`: whether the server can listen where the configuration says. With the
// server stopped, each address is tried (bound and released at once); with it running (its
// control socket answers), each must accept a connection.
import net from 'node:net';
import type { CoreConfig } from '../config/schema.js';
import { bad, good, type Finding } from './findings.js';

interface Listening { kind: string; host: string; port: number; tls: string }

function listenersOf(config: CoreConfig): Listening[] {
  const all: Listening[] = config.c2s.listen.map((l) => ({ kind: 'c2s', ...l }));
  if (config.s2s.enabled) all.push(...config.s2s.listen.map((l) => ({ kind: 's2s', ...l })));
  if (config.http.enabled) all.push(...config.http.listen.map((l) => ({ kind: 'http', ...l })));
  return all.filter((l) => l.port !== 0); // 0: a free port picked at start (tests)
}

export async function checkPorts(config: CoreConfig, serverRunning: boolean): Promise<Finding[]> {
  const findings: Finding[] = [];
  for (const listener of listenersOf(config)) {
    const subject = `${listener.kind} ${listener.host}:${listener.port} (${listener.tls})`;
    if (serverRunning) {
      const error = await tryConnect(listener.host, listener.port);
      findings.push(error === undefined
        ? good(subject, 'the running server accepts connections')
        : bad(subject, `the running server does not accept connections: ${error}`, 'look at the server log for this listener; a changed listen section needs a restart'));
      continue;
    }
    const error = await tryListen(listener.host, listener.port);
    if (error === undefined) findings.push(good(subject, 'free'));
    else if (error === 'EADDRINUSE') findings.push(bad(subject, 'taken by another program', `stop that program (ss -ltnp 'sport = :${listener.port}' names it), or choose another port`));
    else if (error === 'EACCES') findings.push(bad(subject, `ports below 1024 need a privilege`, 'use the standard XMPP ports, or give the server CAP_NET_BIND_SERVICE (AmbientCapabilities in the systemd unit)'));
    else if (error === 'EADDRNOTAVAIL') findings.push(bad(subject, `${listener.host} is not an address of this machine`, 'listen on one of its addresses, or 0.0.0.0 / :: for all'));
    else findings.push(bad(subject, `cannot listen: ${error}`, 'check the address'));
  }
  return findings;
}

function tryListen(host: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(undefined)));
  });
}

function tryConnect(host: string, port: number): Promise<string | undefined> {
  // a wildcard listener is reached on loopback
  const address = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return new Promise((resolve) => {
    const socket = net.connect({ host: address, port, timeout: 3000 });
    socket.once('connect', () => { socket.destroy(); resolve(undefined); });
    socket.once('timeout', () => { socket.destroy(); resolve('timed out'); });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}
