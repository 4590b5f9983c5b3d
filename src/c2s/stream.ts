// One client connection (RFC 6120): stream headers and features, STARTTLS, SASL, resource
// binding, then stanzas handed to the server with `from` stamped. It runs over a transport
// (src/c2s/transport.ts): TCP, or a WebSocket with RFC 7395 framing. The bound session
// (ClientSession) is what the router delivers to; it can outlive this connection and be resumed
// on another one (XEP-0198). Writes are batched: everything sent to a connection during one turn
// of the event loop goes out in a single socket write, or one burst of WebSocket messages (see flushAll).
import Element from 'ltx/lib/Element.js';
import type { Kernel } from '../core/kernel.js';
import type { DeliveryTracker } from '../core/sessions.js';
import { type Jid, parseJid } from '../core/jid.js';
import {
  NS_CLIENT, NS_STREAMS, StanzaError, errorReply, iqResult, streamErrorXml,
  type StreamErrorCondition,
} from '../core/stanza.js';
import { Waiting } from '../core/events.js';
import { StreamParser, type ParseErrorCondition } from '../xml/parser.js';
import { serialize } from '../xml/serialize.js';
import type { ChannelBinding } from './sasl/channel-binding.js';
import type { C2SListeners } from './listener.js';
import type { C2SSettings } from './settings.js';
import { clock } from './clock.js';
import { ClientSession } from './session.js';
import { NS_SM } from './sm.js';
import { clientStreamFeatures, type NegotiatedSession, type NegotiatingStream, type StreamState, type TakeOverRefusal } from './features/index.js';
import { NS_SESSION, NS_BIND } from './features/bind.js';
import { RateLimiter } from './rate.js';
import type { AuthThrottle } from './sasl/throttle.js';
import { ReadHolds, type C2STransport, type TransportEvents } from './transport.js';

/** CPU a connection's input may take at once before its share applies (`c2s.max_cpu_share`). */
const CPU_BURST_MS = 200;
/**
 * The most one read is charged: the figure is wall time, and a loaded machine can deschedule the
 * process for hundreds of ms in any read; a connection that is really expensive pays this on
 * read after read and still runs out of its share.
 */
const CPU_CHARGE_CAP_MS = 50;
/** Pauses this long are worth an admin's attention: they mean one client's input is expensive. */
const CPU_PAUSE_LOG_MS = 100;

const NS_TLS = 'urn:ietf:params:xml:ns:xmpp-tls';
const NS_PING = 'urn:xmpp:ping';
const PING_ID_PREFIX = 'xmppd-ping-';
export const NS_FRAMING = 'urn:ietf:params:xml:ns:xmpp-framing';
const FRAMED_CLOSE = `<close xmlns='${NS_FRAMING}'/>`;

/** Past this much unsent output a connection is a slow reader we stop buffering for. */
const MAX_PENDING_OUTPUT = 8 * 1024 * 1024;
/** Stanzas of one client still being stored before reading from it stops (see storing()). */
const MAX_STORING = 64;

export type { StreamState, NegotiatingStream } from './features/index.js';
// the events modules hook into during negotiation (src/c2s/features/modules.ts)
export type { StreamFeaturesEvent, UnauthenticatedIqEvent, NonzaEvent } from './features/index.js';
export type { Sasl2InlineEvent, Sasl2TokenEvent, Sasl2SuccessEvent, Bind2InlineEvent, Bind2ElementEvent, UserAgent } from './features/index.js';
import type {
  StreamFeaturesEvent, UnauthenticatedIqEvent, NonzaEvent, Sasl2InlineEvent, Sasl2TokenEvent, Sasl2SuccessEvent, Bind2InlineEvent, Bind2ElementEvent,
} from './features/index.js';
import { randomToken } from '../core/random.js';

declare module '../core/event-map.js' {
  interface EventMap {
    'c2s/features': StreamFeaturesEvent;
    'c2s/unauthenticated-iq': UnauthenticatedIqEvent;
    'c2s/nonza': NonzaEvent;
    'c2s/sasl2-inline': Sasl2InlineEvent;
    'c2s/sasl2-token': Sasl2TokenEvent;
    'c2s/sasl2-success': Sasl2SuccessEvent;
    'c2s/bind2-inline': Bind2InlineEvent;
    'c2s/bind2-element': Bind2ElementEvent;
  }
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

export class C2SStream implements TransportEvents, NegotiatingStream {
  state: StreamState = 'connected';
  secure: boolean;
  /** The virtual host named in the stream header. */
  host = '';
  username = '';
  /** The bound (or resumed) session, once there is one. */
  session: ClientSession | null = null;
  readonly remoteAddress: string;
  readonly openedAt = clock.now;
  lastReceived = clock.now;
  private stanzasStoring = 0;
  private heldForStorage = false;
  lastSent = clock.now;
  pingSentAt = 0;

  private readonly parser: StreamParser;
  /** RFC 7395: output goes out as one message per top-level element. */
  private readonly framed: boolean;
  /** Framed output of this event-loop turn, one entry per message. */
  private frames: string[] = [];
  private streamId = '';
  private headerSent = false;
  private output = '';
  /** Told once this batch of output has been handed to the operating system (no-SM delivery). */
  private trackers: DeliveryTracker[] | null = null;
  private binding: ChannelBinding | null | undefined;
  private readonly rateLimiter: RateLimiter | null;
  /** Milliseconds of CPU this connection's input may cost, per second, as a token bucket. */
  private readonly cpuLimiter: RateLimiter | null;
  /** close() has begun: nothing more may follow the closing tag. */
  private closing = false;
  /** We are closing on purpose: the session ends rather than waits for resumption. */
  private endsSession = false;
  /** Why reading is paused (rate limit, storage back-pressure), nested. */
  private readonly reading: ReadHolds;

  constructor(
    readonly server: Kernel,
    readonly transport: C2STransport,
    readonly settings: C2SSettings,
    readonly listeners: C2SListeners,
  ) {
    this.secure = transport.secure;
    this.framed = transport.framed;
    this.remoteAddress = transport.remoteAddress;
    this.reading = new ReadHolds(transport);
    this.parser = new StreamParser(this, settings.maxStanzaSize);
    if (this.framed) this.parser.startFramed();
    this.rateLimiter = settings.maxReceiveRate === null ? null : new RateLimiter(settings.maxReceiveRate, settings.maxReceiveRate * 4);
    this.cpuLimiter = settings.maxCpuShare === null ? null : new RateLimiter(settings.maxCpuShare * 1000, CPU_BURST_MS);
    transport.attach(this);
  }

  get authThrottle(): AuthThrottle {
    return this.listeners.authThrottle;
  }

  get jid(): Jid | undefined {
    return this.session?.jid;
  }

  // --- transport events --------------------------------------------------------------------

  received(chunk: Buffer | string): void {
    this.lastReceived = clock.now;
    if (this.rateLimiter !== null) {
      const pause = this.rateLimiter.consume(chunk.length);
      if (pause > 0) this.reading.holdFor(pause);
    }
    const metrics = this.server.metrics;
    const started = (metrics.handlingSince = performance.now());
    try {
      this.parser.write(chunk);
      // RFC 7395 §3.3.3: a message carries whole elements, never part of one
      if (this.framed && this.state !== 'closed' && !this.parser.atElementBoundary()) {
        this.close('not-well-formed', 'A WebSocket message must hold one complete XML element');
      }
    } catch (err) {
      // a bug in our handling of this input must cost this stream only, never the process
      this.server.log.error({ err, jid: this.jid?.toString(), address: this.remoteAddress }, 'internal error while handling client data');
      this.close('internal-server-error');
    } finally {
      metrics.handlingSince = 0;
    }
    const spent = performance.now() - started;
    if (this.state !== 'closed') this.listeners.inputTurn.charge(spent, this.reading);
    // Bytes are bounded above; this bounds what they cost. A connection whose input takes more
    // than its share of the CPU (parsing, handlers) is not read from until it is back within it,
    // so it slows itself, not the clients sharing the event loop with it.
    if (this.cpuLimiter !== null) {
      const pause = this.cpuLimiter.consume(Math.min(spent, CPU_CHARGE_CAP_MS));
      if (pause > 0 && this.state !== 'closed') {
        if (pause >= CPU_PAUSE_LOG_MS) this.server.log.warn({ jid: this.jid?.toString(), address: this.remoteAddress, pauseMs: pause }, 'client input is using more than its CPU share; reading paused');
        this.reading.holdFor(pause);
      }
    }
  }

  failed(err: Error): void {
    this.server.log.debug({ err: err.message, address: this.remoteAddress, transport: this.transport.kind }, 'client connection error');
  }

  lost(): void {
    this.closed('connection lost');
  }

  /**
   * The peer shut its half of the TCP connection without closing the stream: that is a
   * connection lost (an app killed, a proxy timing out), not a goodbye. Only </stream:stream>
   * ends a resumable session (XEP-0198 §5).
   */
  peerEnded(): void {
    this.close(undefined, undefined, true);
  }

  // --- output ------------------------------------------------------------------------------

  /** Queue XML for this connection; it goes out with everything else written in this event-loop turn. */
  write(xml: string, tracker?: DeliveryTracker): void {
    if (this.state === 'closed') return tracker?.undelivered();
    if (tracker !== undefined) (this.trackers ??= []).push(tracker);
    if (this.framed) return this.writeFrame(xml);
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

  /** RFC 7395: each top-level element is a message of its own, with its namespaces declared. */
  private writeFrame(xml: string): void {
    if (this.frames.length === 0) {
      dirty.push(this);
      if (!flushScheduled) {
        flushScheduled = true;
        setImmediate(flushAll);
      }
    }
    this.frames.push(withClientNamespace(xml));
  }

  send(stanza: Element): void {
    this.write(serialize(stanza));
  }

  requestAck(): void {
    const request = this.ackRequest();
    if (request !== null) this.write(request);
  }

  /**
   * XEP-0198 §4: the <r/> that goes with this output, asked once while stanzas are
   * unacknowledged and none is on its way; null when none is due.
   */
  private ackRequest(): string | null {
    const sm = this.session?.sm;
    if (!sm || this.state !== 'bound' || this.closing || sm.ackRequested || sm.unackedCount === 0) return null;
    sm.requestingAck();
    return `<r xmlns='${NS_SM}'/>`;
  }

  flush(): void {
    if (this.framed) return this.flushFrames();
    if (this.output.length === 0) return;
    const out = this.output;
    this.output = '';
    const request = this.ackRequest();
    this.transmit(request === null ? out : out + request);
  }

  private flushFrames(): void {
    if (this.frames.length === 0) return;
    const frames = this.frames;
    this.frames = [];
    const request = this.ackRequest();
    if (request !== null) frames.push(request);
    this.transmit(frames);
  }

  private transmit(out: string | string[]): void {
    this.lastSent = clock.now;
    const trackers = this.trackers;
    this.trackers = null;
    if (trackers === null) this.transport.send(out);
    else {
      this.transport.send(out, (err) => {
        for (const tracker of trackers) err ? tracker.undelivered() : tracker.delivered();
      });
    }
    if (this.transport.pendingOutput > MAX_PENDING_OUTPUT) {
      this.server.log.warn({ jid: this.jid?.toString(), address: this.remoteAddress }, 'client is not reading; closing');
      this.close('policy-violation', 'Too much unread data');
    }
  }

  /**
   * Closes the stream, with a stream error first when `condition` is given (RFC 6120 §4.4, §4.9).
   * The session ends with it, unless `resumable` and the client enabled resumption (a dead
   * connection found by a ping timeout is like a lost one). `detail` is the XML of an
   * application-specific condition to add to the stream error (RFC 6120 §4.9.4).
   */
  close(condition?: StreamErrorCondition, text?: string, resumable = false, detail?: string): void {
    if (this.state === 'closed') return;
    if (condition !== undefined) {
      this.server.log.info({ condition, text, jid: this.jid?.toString(), address: this.remoteAddress }, 'closing client stream with an error');
    }
    if (!resumable) this.endsSession = true;
    this.closing = true; // nothing after the closing tag, not even an ack request
    if (!this.headerSent) this.write(this.header());
    if (condition !== undefined) {
      let error = streamErrorXml(condition, text);
      if (detail !== undefined) error = error.replace('</stream:error>', `${detail}</stream:error>`);
      // RFC 7395 §3.6.1: framed, the error stands alone, so it declares its prefix
      if (this.framed) error = error.replace('<stream:error>', `<stream:error xmlns:stream='${NS_STREAMS}'>`);
      this.write(error);
    }
    this.write(this.framed ? FRAMED_CLOSE : '</stream:stream>');
    this.flush();
    this.closed(condition ?? 'closed');
    const transport = this.transport;
    transport.end();
    // give the peer a moment to read the error and answer with its own close, then cut
    setTimeout(() => transport.destroy(), 2000).unref();
  }

  /** Another connection resumed our session: close this one without touching the session. */
  detach(text: string): void {
    this.session = null;
    this.close('conflict', text);
  }

  /** Bookkeeping once the stream is over, whoever ended it. */
  private closed(reason: string): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.output = '';
    this.frames = [];
    const trackers = this.trackers;
    this.trackers = null;
    for (const tracker of trackers ?? []) tracker.undelivered();
    this.listeners.forget(this);
    const session = this.session;
    if (session === null) return;
    this.session = null;
    // the listeners wait for what an ending session re-routes (offline storage) before shutdown
    if (this.endsSession) this.listeners.handingOn(session.end(reason));
    else session.connectionLost(reason, hibernationTimeout(session, this.settings));
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
    if (this.framed) return this.close('invalid-namespace', `Over WebSocket the stream opens with <open xmlns='${NS_FRAMING}'/> (RFC 7395)`);
    this.openStream(attrs.to, attrs.version);
  }

  private openStream(to: string | undefined, version: string | undefined): void {
    if (to === undefined || to === '') return this.close('improper-addressing', "The stream header needs a 'to' attribute");
    const domain = to.toLowerCase();
    if (!this.server.hosts.has(domain)) return this.close('host-unknown', `${to} is not served here`);
    if (this.host !== '' && domain !== this.host) return this.close('host-unknown', 'The host cannot change on a stream restart');
    this.host = domain;
    // RFC 6120 §4.7.5: no version means a pre-1.0 entity, which we do not speak
    const major = Number((version ?? '0').split('.')[0]);
    if (!(major >= 1)) return this.close('unsupported-version', 'XMPP 1.0 is required');
    // RFC 7395 §3.8: no STARTTLS over WebSocket, so an unencrypted one cannot go further
    if (this.framed && !this.secure && this.settings.requireEncryption) {
      this.write(this.header());
      return this.close('policy-violation', 'Encryption is required: connect with wss://');
    }
    this.write(this.header());
    this.write(this.features());
  }

  /** RFC 7395 §3.4: the framed stream header, checked like <stream:stream> is. */
  private onFramedOpen(attrs: Record<string, string>): void {
    if (this.headerSent) return this.close('invalid-xml', 'The stream is already open');
    this.openStream(attrs.to, attrs.version);
  }

  onStreamEnd(): void {
    this.close(); // the client said goodbye: no resumption (XEP-0198 §5)
  }

  onParseError(condition: ParseErrorCondition, text: string): void {
    this.close(condition, text);
  }

  onStanza(element: Element): void {
    if (this.state === 'closed') return;
    // negotiation waits for another node (a session taken over): what follows waits its turn
    if (this.deferred !== null) return void this.deferred.push(element);
    const name = element.name;
    const xmlns = element.attrs.xmlns;
    if (this.framed) {
      // RFC 7395 §3.4, §3.6: <open/> starts (or restarts) the stream, <close/> ends it
      if (xmlns === NS_FRAMING && name === 'open') return this.onFramedOpen(element.attrs);
      if (xmlns === NS_FRAMING && name === 'close') return this.onStreamEnd();
      if (!this.headerSent) return this.close('not-authorized', `Open the stream with <open xmlns='${NS_FRAMING}'/> first`);
    }
    if (this.state === 'bound' && (name === 'message' || name === 'presence' || name === 'iq') && (xmlns === undefined || xmlns === NS_CLIENT)) {
      return this.clientStanza(element);
    }
    // RFC 6120 §4.3: everything else is negotiation, for the first feature that takes it
    const requiresTls = !this.secure && this.settings.requireEncryption;
    for (const feature of clientStreamFeatures) {
      if (!feature.accepts(element, this)) continue;
      if (requiresTls && feature.beforeTls !== true) break;
      return feature.handle(element, this);
    }
    if (requiresTls) return this.close('policy-violation', 'Use STARTTLS first: encryption is required');
    // RFC 6120 §6.4 / §7.1: nothing else before authentication and binding
    this.close('not-authorized', 'Authenticate and bind a resource first');
  }

  // --- stream negotiation ------------------------------------------------------------------

  private header(): string {
    this.headerSent = true;
    this.streamId = randomToken(12);
    const from = this.host || this.server.hosts.keys().next().value || 'localhost';
    if (this.framed) return `<open xmlns='${NS_FRAMING}' id='${this.streamId}' from='${from}' version='1.0' xml:lang='en'/>`;
    return `<?xml version='1.0'?><stream:stream xmlns='${NS_CLIENT}' xmlns:stream='${NS_STREAMS}' id='${this.streamId}' from='${from}' version='1.0' xml:lang='en'>`;
  }

  private features(): string {
    let features = this.framed ? `<stream:features xmlns:stream='${NS_STREAMS}'>` : '<stream:features>';
    // where encryption is required, only what leads to TLS is offered before it
    const requiresTls = !this.secure && this.settings.requireEncryption;
    for (const feature of clientStreamFeatures) {
      if (feature.advertise !== undefined && (!requiresTls || feature.beforeTls === true)) features += feature.advertise(this);
    }
    return features + '</stream:features>';
  }

  // --- what the features change (NegotiatingStream) -----------------------------------------

  /** The connection's TLS channel bindings, computed once TLS is up (SCRAM-*-PLUS, XEP-0440). */
  channelBinding(): ChannelBinding | null {
    if (!this.secure) return null;
    if (this.binding === undefined) this.binding = this.transport.channelBinding?.() ?? null;
    return this.binding;
  }

  /** RFC 6120 §5.4: <proceed/>, then a TLS handshake on the same socket and a fresh stream. */
  upgradeToTls(): void {
    const transport = this.transport;
    transport.send(`<proceed xmlns='${NS_TLS}'/>`);
    transport.startTls!(this.listeners.tls.serverOptions(), () => {
      this.secure = true;
    });
    // §5.4.3.3: plaintext pipelined after <starttls/> is discarded, never processed
    this.parser.discardInput();
    this.restart();
  }

  authenticated(username: string, restart = true): void {
    this.username = username;
    this.state = 'authenticated';
    // RFC 6120 §6.4.6: the client opens a new stream after <success/>; not after SASL2's (XEP-0388)
    if (restart) this.restart();
  }

  sendFeatures(): void {
    this.write(this.features());
  }

  bindSession(jid: Jid): void {
    const session = new ClientSession(this.server, this, jid, this.listeners.shedding);
    this.session = session;
    this.state = 'bound';
    this.server.sessionBound(session);
  }

  resumableSession(previd: string): NegotiatedSession | undefined {
    return this.listeners.resumable.get(previd);
  }

  /** Elements that arrived while negotiation waited for another node; null when not waiting. */
  private deferred: Element[] | null = null;

  async takeOverSession(node: string, previd: string, h: number): Promise<NegotiatedSession | TakeOverRefusal | null> {
    this.deferred = [];
    this.reading.hold();
    try {
      const request = { previd, by: this.server.nodeId ?? '', bare: `${this.username}@${this.host}`, h };
      const answer = await this.server.takeOver(node, request).catch((err: unknown) => {
        this.server.log.warn({ err: (err as Error).message, node }, 'taking over a session from another node failed');
        return { failed: 'item-not-found' } as const;
      });
      if ('movedTo' in answer) return { failed: 'item-not-found' }; // Kernel.takeOver followed the moves it could
      if ('failed' in answer) return answer;
      // a node hands out only sessions it bound, whose JIDs parse
      const jid = parseJid(answer.session.jid)!;
      // bound here even if this connection went meanwhile: it then waits to be resumed again, and
      // what it holds is not lost
      const session = ClientSession.handedIn(this.server, this, jid, answer.session, previd, this.listeners.shedding);
      this.makeResumable(session);
      this.server.sessionHandedIn(session);
      this.server.log.info({ jid: answer.session.jid, from: node, unacked: answer.session.unacked.length }, 'session taken over from another node');
      if ((this.state as StreamState) === 'closed') {
        session.connectionLost('connection closed while resuming', hibernationTimeout(session, this.settings));
        this.server.afterResume(session); // what followed it waits in its queue
        return null;
      }
      return session;
    } finally {
      this.reading.release();
      // replayed in order once the caller has resumed the session (in a microtask, before this)
      setImmediate(() => {
        const deferred = this.deferred ?? [];
        this.deferred = null;
        for (const element of deferred) this.onStanza(element);
      });
    }
  }

  makeResumable(negotiated: NegotiatedSession): void {
    const session = negotiated as ClientSession;
    const id = session.sm!.id;
    this.listeners.resumable.set(id, session);
    session.onEnded = () => this.listeners.resumable.delete(id);
  }

  /** XEP-0198 §5: this stream takes over the session; what the client has not acknowledged goes again. */
  resumeSession(negotiated: NegotiatedSession, previd: string, inline?: { success: string }): void {
    // only what resumableSession handed out comes back here
    const session = negotiated as ClientSession;
    const sm = session.sm!;
    session.resumeOn(this);
    this.session = session;
    this.state = 'bound';
    sm.ackRequested = false;
    this.server.log.debug({ jid: session.jid.toString() }, 'session resumed');
    if (inline === undefined) this.write(`<resumed xmlns='${NS_SM}' h='${sm.received}' previd='${previd}'/>`);
    else this.write(inline.success + this.features()); // XEP-0388 §2.6.1: features follow <success/>
    // §5: everything the client has not acknowledged is sent again, in order
    for (const entry of sm.unacked()) this.write(entry.xml);
    session.streamResumed();
    this.server.afterResume(session);
  }

  private restart(): void {
    // RFC 7395 §3.7: framed, the client's next <open/> restarts the stream; no parser state to drop
    if (!this.framed) this.parser.reset();
    this.headerSent = false;
  }

  // --- bound session -----------------------------------------------------------------------

  private clientStanza(stanza: Element): void {
    const session = this.session!;
    const jid = session.jid;
    const attrs = stanza.attrs;
    // RFC 6120 §8.1.2.1: the server stamps 'from'; a client may only claim its own address
    const claimed = attrs.from;
    if (claimed !== undefined && claimed !== jid.toString() && claimed !== jid.bare) {
      const parsed = parseJid(claimed);
      if (parsed === null || parsed.bare !== jid.bare) return this.close('invalid-from', `${claimed} is not your address`);
      // Another resource of the same account: a web client reloaded and resumed its session
      // (XEP-0198) still writes the resource it would have bound. It can only be this session,
      // so, as Prosody does, the stamp below makes it the session's full JID; nobody is spoofed.
      if (parsed.resource !== jid.resource) {
        this.server.log.debug({ jid: jid.toString(), claimed }, "client stanza from another resource of its account: stamped with the session's JID");
      }
    }
    attrs.from = jid.toString();
    this.server.metrics.stanzasIn.count(stanza.name);
    if (stanza.name === 'message' && this.listeners.shedding?.dropsOnInput(stanza)) {
      session.sm?.inbound(undefined);
      return;
    }
    const handling = this.handleClientStanza(stanza, session);
    if (handling instanceof Promise) this.storing(handling);
    // XEP-0198: count it; when it is accepted only once stored, acks wait for that
    session.sm?.inbound(handling instanceof Promise ? handling : undefined);
  }

  /**
   * A stanza accepted once stored (offline store, archive). Past MAX_STORING at once, reading
   * stops until storage catches up to half that: a sender faster than the database meets TCP
   * back-pressure instead of growing the server's write queues without bound.
   */
  private storing(handling: Promise<unknown>): void {
    if (++this.stanzasStoring === MAX_STORING && !this.heldForStorage) {
      this.heldForStorage = true;
      this.reading.hold();
    }
    handling.then(this.stored, this.stored);
  }

  private readonly stored = (): void => {
    if (--this.stanzasStoring <= MAX_STORING / 2 && this.heldForStorage) {
      this.heldForStorage = false;
      this.reading.release();
    }
  };

  private handleClientStanza(stanza: Element, session: ClientSession): unknown {
    const attrs = stanza.attrs;
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
        if (toServer && type === 'set' && payload.attrs.xmlns === NS_SESSION) return session.send(iqResult(stanza));
        if (toServer && type === 'set' && payload.attrs.xmlns === NS_BIND) return this.reject(stanza, new StanzaError('not-allowed', 'Already bound'));
      } else if (attrs.id.startsWith(PING_ID_PREFIX)) {
        return; // the answer to our keepalive ping: receiving it was the point
      }
    } else if (!session.inactive) {
      session.lastActivity = clock.now; // XEP-0012: what the user does, not keepalives or IQs (1 s resolution is plenty)
    }
    return this.process(stanza, session, to);
  }

  /**
   * Client stanzas that arrived while an earlier one waited (a handler awaiting I/O, events.ts
   * Waiting), checked and stamped already: handed to the kernel in order once it is done, as
   * Prosody's per-session runner does. null when nothing waits.
   */
  private behind: Array<{ stanza: Element; session: ClientSession; to: Jid | null; settle: (value: unknown) => void }> | null = null;

  /** Hands a checked client stanza to the kernel in its turn; returns what it is accepted with (a promise: once stored). */
  private process(stanza: Element, session: ClientSession, to: Jid | null): unknown {
    if (this.behind !== null) {
      // XEP-0198 counts it now; it is handled (and acknowledged) once it has had its turn
      let settle!: (value: unknown) => void;
      const handled = new Promise((resolve) => (settle = resolve));
      this.behind.push({ stanza, session, to, settle });
      return handled;
    }
    const handling = this.server.processFromClient(stanza, session, to);
    if (!(handling instanceof Waiting)) return handling;
    this.behind = [];
    handling.routed.then(this.nextInOrder, this.nextInOrder);
    return handling.accepted;
  }

  /** The stanza that waited is done: the ones behind it have their turn, until one waits again. */
  private readonly nextInOrder = (): void => {
    const queue = this.behind;
    this.behind = null;
    if (queue === null) return;
    for (let i = 0; i < queue.length; i++) {
      const entry = queue[i]!;
      if (this.behind !== null) {
        (this.behind as typeof queue).push(entry); // one waits again: the rest stay behind it, in order
        continue;
      }
      // a session that ended meanwhile sends nothing more (a hibernating one still does)
      entry.settle(entry.session.ended ? undefined : this.process(entry.stanza, entry.session, entry.to));
    }
  };

  private reject(stanza: Element, error: StanzaError): void {
    if (stanza.attrs.type === 'error') return;
    const jid = this.session!.jid;
    const reply = errorReply(stanza, error);
    reply.attrs.from = stanza.attrs.to ?? jid.bare;
    reply.attrs.to = jid.toString();
    this.session!.send(reply);
  }

  /** XEP-0199 §4.1: a server-to-client ping, used to find dead connections. */
  sendPing(): void {
    const session = this.session;
    if (session === null) return;
    this.pingSentAt = clock.now;
    const ping = new Element('iq', { type: 'get', id: `${PING_ID_PREFIX}${clock.now}`, from: this.host, to: session.jid.toString() });
    ping.c('ping', { xmlns: NS_PING });
    session.send(ping);
  }

  sendWhitespace(): void {
    if (this.state === 'closed') return;
    // RFC 7395 §3.3.2 (framed): no whitespace between elements, a WebSocket ping instead
    if (this.framed) {
      this.lastSent = clock.now;
      this.transport.keepalive();
    } else if (this.output.length === 0) this.write(' ');
  }
}

const STANZA_START = /^<(message|presence|iq)[\s/>]/;

/**
 * RFC 7395 §3.3.3: a framed stanza is a document of its own, so it carries jabber:client itself
 * (inside a TCP stream it inherits it from <stream:stream>). Only WebSocket output pays this.
 */
function withClientNamespace(xml: string): string {
  if (!STANZA_START.test(xml)) return xml;
  const tagEnd = xml.indexOf('>');
  const nameEnd = xml.search(/[\s/>]/);
  if (xml.lastIndexOf(' xmlns=', tagEnd) > 0) return xml;
  return `${xml.slice(0, nameEnd)} xmlns='${NS_CLIENT}'${xml.slice(nameEnd)}`;
}

/**
 * How long a session whose connection dropped waits to be resumed: longer for a device woken by
 * push notifications (a `push:` session flag of the push module, XEP-0357), whose phone comes
 * back when a push reaches it; resumption off stays off.
 */
function hibernationTimeout(session: ClientSession, settings: C2SSettings): number {
  const base = settings.resumeTimeout;
  if (base === 0 || settings.resumeTimeoutPush <= base) return base;
  for (const flag of session.flags) if (flag.startsWith('push:')) return settings.resumeTimeoutPush;
  return base;
}
