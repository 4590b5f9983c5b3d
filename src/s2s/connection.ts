// What incoming and outgoing server streams share (RFC 6120 §4): the socket and its parser,
// output batched per event-loop turn, the stream header in the jabber:server namespace, STARTTLS
// upgrades, stream errors and the close handshake.
import crypto from 'node:crypto';
import type net from 'node:net';
import tls from 'node:tls';
import type Element from 'ltx/lib/Element.js';
import type { Logger } from 'pino';
import { NS_STREAMS, streamErrorXml, type StreamErrorCondition } from '../core/stanza.js';
import { StreamParser, type ParseErrorCondition, type StreamParserHandler } from '../xml/parser.js';
import { NS_DIALBACK } from './dialback.js';

export const NS_SERVER = 'jabber:server';
export const NS_TLS = 'urn:ietf:params:xml:ns:xmpp-tls';
export const NS_SASL = 'urn:ietf:params:xml:ns:xmpp-sasl';

/** How the remote domain of a stream was authenticated. */
export type AuthMethod = 'sasl-external' | 'dialback' | 'dialback-with-certificate';

export abstract class S2SConnection implements StreamParserHandler {
  secure = false;
  closed = false;
  /** Date.now() of the last byte in either direction (for the idle timeout). */
  lastActivity = Date.now();
  readonly openedAt = Date.now();
  protected socket: net.Socket;
  protected readonly parser: StreamParser;
  private output = '';
  protected headerSent = false;

  constructor(
    socket: net.Socket,
    maxStanzaSize: number,
    protected readonly log: Logger,
    secure: boolean,
  ) {
    this.socket = socket;
    this.secure = secure;
    this.parser = new StreamParser(this, maxStanzaSize);
    this.attach(socket);
  }

  abstract onStreamStart(name: string, attrs: Record<string, string>): void;
  abstract onStanza(element: Element): void;
  /** Bookkeeping once the stream is over, whoever ended it. */
  protected abstract onClosed(reason: string): void;

  onStreamEnd(): void {
    this.close();
  }

  onParseError(condition: ParseErrorCondition, text: string): void {
    this.close(condition, text);
  }

  protected attach(socket: net.Socket): void {
    socket.on('data', (chunk: Buffer) => {
      this.lastActivity = Date.now();
      try {
        this.parser.write(chunk);
      } catch (err) {
        // a bug in our handling of this input costs this stream only, never the process
        this.log.error({ err }, 'internal error while handling server-to-server data');
        this.close('internal-server-error');
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.log.debug({ err: err.message }, 'server-to-server socket error');
    });
    socket.on('close', () => this.finish('connection lost'));
    socket.on('end', () => this.close());
  }

  /** Replaces the plain socket by a TLS one over it (RFC 6120 §5.4.3.3); listeners move across. */
  protected upgrade(options: tls.ConnectionOptions | (tls.TlsOptions & { isServer: true })): tls.TLSSocket {
    const raw = this.socket;
    raw.removeAllListeners('data');
    raw.removeAllListeners('close');
    raw.removeAllListeners('end');
    raw.removeAllListeners('error');
    const secureSocket = 'isServer' in options ? new tls.TLSSocket(raw, options) : tls.connect({ ...options, socket: raw });
    this.socket = secureSocket;
    this.attach(secureSocket);
    this.parser.reset();
    this.headerSent = false;
    return secureSocket;
  }

  /** A stream restart after SASL success (RFC 6120 §6.4.6): the parser starts over. */
  protected restart(): void {
    this.parser.reset();
    this.headerSent = false;
  }

  protected header(from: string, to: string | undefined, id: string | undefined): string {
    this.headerSent = true;
    return `<?xml version='1.0'?><stream:stream xmlns='${NS_SERVER}' xmlns:stream='${NS_STREAMS}' xmlns:db='${NS_DIALBACK}' from='${from}'${
      to ? ` to='${to}'` : ''
    }${id ? ` id='${id}'` : ''} version='1.0'>`;
  }

  /** Output goes out with everything else written to this stream during this event-loop turn. */
  write(xml: string): void {
    if (this.closed) return;
    if (this.output.length === 0) {
      this.output = xml;
      setImmediate(() => this.flush());
    } else {
      this.output += xml;
    }
  }

  private flush(): void {
    if (this.output.length === 0 || this.closed) return;
    this.lastActivity = Date.now();
    this.socket.write(this.output);
    this.output = '';
  }

  /** A stream error when `condition` is given (RFC 6120 §4.9), then our closing tag. */
  close(condition?: StreamErrorCondition, text?: string): void {
    if (this.closed) return;
    if (condition !== undefined) this.log.info({ condition, text }, 'closing server-to-server stream with an error');
    let out = this.headerSent ? '' : this.openingForError();
    if (condition !== undefined) out += streamErrorXml(condition, text);
    out += '</stream:stream>';
    this.output += out;
    this.flush();
    this.finish(condition ?? 'closed');
    this.socket.end();
    // give the peer a moment to read the error and close its side, then cut
    setTimeout(() => this.socket.destroy(), 2000).unref();
  }

  /** The stream header to send before a stream error when none was sent yet (RFC 6120 §4.9.1.1). */
  protected abstract openingForError(): string;

  private finish(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.output = '';
    this.onClosed(reason);
  }

  get remoteAddress(): string {
    return this.socket.remoteAddress ?? 'unknown';
  }
}

export function newStreamId(): string {
  return crypto.randomBytes(12).toString('base64url');
}

/** Whether the stream root is <stream:stream> in the streams namespace with jabber:server content. */
export function streamHeaderProblem(name: string, attrs: Record<string, string>): string | null {
  const colon = name.indexOf(':');
  const prefix = colon === -1 ? '' : name.slice(0, colon);
  const streamNs = prefix ? attrs[`xmlns:${prefix}`] : attrs.xmlns;
  if (name.slice(colon + 1) !== 'stream' || streamNs !== NS_STREAMS) return 'The stream root must be <stream:stream> in http://etherx.jabber.org/streams';
  if (attrs.xmlns !== NS_SERVER) return 'Server streams use the jabber:server namespace';
  return null;
}

/**
 * Sets `authorized` / `authorizationError` on a server-side TLSSocket we made ourselves. Node does
 * this only for sockets created by a tls.Server (onServerSocketSecure in lib/_tls_wrap.js); ours
 * wrap a socket after STARTTLS, so we ask the handle for the verification result as it does.
 */
export function settleServerAuthorization(socket: tls.TLSSocket): void {
  type VerifyError = Error & { code?: string };
  const handle = (socket as unknown as { _handle?: { verifyError(): VerifyError | null } | null })._handle;
  if (!handle) return void (socket.authorizationError = new Error('TLS handle gone'));
  const verifyError = handle.verifyError();
  if (verifyError === null) socket.authorized = true;
  else socket.authorizationError = verifyError;
}

/** Whether the peer's TLS certificate chains to our CAs and names `domain` (RFC 6125 DNS-ID). */
export function certificateValidFor(socket: net.Socket, domain: string): boolean {
  if (!(socket instanceof tls.TLSSocket) || !socket.authorized) return false;
  const certificate = socket.getPeerCertificate();
  if (certificate === null || Object.keys(certificate).length === 0) return false;
  return tls.checkServerIdentity(domain, certificate) === undefined;
}

/** Strips a jabber:server / jabber:client default namespace a peer put on a stanza itself. */
export function stripContentNamespace(stanza: Element): void {
  const xmlns = stanza.attrs.xmlns;
  if (xmlns === NS_SERVER || xmlns === 'jabber:client') delete stanza.attrs.xmlns;
}
