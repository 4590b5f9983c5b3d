// Federation: the s2s listeners, one outgoing stream per (local, remote) domain pair, and the
// glue to the router. Outgoing stanzas arrive through the server event `route/remote`; incoming
// ones, once their stream has authenticated the sender's domain, enter through
// server.processFromRemote. A remote domain that cannot be reached gets a backoff: while it
// lasts, stanzas for it bounce at once instead of waiting for another connection attempt.
import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import type Element from 'ltx/lib/Element.js';
import type { Logger } from 'pino';
import type { Jid } from '../core/jid.js';
import type { Kernel } from '../core/kernel.js';
import type { RemoteRoute } from '../core/ports.js';
import { listenOn } from '../core/listen.js';
import { StanzaError, type StanzaErrorCondition } from '../core/stanza.js';
import type { TlsContexts } from '../tls/contexts.js';
import { settleServerAuthorization, type AuthMethod } from './connection.js';
import { loadDialbackSecret } from './dialback.js';
import { IncomingStream } from './incoming.js';
import { OutgoingStream, type VerifyOutcome, type VerifyRequest } from './outgoing.js';
import { createResolver, resolveTargets, type S2SResolver } from './resolve.js';
import type { S2SRoute, S2SSettings } from './settings.js';

const SWEEP_INTERVAL_MS = 1000;
const FIRST_BACKOFF_MS = 1000;
const MAX_BACKOFF_MS = 5 * 60 * 1000;

/** One stream as the admin (and tests) see it. */
export interface S2SStreamInfo {
  direction: 'incoming' | 'outgoing';
  local: string;
  remote: string;
  state: 'connecting' | 'ready';
  method: AuthMethod | undefined;
}

/** A connection attempt under way: what waits for it. */
interface Attempt {
  queue: Element[];
  verifies: VerifyRequest[];
}

interface Backoff {
  until: number;
  delayMs: number;
  failure: { condition: StanzaErrorCondition; text: string };
}

export class S2SService implements RemoteRoute {
  readonly secret: string;
  readonly tls: TlsContexts;
  readonly log: Logger;
  private readonly resolver: S2SResolver;
  private readonly listeners: Array<{ server: net.Server; listen: S2SRoute }> = [];
  private readonly incoming = new Set<IncomingStream>();
  /** By "local remote". */
  private readonly outgoing = new Map<string, OutgoingStream>();
  /** Connection attempts under way (resolving or connecting), by "local remote". */
  private readonly connecting = new Map<string, Attempt>();
  private readonly backoff = new Map<string, Backoff>();
  private sweeper: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    readonly server: Kernel,
    readonly settings: S2SSettings,
    tlsContexts: TlsContexts,
  ) {
    this.log = server.log.child({ component: 's2s' });
    this.secret = loadDialbackSecret(settings.dialbackSecret, server.settings.dataDir);
    const ca = settings.caFile === undefined ? undefined : readCaFile(settings.caFile);
    this.tls = tlsContexts.withCa(ca);
    this.resolver = createResolver(settings.dnsServers);
  }

  get defaultDomain(): string {
    return this.server.hosts.keys().next().value ?? 'localhost';
  }

  /** A domain of ours: a virtual host or a component (conference.<host>). */
  serves(domain: string): boolean {
    return this.server.hosts.has(domain) || this.server.router.components.has(domain);
  }

  async start(): Promise<void> {
    for (const listen of this.settings.listen) {
      const accept = (socket: net.Socket) => {
        socket.setNoDelay(true);
        if (this.stopped) return void socket.destroy();
        if (listen.tls === 'direct') {
          // XEP-0368: TLS from the first byte; the stream starts once the handshake is done
          const secure = new tls.TLSSocket(socket, { isServer: true, requestCert: true, rejectUnauthorized: false, ALPNProtocols: ['xmpp-server'], ...this.tls.serverOptions() });
          secure.once('secure', () => settleServerAuthorization(secure));
          this.incoming.add(new IncomingStream(this, secure, true));
        } else {
          this.incoming.add(new IncomingStream(this, socket, false));
        }
      };
      const netServer = net.createServer(accept);
      await listenOn(netServer, listen, listen.tls === 'direct' ? 'servers (direct TLS)' : 'servers');
      netServer.on('error', (err) => this.log.error({ err }, 's2s listener error'));
      this.listeners.push({ server: netServer, listen });
    }
    this.sweeper = setInterval(() => this.sweep(), SWEEP_INTERVAL_MS);
    this.sweeper.unref();
  }

  addresses(): S2SRoute[] {
    return this.listeners.map(({ server, listen }) => ({ ...listen, port: (server.address() as net.AddressInfo).port }));
  }

  streams(): S2SStreamInfo[] {
    const list: S2SStreamInfo[] = [];
    for (const stream of this.incoming) {
      for (const [pair, method] of stream.authenticated) {
        const [remote, local] = pair.split(' ') as [string, string];
        list.push({ direction: 'incoming', local, remote, state: 'ready', method });
      }
    }
    for (const stream of this.outgoing.values()) {
      list.push({ direction: 'outgoing', local: stream.local, remote: stream.remote, state: stream.state === 'ready' ? 'ready' : 'connecting', method: stream.method });
    }
    for (const pair of this.connecting.keys()) {
      const [local, remote] = pair.split(' ') as [string, string];
      list.push({ direction: 'outgoing', local, remote, state: 'connecting', method: undefined });
    }
    return list;
  }

  /** RemoteRoute (src/core/ports.ts): a stanza for another server, from one of our domains. */
  route(stanza: Element, from: Jid, to: Jid): true {
    const local = from.domain;
    const remote = to.domain;
    if (!this.serves(local)) {
      this.log.warn({ from: from.toString(), to: to.toString() }, 'not sending a stanza to another server on behalf of a domain we do not serve');
      return true;
    }
    if (stanza.attrs.from === undefined) stanza.attrs.from = from.toString();
    const key = `${local} ${remote}`;
    const stream = this.outgoing.get(key);
    if (stream !== undefined && stream.state === 'ready') return stream.send(stanza), true;
    const blocked = this.backoff.get(remote);
    if (blocked !== undefined && blocked.until > Date.now()) {
      this.server.router.bounce(stanza, new StanzaError(blocked.failure.condition, blocked.failure.text));
      return true;
    }
    const queue = stream?.queue ?? this.attempt(local, remote).queue;
    // a limit on what waits for one domain, so an unreachable peer cannot eat our memory
    if (queue.length >= this.settings.maxQueuedStanzas) {
      this.server.router.bounce(stanza, new StanzaError('resource-constraint', `Too many stanzas waiting for ${remote}`));
      return true;
    }
    queue.push(stanza);
    return true;
  }

  /** The connection attempt for a pair, started if there is none. */
  private attempt(local: string, remote: string): Attempt {
    const key = `${local} ${remote}`;
    const existing = this.connecting.get(key);
    if (existing !== undefined) return existing;
    const attempt: Attempt = { queue: [], verifies: [] };
    this.connecting.set(key, attempt);
    const deadline = Date.now() + this.settings.connectTimeout * 1000;
    void this.connect(local, remote, deadline).then((result) => {
      this.connecting.delete(key);
      if ('condition' in result) {
        this.failed(remote, result, attempt.queue);
        for (const v of attempt.verifies) v.resolve('error');
        return;
      }
      const stream = new OutgoingStream(this, result.socket, local, remote, result.route);
      stream.queue.push(...attempt.queue);
      this.outgoing.set(key, stream);
      for (const v of attempt.verifies) void stream.verify(v.id, v.key).then(v.resolve);
      stream.open();
    });
    return attempt;
  }

  /** Resolves and connects, trying each target in turn until `deadline`. */
  private async connect(local: string, remote: string, deadline: number): Promise<{ socket: net.Socket; route: S2SRoute } | { condition: StanzaErrorCondition; text: string }> {
    let targets: S2SRoute[];
    try {
      targets = await resolveTargets(remote, this.settings, this.resolver);
    } catch {
      return { condition: 'remote-server-not-found', text: `${remote} does not offer XMPP federation` };
    }
    let lastError = 'no address';
    for (const target of targets) {
      const left = deadline - Date.now();
      if (left <= 0) return { condition: 'remote-server-timeout', text: `Connecting to ${remote} took too long` };
      try {
        const address = (await this.resolver.address(target.host)) ?? target.host;
        const socket = await this.connectTo(local, remote, { ...target, host: address }, deadline - Date.now());
        return { socket, route: target };
      } catch (err) {
        lastError = (err as Error).message;
        if (lastError === 'timeout') {
          if (Date.now() >= deadline) return { condition: 'remote-server-timeout', text: `Connecting to ${remote} took too long` };
        }
        this.log.debug({ remote, target, err: lastError }, 'could not connect to a server');
      }
    }
    return { condition: 'remote-server-not-found', text: `Could not connect to ${remote}: ${lastError}` };
  }

  private connectTo(local: string, remote: string, target: S2SRoute, timeoutMs: number): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const socket =
        target.tls === 'direct'
          ? tls.connect({ host: target.host, port: target.port, ...this.clientTlsOptions(local), servername: net.isIP(remote) ? undefined : remote, ALPNProtocols: ['xmpp-server'], rejectUnauthorized: false })
          : net.connect({ host: target.host, port: target.port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error('timeout'));
      }, timeoutMs);
      socket.once(target.tls === 'direct' ? 'secureConnect' : 'connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        socket.setNoDelay(true);
        resolve(socket);
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  /** Options for our TLS client side: our host's certificate (for the peer's EXTERNAL) and our CAs. */
  clientTlsOptions(local: string): tls.ConnectionOptions {
    return { secureContext: this.tls.contextFor(local), minVersion: 'TLSv1.2' };
  }

  /** Backoff grows with each consecutive failure; the first is short so a restarted peer is found again soon. */
  private failed(remote: string, failure: { condition: StanzaErrorCondition; text: string }, queue: Element[]): void {
    const previous = this.backoff.get(remote);
    const delayMs = previous === undefined ? FIRST_BACKOFF_MS : Math.min(previous.delayMs * 2, MAX_BACKOFF_MS);
    this.backoff.set(remote, { until: Date.now() + delayMs, delayMs, failure });
    this.log.info({ remote, condition: failure.condition, text: failure.text, bounced: queue.length, retryInMs: delayMs }, 'cannot reach a remote server');
    for (const stanza of queue) this.server.router.bounce(stanza, new StanzaError(failure.condition, failure.text));
  }

  outgoingReady(stream: OutgoingStream): void {
    this.backoff.delete(stream.remote);
  }

  outgoingClosed(stream: OutgoingStream, wasReady: boolean, failure: { condition: StanzaErrorCondition; text: string }): void {
    const key = `${stream.local} ${stream.remote}`;
    if (this.outgoing.get(key) === stream) this.outgoing.delete(key);
    if (!wasReady) this.failed(stream.remote, failure, stream.queue.splice(0));
  }

  /** XEP-0220 §2.1.3: ask `remote`'s authoritative server, over our own stream to it, about `key`. */
  verifyDialback(local: string, remote: string, streamId: string, key: string): Promise<VerifyOutcome> {
    const pair = `${local} ${remote}`;
    const stream = this.outgoing.get(pair);
    let verification: Promise<VerifyOutcome>;
    if (stream !== undefined && !stream.closed) verification = stream.verify(streamId, key);
    else {
      const attempt = this.attempt(local, remote);
      verification = new Promise((resolve) => attempt.verifies.push({ id: streamId, key, resolve }));
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<VerifyOutcome>((resolve) => (timer = setTimeout(() => resolve('error'), this.settings.connectTimeout * 1000)));
    return Promise.race([verification, timeout]).finally(() => clearTimeout(timer));
  }

  incomingAuthenticated(_stream: IncomingStream, remote: string): void {
    // the peer reached us, so it is up: stop bouncing what we send it
    const blocked = this.backoff.get(remote);
    if (blocked !== undefined) blocked.until = 0;
  }

  forgetIncoming(stream: IncomingStream): void {
    this.incoming.delete(stream);
  }

  /** Closes idle streams, and incoming ones that never authenticated, and outgoing ones stuck negotiating. */
  private sweep(): void {
    const now = Date.now();
    const idleMs = this.settings.idleTimeout * 1000;
    const connectMs = this.settings.connectTimeout * 1000;
    for (const stream of this.outgoing.values()) {
      if (stream.state !== 'ready') {
        if (now - stream.openedAt > connectMs) stream.fail('remote-server-timeout', `${stream.remote} did not complete the stream negotiation in time`);
      } else if (now - stream.lastActivity > idleMs) {
        this.log.debug({ local: stream.local, remote: stream.remote }, 'closing an idle outgoing server stream');
        stream.close();
      }
    }
    // a domain that has been quiet for a while starts again from the shortest backoff
    for (const [remote, backoff] of this.backoff) if (now - backoff.until > MAX_BACKOFF_MS) this.backoff.delete(remote);
    for (const stream of this.incoming) {
      if (stream.authenticated.size === 0) {
        if (!stream.busyVerifying && now - stream.openedAt > connectMs * 3) stream.close('connection-timeout', 'Authentication took too long');
      } else if (now - stream.lastActivity > idleMs) {
        stream.close();
      }
    }
  }

  async close(): Promise<void> {
    this.stopped = true;
    if (this.sweeper) clearInterval(this.sweeper);
    const closing = this.listeners.map(({ server }) => new Promise<void>((resolve) => server.close(() => resolve())));
    for (const stream of [...this.incoming]) stream.close('system-shutdown', 'The server is shutting down');
    for (const stream of [...this.outgoing.values()]) stream.close('system-shutdown', 'The server is shutting down');
    this.incoming.clear();
    this.outgoing.clear();
    await Promise.all(closing);
  }
}

function readCaFile(file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new Error(`s2s.ca_file: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}
