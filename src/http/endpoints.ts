// The server's own HTTP endpoints: XEP-0156 connection discovery (host-meta), /health for
// liveness and readiness probes, and /metrics for Prometheus.
import type { Kernel } from '../core/kernel.js';
import type { HttpService } from './service.js';
import { WEBSOCKET_PATH, type MetricsSettings } from './settings.js';
import type { HttpListenerInfo, HttpRequest } from './router.js';
import { fromLocalAdmin } from './forwarded.js';

export type { MetricsSettings } from './settings.js';

const NS_XRD = 'http://docs.oasis-open.org/ns/xri/xrd-1.0';
const REL_WEBSOCKET = 'urn:xmpp:alt-connections:websocket';

/** ws(s)://…/xmpp-websocket for the base URL a client reached us at. */
export function websocketUrl(baseUrl: string): string {
  return baseUrl.replace(/^http/, 'ws') + WEBSOCKET_PATH;
}

/** What the endpoints read: the kernel's health and metrics, the listeners' readiness. */
export type EndpointsSource = Pick<Kernel, 'startedAt' | 'storage' | 'metrics' | 'db' | 'log'> & {
  http: HttpService;
  /** Every configured listener is accepting connections. */
  listenersUp(): boolean;
};

export function serveEndpoints(server: EndpointsSource, metrics: MetricsSettings, websocketEnabled: boolean): void {
  const http = server.http;

  // XEP-0156 §3: where a (web) client finds the WebSocket endpoint. Web clients fetch it from
  // another origin, so CORS allows any (§3.2: the data is public).
  const links = (request: HttpRequest) => (websocketEnabled ? [{ rel: REL_WEBSOCKET, href: websocketUrl(request.baseUrl) }] : []);
  http.route('/.well-known/host-meta', (request) => {
    const body = `<?xml version='1.0' encoding='utf-8'?>\n<XRD xmlns='${NS_XRD}'>\n${links(request)
      .map((l) => `  <Link rel='${l.rel}' href='${escapeAttribute(l.href)}'/>\n`)
      .join('')}</XRD>\n`;
    send(request, 200, 'application/xrd+xml; charset=utf-8', body, { 'Access-Control-Allow-Origin': '*' });
  });
  http.route('/.well-known/host-meta.json', (request) => {
    send(request, 200, 'application/json', `${JSON.stringify({ links: links(request) })}\n`, { 'Access-Control-Allow-Origin': '*' });
  });

  // Liveness: the process answers. Readiness: it can do its work (database, listeners).
  const live = (request: HttpRequest) => send(request, 200, 'application/json', `${JSON.stringify({ status: 'ok', uptime: Math.round((Date.now() - server.startedAt) / 1000) })}\n`);
  http.route('/health', live);
  http.route('/health/live', live);
  http.route('/health/ready', async (request) => {
    // the database must answer and take a write: a read-only or failed database is not ready
    const checks = { database: (await databaseReachable(server)) && (await server.storage.probe()), listeners: server.listenersUp() };
    const ready = checks.database && checks.listeners;
    const problem = checks.database ? undefined : (server.storage.problem ?? undefined);
    send(request, ready ? 200 : 503, 'application/json', `${JSON.stringify({ status: ready ? 'ready' : 'not ready', checks, ...(problem ? { problem } : {}) })}\n`);
  });

  if (metrics.enabled) {
    const onListener = metrics.listeners === 'all' ? undefined : (l: HttpListenerInfo) => l.tls === 'none' && l.loopback;
    http.route({ prefix: '/metrics', listeners: onListener }, async (request) => {
      // a loopback listener is reached by the local reverse proxy too: refuse what it relays
      if (metrics.listeners === 'loopback' && !fromLocalAdmin(request.req)) {
        request.log.warn({ peer: request.req.socket.remoteAddress, forwardedFor: request.req.headers['x-forwarded-for'] }, 'metrics refused: request relayed for a client elsewhere');
        return send(request, 403, 'text/plain; charset=utf-8', 'Metrics are for this machine only\n');
      }
      const text = await server.metrics.registry.metrics();
      send(request, 200, server.metrics.registry.contentType, text);
    });
  }
}

function send(request: HttpRequest, status: number, contentType: string, body: string, headers: Record<string, string> = {}): void {
  const res = request.res;
  res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store', ...headers });
  res.end(body);
}

async function databaseReachable(server: EndpointsSource): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('database check timed out')), 2000);
    });
    await Promise.race([server.db.raw('select 1'), timeout]);
    return true;
  } catch (err) {
    server.log.warn({ err }, 'readiness: database unreachable');
    return false;
  } finally {
    clearTimeout(timer);
  }
}

function escapeAttribute(value: string): string {
  return value.replace(/[&<>'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}
