// A domain a module serves besides its host (conference.<host>, upload.<host>, later pubsub and
// proxies), with the module API a host has: IQ handlers, service discovery (identity, features,
// items, XEP-0128 extensions), ping, and error bounces. A module declares what it offers
// (m.component(domain) returns one) instead of dispatching by hand; the addresses under the
// domain (room@conference.<host>/nick) go to the handler it gives `entities`.
import Element from 'ltx/lib/Element.js';
import type { Logger } from 'pino';
import type { DiscoIdentity, VirtualHost } from './host.js';
import type { IqHandler, IqType } from './iq.js';
import type { Jid } from './jid.js';
import type { Component } from './router.js';
import { StanzaError, iqResult } from './stanza.js';

export const NS_DISCO_INFO = 'http://jabber.org/protocol/disco#info';
export const NS_DISCO_ITEMS = 'http://jabber.org/protocol/disco#items';
export const NS_PING = 'urn:xmpp:ping';

export interface DiscoItem {
  jid: string;
  name?: string | undefined;
}

/** What a served domain needs of the kernel: routing its answers and bounces. */
export interface ComponentRouting {
  route(stanza: Element): void;
  bounce(stanza: Element, error: StanzaError): void;
}

export class ServedDomain implements Component {
  /** XEP-0030 §3.1: disco itself, and XEP-0199 §4 ping, which every served domain answers. */
  readonly features = new Set<string>([NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PING]);
  readonly identities: DiscoIdentity[] = [];
  private readonly iqHandlers = new Map<string, IqHandler>();
  private itemsOf: () => Iterable<DiscoItem> = () => [];
  private readonly extensions: Array<() => Element> = [];
  private entityHandler: ((stanza: Element, from: Jid, to: Jid) => unknown) | undefined;
  /** Set by `entities` when each entity runs on one node of a cluster (see Component). */
  entityPlaced: ((local: string) => Promise<void>) | undefined;
  /** The text of the error a message to the domain itself gets (it has no one to read it). */
  messageRefusal = 'This service does not take messages';

  constructor(
    readonly domain: string,
    readonly host: VirtualHost,
    private readonly routing: ComponentRouting,
    private readonly log: Logger,
  ) {}

  /** Handle IQs of `type` whose payload is in `xmlns`, addressed to the domain itself. */
  iq(type: IqType, xmlns: string, handler: IqHandler): void {
    const key = `${type}|${xmlns}`;
    if (this.iqHandlers.has(key)) throw new Error(`two handlers for ${type} ${xmlns} on ${this.domain}`);
    this.iqHandlers.set(key, handler);
  }

  feature(namespace: string): void {
    this.features.add(namespace);
  }

  identity(category: string, type: string, name?: string): void {
    this.identities.push({ category, type, name });
  }

  /** The domain's disco#items (XEP-0030 §4), asked for each request (e.g. the public rooms). */
  items(list: () => Iterable<DiscoItem>): void {
    this.itemsOf = list;
  }

  /** An extension of the domain's disco#info (XEP-0128), e.g. upload's max-file-size form. */
  infoExtension(form: () => Element): void {
    this.extensions.push(form);
  }

  /**
   * Stanzas to addresses under the domain (room@domain, room@domain/nick). Without it they bounce.
   * With `placed`, each entity runs on one node of a cluster, which calls it when it takes the
   * entity over (to read its stored state) before handing it the entity's first stanza.
   */
  entities(handler: (stanza: Element, from: Jid, to: Jid) => unknown, placed?: (local: string) => Promise<void>): void {
    this.entityHandler = handler;
    this.entityPlaced = placed;
  }

  /** The error reply for `stanza`, from the address it was sent to (RFC 6120 §8.3). */
  bounce(stanza: Element, error: StanzaError): void {
    this.routing.bounce(stanza, error);
  }

  receive(stanza: Element, from: Jid, to: Jid): unknown {
    if (to.local !== '') {
      if (this.entityHandler !== undefined) return this.entityHandler(stanza, from, to);
    } else if (to.resource === '') {
      if (stanza.name === 'iq') this.serviceIq(stanza, from, to);
      else if (stanza.name === 'message') this.bounce(stanza, new StanzaError('service-unavailable', this.messageRefusal));
      return true; // presence to the service: nothing to do
    }
    if (stanza.name === 'message') this.bounce(stanza, new StanzaError('service-unavailable', this.messageRefusal));
    else if (stanza.name === 'iq') this.bounce(stanza, new StanzaError('service-unavailable'));
    return true;
  }

  private serviceIq(iq: Element, from: Jid, to: Jid): void {
    const type = iq.attrs.type;
    if (type !== 'get' && type !== 'set') return; // results and errors to the service end here
    const payload = iq.getChildElements()[0];
    if (payload === undefined) return this.bounce(iq, new StanzaError('service-unavailable'));
    const xmlns = payload.attrs.xmlns ?? '';
    const handler = this.iqHandlers.get(`${type}|${xmlns}`);
    // a domain with a structure of its own (pubsub's nodes) answers disco itself
    if (handler === undefined && type === 'get' && payload.attrs.node === undefined) {
      if (xmlns === NS_DISCO_INFO && payload.name === 'query') return this.routing.route(iqResult(iq, this.discoInfo()));
      if (xmlns === NS_DISCO_ITEMS && payload.name === 'query') return this.routing.route(iqResult(iq, this.discoItems()));
      if (xmlns === NS_PING && payload.name === 'ping') return this.routing.route(iqResult(iq, null));
    }
    if (handler === undefined) return this.bounce(iq, new StanzaError('service-unavailable'));
    const fail = (err: unknown) => {
      if (err instanceof StanzaError) return this.bounce(iq, err);
      this.log.error({ err, xmlns, from: from.toString() }, 'IQ handler failed');
      this.bounce(iq, new StanzaError('internal-server-error'));
    };
    try {
      const result = handler({ iq, payload, from, to, session: undefined });
      if (result instanceof Promise) result.then((value) => this.routing.route(iqResult(iq, value ?? null)), fail);
      else this.routing.route(iqResult(iq, result ?? null));
    } catch (err) {
      fail(err);
    }
  }

  private discoInfo(): Element {
    const query = new Element('query', { xmlns: NS_DISCO_INFO });
    for (const { category, type, name } of this.identities) query.c('identity', name === undefined ? { category, type } : { category, type, name });
    for (const feature of this.features) query.c('feature', { var: feature });
    for (const form of this.extensions) query.append(form());
    return query;
  }

  private discoItems(): Element {
    const query = new Element('query', { xmlns: NS_DISCO_ITEMS });
    for (const { jid, name } of this.itemsOf()) query.c('item', name === undefined ? { jid } : { jid, name });
    return query;
  }
}
