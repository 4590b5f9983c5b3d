// One client connection of the load generator: TCP → STARTTLS (or direct TLS) → SASL
// (SCRAM-SHA-1/-256, or PLAIN inside TLS) → resource binding → optional legacy session.
// Stanzas are matched on a per-connection string buffer (see framing.ts); writes made in one
// turn of the event loop are coalesced into a single socket write.
import { createHmac } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { StringDecoder } from 'node:string_decoder';
import { childText, errorCondition, escapeXml, startTagAttr, StanzaSplitter, type FrameSink, type Stanza } from './framing.js';
import type { SessionPolicy, TlsMode } from './options.js';
import { SCRAM_MECHANISMS, ScramClient } from './scram.js';

export interface ConnectionConfig {
  host: string;
  port: number;
  domain: string;
  tls: TlsMode;
  /** 'auto' or a mechanism name */
  sasl: string;
  session: SessionPolicy;
  /** bound on every single wait, and on a whole login() */
  timeoutMs: number;
}

const NS_TLS = 'urn:ietf:params:xml:ns:xmpp-tls';
const NS_SASL = 'urn:ietf:params:xml:ns:xmpp-sasl';
const NS_SASL2 = 'urn:xmpp:sasl:2';
const NS_FAST = 'urn:xmpp:fast:0';

/**
 * One TLS client context for all connections: building a SecureContext per connection (what
 * tls.connect does without one) costs more CPU than the rest of the client handshake.
 */
let sharedSecureContext: tls.SecureContext | null = null;
const secureContext = (): tls.SecureContext => (sharedSecureContext ??= tls.createSecureContext());

let lastId = 0;
const nextId = (kind: string): string => kind + (++lastId).toString(36);

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
const unb64 = (s: string): string => Buffer.from(s.trim(), 'base64').toString('utf8');

interface Waiter {
  readonly what: string;
  readonly match: (s: Stanza) => boolean;
  readonly resolve: (s: Stanza) => void;
  readonly reject: (e: Error) => void;
  readonly timer: NodeJS.Timeout;
}

/** RFC 6120 §6.3.3 order of preference for the benchmark: SCRAM-SHA-1 (comparable), then stronger, then PLAIN. */
export function chooseMechanism(offered: readonly string[], preference: string, secure: boolean): string {
  const usable = (m: string) => offered.includes(m) && (m !== 'PLAIN' || secure);
  if (preference !== 'auto') {
    if (usable(preference)) return preference;
    throw new Error(`SASL ${preference} not offered${preference === 'PLAIN' && !secure ? ' without TLS' : ''} (offered: ${offered.join(' ') || 'none'})`);
  }
  for (const m of ['SCRAM-SHA-1', 'SCRAM-SHA-256', 'PLAIN']) if (usable(m)) return m;
  throw new Error(`no usable SASL mechanism (offered: ${offered.join(' ') || 'none'})`);
}

export class XmppConnection implements FrameSink {
  /** <stream:features/> of the current stream */
  features = '';
  secure = false;
  mechanism = '';
  jid = '';
  closed = false;
  /** the first fatal problem: socket error, stream error, timeout, close by the server */
  failure: Error | null = null;
  /** stanzas nobody waits for (chat messages during the msg scenario) */
  onStanza: ((s: Stanza) => void) | null = null;
  /** called once when the socket is gone, for whatever reason */
  onClose: (() => void) | null = null;

  private socket: net.Socket | null = null;
  private decoder = new StringDecoder('utf8');
  private readonly splitter = new StanzaSplitter(this);
  private waiter: Waiter | null = null;
  /** rejecters of in-flight waits that are not stanza waits (connect, TLS handshake) */
  private readonly aborters = new Set<(e: Error) => void>();
  private outbox = '';
  private flushQueued = false;
  private closing = false;

  /** A TLS session to resume (from an earlier connection's `tlsSession`), for the next handshake. */
  resumeTlsSession: Buffer | null = null;
  /** The TLS session the server gave this connection (a TLS 1.3 ticket), to resume another time. */
  tlsSession: Buffer | null = null;
  /** The last handshake resumed a session. */
  tlsResumed = false;
  /** Stream features that arrived while nobody waited for them (see afterSasl2). */
  private unclaimedFeatures: Stanza | null = null;

  constructor(private readonly cfg: ConnectionConfig) {}

  // ------------------------------------------------------------------ public API

  /** Connect and reach an encrypted, unauthenticated stream (STARTTLS or direct TLS). */
  async open(): Promise<void> {
    await this.connect();
    await this.openStream();
    if (this.cfg.tls === 'starttls') {
      if (!/<starttls[\s>/]/.test(this.features)) throw new Error('server offers no STARTTLS');
      this.send(`<starttls xmlns='${NS_TLS}'/>`);
      const answer = await this.expect('STARTTLS proceed', (s) => s.name === 'proceed' || s.name === 'failure');
      if (answer.name !== 'proceed') throw new Error('STARTTLS refused');
      await this.upgradeToTls();
      await this.openStream();
    }
  }

  /** open() + SASL + bind (+ session): the whole login, bounded by one timeout. */
  async login(user: string, password: string, resource = 'bench'): Promise<void> {
    const timer = setTimeout(() => this.destroy(new Error(`login timed out after ${this.cfg.timeoutMs / 1000}s`)), this.cfg.timeoutMs);
    try {
      await this.open();
      await this.authenticate(user, password);
      await this.bind(resource);
    } finally {
      clearTimeout(timer);
    }
  }

  /** XEP-0077 in-band registration on a not yet authenticated stream. */
  async register(user: string, password: string): Promise<'created' | 'exists'> {
    const id = nextId('reg');
    this.send(`<iq type='set' id='${id}'><query xmlns='jabber:iq:register'><username>${escapeXml(user)}</username>`
      + `<password>${escapeXml(password)}</password></query></iq>`);
    const reply = await this.expectIq(id, 'registration');
    if (startTagAttr(reply.xml, 'type') === 'result') return 'created';
    const condition = errorCondition(reply.xml);
    if (condition === 'conflict') return 'exists';
    throw new Error(`registration refused: ${condition}`);
  }

  /**
   * Learn an account's SCRAM salt and iteration count without logging in: start the exchange,
   * derive (and cache) the SaltedPassword, then abort (RFC 6120 §6.4.5). Done in the untimed
   * setup, it spares the timed login the client's PBKDF2, as for a returning client with a
   * cached key; the server's work is the same either way. False if SCRAM is not in use.
   */
  async prewarmScram(user: string, password: string): Promise<boolean> {
    const mechanism = chooseMechanism(this.offeredMechanisms(), this.cfg.sasl, this.secure);
    const hash = SCRAM_MECHANISMS[mechanism];
    if (hash === undefined) return false;
    const scram = new ScramClient(hash, user, password);
    this.send(`<auth xmlns='${NS_SASL}' mechanism='${mechanism}'>${b64(scram.clientFirst())}</auth>`);
    const isAnswer = (s: Stanza) => s.name === 'success' || s.name === 'failure' || s.name === 'challenge';
    const answer = await this.expect('SCRAM challenge', isAnswer);
    if (answer.name !== 'challenge') throw new Error(`SCRAM prewarm: ${answer.name} ${errorCondition(answer.xml)}`);
    await scram.clientFinal(unb64(saslPayload(answer.xml)));
    this.send(`<abort xmlns='${NS_SASL}'/>`);
    await this.expect('SASL abort', (s) => s.name === 'failure' || s.name === 'success');
    return true;
  }

  async authenticate(user: string, password: string, preference = this.cfg.sasl): Promise<void> {
    const mechanism = chooseMechanism(this.offeredMechanisms(), preference, this.secure);
    const hash = SCRAM_MECHANISMS[mechanism];
    const isAnswer = (s: Stanza) => s.name === 'success' || s.name === 'failure' || s.name === 'challenge';
    const failed = (s: Stanza) => new Error(`SASL ${mechanism} failed: ${errorCondition(s.xml)}`);

    if (hash === undefined) { // PLAIN (RFC 4616): authzid empty
      this.send(`<auth xmlns='${NS_SASL}' mechanism='PLAIN'>${b64(`\0${user}\0${password}`)}</auth>`);
      const answer = await this.expect('SASL PLAIN result', isAnswer);
      if (answer.name !== 'success') throw failed(answer);
    } else {
      const scram = new ScramClient(hash, user, password);
      this.send(`<auth xmlns='${NS_SASL}' mechanism='${mechanism}'>${b64(scram.clientFirst())}</auth>`);
      let answer = await this.expect('SCRAM challenge', isAnswer);
      if (answer.name !== 'challenge') throw failed(answer);
      const clientFinal = await scram.clientFinal(unb64(saslPayload(answer.xml)));
      this.send(`<response xmlns='${NS_SASL}'>${b64(clientFinal)}</response>`);
      answer = await this.expect('SCRAM outcome', isAnswer);
      if (answer.name === 'failure') throw failed(answer);
      const serverFinal = unb64(saslPayload(answer.xml));
      if (answer.name === 'challenge') { // RFC 6120 §6.4.6 allows server-final in a challenge
        this.send(`<response xmlns='${NS_SASL}'/>`);
        const done = await this.expect('SCRAM success', isAnswer);
        if (done.name !== 'success') throw failed(done);
      }
      if (serverFinal && !scram.verifyServerFinal(serverFinal)) throw new Error(`${mechanism}: server signature mismatch`);
    }
    this.mechanism = mechanism;
    await this.openStream(); // RFC 6120 §6.4.6: stream restart after SASL success
  }

  /**
   * XEP-0388 SASL2 with SCRAM (-PLUS: tls-exporter, RFC 9266), and `inline` (Bind2, a FAST
   * token request...) in the same <authenticate/>. Resolves with the <success/>; the stream
   * features that follow (no restart) are read too.
   */
  async authenticateSasl2Scram(user: string, password: string, hash: 'sha1' | 'sha256', plus: boolean, inline: string): Promise<Stanza> {
    const mechanism = (hash === 'sha1' ? 'SCRAM-SHA-1' : 'SCRAM-SHA-256') + (plus ? '-PLUS' : '');
    const binding = plus ? this.exporter() : null;
    const scram = new ScramClient(hash, user, password, undefined, binding === null ? undefined : { type: 'tls-exporter', data: binding });
    this.send(`<authenticate xmlns='${NS_SASL2}' mechanism='${mechanism}'><initial-response>${b64(scram.clientFirst())}</initial-response>${inline}</authenticate>`);
    const isAnswer = (s: Stanza) => s.name === 'success' || s.name === 'failure' || s.name === 'challenge';
    let answer = await this.expect('SASL2 challenge', isAnswer);
    if (answer.name !== 'challenge') throw new Error(`SASL2 ${mechanism} failed: ${errorCondition(answer.xml)}`);
    const clientFinal = await scram.clientFinal(unb64(saslPayload(answer.xml)));
    this.send(`<response xmlns='${NS_SASL2}'>${b64(clientFinal)}</response>`);
    answer = await this.expect('SASL2 outcome', isAnswer);
    if (answer.name !== 'success') throw new Error(`SASL2 ${mechanism} failed: ${errorCondition(answer.xml)}`);
    const serverFinal = unb64(childText(answer.xml, 'additional-data') ?? '');
    if (!scram.verifyServerFinal(serverFinal)) throw new Error(`${mechanism}: server signature mismatch`);
    this.mechanism = mechanism;
    await this.afterSasl2(answer);
    return answer;
  }

  /** XEP-0484 FAST: HT-SHA-256-NONE with `token`, one round trip (draft-schmaus-kitten-sasl-ht). */
  async authenticateFast(user: string, token: string, inline: string): Promise<Stanza> {
    const key = Buffer.from(token, 'utf8');
    const initiator = createHmac('sha256', key).update('Initiator').digest();
    const initial = Buffer.concat([Buffer.from(`${user}\0`, 'utf8'), initiator]).toString('base64');
    this.send(`<authenticate xmlns='${NS_SASL2}' mechanism='HT-SHA-256-NONE'><initial-response>${initial}</initial-response>${inline}<fast xmlns='${NS_FAST}'/></authenticate>`);
    const answer = await this.expect('FAST outcome', (s) => s.name === 'success' || s.name === 'failure' || s.name === 'challenge');
    if (answer.name !== 'success') throw new Error(`FAST failed: ${errorCondition(answer.xml)}`);
    const responder = createHmac('sha256', key).update('Responder').digest().toString('base64');
    if ((childText(answer.xml, 'additional-data') ?? '').trim() !== responder) throw new Error('FAST: the server did not prove it knows the token');
    this.mechanism = 'HT-SHA-256-NONE';
    await this.afterSasl2(answer);
    return answer;
  }

  /** XEP-0388 §2.6.1: features follow <success/>; with Bind2 the JID is the full one. */
  private async afterSasl2(success: Stanza): Promise<void> {
    this.jid = childText(success.xml, 'authorization-identifier') ?? '';
    const features = this.unclaimedFeatures ?? (await this.expect('stream features after SASL2', (s) => s.name === 'stream:features'));
    this.unclaimedFeatures = null;
    this.features = features.xml;
  }

  /** RFC 9266 tls-exporter of this connection. */
  private exporter(): Buffer {
    const socket = this.socket;
    if (!(socket instanceof tls.TLSSocket)) throw new Error('channel binding needs TLS');
    return socket.exportKeyingMaterial(32, 'EXPORTER-Channel-Binding', Buffer.alloc(0));
  }

  async bind(resource: string): Promise<void> {
    if (!/<bind[\s>/]/.test(this.features)) throw new Error('server offers no resource binding');
    const id = nextId('bind');
    this.send(`<iq type='set' id='${id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>${escapeXml(resource)}</resource></bind></iq>`);
    const reply = await this.expectResult(id, 'resource binding');
    this.jid = childText(reply.xml, 'jid') ?? '';
    // RFC 6121 Appendix E: the legacy session IQ, still expected by some servers/clients
    const session = /<session[\s>/][^>]*?(?:\/>|>([\s\S]*?)<\/session>)/.exec(this.features);
    if (session && this.cfg.session !== 'never') {
      const optional = /<optional\s*\/?>/.test(session[1] ?? '');
      if (this.cfg.session === 'advertised' || !optional) {
        const sid = nextId('sess');
        this.send(`<iq type='set' id='${sid}'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>`);
        await this.expectResult(sid, 'session');
      }
    }
  }

  /** XEP-0199 ping to the server; any IQ answer proves that earlier stanzas were processed. */
  async ping(): Promise<void> {
    const id = nextId('ping');
    this.send(`<iq type='get' id='${id}' to='${escapeXml(this.cfg.domain)}'><ping xmlns='urn:xmpp:ping'/></iq>`);
    await this.expectIq(id, 'ping');
  }

  /** Sends an IQ and resolves with its result (rejects on an error answer). */
  async iq(xml: string, id: string, what: string): Promise<Stanza> {
    const reply = this.expectResult(id, what);
    this.send(xml);
    return reply;
  }

  /** Resolves with the next stanza that matches (only one such wait at a time per connection). */
  waitForStanza(what: string, match: (s: Stanza) => boolean): Promise<Stanza> {
    return this.expect(what, match);
  }

  /** Queue XML; everything queued in one turn of the event loop goes out in one write. */
  send(xml: string): void {
    if (this.closed || this.closing) return;
    this.outbox += xml;
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(this.flush);
    }
  }

  /** Close the stream politely; destroy the socket if the server does not answer within `graceMs`. */
  close(graceMs = 1000): Promise<void> {
    if (this.closed) return Promise.resolve();
    const socket = this.socket;
    if (!socket) { this.destroy(); return Promise.resolve(); }
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.destroy(); resolve(); }, graceMs);
      timer.unref();
      socket.once('close', () => { clearTimeout(timer); resolve(); });
      this.flush();
      this.closing = true;
      if (!socket.destroyed) socket.end('</stream:stream>');
    });
  }

  destroy(reason?: Error): void {
    if (reason) this.fail(reason);
    this.socket?.destroy();
    if (!this.socket) this.markClosed();
  }

  // ------------------------------------------------------------------ FrameSink

  streamHeader(_header: string): void {
    // nothing to check: the stream:features that follow tell everything we need
  }

  stanza(s: Stanza): void {
    if (s.name === 'stream:error') {
      this.destroy(new Error(`stream error: ${errorCondition(s.xml)}`));
      return;
    }
    if (s.name === 'proceed') this.splitter.discardRest(); // TLS bytes follow, not XML
    const w = this.waiter;
    if (w && w.match(s)) {
      this.waiter = null;
      clearTimeout(w.timer);
      w.resolve(s);
      return;
    }
    if (s.name === 'iq') {
      this.answerServerIq(s);
      return;
    }
    if (s.name === 'stream:features') {
      // after SASL2's <success/>, in the same read, before anyone waits for them (no restart)
      this.unclaimedFeatures = s;
      return;
    }
    this.onStanza?.(s);
  }

  streamEnd(): void {
    this.fail(new Error('stream closed by server'));
    if (!this.closing) this.socket?.end('</stream:stream>');
  }

  // ------------------------------------------------------------------ internals

  private offeredMechanisms(): string[] {
    return [...this.features.matchAll(/<mechanism>([^<]+)<\/mechanism>/g)].map((m) => m[1]!.trim());
  }

  private readonly flush = (): void => {
    this.flushQueued = false;
    if (this.outbox.length === 0) return;
    const data = this.outbox;
    this.outbox = '';
    if (this.socket && !this.socket.destroyed && !this.closing) this.socket.write(data);
  };

  private readonly onData = (chunk: Buffer): void => {
    this.splitter.push(this.decoder.write(chunk));
  };

  private readonly onError = (err: Error): void => {
    this.fail(err);
  };

  private readonly onSocketClose = (): void => {
    this.fail(new Error(this.closing ? 'connection closed' : 'connection closed by server'));
    this.markClosed();
  };

  private markClosed(): void {
    if (this.closed) return;
    this.closed = true;
    this.outbox = '';
    this.onClose?.();
  }

  /** Record the first failure and reject whatever is being waited for. */
  private fail(err: Error): void {
    if (!this.failure && !this.closing) this.failure = err;
    const w = this.waiter;
    if (w) {
      this.waiter = null;
      clearTimeout(w.timer);
      w.reject(this.failure ?? err);
    }
    for (const abort of [...this.aborters]) abort(this.failure ?? err);
  }

  private attach(socket: net.Socket): void {
    this.socket = socket;
    socket.on('data', this.onData);
    socket.on('error', this.onError);
    socket.on('close', this.onSocketClose);
  }

  private detach(socket: net.Socket): void {
    socket.off('data', this.onData);
    socket.off('error', this.onError);
    socket.off('close', this.onSocketClose);
  }

  /** Wait for `event` on `emitter`; fails on timeout or on any connection failure. */
  private waitFor(socket: net.Socket, event: string, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const finish = (err?: Error) => {
        clearTimeout(timer);
        this.aborters.delete(abort);
        socket.off(event, onEvent);
        if (err) reject(err); else resolve();
      };
      const abort = (e: Error) => finish(e);
      const onEvent = () => finish();
      const timer = setTimeout(() => this.destroy(new Error(`timeout waiting for ${what}`)), this.cfg.timeoutMs);
      this.aborters.add(abort);
      socket.once(event, onEvent);
    });
  }

  private servername(): string | undefined {
    return net.isIP(this.cfg.domain) ? undefined : this.cfg.domain;
  }

  private async connect(): Promise<void> {
    const { host, port } = this.cfg;
    if (this.cfg.tls === 'direct') {
      // XEP-0368 direct TLS; self-signed certificates are fine for a benchmark
      const socket = tls.connect({
        host, port, servername: this.servername(), rejectUnauthorized: false, secureContext: secureContext(),
        ALPNProtocols: ['xmpp-client'],
        ...(this.resumeTlsSession === null ? {} : { session: this.resumeTlsSession }),
      });
      socket.on('session', (session: Buffer) => { this.tlsSession = session; });
      this.attach(socket);
      await this.waitFor(socket, 'secureConnect', 'TLS handshake');
      this.tlsResumed = socket.isSessionReused();
      this.secure = true;
    } else {
      const socket = net.connect({ host, port });
      this.attach(socket);
      await this.waitFor(socket, 'connect', 'TCP connect');
    }
    this.socket?.setNoDelay(true);
  }

  private async upgradeToTls(): Promise<void> {
    const raw = this.socket;
    if (!raw) throw new Error('no socket');
    this.detach(raw);
    this.splitter.reset();
    this.decoder = new StringDecoder('utf8');
    const secure = tls.connect({
      socket: raw, servername: this.servername(), rejectUnauthorized: false, secureContext: secureContext(),
      ...(this.resumeTlsSession === null ? {} : { session: this.resumeTlsSession }),
    });
    secure.on('session', (session: Buffer) => { this.tlsSession = session; });
    this.attach(secure);
    await this.waitFor(secure, 'secureConnect', 'TLS handshake');
    this.tlsResumed = secure.isSessionReused();
    this.secure = true;
  }

  /** Send a stream header and wait for the stream features (RFC 6120 §4.3). */
  private async openStream(): Promise<void> {
    this.splitter.reset();
    this.send(`<?xml version='1.0'?><stream:stream to='${escapeXml(this.cfg.domain)}' xmlns='jabber:client' `
      + `xmlns:stream='http://etherx.jabber.org/streams' version='1.0' xml:lang='en'>`);
    const features = await this.expect('stream features', (s) => s.name === 'stream:features');
    this.features = features.xml;
  }

  private expect(what: string, match: (s: Stanza) => boolean): Promise<Stanza> {
    return new Promise((resolve, reject) => {
      if (this.closed || this.failure) {
        reject(this.failure ?? new Error(`connection closed before ${what}`));
        return;
      }
      const timer = setTimeout(() => this.destroy(new Error(`timeout waiting for ${what}`)), this.cfg.timeoutMs);
      this.waiter = { what, match, resolve, reject, timer };
    });
  }

  private expectIq(id: string, what: string): Promise<Stanza> {
    return this.expect(what, (s) => s.name === 'iq' && startTagAttr(s.xml, 'id') === id);
  }

  private async expectResult(id: string, what: string): Promise<Stanza> {
    const reply = await this.expectIq(id, what);
    if (startTagAttr(reply.xml, 'type') !== 'result') throw new Error(`${what} failed: ${errorCondition(reply.xml)}`);
    return reply;
  }

  /** RFC 6120 §8.2.3: every IQ get/set must be answered; pings get a result, the rest an error. */
  private answerServerIq(s: Stanza): void {
    const type = startTagAttr(s.xml, 'type');
    if (type !== 'get' && type !== 'set') return;
    // attribute values are taken as they appear in the XML, so they are already escaped
    const id = startTagAttr(s.xml, 'id') ?? '';
    const from = startTagAttr(s.xml, 'from');
    const to = from ? ` to='${from}'` : '';
    if (s.xml.includes('urn:xmpp:ping')) {
      this.send(`<iq type='result' id='${id}'${to}/>`);
    } else {
      this.send(`<iq type='error' id='${id}'${to}><error type='cancel'>`
        + `<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`);
    }
  }
}

/** Base64 text content of a SASL element (<success>..</success>, <challenge>..</challenge>), '' if empty. */
function saslPayload(xml: string): string {
  const gt = xml.indexOf('>');
  if (xml.charCodeAt(gt - 1) === 0x2f) return '';
  const end = xml.lastIndexOf('</');
  return end > gt ? xml.slice(gt + 1, end).trim() : '';
}
