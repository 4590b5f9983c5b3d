// Real clients for integration tests: @xmpp/client for well-behaved ones, and a raw socket
// client for hand-made (bad) input.
import net from 'node:net';
import tls from 'node:tls';
import { client, xml, type Client } from '@xmpp/client';
import { WebSocket } from 'ws';
import type Element from 'ltx/lib/Element.js';
import { PASSWORD, type TestServer } from './server.js';
import { checkWire, type WellFormedChecker } from './well-formed.js';

export { xml };

export interface TestClient {
  xmpp: Client;
  jid: string;
  /** Every stanza received, in order. */
  received: Element[];
  /** The strict well-formedness check of everything the server sent this client. */
  wire: WellFormedChecker;
  /** Resolves with the next received stanza matching `predicate` (including ones already received but not yet consumed). */
  next(predicate: (stanza: Element) => boolean, timeoutMs?: number): Promise<Element>;
  send(stanza: Element): Promise<void>;
  request(stanza: Element): Promise<Element>;
  stop(): Promise<void>;
}

export interface ConnectOptions {
  password?: string;
  resource?: string;
  /** 'starttls' (default), 'direct' TLS, or XMPP over WebSocket (RFC 7395) on the plain ('websocket') or HTTPS listener ('websocket-tls') */
  transport?: 'starttls' | 'direct' | 'websocket' | 'websocket-tls';
  mechanism?: 'SCRAM-SHA-1' | 'PLAIN';
  /**
   * Whether the client asks for XEP-0198 resumption when it enables stream management, as
   * @xmpp/client always does (default true). Without it a dropped connection ends the session at
   * once (RFC 6121 §4.5.2); with it the session waits c2s.resume_timeout for the client.
   */
  resumption?: boolean;
  /**
   * Whether the client binds with Bind2 inside SASL2 (XEP-0386), as @xmpp/client does when the
   * server offers it. Bind2 makes the resource from the client's tag plus a suffix of the
   * server's, so by default it is used only when no `resource` is asked for: a test that names
   * a resource gets exactly that one, through RFC 6120 binding after SASL2.
   */
  bind2?: boolean;
}

/**
 * Each server's clients not stopped yet: stopped with their server, or their reconnect and
 * stream-management timers keep the test process alive.
 */
const liveClients = new WeakMap<TestServer, Set<Client>>();

export async function stopClientsOf(server: TestServer): Promise<void> {
  const clients = [...(liveClients.get(server) ?? [])];
  liveClients.delete(server);
  await Promise.all(clients.map((c) => c.stop().catch(() => undefined)));
}

function serviceUrl(server: TestServer, transport: NonNullable<ConnectOptions['transport']>): string {
  switch (transport) {
    case 'direct':
      return `xmpps://127.0.0.1:${server.directPort}`;
    case 'websocket':
      return `ws://127.0.0.1:${server.httpPort}/xmpp-websocket`;
    case 'websocket-tls':
      return `wss://127.0.0.1:${server.httpsPort}/xmpp-websocket`;
    default:
      return `xmpp://127.0.0.1:${server.port}`;
  }
}

// @xmpp/websocket uses the WHATWG WebSocket global, which Node 20 lacks: ws provides the same API
(globalThis as { WebSocket?: unknown }).WebSocket ??= WebSocket;

export async function connect(server: TestServer, username: string, options: ConnectOptions = {}): Promise<TestClient> {
  const transport = options.transport ?? 'starttls';
  const service = serviceUrl(server, transport);
  const xmpp = client({
    service,
    domain: server.domain,
    username,
    password: options.password ?? PASSWORD,
    resource: options.resource,
    // choose the SASL mechanism instead of @xmpp/client's default (the first one offered)
    ...(options.mechanism
      ? {
          credentials: (authenticate: (c: { username: string; password: string }, mechanism: string) => Promise<void>) =>
            authenticate({ username, password: options.password ?? PASSWORD }, options.mechanism!),
        }
      : {}),
  });
  if (!(options.bind2 ?? options.resource === undefined)) {
    // @xmpp/client puts the <bind/> of every inline feature it knows into <authenticate/>: an
    // inline handler for Bind2 that adds nothing leaves binding to the features after success
    (xmpp as unknown as { sasl2: { use(ns: string, req: () => undefined, res: () => undefined): void } }).sasl2.use('urn:xmpp:bind:0', () => undefined, () => undefined);
  }
  const wire = watchWire(xmpp, `${username}'s @xmpp/client over ${transport}`, transport.startsWith('websocket') ? 'message' : 'stream');
  const received: Element[] = [];
  const waiters: Array<{ predicate: (s: Element) => boolean; resolve: (s: Element) => void }> = [];
  const consumed = new Set<Element>();
  xmpp.on('stanza', (stanza: Element) => {
    received.push(stanza);
    const index = waiters.findIndex((w) => w.predicate(stanza));
    if (index !== -1) {
      consumed.add(stanza);
      waiters.splice(index, 1)[0]!.resolve(stanza);
    }
  });
  xmpp.on('error', () => undefined);
  if (options.resumption === false) {
    // @xmpp/client has no option for it: take 'resume' off its <enable/> on the way out
    const send = xmpp.send.bind(xmpp);
    xmpp.send = (element: Element) => {
      if (element.is('enable', 'urn:xmpp:sm:3')) delete element.attrs.resume; // acks only
      return send(element);
    };
  }
  let live = liveClients.get(server);
  if (live === undefined) liveClients.set(server, (live = new Set()));
  live.add(xmpp);
  try {
    await xmpp.start();
  } catch (err) {
    xmpp.reconnect.stop(); // or @xmpp/client keeps reconnecting and retrying
    await xmpp.stop().catch(() => undefined);
    throw err;
  }
  return {
    xmpp,
    jid: xmpp.jid!.toString(),
    received,
    wire,
    next(predicate, timeoutMs = 5000) {
      const already = received.find((s) => !consumed.has(s) && predicate(s));
      if (already) {
        consumed.add(already);
        return Promise.resolve(already);
      }
      return new Promise((resolve, reject) => {
        const waiter = { predicate, resolve: (s: Element) => { clearTimeout(timer); resolve(s); } };
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(waiter), 1);
          reject(new Error(`timed out waiting for a stanza at ${xmpp.jid?.toString()}`));
        }, timeoutMs);
        waiters.push(waiter);
      });
    },
    send: (stanza) => xmpp.send(stanza),
    request: (stanza) => xmpp.iqCaller.request(stanza, 5000),
    stop: async () => {
      live.delete(xmpp);
      // a client stopped by the test never comes back: without this, a stream the server ends
      // while it stops (e.g. its account was just deleted) schedules a reconnect, which can log
      // in again as the next owner of the name and keeps the test process alive
      xmpp.reconnect.stop();
      await xmpp.stop().catch(() => undefined);
    },
  };
}

/**
 * Checks every byte the server sends to an @xmpp/client before its parser sees it (the
 * connection's `_onData`, bound once at its first socket, so this must run before start()).
 * A reconnection starts a new stream.
 */
export function watchWire(xmpp: Client, label: string, framing: 'stream' | 'message'): WellFormedChecker {
  const checker = checkWire(label, framing);
  const connection = xmpp as unknown as { _onData(data: Buffer | string): void };
  const onData = connection._onData;
  connection._onData = function (this: { parser?: unknown }, data: Buffer | string) {
    if (framing === 'message') checker.message(data);
    else checker.write(data);
    // @xmpp/connection 0.14 throws (an uncaught exception that ends the test file) on bytes that
    // arrive after it dropped its parser while stopping, e.g. the server's late </stream:stream>
    if (this.parser === null) return;
    onData.call(this, data);
  };
  xmpp.on('disconnect', () => checker.reset());
  return checker;
}

/** A raw client: plain socket, STARTTLS done by hand, for sending arbitrary bytes. */
export class RawClient {
  socket!: net.Socket;
  data = '';
  closed = false;
  private listeners: Array<() => void> = [];
  /** Everything the server sends is checked for well-formedness (STARTTLS continues the same stream). */
  private readonly checker = checkWire('a raw client', 'stream');

  /** `localAddress`: another loopback address (127.0.0.2...) to be another client machine. */
  static async open(server: TestServer, options: { tls?: boolean; localAddress?: string } = { tls: true }): Promise<RawClient> {
    const raw = new RawClient();
    const socket = net.connect({ port: server.port, host: '127.0.0.1', localAddress: options.localAddress });
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    raw.attach(socket);
    if (options.tls !== false) {
      raw.write(`<?xml version='1.0'?><stream:stream to='${server.domain}' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`);
      await raw.waitFor(/<\/stream:features>/);
      raw.write(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`);
      await raw.waitFor(/<proceed/);
      socket.removeAllListeners('data');
      const secure = tls.connect({ socket, rejectUnauthorized: false, servername: server.domain });
      await new Promise<void>((resolve, reject) => secure.once('secureConnect', resolve).once('error', reject));
      raw.data = '';
      raw.attach(secure);
    }
    return raw;
  }

  /** A raw connection to the direct TLS port (XEP-0368): TLS from the first byte, no STARTTLS. */
  static async openDirect(server: TestServer): Promise<RawClient> {
    const raw = new RawClient();
    const socket = tls.connect({ host: '127.0.0.1', port: server.directPort, rejectUnauthorized: false, servername: server.domain, ALPNProtocols: ['xmpp-client'] });
    await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    raw.attach(socket);
    return raw;
  }

  /** A plain TCP connection to any loopback port (e.g. a server-to-server listener), nothing sent yet. */
  static async connectTo(port: number): Promise<RawClient> {
    const raw = new RawClient();
    const socket = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    raw.attach(socket);
    return raw;
  }

  /** The TLS handshake on this connection, after the peer's <proceed/>; received data is reset. */
  async upgradeToTls(servername: string, options: tls.ConnectionOptions = {}): Promise<void> {
    const socket = this.socket;
    socket.removeAllListeners('data');
    socket.removeAllListeners('close');
    const secure = tls.connect({ socket, rejectUnauthorized: false, servername, ...options });
    await new Promise<void>((resolve, reject) => secure.once('secureConnect', resolve).once('error', reject));
    this.data = '';
    this.attach(secure);
  }

  private attach(socket: net.Socket): void {
    this.socket = socket;
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.checker.write(chunk);
      this.data += chunk;
      for (const l of this.listeners) l();
    });
    socket.on('close', () => {
      this.closed = true;
      for (const l of this.listeners) l();
    });
    socket.on('error', () => undefined);
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** Waits until the received data matches; resolves with the match. */
  waitFor(pattern: RegExp, timeoutMs = 5000): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const match = this.data.match(pattern);
        if (match) {
          done();
          resolve(match);
        } else if (this.closed) {
          done();
          reject(new Error(`connection closed before ${pattern}; got: ${this.data.slice(-500)}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out waiting for ${pattern}; got: ${this.data.slice(-500)}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.listeners = this.listeners.filter((l) => l !== check);
      };
      this.listeners.push(check);
      check();
    });
  }

  /** Resolves when the server has closed the connection. */
  waitClosed(timeoutMs = 5000): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.closed) return resolve();
      const timer = setTimeout(() => reject(new Error('connection still open')), timeoutMs);
      this.socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  close(): void {
    this.socket.destroy();
  }
}
