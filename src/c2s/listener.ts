// Client listeners: plain TCP with STARTTLS (RFC 6120 §5) and direct TLS (XEP-0368), plus one
// timer that looks after every connection (idle unauthenticated sockets, keepalive pings,
// whitespace keepalives) instead of one timer per connection.
import net from 'node:net';
import tls from 'node:tls';
import type { Kernel } from '../core/kernel.js';
import type { HandOffAnswer, HandOffRequest, ResumableSessions } from '../core/ports.js';
import { listenOn } from '../core/listen.js';
import { C2SStream } from './stream.js';
import type { ClientSession } from './session.js';
import { clock, startClock, stopClock } from './clock.js';
import type { AuthThrottle } from './sasl/throttle.js';
import type { TlsContexts } from '../tls/contexts.js';
import { TcpTransport, type C2STransport } from './transport.js';
import { HibernationRecords, hibernationMigrations, type SessionLostEvent } from './hibernation.js';
import { parseJid } from '../core/jid.js';
import { OverloadShedding } from './overload.js';
import { InputTurn } from './input-turn.js';

/**
 * Client input handled per event-loop turn, in ms of the main thread: enough for a few thousand
 * stanzas, short enough that timers and database answers are never long behind.
 */
const INPUT_TURN_BUDGET_MS = 25;
import type { C2SListen, C2SSettings } from './settings.js';

export type { C2SListen, C2SSettings } from './settings.js';

const SWEEP_INTERVAL_MS = 5000;

/** How many resumption ids of sessions that moved to another node are remembered, to send their clients after them. */
const MAX_MOVED = 10_000;

export class C2SListeners implements ResumableSessions {
  private readonly servers: Array<{ server: net.Server; listen: C2SListen }> = [];
  private readonly streams = new Set<C2SStream>();
  /** Sessions that may be resumed (XEP-0198), by resumption id. */
  readonly resumable = new Map<string, ClientSession>();
  /** Resumption ids of sessions handed to another node: that node, and until when it is worth asking. */
  private readonly moved = new Map<string, { node: string; until: number }>();
  private sweeper: NodeJS.Timeout | undefined;
  private closing = false;
  /** Durable notes of hibernating sessions (set once listening). */
  hibernations: HibernationRecords | undefined;
  /** Queues of ended sessions being stored (offline storage): a shutdown waits for them. */
  private readonly handedOn = new Set<Promise<unknown>>();
  /** Sessions consult it before each send; null when shedding is off. */
  shedding: OverloadShedding | null = null;
  /** The client input one event-loop turn handles, shared by every stream. */
  readonly inputTurn = new InputTurn(INPUT_TURN_BUDGET_MS);

  constructor(
    private readonly server: Kernel,
    private readonly settings: C2SSettings,
    /** The hosts' certificates (src/tls). */
    readonly tls: TlsContexts,
    /** Throttling of password guessers, shared by every stream (sasl/throttle.ts). */
    readonly authThrottle: AuthThrottle,
  ) {}

  async listen(): Promise<void> {
    startClock();
    await this.server.migrate('c2s', hibernationMigrations);
    this.hibernations = new HibernationRecords(this.server.db, this.server.log.child({ component: 'c2s' }), this.server.nodeId ?? '');
    await this.recoverLostSessions();
    this.server.resumable = this;
    if (this.settings.overload.shedding) this.shedding = new OverloadShedding(this.server, this.settings.overload, this.inputTurn);
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
    return new tls.TLSSocket(socket, { isServer: true, ...this.tls.serverOptions(), ALPNProtocols: ['xmpp-client'] });
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
    const { authTimeout, streamOpenTimeout, pingInterval, pingTimeout, whitespaceKeepalive, ackDelay } = this.settings;
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
      // XEP-0198: stanzas sent and not acknowledged for ackDelay: the client may not be reading
      // (a phone asleep on a link that looks open); modules (push) are told once per request
      const sm = stream.session?.sm;
      if (sm?.ackRequested === true && !sm.ackDelayReported && now - sm.ackRequestedAt > ackDelay * 1000 && sm.unackedCount > 0) {
        sm.ackDelayReported = true;
        this.server.sessionAckDelayed(stream.session!, sm.unacked().map((entry) => entry.stanza));
      }
    }
    this.authThrottle.sweep();
  }

  /** XEP-0198 §5 across nodes: hands a session of this node to the node its client resumed on. */
  handOut(request: HandOffRequest): HandOffAnswer {
    const session = this.resumable.get(request.previd);
    if (session === undefined) {
      const moved = this.moved.get(request.previd);
      return moved !== undefined && moved.until > Date.now() ? { movedTo: moved.node } : { failed: 'item-not-found' };
    }
    // someone else's id, or a session past saving: the client binds afresh (§5)
    if (session.ended || session.jid.bare !== request.bare || session.sm === null) return { failed: 'item-not-found' };
    const handed = session.handOut(request.h);
    if ('failed' in handed) return handed;
    if (this.moved.size >= MAX_MOVED) this.moved.delete(this.moved.keys().next().value!);
    // the client may lose that connection too before its new node learns where it is
    this.moved.set(request.previd, { node: request.by, until: Date.now() + Math.max(this.settings.resumeTimeout, this.settings.resumeTimeoutPush) * 1000 + 60_000 });
    this.server.log.info({ jid: handed.jid, to: request.by, unacked: handed.unacked.length }, 'session handed over to the node its client resumed on');
    return { session: handed };
  }

  /** A dead node's sessions that were waiting to be resumed: as recoverLostSessions, for its rows. */
  recoverNode(node: string): Promise<void> {
    return this.recoverLostSessions(node);
  }

  /**
   * Sessions that were waiting to be resumed when the process died (kill -9): what they had
   * queued is in the archive; modules hand it on (to offline storage) before clients connect.
   * In a cluster, those of this node, or of a dead node the cluster cleans up after.
   */
  private async recoverLostSessions(node?: string): Promise<void> {
    const records = this.hibernations!;
    for (const row of await records.left(node)) {
      const jid = parseJid(row.jid);
      const host = this.server.hosts.get(row.host);
      if (jid !== null && host !== undefined) {
        this.server.log.warn({ jid: row.jid, since: new Date(row.since).toISOString() }, 'a session waiting for resumption was lost with the last process; handing on what it had queued');
        await host.events.fire('c2s/session-lost', { jid, since: row.since } satisfies SessionLostEvent);
      }
      if (jid !== null) await records.over(jid, node);
    }
  }

  /** An ended session is storing what it had queued (offline storage). */
  handingOn(storing: Promise<unknown> | undefined): void {
    if (storing === undefined) return;
    this.handedOn.add(storing);
    const done = () => this.handedOn.delete(storing);
    storing.then(done, done);
  }

  /**
   * Stops accepting, then ends every stream with `system-shutdown` (RFC 6120 §4.9.3.18) and
   * every session waiting to be resumed, and waits until what they had queued is stored
   * (offline storage), so a restart loses none of it.
   */
  async close(): Promise<void> {
    this.closing = true;
    if (this.server.resumable === this) this.server.resumable = undefined;
    if (this.sweeper) clearInterval(this.sweeper);
    const closing = this.servers.map(({ server }) => new Promise<void>((resolve) => server.close(() => resolve())));
    for (const stream of [...this.streams]) stream.close('system-shutdown', 'The server is shutting down');
    this.streams.clear();
    for (const session of [...this.resumable.values()]) this.handingOn(session.end('server shutdown'));
    this.resumable.clear();
    await Promise.allSettled([...this.handedOn]);
    await Promise.all(closing);
    this.shedding?.stop();
    stopClock();
  }
}
