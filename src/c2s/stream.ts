// One client connection (RFC 6120): stream headers and features, STARTTLS, SASL, resource
// binding, then stanzas handed to the server with `from` stamped. It is also the `Session` the
// router delivers to. Writes are batched: everything sent to a connection during one turn of the
// event loop goes out in a single socket write (see flushAll).
import crypto from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import Element from 'ltx/lib/Element.js';
import type { Server } from '../core/server.js';
import type { Session } from '../core/sessions.js';
import { Jid, normalizeResource, parseJid } from '../core/jid.js';
import {
  NS_CLIENT, NS_STREAMS, StanzaError, errorReply, iqResult, streamErrorXml,
  type StreamErrorCondition,
} from '../core/stanza.js';
import { firstElement } from '../core/router.js';
import { StreamParser, type ParseErrorCondition } from '../xml/parser.js';
import { serialize } from '../xml/serialize.js';
import { SaslNegotiation } from './sasl/negotiation.js';
import type { C2SSettings } from './listener.js';
import { clock } from './clock.js';

const NS_TLS = 'urn:ietf:params:xml:ns:xmpp-tls';
const NS_SASL = 'urn:ietf:params:xml:ns:xmpp-sasl';
const NS_BIND = 'urn:ietf:params:xml:ns:xmpp-bind';
const NS_SESSION = 'urn:ietf:params:xml:ns:xmpp-session';
const NS_LIMITS = 'urn:xmpp:stream-limits:0';
const NS_PING = 'urn:xmpp:ping';
const PING_ID_PREFIX = 'xmppd-ping-';

/** Past this much unsent output a connection is a slow reader we stop buffering for. */
const MAX_PENDING_OUTPUT = 8 * 1024 * 1024;

export type StreamState = 'connected' | 'authenticated' | 'bound' | 'closed';

/** The payload of the `c2s/features` host event: modules append feature XML for this stage. */
export interface StreamFeaturesEvent {
  stream: C2SStream;
  stage: 'pre-auth' | 'post-auth';
  features: string[];
}

/** The payload of `c2s/unauthenticated-iq` (in-band registration before login, XEP-0077). */
export interface UnauthenticatedIqEvent {
  iq: Element;
  stream: C2SStream;
  reply(stanza: Element): void;
}

/** The payload of `c2s/nonza`: a top-level element that is not a stanza (stream management...). */
export interface NonzaEvent {
  element: Element;
  stream: C2SStream;
}

// Streams with output waiting, flushed together once per event-loop turn.
let dirty: C2SStream[] = [];
let flushScheduled = false;
function flushAll(): void {
  flushScheduled = false;
  const streams = dirty;
  dirty = [];
  for (let i = 0; i < streams.length; i++) streams[i]!.flush();
}

export class C2SStream implements Session {
  state: StreamState = 'connected';
  secure: boolean;
  /** The virtual host named in the stream header. */
  host = '';
  jid!: Jid;
  username = '';
  readonly remoteAddress: string;
  readonly openedAt = clock.now;
  lastReceived = clock.now;
  lastSent = clock.now;
  pingSentAt = 0;
  priority = 0;
  available = false;
  presence: Element | null = null;
  interested = false;
  directedPresence: Set<string> | null = null;

  private socket: net.Socket;
  private readonly parser: StreamParser;
  private streamId = '';
  private headerSent = false;
  private output = '';
  private sasl: SaslNegotiation | null = null;

  constructor(
    readonly server: Server,
    socket: net.Socket,
    private readonly settings: C2SSettings,
    directTls: boolean,
    private readonly onGone: (stream: C2SStream) => void,
  ) {
    this.socket = socket;
    this.secure = directTls;
    this.remoteAddress = socket.remoteAddress ?? 'unknown';
    this.parser = new StreamParser(this, settings.maxStanzaSize);
    this.attach(socket);
  }

  private attach(socket: net.Socket): void {
    socket.on('data', (chunk: Buffer) => {
      this.lastReceived = clock.now;
      try {
        this.parser.write(chunk);
      } catch (err) {
        // a bug in our handling of this input must cost this stream only, never the process
        this.server.log.error({ err, jid: this.jid?.toString(), address: this.remoteAddress }, 'internal error while handling client data');
        this.close('internal-server-error');
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.server.log.debug({ err: err.message, address: this.remoteAddress }, 'client socket error');
    });
    socket.on('close', () => this.closed('connection closed'));
    socket.on('end', () => this.close());
  }

  // --- Session -----------------------------------------------------------------------------

  send(stanza: Element): void {
    this.sendSerialized(serialize(stanza));
  }

  sendSerialized(xml: string): void {
    if (this.state === 'closed') return;
    if (this.output.length === 0) {
      this.output = xml;
      dirty.push(this);
      if (!flushScheduled) {
        flushScheduled = true;
        setImmediate(flushAll);
      }
    } else {
      this.output += xml;
    }
  }

  flush(): void {
    if (this.output.length === 0) return;
    const out = this.output;
    this.output = '';
    this.lastSent = clock.now;
    this.socket.write(out);
    if (this.socket.writableLength > MAX_PENDING_OUTPUT) {
      this.server.log.warn({ jid: this.jid?.toString(), address: this.remoteAddress }, 'client is not reading; closing');
      this.close('policy-violation', 'Too much unread data');
    }
  }

  /** Closes the stream, with a stream error first when `condition` is given (RFC 6120 §4.4, §4.9). */
  close(condition?: StreamErrorCondition, text?: string): void {
    if (this.state === 'closed') return;
    if (condition !== undefined) {
      this.server.log.info({ condition, text, jid: this.jid?.toString(), address: this.remoteAddress }, 'closing client stream with an error');
    }
    let out = this.headerSent ? '' : this.header();
    if (condition !== undefined) out += streamErrorXml(condition, text);
    out += '</stream:stream>';
    this.sendSerialized(out);
    this.flush();
    this.closed(condition ?? 'closed');
    this.socket.end();
    // give the peer a moment to read the error and answer with its own close, then cut
    setTimeout(() => this.socket.destroy(), 2000).unref();
  }

  /** Bookkeeping once the stream is over, whoever ended it. */
  private closed(reason: string): void {
    if (this.state === 'closed') return;
    const wasBound = this.state === 'bound';
    this.state = 'closed';
    this.output = '';
    this.onGone(this);
    if (wasBound) this.server.sessionClosed(this, reason);
  }

  // --- parser callbacks --------------------------------------------------------------------

  onStreamStart(name: string, attrs: Record<string, string>): void {
    const colon = name.indexOf(':');
    const prefix = colon === -1 ? '' : name.slice(0, colon);
    const streamNs = prefix ? attrs[`xmlns:${prefix}`] : attrs.xmlns;
    if (name.slice(colon + 1) !== 'stream' || streamNs !== NS_STREAMS) {
      return this.close('invalid-namespace', 'The stream root must be <stream:stream> in http://etherx.jabber.org/streams');
    }
    if (attrs.xmlns !== NS_CLIENT) return this.close('invalid-namespace', 'Client streams use the jabber:client namespace');
    const to = attrs.to;
    if (to === undefined || to === '') return this.close('improper-addressing', "The stream header needs a 'to' attribute");
    const domain = to.toLowerCase();
    if (!this.server.hosts.has(domain)) return this.close('host-unknown', `${to} is not served here`);
    if (this.host !== '' && domain !== this.host) return this.close('host-unknown', 'The host cannot change on a stream restart');
    this.host = domain;
    // RFC 6120 §4.7.5: no version means a pre-1.0 entity, which we do not speak
    const major = Number((attrs.version ?? '0').split('.')[0]);
    if (!(major >= 1)) return this.close('unsupported-version', 'XMPP 1.0 is required');
    this.sendSerialized(this.header() + this.features());
  }

  onStreamEnd(): void {
    this.close();
  }

  onParseError(condition: ParseErrorCondition, text: string): void {
    this.close(condition, text);
  }

  onStanza(element: Element): void {
    if (this.state === 'closed') return;
    const name = element.name;
    const xmlns = element.attrs.xmlns;
    const isStanza = (name === 'message' || name === 'presence' || name === 'iq') && (xmlns === undefined || xmlns === NS_CLIENT);
    if (this.state === 'bound') {
      if (isStanza) return this.clientStanza(element);
      return this.nonza(element);
    }
    if (xmlns === NS_TLS && name === 'starttls') return this.startTls();
    if (xmlns === NS_SASL) return this.saslElement(element);
    if (!this.secure && this.settings.requireEncryption) {
      return this.close('policy-violation', 'Use STARTTLS first: encryption is required');
    }
    if (this.state === 'connected' && isStanza && name === 'iq') return this.unauthenticatedIq(element);
    if (this.state === 'authenticated' && isStanza && name === 'iq') return this.bindingIq(element);
    // RFC 6120 §6.4 / §7.1: nothing else before authentication and binding
    this.close('not-authorized', 'Authenticate and bind a resource first');
  }

  // --- stream negotiation ------------------------------------------------------------------

  private header(): string {
    this.headerSent = true;
    this.streamId = crypto.randomBytes(12).toString('base64url');
    const from = this.host || this.server.hosts.keys().next().value || 'localhost';
    return `<?xml version='1.0'?><stream:stream xmlns='${NS_CLIENT}' xmlns:stream='${NS_STREAMS}' id='${this.streamId}' from='${from}' version='1.0' xml:lang='en'>`;
  }

  private features(): string {
    const host = this.server.hosts.get(this.host)!;
    let features = '<stream:features>';
    // XEP-0478: tell the client what we enforce, so it can avoid being disconnected
    const limits = `<limits xmlns='${NS_LIMITS}'><max-bytes>${this.settings.maxStanzaSize}</max-bytes>${
      this.settings.pingInterval !== null ? `<idle-seconds>${this.settings.pingInterval + this.settings.pingTimeout}</idle-seconds>` : ''
    }</limits>`;
    if (this.state === 'connected') {
      if (!this.secure) {
        features += `<starttls xmlns='${NS_TLS}'>${this.settings.requireEncryption ? '<required/>' : ''}</starttls>`;
      }
      if (this.secure || !this.settings.requireEncryption) {
        features += `<mechanisms xmlns='${NS_SASL}'><mechanism>SCRAM-SHA-256</mechanism><mechanism>SCRAM-SHA-1</mechanism>${
          this.secure ? '<mechanism>PLAIN</mechanism>' : ''
        }</mechanisms>`;
        const event: StreamFeaturesEvent = { stream: this, stage: 'pre-auth', features: [] };
        host.events.fire('c2s/features', event);
        features += event.features.join('') + limits;
      }
    } else {
      features += `<bind xmlns='${NS_BIND}'/><session xmlns='${NS_SESSION}'><optional/></session>`;
      const event: StreamFeaturesEvent = { stream: this, stage: 'post-auth', features: [] };
      host.events.fire('c2s/features', event);
      features += event.features.join('') + limits;
    }
    return features + '</stream:features>';
  }

  /** RFC 6120 §5.4: <proceed/>, then a TLS handshake on the same socket and a fresh stream. */
  private startTls(): void {
    if (this.secure || this.state !== 'connected') return this.close('policy-violation', 'TLS is already negotiated');
    this.socket.write(`<proceed xmlns='${NS_TLS}'/>`);
    const raw = this.socket;
    raw.removeAllListeners('data');
    raw.removeAllListeners('close');
    raw.removeAllListeners('end');
    raw.removeAllListeners('error');
    const secureSocket = new tls.TLSSocket(raw, { isServer: true, ...this.server.tls.serverOptions() });
    this.socket = secureSocket;
    this.attach(secureSocket);
    secureSocket.once('secure', () => {
      this.secure = true;
    });
    this.restart();
  }

  private restart(): void {
    this.parser.reset();
    this.headerSent = false;
  }

  private saslElement(element: Element): void {
    if (this.state !== 'connected') return this.close('policy-violation', 'Already authenticated');
    if (!this.secure && this.settings.requireEncryption) {
      // RFC 6120 §6.4.1 / our default: no authentication in the clear
      this.sendSerialized(`<failure xmlns='${NS_SASL}'><encryption-required/></failure>`);
      return;
    }
    this.sasl ??= new SaslNegotiation(this.server, this.host, this.remoteAddress, this.secure);
    this.sasl.handle(element).then(
      (outcome) => {
        if (this.state === 'closed') return;
        this.sendSerialized(outcome.reply);
        if (outcome.username !== undefined) {
          this.username = outcome.username;
          this.state = 'authenticated';
          this.sasl = null;
          this.restart(); // RFC 6120 §6.4.6: the client opens a new stream after <success/>
        } else if (outcome.done) {
          this.sasl = null;
        }
      },
      (err: unknown) => {
        this.server.log.error({ err }, 'SASL negotiation failed unexpectedly');
        this.sendSerialized(`<failure xmlns='${NS_SASL}'><temporary-auth-failure/></failure>`);
        this.sasl = null;
      },
    );
  }

  private unauthenticatedIq(iq: Element): void {
    const host = this.server.hosts.get(this.host)!;
    const event: UnauthenticatedIqEvent = { iq, stream: this, reply: (stanza) => this.send(stanza) };
    if (host.events.fire('c2s/unauthenticated-iq', event) === undefined) {
      this.close('not-authorized', 'Authenticate first');
    }
  }

  /** RFC 6120 §7: resource binding, and the legacy session IQ (RFC 3921 §3) some clients still send. */
  private bindingIq(iq: Element): void {
    const payload = firstElement(iq);
    if (iq.attrs.type === 'set' && payload?.name === 'bind' && payload.attrs.xmlns === NS_BIND) {
      const requested = payload.getChildText('resource');
      let resource: string | null;
      if (requested === null || requested.trim() === '') {
        resource = crypto.randomBytes(9).toString('base64url'); // §7.6.2.1: server-generated
      } else {
        resource = normalizeResource(requested);
        if (resource === null) return this.send(errorReply(iq, new StanzaError('bad-request', 'Invalid resource')));
      }
      this.jid = new Jid(this.username, this.host, resource);
      this.state = 'bound';
      this.server.sessionBound(this);
      const bind = new Element('bind', { xmlns: NS_BIND });
      bind.c('jid').t(this.jid.toString());
      this.send(iqResult(iq, bind));
      return;
    }
    if (iq.attrs.type === 'set' && payload?.name === 'session' && payload.attrs.xmlns === NS_SESSION) {
      return this.send(iqResult(iq));
    }
    this.close('not-authorized', 'Bind a resource first');
  }

  // --- bound session -----------------------------------------------------------------------

  private clientStanza(stanza: Element): void {
    const attrs = stanza.attrs;
    // RFC 6120 §8.1.2.1: the server stamps 'from'; a client may only claim its own address
    const claimed = attrs.from;
    if (claimed !== undefined && claimed !== this.jid.toString() && claimed !== this.jid.bare) {
      const parsed = parseJid(claimed);
      if (parsed === null || parsed.bare !== this.jid.bare || (parsed.resource !== '' && parsed.resource !== this.jid.resource)) {
        return this.close('invalid-from', `${claimed} is not your address`);
      }
    }
    attrs.from = this.jid.toString();
    let to: Jid | null = null;
    if (attrs.to !== undefined) {
      to = parseJid(attrs.to);
      if (to === null) return this.reject(stanza, new StanzaError('jid-malformed', `Malformed address: ${attrs.to}`));
    }
    if (stanza.name === 'iq') {
      const type = attrs.type;
      if (attrs.id === undefined || (type !== 'get' && type !== 'set' && type !== 'result' && type !== 'error')) {
        return this.reject(stanza, new StanzaError('bad-request', 'An IQ needs an id and a valid type'));
      }
      if (type === 'get' || type === 'set') {
        const children = stanza.getChildElements();
        if (children.length !== 1) return this.reject(stanza, new StanzaError('bad-request', 'An IQ get or set carries exactly one payload'));
        const payload = children[0]!;
        // RFC 3921 §3 addresses the session IQ to the server; most clients leave 'to' out
        const toServer = to === null || (to.local === '' && to.resource === '' && to.domain === this.host);
        if (toServer && type === 'set' && payload.attrs.xmlns === NS_SESSION) return this.send(iqResult(stanza));
        if (toServer && type === 'set' && payload.attrs.xmlns === NS_BIND) return this.reject(stanza, new StanzaError('not-allowed', 'Already bound'));
      } else if (attrs.id.startsWith(PING_ID_PREFIX)) {
        return; // the answer to our keepalive ping: receiving it was the point
      }
    }
    this.server.processFromClient(stanza, this, to);
  }

  private reject(stanza: Element, error: StanzaError): void {
    if (stanza.attrs.type === 'error') return;
    const reply = errorReply(stanza, error);
    reply.attrs.from = stanza.attrs.to ?? this.jid.bare;
    reply.attrs.to = this.jid.toString();
    this.send(reply);
  }

  private nonza(element: Element): void {
    const host = this.server.hosts.get(this.host)!;
    if (host.events.fire(`c2s/nonza`, { element, stream: this } satisfies NonzaEvent) === undefined) {
      this.close('unsupported-stanza-type', `<${element.name}/> is not understood here`);
    }
  }

  /** XEP-0199 §4.1: a server-to-client ping, used to find dead connections. */
  sendPing(): void {
    this.pingSentAt = clock.now;
    this.sendSerialized(`<iq type='get' id='${PING_ID_PREFIX}${clock.now}' from='${this.host}' to='${this.jid.toString()}'><ping xmlns='${NS_PING}'/></iq>`);
  }

  sendWhitespace(): void {
    if (this.output.length === 0) this.sendSerialized(' ');
  }
}
