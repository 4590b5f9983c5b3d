// The router: where a stanza goes once its sender is known (RFC 6120 §10, RFC 6121 §8).
//
// route(stanza) looks at `to`: a remote domain goes to the `route/remote` server event (s2s), a
// local one fires `<kind>/<host|bare|full>` on that host. Modules hook those events at higher
// priorities (roster for subscriptions, presence for probes, offline storage...); the RFC's
// default rules, installed here at the lowest priority, deliver to sessions or bounce.
import type Element from 'ltx/lib/Element.js';
import type { Logger } from 'pino';
import type { AccountStore } from '../accounts/store.js';
import type { EventBus } from './events.js';
import type { VirtualHost } from './host.js';
import { Jid, parseJid } from './jid.js';
import type { IqTarget } from './iq.js';
import type { Delivery, Placement, RemoteRoute, SessionDirectory, SessionRef } from './ports.js';
import { StanzaError, errorReply, iqResult, messageType } from './stanza.js';
import { serialize } from '../xml/serialize.js';

/** The event payload of `message/*`, `presence/*`, `iq/*` and their `pre-` forms. */
export interface StanzaEvent {
  stanza: Element;
  from: Jid;
  to: Jid;
  host: VirtualHost;
  /** The local client session it came from, when it came from one (written to through Delivery). */
  session?: SessionRef | undefined;
  /**
   * Set by a `pre-` hook of a client stanza (e.g. the archive): asked once the router has taken
   * the stanza, it says what must be stored before the stanza counts as accepted (the promise
   * stream management waits for before acknowledging, XEP-0198). See Kernel.processFromClient.
   */
  durable?: Durable | undefined;
}

/** What must be written before a client stanza is accepted; an object the hook already has, not a closure per stanza. */
export interface Durable {
  written(): unknown;
}

/**
 * A service on its own domain (e.g. a MUC service at conference.<host>), run by a module: every
 * stanza addressed to that domain or an address under it is handed to `receive`.
 */
export interface Component {
  readonly domain: string;
  /** The virtual host the component belongs to. */
  readonly host: VirtualHost;
  receive(stanza: Element, from: Jid, to: Jid): unknown;
  /**
   * Its entities (rooms) each run on one node of a cluster: called when this node takes one
   * over (first use, or its node died), before its first stanza here, to read its stored state.
   * Without it the addresses under the domain are served on every node.
   */
  entityPlaced?(local: string): Promise<void>;
}

/** The payload of `message/offline`: a message for an account with no available resource. */
export interface OfflineEvent {
  stanza: Element;
  to: Jid;
  host: VirtualHost;
}

export type RouteTarget = 'host' | 'bare' | 'full';

export function targetOf(to: Jid): RouteTarget {
  return to.local === '' ? 'host' : to.resource === '' ? 'bare' : 'full';
}

type StanzaTarget = RouteTarget | 'none';
const eventNames = (prefix: string, kind: string): Record<StanzaTarget, string> =>
  ({ none: `${prefix}${kind}/none`, host: `${prefix}${kind}/host`, bare: `${prefix}${kind}/bare`, full: `${prefix}${kind}/full` });
const ROUTED = { message: eventNames('', 'message'), presence: eventNames('', 'presence'), iq: eventNames('', 'iq') };
const BEFORE = { message: eventNames('pre-', 'message'), presence: eventNames('pre-', 'presence'), iq: eventNames('pre-', 'iq') };

/**
 * The event a stanza of `kind` for `target` fires, e.g. `message/bare`, or `pre-message/bare`
 * before routing: the same string each time, not one built per stanza and hashed again for the
 * handlers' map.
 */
export function stanzaEvent(kind: string, target: StanzaTarget, before = false): string {
  const names = before ? BEFORE : ROUTED;
  const known = kind === 'message' ? names.message : kind === 'presence' ? names.presence : kind === 'iq' ? names.iq : undefined;
  return known !== undefined ? known[target] : `${before ? 'pre-' : ''}${kind}/${target}`;
}

const DEFAULT_RULES_PRIORITY = -1000;

export class Router {
  /** Component domains served here (see Component). */
  readonly components = new Map<string, Component>();
  /** Callbacks waiting for an account-existence lookup, per account, so their order is kept. */
  private readonly pendingLookups = new Map<string, Array<(exists: boolean) => void>>();
  /** Where stanzas for other domains go (s2s), connected by the composition root when federation is on. */
  remote: RemoteRoute | undefined;
  /** Which node runs each room, in a cluster (src/cluster); undefined in one process. */
  placement: Placement | undefined;

  constructor(
    private readonly hosts: ReadonlyMap<string, VirtualHost>,
    private readonly sessions: SessionDirectory,
    private readonly delivery: Delivery,
    private readonly accounts: AccountStore,
    private readonly serverEvents: EventBus,
    private readonly log: Logger,
  ) {}

  /**
   * Route a stanza whose `from` is trustworthy (stamped by a stream or built by the server).
   * `session` is the local client it came from, if any.
   */
  route(stanza: Element): void {
    const fromAttr = stanza.attrs.from;
    const sender = fromAttr === undefined ? undefined : parseJid(fromAttr);
    const toAttr = stanza.attrs.to;
    // RFC 6120 §10.3: no 'to' means the sender's own account
    const to = toAttr === undefined ? (sender ? sender.toBare() : null) : parseJid(toAttr);
    if (sender === null || to === null) {
      this.log.warn({ from: fromAttr, to: toAttr, kind: stanza.name }, 'dropping a stanza with an unroutable address');
      return;
    }
    // a stanza without 'from' was generated by the server for one of its own users
    this.routeAddressed(stanza, sender ?? new Jid('', to.domain), to);
  }

  /** Like route() when the addresses are already parsed (the client stream did it): no second parse. */
  routeAddressed(stanza: Element, from: Jid, to: Jid, session?: SessionRef): unknown {
    const host = this.hosts.get(to.domain);
    if (host === undefined) {
      const component = this.components.get(to.domain);
      if (component !== undefined) {
        if (to.local !== '' && component.entityPlaced !== undefined && this.placement !== undefined) return this.placement.receive(component, stanza, from, to);
        return component.receive(stanza, from, to);
      }
      // `route/remote` lets modules refuse (blocking, XEP-0191); then the RemoteRoute port takes it
      if (this.serverEvents.fire('route/remote', { stanza, from, to }) === undefined && this.remote?.route(stanza, from, to) !== true) {
        this.bounce(stanza, new StanzaError('remote-server-not-found', `${to.domain} is not served here and federation is off`));
      }
      return;
    }
    return host.events.fire(stanzaEvent(stanza.name, targetOf(to)), { stanza, from, to, host, session } satisfies StanzaEvent);
  }

  /** Send the error reply for `stanza` back to its sender, unless it was an error itself (RFC 6120 §8.3.1). */
  bounce(stanza: Element, error: StanzaError): void {
    if (stanza.attrs.type === 'error' || stanza.attrs.from === undefined) return;
    if (stanza.name === 'iq' && stanza.attrs.type === 'result') return;
    const reply = errorReply(stanza, error);
    // addressed to the sender's own account: the error comes from that account's bare JID
    if (reply.attrs.from === undefined) reply.attrs.from = parseJid(stanza.attrs.from)?.bare ?? '';
    this.route(reply);
  }

  /** Install the RFC 6121 §8.5 default rules on a host, below every module. */
  installDefaultRules(host: VirtualHost): void {
    const on = (event: string, handler: (e: StanzaEvent) => unknown) => host.events.on(event, handler, DEFAULT_RULES_PRIORITY);

    on('message/full', (e) => {
      const session = this.sessions.find(e.to.bare, e.to.resource);
      if (session !== undefined) {
        this.delivery.deliver(session, e.stanza);
        // after the delivery: modules add to it (carbons' copies), never deliver it themselves
        host.events.fire('message/delivered', e);
        return true;
      }
      // §8.5.3.2.1: no such resource. chat/normal go to the bare JID; groupchat bounces; headline is dropped.
      const type = messageType(e.stanza);
      if (type === 'groupchat') return this.bounce(e.stanza, new StanzaError('service-unavailable')), true;
      if (type === 'headline' || type === 'error') return true;
      return this.messageToBare(e.stanza, e.to.toBare(), host) ?? true;
    });
    on('message/bare', (e) => this.messageToBare(e.stanza, e.to, host) ?? true);
    on('message/host', (e) => {
      this.log.debug({ from: e.from.toString() }, 'message to the server ignored');
      return true;
    });

    on('presence/full', (e) => {
      const type = e.stanza.attrs.type;
      if (type === 'subscribe' || type === 'subscribed' || type === 'unsubscribe' || type === 'unsubscribed') {
        return host.events.fire('presence/bare', { ...e, to: e.to.toBare() }), true; // §8.5.3.2.2
      }
      const session = this.sessions.find(e.to.bare, e.to.resource);
      if (session !== undefined && type !== 'probe') this.delivery.deliver(session, e.stanza);
      return true; // §8.5.3.2.2: otherwise silently ignored
    });
    on('presence/bare', (e) => {
      const type = e.stanza.attrs.type;
      // §8.5.2.1.2: available/unavailable to the bare JID go to every available resource.
      if (type === undefined || type === 'unavailable') this.deliverToAvailable(e.to.bare, e.stanza, false);
      return true;
    });
    on('presence/host', () => true);

    on('iq/full', (e) => {
      const session = this.sessions.find(e.to.bare, e.to.resource);
      if (session !== undefined) this.delivery.deliver(session, e.stanza);
      else if (e.stanza.attrs.type === 'get' || e.stanza.attrs.type === 'set') this.bounce(e.stanza, new StanzaError('service-unavailable'));
      return true;
    });
    // §8.5.2.1.3 / §8.5.1: IQs to an account's bare JID or to the server are answered by the server.
    on('iq/bare', (e) => (this.dispatchIq(e, 'account'), true));
    on('iq/host', (e) => (this.dispatchIq(e, 'host'), true));
  }

  /**
   * A stanza handed to a session that ended before its client confirmed it (XEP-0198 §5 after
   * the resumption window): messages find another way — the account's available resources, else
   * offline storage; requests are answered with an error. `otherCopies` are, for a message to the
   * account, the other resources that got their own copy with it: while one of them is still
   * there, the message is not delivered twice. (Checking who is online now instead would drop a
   * message that only this session had, once a resource that never got it comes online.)
   */
  /** Returns a promise when the message is accepted only once stored (offline storage). */
  undelivered(stanza: Element, recipient: Jid, otherCopies: readonly SessionRef[] = []): Promise<unknown> | undefined {
    if (stanza.name === 'iq') {
      const type = stanza.attrs.type;
      if (type === 'get' || type === 'set') this.bounce(stanza, new StanzaError('recipient-unavailable'));
      return undefined;
    }
    if (stanza.name !== 'message') return undefined;
    const type = messageType(stanza);
    if (type === 'groupchat' || type === 'headline' || type === 'error') return undefined;
    const host = this.hosts.get(recipient.domain);
    if (host === undefined) return undefined;
    for (const other of otherCopies) {
      if (other.available && this.sessions.find(other.jid.bare, other.jid.resource) === other) return undefined;
    }
    return this.messageToBare(stanza, recipient.toBare(), host);
  }

  /** Sends to each available resource with non-negative priority; returns how many got it. */
  deliverToAvailable(bare: string, stanza: Element, nonNegativeOnly: boolean): number {
    const resources = this.sessions.resources(bare);
    if (resources === undefined) return 0;
    let xml: string | undefined;
    let delivered = 0;
    for (const session of resources.values()) {
      if (!session.available || (nonNegativeOnly && session.priority < 0)) continue;
      xml ??= serialize(stanza); // serialised once for all resources
      this.delivery.deliver(session, stanza, xml);
      delivered++;
    }
    return delivered;
  }

  /**
   * §8.5.2.1.1 / §8.5.2.2.1: a message for an account's bare JID. Returns a promise when the
   * message is accepted only once it is stored (offline storage), so that stream management
   * does not acknowledge it before then.
   */
  private messageToBare(stanza: Element, to: Jid, host: VirtualHost): Promise<unknown> | undefined {
    const type = messageType(stanza);
    if (type === 'groupchat') return void this.bounce(stanza, new StanzaError('service-unavailable'));
    // We deliver chat/normal/headline to every non-negative available resource (an option §8.5.2.1.1 allows).
    if (this.deliverToAvailable(to.bare, stanza, true) > 0) return undefined;
    if (type === 'error') return undefined;
    let answered = false;
    let result: unknown;
    let settle: ((value: unknown) => void) | undefined;
    this.whenAccountKnown(host.domain, to.local, (exists) => {
      answered = true;
      if (!exists) {
        if (type !== 'headline') this.bounce(stanza, new StanzaError('service-unavailable'));
      } else if (type !== 'headline') {
        result = host.events.fire('message/offline', { stanza, to, host } satisfies OfflineEvent);
        if (result === undefined) this.bounce(stanza, new StanzaError('service-unavailable', 'the recipient is offline'));
      }
      settle?.(result);
    });
    if (answered) return result instanceof Promise ? result : undefined;
    return new Promise((resolve) => (settle = (value) => resolve(value instanceof Promise ? value : undefined)));
  }

  /**
   * Calls `callback` with whether the account exists: at once when known, else after one lookup.
   * Callbacks for the same account run in call order, so messages keep their order.
   */
  whenAccountKnown(domain: string, username: string, callback: (exists: boolean) => void): void {
    const key = `${username}@${domain}`;
    const waiting = this.pendingLookups.get(key);
    if (waiting !== undefined) return void waiting.push(callback);
    const known = this.accounts.knownToExist(domain, username);
    if (known !== undefined) return callback(known);
    const queue = [callback];
    this.pendingLookups.set(key, queue);
    this.accounts.exists(domain, username).then(
      (exists) => {
        this.pendingLookups.delete(key);
        for (const cb of queue) cb(exists);
      },
      (err: unknown) => {
        this.pendingLookups.delete(key);
        this.log.error({ err, account: key }, 'account lookup failed');
        for (const cb of queue) cb(false);
      },
    );
  }

  private dispatchIq(e: StanzaEvent, target: IqTarget): void {
    const iq = e.stanza;
    const type = iq.attrs.type;
    if (type !== 'get' && type !== 'set') return; // results and errors to the server end here
    const payload = firstElement(iq);
    const handler = payload && e.host.iqHandler(target, type, payload.attrs.xmlns ?? '');
    if (!payload || !handler) return this.bounce(iq, new StanzaError('service-unavailable'));
    const reply = (result: Element | null | void) => {
      const response = iqResult(iq, result ?? null);
      if (!iq.attrs.to) delete response.attrs.from;
      this.route(response);
    };
    const fail = (err: unknown) => {
      if (err instanceof StanzaError) return this.bounce(iq, err);
      this.log.error({ err, xmlns: payload.attrs.xmlns, from: e.from.toString() }, 'IQ handler failed');
      this.bounce(iq, new StanzaError('internal-server-error'));
    };
    try {
      const result = handler({ iq, payload, from: e.from, to: e.to, session: e.session });
      if (result instanceof Promise) result.then(reply, fail);
      else reply(result);
    } catch (err) {
      fail(err);
    }
  }
}

export function firstElement(stanza: Element): Element | undefined {
  for (const child of stanza.children) if (typeof child !== 'string') return child;
  return undefined;
}
