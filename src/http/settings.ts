// Settings of what is served over HTTP, kept here so that http/ needs nothing from c2s/.

/** XMPP over WebSocket (RFC 7395), served by src/c2s/websocket.ts. */
export const WEBSOCKET_PATH = '/xmpp-websocket';

export interface WebSocketSettings {
  enabled: boolean;
  /**
   * auto: secure on a TLS listener, or for a connection from this machine to a loopback
   * listener (a local browser, or a local reverse proxy that terminated TLS: it must then say
   * X-Forwarded-Proto: https, and one that says http is not secure). always: every connection
   * (a proxy elsewhere that terminates TLS), like Prosody's consider_websocket_secure.
   */
  considerSecure: 'auto' | 'always';
}

/** /metrics (src/http/endpoints.ts). */
export interface MetricsSettings {
  enabled: boolean;
  /** loopback: only on plain listeners bound to a loopback address (usage data stays local); all: every listener. */
  listeners: 'loopback' | 'all';
}

/** /admin/api (src/http/admin-api.ts): the admin commands over HTTP. */
export interface AdminApiSettings {
  enabled: boolean;
  /** The bearer token (required when enabled; the config refuses a missing one). */
  token: string | undefined;
  /** loopback: listeners bound to a loopback address, requests from this machine only; all: every listener and client. */
  listeners: 'loopback' | 'all';
}

/** The web admin dashboard (src/http/dashboard). */
export interface DashboardSettings {
  enabled: boolean;
  /** Its path prefix, like /admin (no trailing slash). */
  path: string;
  /** loopback: listeners bound to a loopback address, requests from this machine only; all: every listener and client. */
  listeners: 'loopback' | 'all';
  /** seconds between two samples of the counters the charts draw */
  sampleInterval: number;
  /** seconds a login lasts without a request */
  idleTimeout: number;
}
