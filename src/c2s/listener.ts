// Client listeners: plain TCP with STARTTLS (RFC 6120 §5) and direct TLS (XEP-0368), plus one
// timer that looks after every connection (idle unauthenticated sockets, keepalive pings,
// whitespace keepalives) instead of one timer per connection.
import net from 'node:net';
import tls from 'node:tls';
import type { Server } from '../core/server.js';
import { listenOn } from '../core/listen.js';
import { C2SStream } from './stream.js';
import type { ClientSession } from './session.js';
import { clock, startClock, stopClock } from './clock.js';
import type { ThrottleLimit } from './sasl/throttle.js';
import { TcpTransport, type C2STransport } from './transport.js';

export interface C2SListen {
  host: string;
  port: number;
  tls: 'starttls' | 'direct';
}

export interface C2SSettings {
  listen: C2SListen[];
  requireEncryption: boolean;
  maxStanzaSize: number;
  /** bytes per second a client may send on average (bursts of 4x), or null for no limit */
  maxReceiveRate: number | null;
  /** share of one core a connection may use to parse and handle its input (bursts of 200 ms), or null for no limit */
  maxCpuShare: number | null;
  /** seconds an unauthenticated connection may stay open */
  authTimeout: number;
  /** seconds a new connection may take to send its stream header */
  streamOpenTimeout: number;
  /** seconds of silence before the server pings a client (XEP-0199 §4.1), or null */
  pingInterval: number | null;
  /** seconds to wait for any data after that ping */
  pingTimeout: number;
  /** seconds of our silence before a whitespace keepalive, or null */
  whitespaceKeepalive: number | null;
  authThrottle: { perIp: ThrottleLimit; perAccount: ThrottleLimit };
  /** seconds a session with XEP-0198 resumption waits for its client to come back; 0 disables resumption */
  resumeTimeout: number;
}

const SWEEP_INTERVAL_MS = 5000;

export class C2SListeners {
  private readonly servers: Array<{ server: net.Server; listen: C2SListen }> = [];
  private readonly streams = new Set<C2SStream>();
  /** Sessions that may be resumed (XEP-0198), by resumption id. */
  readonly resumable = new Map<string, ClientSession>();
  private sweeper: NodeJS.Timeout | undefined;
  private closing = false;

  constructor(
    private readonly server: Server,
    private readonly settings: C2SSettings,
  ) {}

  async listen(): Promise<void> {
    startClock();
    for (const listen of this.settings.listen) {
      const accept = (socket: net.Socket) => {
        socket.setNoDelay(true); // our writes are already batched per event-loop turn
        if (listen.tls === 'direct') socket = this.directTls(socket);
        this.accept(new TcpTransport(socket, listen.tls === 'direct'));
      };
      const netServer = net.createServer(accept);
      await listenOn(netServer, { ...listen, backlog: 1024 }, listen.tls === 'direct' ? 'clients (direct TLS)' : 'clients');
      netServer.on('error', (err) => this.server.log.error({ err }, 'client listener error'));
      this.servers.push({ server: netServer, listen });
    }
    this.sweeper = setInterval(() => this.sweep(), SWEEP_INTERVAL_MS);
    this.sweeper.unref();
  }

  /**
   * XEP-0368: TLS from the first byte. We wrap the socket ourselves rather than use
   * tls.createServer, which ignores a `secureContext` option: a client that sends no SNI (one
   * connecting by IP address) would get a context without a certificate and fail the handshake,
   * instead of getting the first host's certificate as STARTTLS gives it.
   */
  private directTls(socket: net.Socket): tls.TLSSocket {
    // handshake errors reach the stream's socket 'error' handler, which logs them
    return new tls.TLSSocket(socket, { isServer: true, ...this.server.tls.serverOptions(), ALPNProtocols: ['xmpp-client'] });
  }

  /** A new client connection, over TCP or a WebSocket (src/c2s/websocket.ts). */
  accept(transport: C2STransport): C2SStream | undefined {
    if (this.closing) {
      transport.destroy(); // a WebSocket upgraded while the server shuts down
      return undefined;
    }
    const stream = new C2SStream(this.server, transport, this.settings, this);
    if (stream.state !== 'closed') this.streams.add(stream);
    return stream;
  }

  forget(stream: C2SStream): void {
    this.streams.delete(stream);
  }

  addresses(): C2SListen[] {
    return this.servers.map(({ server, listen }) => {
      const address = server.address() as net.AddressInfo;
      return { host: listen.host, port: address.port, tls: listen.tls };
    });
  }

  /** Open client connections by transport, for /metrics. */
  connectionCounts(): { c2s_tcp: number; c2s_websocket: number } {
    let websocket = 0;
    for (const stream of this.streams) if (stream.transport.kind === 'websocket') websocket++;
    return { c2s_tcp: this.streams.size - websocket, c2s_websocket: websocket };
  }

  get connectionCount(): number {
    return this.streams.size;
  }

  private sweep(): void {
    const now = clock.now;
    const { authTimeout, streamOpenTimeout, pingInterval, pingTimeout, whitespaceKeepalive } = this.settings;
    for (const stream of this.streams) {
      if (stream.state !== 'bound') {
        if (stream.host === '' && now - stream.openedAt > streamOpenTimeout * 1000) stream.close('connection-timeout', 'No stream header received');
        else if (now - stream.openedAt > authTimeout * 1000) stream.close('connection-timeout', 'Authentication took too long');
        continue;
      }
      if (pingInterval !== null) {
        if (stream.pingSentAt !== 0) {
          if (stream.lastReceived >= stream.pingSentAt) stream.pingSentAt = 0;
          else if (now - stream.pingSentAt > pingTimeout * 1000) {
            stream.close('connection-timeout', 'No answer to ping', true); // a dead link: resumable
            continue;
          }
        } else if (now - stream.lastReceived > pingInterval * 1000) {
          stream.sendPing();
        }
      }
      if (whitespaceKeepalive !== null && now - stream.lastSent > whitespaceKeepalive * 1000) stream.sendWhitespace();
    }
    this.server.authThrottle.sweep();
  }

  /** Stops accepting, then ends every stream with `system-shutdown` (RFC 6120 §4.9.3.18). */
  async close(): Promise<void> {
    this.closing = true;
    if (this.sweeper) clearInterval(this.sweeper);
    const closing = this.servers.map(({ server }) => new Promise<void>((resolve) => server.close(() => resolve())));
    for (const stream of [...this.streams]) stream.close('system-shutdown', 'The server is shutting down');
    this.streams.clear();
    for (const session of [...this.resumable.values()]) session.end('server shutdown');
    this.resumable.clear();
    await Promise.all(closing);
    stopClock();
  }
}
