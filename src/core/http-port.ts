// The HTTP port of the kernel: what modules (m.http) and the kernel may ask of the HTTP
// listeners, which src/http/service.ts implements. See ./ports.ts for the other ports.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { VirtualHost } from './host.js';

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

/** The HTTP listeners as the kernel and modules see them (implemented by src/http/service.ts). */
export interface HttpPort {
  readonly settings: {
    /** Whether HTTP is served at all (http.enabled). */
    readonly enabled: boolean;
    /** The configured public base URL; undefined: taken from each request. */
    readonly publicUrl: string | undefined;
  };
  /** Serves a path prefix, on one virtual host or (no `domain`) on all. Returns its removal. */
  route(options: HttpRouteOptions | string, handler: HttpHandler, domain?: string): () => void;
  /** The public base URL of a host's HTTP service, no trailing slash. */
  publicUrl(host: string): string;
  /** The listeners, with the real port when 0 was configured. */
  addresses(): HttpListenerInfo[];
}

