// The HTTP handler API: routes by path prefix, per virtual host or for every host. One router
// serves every HTTP listener (src/http/listener.ts); modules add routes with `m.http(...)`, the
// core (WebSocket, host-meta, health, metrics) with `server.http.route(...)`.

// The handler types are a port of the kernel (modules add routes with m.http): src/core/http-port.ts.
import type { HttpHandler, HttpListenerInfo, HttpRouteOptions, HttpUpgrade } from '../core/http-port.js';
export type { HttpHandler, HttpListenerInfo, HttpRequest, HttpRouteOptions, HttpUpgrade } from '../core/http-port.js';

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
