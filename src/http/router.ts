// The HTTP handler API: routes by path prefix, per virtual host or for every host. One router
// serves every HTTP listener (src/http/listener.ts); modules add routes with `m.http(...)`, the
// core (WebSocket, host-meta, health, metrics) with `server.http.route(...)`.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { VirtualHost } from '../core/host.js';

/** One HTTP listener, as a handler sees it. */
export interface HttpListenerInfo {
  host: string;
  port: number;
  tls: 'none' | 'direct';
  /** Bound to a loopback address (127.0.0.0/8, ::1): only this machine, e.g. a reverse proxy, connects. */
  loopback: boolean;
}

/** What a handler gets for one request. */
export interface HttpRequest {
  req: IncomingMessage;
  res: ServerResponse;
  /** The virtual host named by the Host header (or the default host). */
  host: VirtualHost;
  /** The request path, percent-decoding not applied (e.g. `/upload/abc/photo.jpg`). */
  path: string;
  /** The part of `path` after the route's prefix, without its leading `/` (`abc/photo.jpg`). */
  subpath: string;
  /** The parsed query string. */
  query: URLSearchParams;
  listener: HttpListenerInfo;
  /** The public base URL of this request (`https://example.org:5443`), see HttpService.publicUrl. */
  baseUrl: string;
  log: Logger;
  /** Reads the whole request body, up to the route's `maxBodySize` (413 past it). */
  body(): Promise<Buffer>;
}

export type HttpHandler = (request: HttpRequest) => unknown;

/** An HTTP Upgrade request (WebSocket) for a route that accepts them. */
export interface HttpUpgrade {
  req: IncomingMessage;
  socket: Duplex;
  head: Buffer;
  host: VirtualHost;
  listener: HttpListenerInfo;
  log: Logger;
}

export interface HttpRouteOptions {
  /** `/upload` serves `/upload` and everything under `/upload/`; the longest matching prefix wins. */
  prefix: string;
  /** Allowed methods; default GET (which allows HEAD). Others get 405 with an Allow header. */
  methods?: string[];
  /** Largest request body accepted (Content-Length checked before the handler runs, 413 past it). Default: http.max_body_size. */
  maxBodySize?: number;
  /** Only on the listeners this accepts (e.g. metrics on plain loopback listeners); others get 404. */
  listeners?: (listener: HttpListenerInfo) => boolean;
  /** Accept `Upgrade:` requests on this prefix (WebSocket). */
  upgrade?: (upgrade: HttpUpgrade) => void;
}

export interface HttpRoute extends Required<Omit<HttpRouteOptions, 'upgrade' | 'listeners'>> {
  handler: HttpHandler;
  upgrade: ((upgrade: HttpUpgrade) => void) | undefined;
  listeners: ((listener: HttpListenerInfo) => boolean) | undefined;
  /** Domain of the virtual host the route belongs to; undefined: every host. */
  domain: string | undefined;
}

export class HttpRouter {
  private readonly routes: HttpRoute[] = [];

  constructor(private readonly defaultMaxBodySize: number) {}

  /** Adds a route; returns a function that removes it. */
  add(options: HttpRouteOptions | string, handler: HttpHandler, domain?: string): () => void {
    const { prefix, methods, maxBodySize, listeners, upgrade } = typeof options === 'string' ? { prefix: options } : options;
    const normalised = normalisePrefix(prefix);
    if (this.routes.some((r) => r.prefix === normalised && (r.domain === domain || r.domain === undefined || domain === undefined))) {
      throw new Error(`two handlers for HTTP path ${normalised}${domain ? ` on ${domain}` : ''}`);
    }
    const upper = (methods ?? ['GET']).map((m) => m.toUpperCase());
    if (upper.includes('GET') && !upper.includes('HEAD')) upper.push('HEAD');
    const route: HttpRoute = { prefix: normalised, methods: upper, maxBodySize: maxBodySize ?? this.defaultMaxBodySize, listeners, upgrade, handler, domain };
    this.routes.push(route);
    return () => {
      const index = this.routes.indexOf(route);
      if (index !== -1) this.routes.splice(index, 1);
    };
  }

  /** The route for `path` on `domain` and `listener`: the longest prefix that matches. */
  match(path: string, domain: string, listener: HttpListenerInfo): HttpRoute | undefined {
    let best: HttpRoute | undefined;
    for (const route of this.routes) {
      if (route.domain !== undefined && route.domain !== domain) continue;
      if (!prefixMatches(route.prefix, path)) continue;
      if (route.listeners && !route.listeners(listener)) continue;
      if (best === undefined || route.prefix.length > best.prefix.length) best = route;
    }
    return best;
  }
}

function normalisePrefix(prefix: string): string {
  if (!prefix.startsWith('/')) throw new Error(`an HTTP route prefix starts with /, got "${prefix}"`);
  return prefix.length > 1 ? prefix.replace(/\/+$/, '') : prefix;
}

function prefixMatches(prefix: string, path: string): boolean {
  if (prefix === '/') return true;
  return path === prefix || (path.startsWith(prefix) && path.charCodeAt(prefix.length) === 47 /* / */);
}

/** The part of `path` after `prefix`, without the slash between them. */
export function subpathOf(prefix: string, path: string): string {
  if (prefix === '/') return path.slice(1);
  return path.slice(prefix.length + 1);
}
