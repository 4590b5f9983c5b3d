// The HTTP(S) listeners shared by everything served over HTTP (WebSocket, host-meta, web chat,
// upload, health, metrics): request parsing and limits, security headers, the virtual host from
// the Host header, 404/405/413, HEAD, and handler errors logged rather than crashing the process.
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { VirtualHost } from '../core/host.js';
import type { TlsContexts } from '../tls/contexts.js';
import type { HttpPort } from '../core/http-port.js';
import type { AdminApiSettings, DashboardSettings, MetricsSettings, WebSocketSettings } from './settings.js';
import { listenOn } from '../core/listen.js';
import { HttpRouter, subpathOf, type HttpHandler, type HttpListenerInfo, type HttpRequest, type HttpRoute, type HttpRouteOptions } from './router.js';

export interface HttpListen {
  host: string;
  port: number;
  tls: 'none' | 'direct';
}

export interface HttpSettings {
  enabled: boolean;
  listen: HttpListen[];
  /** Public base URL, `{host}` standing for the virtual host; undefined: from each request. */
  publicUrl: string | undefined;
  /** Host for requests naming none of ours; undefined: the first host. */
  defaultHost: string | undefined;
  maxBodySize: number;
  /** seconds */
  requestTimeout: number;
  /** XMPP over WebSocket (src/c2s/websocket.ts). */
  websocket: WebSocketSettings;
  /** /metrics (src/http/endpoints.ts). */
  metrics: MetricsSettings;
  /** /admin/api (src/http/admin-api.ts); off when missing. */
  adminApi?: AdminApiSettings | undefined;
  /** The web admin dashboard (src/http/dashboard); off when missing. */
  dashboard?: DashboardSettings | undefined;
}

/** Headers sent with every response; a handler may override them (res.setHeader). */
const SECURITY_HEADERS: ReadonlyArray<[string, string]> = [
  ['X-Content-Type-Options', 'nosniff'],
  ['Referrer-Policy', 'no-referrer'],
  ['X-Frame-Options', 'SAMEORIGIN'],
  ['Cross-Origin-Resource-Policy', 'same-site'],
];

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

interface Listening {
  server: http.Server;
  tcp: net.Server | undefined;
  info: HttpListenerInfo;
}

export class HttpService implements HttpPort {
  readonly router: HttpRouter;
  private readonly listening: Listening[] = [];
  private readonly sockets = new Set<Duplex>();

  constructor(
    readonly settings: HttpSettings,
    private readonly hosts: ReadonlyMap<string, VirtualHost>,
    private readonly tlsContexts: () => TlsContexts,
    private readonly log: Logger,
  ) {
    this.router = new HttpRouter(settings.maxBodySize);
  }

  /** Serves `prefix` on one virtual host, or on every one (core routes). Returns a function removing it. */
  route(options: HttpRouteOptions | string, handler: HttpHandler, domain?: string): () => void {
    return this.router.add(options, handler, domain);
  }

  async listen(): Promise<void> {
    if (!this.settings.enabled) return;
    for (const listen of this.settings.listen) await this.listenOn(listen);
    this.log.info({ listeners: this.addresses() }, 'HTTP listening');
  }

  private async listenOn(listen: HttpListen): Promise<void> {
    const info: HttpListenerInfo = { host: listen.host, port: listen.port, tls: listen.tls, loopback: isLoopback(listen.host) };
    const server = http.createServer({ requestTimeout: this.settings.requestTimeout * 1000, headersTimeout: 30_000, keepAliveTimeout: 5_000 });
    server.on('request', (req, res) => this.handle(req, res, info));
    server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => this.handleUpgrade(req, socket, head, info));
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
      this.log.debug({ err: err.message, code: err.code }, 'bad HTTP request');
      if (socket.writable && !(err.code === 'ECONNRESET')) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      else socket.destroy();
    });
    server.on('connection', (socket: Duplex) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    let tcp: net.Server | undefined;
    let bindTo: net.Server = server;
    if (listen.tls === 'direct') {
      // As for XEP-0368 c2s (src/c2s/listener.ts): we wrap sockets ourselves so that a client
      // sending no SNI (an IP address URL) still gets the first host's certificate.
      tcp = net.createServer((socket) => {
        const secure = new tls.TLSSocket(socket, { isServer: true, ...this.tlsContexts().serverOptions(), ALPNProtocols: ['http/1.1'] });
        secure.on('error', (err) => {
          this.log.debug({ err: err.message }, 'HTTPS connection error');
          secure.destroy();
        });
        server.emit('connection', secure);
      });
      bindTo = tcp;
    }
    await listenOn(bindTo, { ...listen, backlog: 1024 }, listen.tls === 'direct' ? 'HTTPS' : 'HTTP');
    bindTo.on('error', (err) => this.log.error({ err }, 'HTTP listener error'));
    info.port = (bindTo.address() as net.AddressInfo).port;
    this.listening.push({ server, tcp, info });
  }

  addresses(): HttpListenerInfo[] {
    return this.listening.map((l) => ({ ...l.info }));
  }

  /** Listening on every configured address (readiness). */
  get ready(): boolean {
    return !this.settings.enabled || this.listening.length === this.settings.listen.length;
  }

  /**
   * The public base URL for `host` (no trailing slash): `http.public_url`, else the first HTTPS
   * listener, else the first plain one, with the host's domain as the name.
   */
  publicUrl(host: string): string {
    if (this.settings.publicUrl !== undefined) return this.settings.publicUrl.replaceAll('{host}', host);
    const listener = this.listening.find((l) => l.info.tls === 'direct') ?? this.listening[0];
    if (listener === undefined) return `https://${host}`;
    const scheme = listener.info.tls === 'direct' ? 'https' : 'http';
    return `${scheme}://${host}:${listener.info.port}`;
  }

  /** The base URL a request was made to, unless http.public_url says otherwise. */
  private baseUrlOf(req: http.IncomingMessage, host: VirtualHost, info: HttpListenerInfo): string {
    if (this.settings.publicUrl !== undefined) return this.settings.publicUrl.replaceAll('{host}', host.domain);
    let scheme = info.tls === 'direct' ? 'https' : 'http';
    // a reverse proxy on this machine says what the client used
    const forwarded = req.headers['x-forwarded-proto'];
    if (info.loopback && (forwarded === 'https' || forwarded === 'http')) scheme = forwarded;
    const authority = req.headers.host && /^[A-Za-z0-9.\-:[\]]+$/.test(req.headers.host) ? req.headers.host : `${host.domain}:${info.port}`;
    return `${scheme}://${authority}`;
  }

  /** The virtual host a Host header names: exact, then its parent (upload.example.org → example.org), else the default. */
  hostFor(hostHeader: string | undefined): VirtualHost {
    if (hostHeader) {
      const name = stripPort(hostHeader).toLowerCase().replace(/\.$/, '');
      const exact = this.hosts.get(name);
      if (exact) return exact;
      const dot = name.indexOf('.');
      const parent = dot === -1 ? undefined : this.hosts.get(name.slice(dot + 1));
      if (parent) return parent;
    }
    const fallback = this.settings.defaultHost !== undefined ? this.hosts.get(this.settings.defaultHost) : undefined;
    return fallback ?? this.hosts.values().next().value!;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse, info: HttpListenerInfo): void {
    for (const [name, value] of SECURITY_HEADERS) res.setHeader(name, value);
    if (info.tls === 'direct') res.setHeader('Strict-Transport-Security', 'max-age=31536000');
    const url = req.url ?? '/';
    const queryAt = url.indexOf('?');
    const path = queryAt === -1 ? url : url.slice(0, queryAt);
    if (!path.startsWith('/')) return sendError(res, 400, 'Bad request target');
    const host = this.hostFor(req.headers.host);
    const route = this.router.match(path, host.domain, info);
    if (route === undefined) return sendError(res, 404, 'Not found');
    const method = req.method ?? 'GET';
    if (!route.methods.includes(method)) {
      res.setHeader('Allow', route.methods.join(', '));
      return sendError(res, 405, 'Method not allowed');
    }
    const declared = req.headers['content-length'];
    const hasBody = declared !== undefined ? declared !== '0' : req.headers['transfer-encoding'] !== undefined;
    if (hasBody) {
      // a body must announce its size, so that a limit is enforced before anything is read
      if (declared === undefined) return sendError(res, 411, 'Length required', true);
      if (Number(declared) > route.maxBodySize) return sendError(res, 413, `Request body larger than ${route.maxBodySize} bytes`, true);
    }
    const log = this.log.child({ http: `${method} ${path}`, vhost: host.domain });
    const request: HttpRequest = {
      req,
      res,
      host,
      path,
      subpath: subpathOf(route.prefix, path),
      query: new URLSearchParams(queryAt === -1 ? '' : url.slice(queryAt + 1)),
      listener: info,
      baseUrl: this.baseUrlOf(req, host, info),
      log,
      body: () => readBody(req, route.maxBodySize),
    };
    this.run(route, request);
  }

  private run(route: HttpRoute, request: HttpRequest): void {
    const failed = (err: unknown) => {
      const { res } = request;
      if (err instanceof HttpError) {
        request.log.debug({ status: err.status, reason: err.message }, 'HTTP request refused');
        if (!res.headersSent) return sendError(res, err.status, err.message, err.status === 413);
      } else {
        request.log.error({ err }, 'HTTP handler failed');
        if (!res.headersSent) return sendError(res, 500, 'Internal server error');
      }
      res.destroy();
    };
    try {
      const result = route.handler(request);
      if (result instanceof Promise) result.catch(failed);
    } catch (err) {
      failed(err);
    }
  }

  private handleUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer, info: HttpListenerInfo): void {
    // an upgraded connection belongs to its handler, which ends it (a WebSocket stream says goodbye)
    this.sockets.delete(socket);
    socket.on('error', (err) => this.log.debug({ err: err.message }, 'upgraded connection error'));
    const path = (req.url ?? '/').split('?', 1)[0]!;
    const host = this.hostFor(req.headers.host);
    const route = this.router.match(path, host.domain, info);
    if (route?.upgrade === undefined) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    try {
      route.upgrade({ req, socket, head, host, listener: info, log: this.log });
    } catch (err) {
      this.log.error({ err, path }, 'HTTP upgrade handler failed');
      socket.destroy();
    }
  }

  async close(): Promise<void> {
    const closing = this.listening.map(
      ({ server, tcp }) =>
        new Promise<void>((resolve) => {
          (tcp ?? server).close(() => resolve());
          server.closeIdleConnections();
        }),
    );
    // connections still busy (WebSocket streams end themselves first, see Server.shutdown)
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    await Promise.all(closing);
    this.listening.length = 0;
  }
}

/** A short plain-text error response. */
export function sendError(res: http.ServerResponse, status: number, message: string, closeConnection = false): void {
  const body = `${message}\n`;
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  // the unread body would otherwise be parsed as the next request
  if (closeConnection) res.setHeader('Connection', 'close');
  res.end(body);
}

async function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new HttpError(413, `Request body larger than ${limit} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}

function stripPort(hostHeader: string): string {
  if (hostHeader.startsWith('[')) {
    const end = hostHeader.indexOf(']');
    return end === -1 ? hostHeader : hostHeader.slice(1, end);
  }
  const colon = hostHeader.lastIndexOf(':');
  return colon === -1 ? hostHeader : hostHeader.slice(0, colon);
}

function isLoopback(address: string): boolean {
  return address === 'localhost' || address === '::1' || address.startsWith('127.');
}
