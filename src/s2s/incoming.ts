// A stream another server opened to us (RFC 6120): STARTTLS, then the peer proves its domain by
// SASL EXTERNAL with a certificate (RFC 6120 §6, XEP-0178) or by Server Dialback (XEP-0220),
// after which its stanzas enter the router on our side. A stanza from a domain this stream has
// not authenticated is never routed: the stream is closed with `invalid-from`.
import type net from 'node:net';
import type tls from 'node:tls';
import Element from 'ltx/lib/Element.js';
import { parseJid } from '../core/jid.js';
import { NS_STANZAS, StanzaError, errorReply } from '../core/stanza.js';
import { serialize } from '../xml/serialize.js';
import {
  NS_SASL, NS_TLS, S2SConnection, certificateValidFor, newStreamId, settleServerAuthorization, streamHeaderProblem, stripContentNamespace,
  type AuthMethod,
} from './connection.js';
import { NS_DIALBACK_FEATURE, dialbackElement, dialbackKeyMatches } from './dialback.js';
import { authPolicy } from './settings.js';
import type { S2SService } from './service.js';

const MAX_PENDING_VERIFICATIONS = 4;

export class IncomingStream extends S2SConnection {
  readonly direction = 'incoming';
  streamId = '';
  /** The domain the peer addressed (ours), from the stream header. */
  localDomain = '';
  /** The domain the peer says it is, from the stream header (optional in RFC 6120 §4.7.1). */
  claimedDomain = '';
  /** Authenticated "remote local" pairs and how. */
  readonly authenticated = new Map<string, AuthMethod>();
  private saslDone = false;
  /** Dialback requests waiting for their verification, so a stream closed meanwhile answers nothing. */
  private verifying = 0;

  constructor(
    private readonly service: S2SService,
    socket: net.Socket,
    directTls: boolean,
  ) {
    super(socket, service.settings.maxStanzaSize, service.log.child({ s2s: 'in', address: socket.remoteAddress }), directTls);
  }

  get remoteDomains(): string[] {
    return [...new Set([...this.authenticated.keys()].map((pair) => pair.split(' ')[0]!))];
  }

  protected openingForError(): string {
    return this.header(this.localDomain || this.service.defaultDomain, undefined, (this.streamId ||= newStreamId()));
  }

  protected onClosed(reason: string): void {
    this.log.debug({ reason, remote: this.remoteDomains }, 'incoming server stream closed');
    this.service.forgetIncoming(this);
  }

  onStreamStart(name: string, attrs: Record<string, string>): void {
    const problem = streamHeaderProblem(name, attrs);
    if (problem !== null) return this.close('invalid-namespace', problem);
    const to = (attrs.to ?? '').toLowerCase();
    // RFC 6120 §4.7.2: a server stream names the domain it wants; we must serve it
    if (to === '') return this.close('improper-addressing', "The stream header needs a 'to' attribute");
    if (!this.service.serves(to)) return this.close('host-unknown', `${to} is not served here`);
    if (this.localDomain !== '' && to !== this.localDomain) return this.close('host-unknown', 'The domain cannot change on a stream restart');
    this.localDomain = to;
    this.claimedDomain = (attrs.from ?? '').toLowerCase();
    const major = Number((attrs.version ?? '0').split('.')[0]);
    if (!(major >= 1)) return this.close('unsupported-version', 'XMPP 1.0 is required');
    this.streamId = newStreamId();
    this.write(this.header(to, this.claimedDomain || undefined, this.streamId) + this.features());
  }

  private features(): string {
    let features = '<stream:features>';
    if (this.secure) {
      const socket = this.socket as tls.TLSSocket;
      this.log.debug({ claimed: this.claimedDomain, authorized: socket.authorized, problem: socket.authorizationError }, 'peer certificate');
    }
    const { requireEncryption } = this.service.settings;
    if (!this.secure) features += `<starttls xmlns='${NS_TLS}'>${requireEncryption ? '<required/>' : ''}</starttls>`;
    if (!this.saslDone && (this.secure || !requireEncryption)) {
      // XEP-0178 §3: offer EXTERNAL only when the certificate already proves the claimed domain
      if (this.claimedDomain !== '' && certificateValidFor(this.socket, this.claimedDomain)) {
        features += `<mechanisms xmlns='${NS_SASL}'><mechanism>EXTERNAL</mechanism></mechanisms>`;
      }
      features += `<dialback xmlns='${NS_DIALBACK_FEATURE}'><errors/></dialback>`;
    }
    return features + '</stream:features>';
  }

  onStanza(element: Element): void {
    if (this.closed) return;
    this.lastActivity = Date.now();
    const name = element.name;
    if (name === 'message' || name === 'presence' || name === 'iq') return this.stanza(element);
    const xmlns = element.attrs.xmlns;
    if (name === 'stream:error') {
      this.log.info({ remote: this.remoteDomains, error: element.getChildElements()[0]?.name }, 'the peer closed its stream with an error');
      return this.close();
    }
    if (name === 'starttls' && xmlns === NS_TLS) return this.startTls();
    if (xmlns === NS_SASL) return this.sasl(element);
    const dialback = dialbackElement(element);
    if (dialback === 'result') return this.dialbackResult(element);
    if (dialback === 'verify') return this.dialbackVerify(element);
    this.close('unsupported-stanza-type', `<${name}/> is not understood here`);
  }

  /** RFC 6120 §5.4: <proceed/>, then TLS; we ask for the peer's certificate to offer EXTERNAL. */
  private startTls(): void {
    if (this.secure) return this.close('policy-violation', 'TLS is already negotiated');
    this.socket.write(`<proceed xmlns='${NS_TLS}'/>`);
    const secureSocket = this.upgrade({ isServer: true, requestCert: true, rejectUnauthorized: false, ...this.service.tls.serverOptions() });
    secureSocket.once('secure', () => {
      settleServerAuthorization(secureSocket);
      this.secure = true;
    });
  }

  private requireEncryption(): boolean {
    if (this.secure || !this.service.settings.requireEncryption) return false;
    this.close('policy-violation', 'Use STARTTLS first: encryption is required');
    return true;
  }

  /** RFC 6120 §6.4 with the EXTERNAL mechanism (XEP-0178): the certificate proves the domain. */
  private sasl(element: Element): void {
    if (this.requireEncryption()) return;
    const fail = (condition: string, text: string) => {
      this.log.info({ claimed: this.claimedDomain, condition, text }, 'refused SASL EXTERNAL from a peer');
      this.write(`<failure xmlns='${NS_SASL}'><${condition}/><text>${text}</text></failure>`);
    };
    if (element.name !== 'auth') return fail('malformed-request', 'Only EXTERNAL is offered');
    if (this.saslDone) return this.close('policy-violation', 'Already authenticated');
    if (element.attrs.mechanism !== 'EXTERNAL') return fail('invalid-mechanism', 'Only EXTERNAL is offered');
    const text = element.getText().trim();
    // RFC 6120 §6.4.2: "=" is an empty response; an authzid must be the claimed domain
    const authzid = text === '' || text === '=' ? this.claimedDomain : Buffer.from(text, 'base64').toString('utf8').toLowerCase();
    if (authzid === '' || authzid !== this.claimedDomain) return fail('invalid-authzid', 'The authorization identity must be the domain in the stream header');
    if (!certificateValidFor(this.socket, authzid)) return fail('not-authorized', 'Your certificate is not valid for your domain');
    this.saslDone = true;
    this.write(`<success xmlns='${NS_SASL}'/>`);
    this.restart();
    this.authenticate(authzid, this.localDomain, 'sasl-external');
  }

  private authenticate(remote: string, local: string, method: AuthMethod): void {
    this.authenticated.set(`${remote} ${local}`, method);
    this.log.info({ remote, local, method }, 'incoming server stream authenticated');
    this.service.incomingAuthenticated(this, remote);
  }

  /** XEP-0220 §2.1.2: the peer asks to be accepted as `from`; we ask `from`'s authoritative server. */
  private dialbackResult(element: Element): void {
    if (this.requireEncryption()) return;
    const remote = (element.attrs.from ?? '').toLowerCase();
    const local = (element.attrs.to ?? '').toLowerCase();
    const key = element.getText().trim();
    const answer = (type: 'valid' | 'invalid' | 'error', error?: string) => {
      const reply = new Element('db:result', { from: local, to: remote, type });
      if (error !== undefined) reply.c('error', { type: 'cancel' }).c(error, { xmlns: NS_STANZAS });
      this.write(serialize(reply));
    };
    if (remote === '' || local === '' || key === '') return this.close('improper-addressing', 'db:result needs from, to and a key');
    // XEP-0220 §2.4: errors that do not end the stream
    if (!this.service.serves(local)) return answer('error', 'item-not-found');
    if (this.claimedDomain !== '' && remote !== this.claimedDomain) {
      // several domains over one stream (dialback piggybacking) is not supported yet
      return answer('error', 'policy-violation');
    }
    const policy = authPolicy(this.service.settings, remote);
    const certificateValid = certificateValidFor(this.socket, remote);
    if (certificateValid) return this.authenticate(remote, local, 'dialback-with-certificate'), answer('valid');
    if (!policy.dialbackAllowed) {
      this.log.info({ remote }, 'refused dialback: this domain must present a valid certificate');
      return answer('error', 'not-authorized');
    }
    // each request costs a verification round trip: a peer gets a few at a time, not a flood
    if (this.verifying >= MAX_PENDING_VERIFICATIONS) return answer('error', 'resource-constraint');
    this.verifying++;
    this.service.verifyDialback(local, remote, this.streamId, key).then((outcome) => {
      this.verifying--;
      if (this.closed) return;
      if (outcome === 'valid') {
        answer('valid');
        this.authenticate(remote, local, 'dialback');
      } else if (outcome === 'invalid') {
        this.log.warn({ remote, local, address: this.remoteAddress }, 'dialback key refused by the authoritative server: the peer is not who it claims');
        answer('invalid');
        this.close('not-authorized', `${remote} did not confirm this stream`);
      } else {
        answer('error', 'remote-server-not-found');
      }
    });
  }

  /** XEP-0220 §2.1.3: we are the authoritative server; was this key made by us for that stream? */
  private dialbackVerify(element: Element): void {
    const receiving = (element.attrs.from ?? '').toLowerCase();
    const originating = (element.attrs.to ?? '').toLowerCase();
    const id = element.attrs.id ?? '';
    const key = element.getText();
    const valid = this.service.serves(originating) && id !== '' && dialbackKeyMatches(this.service.secret, receiving, originating, id, key);
    this.log.debug({ receiving, originating, valid }, 'answered a dialback verification');
    this.write(serialize(new Element('db:verify', { from: originating, to: receiving, id, type: valid ? 'valid' : 'invalid' })));
  }

  /** A stanza from the peer: checked against the authenticated domains, then routed on our side. */
  private stanza(stanza: Element): void {
    if (this.authenticated.size === 0) return this.close('not-authorized', 'Authenticate your domain first');
    stripContentNamespace(stanza);
    const attrs = stanza.attrs;
    // RFC 6120 §8.1.1.2 / §8.1.2.2: both addresses are required between servers
    if (attrs.from === undefined || attrs.to === undefined) return this.close('improper-addressing', "Stanzas between servers need 'from' and 'to'");
    const from = parseJid(attrs.from);
    const to = parseJid(attrs.to);
    if (from === null) return this.close('invalid-from', `Malformed address: ${attrs.from}`);
    if (to === null) return this.refuse(stanza, new StanzaError('jid-malformed', `Malformed address: ${attrs.to}`));
    if (!this.authenticated.has(`${from.domain} ${to.domain}`)) {
      // RFC 6120 §4.9.3.9: a 'from' this stream has not proven
      if (!this.remoteDomains.includes(from.domain)) {
        this.log.warn({ from: attrs.from, authenticated: this.remoteDomains }, 'stanza from a domain the stream has not authenticated');
        return this.close('invalid-from', `${from.domain} is not authenticated on this stream`);
      }
      if (!this.service.serves(to.domain)) return this.close('host-unknown', `${to.domain} is not served here`);
      // one of our domains the peer did not authenticate for (e.g. a component): XEP-0220 §2.1.1
      return this.close('improper-addressing', `${to.domain} was not authenticated on this stream`);
    }
    if (stanza.name === 'iq' && (attrs.id === undefined || !['get', 'set', 'result', 'error'].includes(attrs.type ?? ''))) {
      return this.refuse(stanza, new StanzaError('bad-request', 'An IQ needs an id and a valid type'));
    }
    this.service.server.processFromRemote(stanza, from, to);
  }

  /** An error reply sent back on the peer's outgoing stream (through the router, like any reply). */
  private refuse(stanza: Element, error: StanzaError): void {
    if (stanza.attrs.type === 'error') return;
    const reply = errorReply(stanza, error);
    reply.attrs.from = this.localDomain;
    this.service.server.router.route(reply);
  }

  get busyVerifying(): boolean {
    return this.verifying > 0;
  }

  /** The peer's TLS socket, when TLS was negotiated. */
  get tlsSocket(): tls.TLSSocket | undefined {
    return this.secure ? (this.socket as tls.TLSSocket) : undefined;
  }
}
