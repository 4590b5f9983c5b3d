// Our stream to another server for one (local domain, remote domain) pair (RFC 6120): resolve,
// connect (STARTTLS or direct TLS), then authenticate with SASL EXTERNAL when the peer's
// certificate is valid (XEP-0178) or else Server Dialback (XEP-0220). Stanzas wait in a queue
// until the stream is ready. The same stream carries our dialback verification requests to that
// domain's servers (XEP-0220 §2.1.3), which may be sent before the stream is authenticated.
import net from 'node:net';
import type tls from 'node:tls';
import type Element from 'ltx/lib/Element.js';
import type { StanzaErrorCondition, StreamErrorCondition } from '../core/stanza.js';
import { serialize } from '../xml/serialize.js';
import {
  NS_SASL, NS_TLS, S2SConnection, certificateValidFor, streamHeaderProblem, type AuthMethod,
} from './connection.js';
import { NS_DIALBACK, NS_DIALBACK_FEATURE, dialbackElement, dialbackKey } from './dialback.js';
import type { S2SRoute } from './settings.js';
import { authPolicy } from './settings.js';
import type { S2SService } from './service.js';

export type VerifyOutcome = 'valid' | 'invalid' | 'error';

/** A dialback verification we asked (or will ask) the peer for. */
export interface VerifyRequest {
  id: string;
  key: string;
  resolve(outcome: VerifyOutcome): void;
}

type OutgoingState = 'connecting' | 'negotiating' | 'ready' | 'closed';

export class OutgoingStream extends S2SConnection {
  readonly direction = 'outgoing';
  state: OutgoingState = 'connecting';
  method: AuthMethod | undefined;
  /** Stanzas waiting for the stream to be ready. */
  readonly queue: Element[] = [];
  private streamId = '';
  private saslDone = false;
  private readonly verifyQueue: VerifyRequest[] = [];
  private readonly verifying = new Map<string, VerifyRequest>();
  /** Why the stream failed, when it did not get ready: the error for the queued stanzas. */
  private failure: { condition: StanzaErrorCondition; text: string } | undefined;
  /** db:verify may go out once the stream is encrypted (or encryption is not required). */
  private canSendVerify = false;
  /** The peer's header declared the dialback namespace (servers from before the stream feature). */
  private peerDeclaredDialback = false;

  constructor(
    private readonly service: S2SService,
    socket: net.Socket,
    readonly local: string,
    readonly remote: string,
    private readonly route: S2SRoute,
  ) {
    super(socket, service.settings.maxStanzaSize, service.log.child({ s2s: 'out', local, remote }), route.tls === 'direct');
  }

  /** Starts the stream on a connected socket (after the TLS handshake for direct TLS). */
  open(): void {
    this.state = 'negotiating';
    this.write(this.header(this.local, this.remote, undefined));
  }

  /** Sends now when ready, else queues (the service checks the queue limit). */
  send(stanza: Element, xml?: string): void {
    if (this.state === 'ready') this.write(xml ?? serialize(stanza));
    else this.queue.push(stanza);
  }

  /** XEP-0220 §2.1.3: ask this domain whether it issued `key` for stream `id` (one of its streams to us). */
  verify(id: string, key: string): Promise<VerifyOutcome> {
    return new Promise((resolve) => {
      const request = { id, key, resolve };
      if (this.state === 'closed') return resolve('error');
      if (this.state === 'ready' || (this.state === 'negotiating' && this.canSendVerify)) this.sendVerify(request);
      else this.verifyQueue.push(request);
    });
  }

  private sendVerify(request: VerifyRequest): void {
    this.verifying.set(request.id, request);
    this.write(`<db:verify from='${this.local}' to='${this.remote}' id='${escapeAttr(request.id)}'>${escapeAttr(request.key)}</db:verify>`);
  }

  protected openingForError(): string {
    return this.header(this.local, this.remote, undefined);
  }

  /**
   * The stream could not be made ready: it is closed (with `streamError` when the peer broke the
   * protocol) and every queued stanza and verification gets an answer.
   */
  fail(condition: StanzaErrorCondition, text: string, streamError?: StreamErrorCondition): void {
    this.failure ??= { condition, text };
    if (!this.closed) this.close(streamError, streamError && text);
  }

  protected onClosed(reason: string): void {
    const wasReady = this.state === 'ready';
    this.state = 'closed';
    for (const request of [...this.verifyQueue, ...this.verifying.values()]) request.resolve('error');
    this.verifyQueue.length = 0;
    this.verifying.clear();
    const failure = this.failure ?? { condition: 'remote-server-not-found' as const, text: `The stream to ${this.remote} closed: ${reason}` };
    if (wasReady) this.log.debug({ reason }, 'outgoing server stream closed');
    else this.log.info({ reason: failure.text }, 'outgoing server stream failed');
    this.service.outgoingClosed(this, wasReady, failure);
  }

  onStreamStart(name: string, attrs: Record<string, string>): void {
    const problem = streamHeaderProblem(name, attrs);
    if (problem !== null) return this.fail('remote-server-not-found', problem, 'invalid-namespace');
    this.streamId = attrs.id ?? '';
    this.peerDeclaredDialback = attrs['xmlns:db'] === NS_DIALBACK;
  }

  onStanza(element: Element): void {
    if (this.closed) return;
    const name = element.name;
    const xmlns = element.attrs.xmlns;
    if (name === 'stream:features') return this.features(element);
    if (name === 'stream:error') {
      const condition = element.children.find((c): c is Element => typeof c !== 'string' && c.name !== 'text')?.name ?? 'undefined-condition';
      const text = element.getChildText('text') ?? '';
      return this.fail('remote-server-not-found', `${this.remote} closed the stream: ${condition}${text ? ` (${text})` : ''}`);
    }
    if (name === 'proceed' && xmlns === NS_TLS) return this.startTls();
    if (name === 'failure' && xmlns === NS_TLS) return this.fail('remote-server-not-found', `TLS refused by ${this.remote}`);
    if (xmlns === NS_SASL) return this.saslAnswer(element);
    const dialback = dialbackElement(element);
    if (dialback === 'result') return this.dialbackAnswer(element);
    if (dialback === 'verify') return this.verifyAnswer(element);
    // we do not offer bidirectional streams (XEP-0288): nothing else may come this way
    this.log.debug({ name }, 'ignoring an element on an outgoing server stream');
  }

  private features(features: Element): void {
    if (this.saslDone) return this.ready('sasl-external');
    const requireEncryption = this.service.settings.requireEncryption;
    if (!this.secure) {
      if (features.getChild('starttls', NS_TLS) !== undefined) return this.write(`<starttls xmlns='${NS_TLS}'/>`);
      if (requireEncryption) return this.fail('remote-server-not-found', `${this.remote} does not offer TLS`);
    }
    this.canSendVerify = true;
    for (const request of this.verifyQueue.splice(0)) this.sendVerify(request);

    const policy = authPolicy(this.service.settings, this.remote);
    const certificateValid = certificateValidFor(this.socket, this.remote);
    const mechanisms = features.getChild('mechanisms', NS_SASL);
    const offersExternal = mechanisms?.getChildren('mechanism').some((m) => m.getText().trim() === 'EXTERNAL') ?? false;
    if (certificateValid && offersExternal) {
      // XEP-0178 §3: the authorization identity is our domain
      return this.write(`<auth xmlns='${NS_SASL}' mechanism='EXTERNAL'>${Buffer.from(this.local).toString('base64')}</auth>`);
    }
    if (policy.certificateRequired && !certificateValid) {
      return this.fail('remote-server-not-found', `${this.remote} has no valid certificate and the policy requires one`);
    }
    // XEP-0220 §2.1.1: dialback, offered as a stream feature (or announced by the namespace)
    if (features.getChild('dialback', NS_DIALBACK_FEATURE) !== undefined || this.peerDeclaredDialback) {
      if (!policy.dialbackAllowed && !certificateValid) return this.fail('remote-server-not-found', `dialback with ${this.remote} is not allowed by the policy`);
      const key = dialbackKey(this.service.secret, this.remote, this.local, this.streamId);
      return this.write(`<db:result from='${this.local}' to='${this.remote}'>${key}</db:result>`);
    }
    this.fail('remote-server-not-found', `no authentication method in common with ${this.remote}`);
  }

  private startTls(): void {
    const secureSocket = this.upgrade({
      ...this.service.clientTlsOptions(this.local),
      servername: this.route.tls === 'direct' || net.isIP(this.remote) ? undefined : this.remote,
      rejectUnauthorized: false, // judged ourselves: an untrusted certificate still allows dialback
    });
    secureSocket.once('secureConnect', () => {
      this.secure = true;
      this.write(this.header(this.local, this.remote, undefined));
    });
  }

  private saslAnswer(element: Element): void {
    if (element.name === 'success') {
      this.saslDone = true;
      this.restart();
      this.write(this.header(this.local, this.remote, undefined));
      return;
    }
    this.fail('remote-server-not-found', `${this.remote} refused our certificate (SASL ${element.getChildElements()[0]?.name ?? 'failure'})`);
  }

  private dialbackAnswer(element: Element): void {
    const type = element.attrs.type;
    if (type === 'valid') return this.ready(certificateValidFor(this.socket, this.remote) ? 'dialback-with-certificate' : 'dialback');
    const condition = element.getChild('error')?.getChildElements()[0]?.name;
    this.fail('remote-server-not-found', `${this.remote} refused dialback (${type ?? 'no type'}${condition ? `: ${condition}` : ''})`);
  }

  private verifyAnswer(element: Element): void {
    const id = element.attrs.id ?? '';
    const request = this.verifying.get(id);
    if (request === undefined) return this.log.debug({ id }, 'dialback verification answer for nothing we asked');
    this.verifying.delete(id);
    request.resolve(element.attrs.type === 'valid' ? 'valid' : element.attrs.type === 'invalid' ? 'invalid' : 'error');
  }

  private ready(method: AuthMethod): void {
    this.state = 'ready';
    this.method = method;
    this.log.info({ method, queued: this.queue.length }, 'outgoing server stream ready');
    for (const request of this.verifyQueue.splice(0)) this.sendVerify(request);
    for (const stanza of this.queue.splice(0)) this.write(serialize(stanza));
    this.service.outgoingReady(this);
  }

  /** The peer's TLS socket, when TLS was negotiated. */
  get tlsSocket(): tls.TLSSocket | undefined {
    return this.secure ? (this.socket as tls.TLSSocket) : undefined;
  }
}

function escapeAttr(value: string): string {
  return value.replace(/[&<>'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}
