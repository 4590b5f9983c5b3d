// XMPP over WebSocket (RFC 7395) at /xmpp-websocket on the HTTP listeners: the `xmpp`
// subprotocol, one element per message, and the same client stream as TCP (src/c2s/stream.ts)
// running over a WebSocketTransport.
import type { IncomingMessage } from 'node:http';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { Kernel } from '../core/kernel.js';
import type { HttpListenerInfo, HttpUpgrade } from '../http/router.js';
import { sendError } from '../http/service.js';
import type { C2SListeners } from './listener.js';
import type { C2STransport, TransportEvents } from './transport.js';

import { WEBSOCKET_PATH, type WebSocketSettings } from '../http/settings.js';
export { WEBSOCKET_PATH, type WebSocketSettings };

/** A WebSocket carrying one client stream, RFC 7395 framed. */
export class WebSocketTransport implements C2STransport {
  readonly kind = 'websocket';
  readonly framed = true;

  constructor(
    private readonly ws: WebSocket,
    readonly remoteAddress: string,
    readonly secure: boolean,
  ) {}

  get pendingOutput(): number {
    return this.ws.bufferedAmount;
  }

  attach(events: TransportEvents): void {
    // RFC 7395 §3.2: text messages; a binary one is read the same way rather than refused
    this.ws.on('message', (data: RawData) => events.received(Array.isArray(data) ? Buffer.concat(data).toString('utf8') : data.toString('utf8')));
    this.ws.on('error', (err) => events.failed(err));
    this.ws.on('close', () => events.lost());
  }

  send(data: string | readonly string[], done?: (err?: Error | null) => void): void {
    if (typeof data === 'string') return this.ws.send(data, done);
    const last = data.length - 1;
    for (let i = 0; i < last; i++) this.ws.send(data[i]!);
    this.ws.send(data[last]!, done);
  }

  pause(): void {
    this.ws.pause();
  }

  resume(): void {
    this.ws.resume();
  }

  keepalive(): void {
    this.ws.ping();
  }

  end(): void {
    this.ws.close(1000);
  }

  destroy(): void {
    this.ws.terminate();
  }
}

/** Serves /xmpp-websocket on every HTTP listener, handing each connection to the client listeners. */
export function serveWebSocket(server: Kernel, c2s: C2SListeners, settings: WebSocketSettings, maxStanzaSize: number): () => void {
  const wss = new WebSocketServer({
    noServer: true,
    // the parser refuses an oversized stanza with a stream error (policy-violation); this only
    // bounds what is buffered before it gets to look
    maxPayload: maxStanzaSize * 2 + 4096,
    perMessageDeflate: false,
    handleProtocols: (protocols) => (protocols.has('xmpp') ? 'xmpp' : false),
  });
  const upgrade = ({ req, socket, head, listener }: HttpUpgrade) => {
    const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
    if (!offered.includes('xmpp')) {
      // RFC 7395 §3.1: without the xmpp subprotocol there is no XMPP connection to make
      server.log.debug({ offered }, 'WebSocket refused: no xmpp subprotocol');
      const body = 'Use the xmpp WebSocket subprotocol (RFC 7395)\n';
      socket.end(`HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      c2s.accept(new WebSocketTransport(ws, clientAddress(req, listener), isSecure(req, listener, settings)));
    });
  };
  return server.http.route({ prefix: WEBSOCKET_PATH, upgrade }, ({ res }) => {
    res.setHeader('Upgrade', 'websocket');
    sendError(res, 426, 'This is an XMPP WebSocket endpoint (RFC 7395): connect with the xmpp subprotocol');
  });
}

function isLoopbackAddress(address: string | undefined): boolean {
  return address !== undefined && (address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.'));
}

function fromLocalProxy(req: IncomingMessage, listener: HttpListenerInfo): boolean {
  return listener.loopback && isLoopbackAddress(req.socket.remoteAddress);
}

function isSecure(req: IncomingMessage, listener: HttpListenerInfo, settings: WebSocketSettings): boolean {
  if (settings.considerSecure === 'always' || listener.tls === 'direct') return true;
  if (!fromLocalProxy(req, listener)) return false;
  const proto = req.headers['x-forwarded-proto'];
  return proto === undefined || proto === 'https';
}

/** The client's address: behind a reverse proxy on this machine, the one it forwards (X-Forwarded-For). */
function clientAddress(req: IncomingMessage, listener: HttpListenerInfo): string {
  const peer = req.socket.remoteAddress ?? 'unknown';
  const forwarded = req.headers['x-forwarded-for'];
  if (typeof forwarded === 'string' && fromLocalProxy(req, listener)) {
    const last = forwarded.split(',').pop()!.trim();
    if (last !== '') return last;
  }
  return peer;
}
