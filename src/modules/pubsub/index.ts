// XEP-0060 Publish-Subscribe as a service at pubsub.<host>, and XEP-0163 PEP on every account's
// bare JID: OMEMO device lists and bundles, avatars (XEP-0084), bookmarks (XEP-0402),
// nicknames (XEP-0172) live here. Both run the same engine (service.ts) on the same tables.
// PEP notifications reach the owner's resources and the contacts entitled to them whose
// entity capabilities (XEP-0115) ask for the node with `<node>+notify` (XEP-0163 §4).
import Element from 'ltx/lib/Element.js';
import { z } from 'zod';
import { parseJid, type Jid } from '../../core/jid.js';
import { defineModule, type AccountDeletingEvent } from '../../core/module.js';
import type { StanzaEvent } from '../../core/router.js';
import { StanzaError } from '../../core/stanza.js';
import { NS_CAPS } from '../caps/index.js';
import { NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PUBSUB, NS_PUBSUB_OWNER, PUBSUB_FEATURES } from './ns.js';
import { PubsubEngine, type PubsubService } from './service.js';
import { PubsubStore, pubsubMigrations, removePubsubData, type StoredItem } from './store.js';

export { PubsubEngine, type PubsubService } from './service.js';

const NOTIFY = '+notify';

/** The payload of `pep/published`: an item stored on an account's PEP service. */
declare module '../../core/module.js' {
  interface Services {
    pubsub: PubsubApi;
  }
}

declare module '../../core/event-map.js' {
  interface EventMap {
    'pep/published': PepPublishedEvent;
    'pep/retracted': PepRetractedEvent;
  }
}

export interface PepPublishedEvent {
  owner: string;
  node: string;
  item: StoredItem;
  /** Work the publisher's result waits for (e.g. the vCard photo, XEP-0398). */
  pending: Array<Promise<unknown>>;
}

export interface PepRetractedEvent {
  owner: string;
  node: string;
  id: string;
  /** Who retracted it: a client's full JID, or the owner's bare JID for the server's own work. */
  by: string;
}

/** What the pubsub module offers other modules on the host (bookmark conversion, XEP-0411). */
export interface PubsubApi {
  engine: PubsubEngine;
  /** An account's PEP service. */
  pep(bareJid: string): PubsubService;
}

export default defineModule({
  name: 'pubsub',
  description: 'Publish-subscribe service and personal eventing (PEP): OMEMO keys, avatars, bookmarks',
  implements: [
    { spec: 'XEP-0060', version: '1.26.0', status: 'partial', note: 'no subscription options, no pending subscriptions (authorize access model), no collections' },
    { spec: 'XEP-0163', version: '1.2.2', status: 'complete' },
    { spec: 'XEP-0223', version: '1.1.1', status: 'complete', note: 'private PEP nodes through publish-options (whitelist access)' },
    { spec: 'XEP-0084', version: '1.1.4', status: 'complete', note: 'user avatars stored on PEP' },
    { spec: 'XEP-0402', version: '1.1.4', status: 'complete', note: 'bookmarks stored on PEP' },
    { spec: 'XEP-0172', version: '1.1', status: 'complete', note: 'user nicknames stored on PEP' },
    { spec: 'XEP-0384', version: '0.8.3', status: 'complete', note: 'OMEMO device lists and bundles stored on PEP' },
  ],
  dependencies: ['roster', 'disco', 'caps'],
  options: z.strictObject({
    /** The general-purpose service's domain; default pubsub.<host>. */
    service_domain: z.string().min(1).optional(),
    /** Whether to run the general-purpose service at all (PEP is always on). */
    service: z.boolean().default(true),
    /** The service's name in service discovery. */
    name: z.string().default('Publish-Subscribe'),
    /** Who may create nodes on the service: local (this host's users), anyone, admins. */
    create_nodes: z.enum(['local', 'anyone', 'admins']).default('local'),
    /** The most items one node keeps; `max_items: max` means this many. */
    max_items: z.number().int().min(1).default(1000),
  }),
  migrations: pubsubMigrations,
  // The account's PEP service (every node and item) and its subscriptions and affiliations
  // elsewhere here: the next owner of the name inherits no keys, avatar or bookmarks.
  removeAccountData: ({ db, bareJid }) => removePubsubData(db, bareJid),
  setup(m) {
    const options = m.options;
    const domain = m.host.domain;
    const roster = m.use('roster');
    const disco = m.use('disco');
    const caps = m.use('caps');
    const store = new PubsubStore(m.db);
    const serviceDomain = (options.service_domain ?? `pubsub.${domain}`).toLowerCase();

    /**
     * XEP-0163 §4: who asked for which of an owner's nodes (+notify), by full JID: the owner's
     * own resources and the contacts whose presence the owner receives.
     */
    const interest = new Map<string, Map<string, ReadonlySet<string>>>();
    /** The latest presence seen from each full JID, per owner: an answer about an older one is stale. */
    const latest = new Map<string, Element>();
    const latestKey = (ownerBare: string, jid: string) => `${ownerBare}\u0000${jid}`;

    async function rosterItem(ownerBare: string, contactBare: string) {
      const owner = parseJid(ownerBare);
      if (owner === null || owner.domain !== domain || owner.local === '') return undefined;
      const item = await roster.store.withRoster(owner.local, (r) => r.items.get(contactBare));
      // a roster read for an account with no session is not kept in memory
      if (!m.server.sessions.hasAccount(ownerBare)) roster.store.evict(owner.local);
      return item === undefined ? undefined : { subscription: item.subscription, groups: item.groups };
    }

    const engine = new PubsubEngine({
      store,
      log: m.log,
      route: (stanza) => m.route(stanza),
      maxItems: options.max_items,
      rosterItem,
      published: (service, node, item) => {
        if (!service.pep) return undefined;
        const pending: Array<Promise<unknown>> = [];
        m.host.events.fire('pep/published', { owner: service.jid, node, item, pending });
        return Promise.all(pending);
      },
      retracted: (service, node, id, by) => {
        if (service.pep) m.host.events.fire('pep/retracted', { owner: service.jid, node, id, by });
      },
      mayCreate: (_service, requester) => {
        if (options.create_nodes === 'anyone') return true;
        if (options.create_nodes === 'admins') return m.host.isAdmin(requester);
        return parseJid(requester)?.domain === domain;
      },
      interested: (service, node) => {
        const jids: string[] = [];
        for (const [jid, nodes] of interest.get(service.jid) ?? []) if (nodes.has(node)) jids.push(jid);
        return jids;
      },
    });

    m.provide('pubsub', { engine, pep: (bareJid) => ({ jid: bareJid, pep: true }) });

    for (const feature of [NS_PUBSUB, ...PUBSUB_FEATURES]) {
      // the server's disco#info (clients such as Conversations look there) and the account's (XEP-0163 §5)
      m.feature(feature);
      m.accountFeature(feature);
    }
    disco.accountIdentity({ category: 'pubsub', type: 'pep' });
    // XEP-0163 §5 / XEP-0060 §5.2: the owner lists its PEP nodes
    disco.accountItems(async (account, from) => {
      if (from.bare !== account.bare) return [];
      return (await store.nodes(account.bare)).map((n) => new Element('item', { jid: account.bare, node: n.node }));
    });

    // --- PEP: IQs to an account's bare JID ----------------------------------------------------
    const pep = (bare: string): PubsubService => ({ jid: bare, pep: true });
    const pepIq = (type: 'get' | 'set') => async ({ from, to, payload }: { from: Jid; to: Jid; payload: Element }) => {
      if (from.bare !== to.bare && !(await m.server.accounts.exists(domain, to.local))) throw new StanzaError('service-unavailable');
      return engine.handle(pep(to.bare), type, payload, from.toString());
    };
    m.iq('get', NS_PUBSUB, pepIq('get'), 'account');
    m.iq('set', NS_PUBSUB, pepIq('set'), 'account');
    m.iq('get', NS_PUBSUB_OWNER, pepIq('get'), 'account');
    m.iq('set', NS_PUBSUB_OWNER, pepIq('set'), 'account');

    /**
     * A full JID's current +notify interest in `ownerBare`'s nodes, from the presence with <c/> it
     * sent; nodes it did not ask for before get their last item (XEP-0163 §4.3.2). A presence
     * without <c/> (a status change from a client that leaves it out) changes nothing and never
     * comes here.
     */
    async function presenceSeen(ownerBare: string, from: string, presence: Element): Promise<void> {
      const features = await caps.features(presence, from, ownerBare);
      // gone meanwhile, or a newer presence is being looked at
      if (latest.get(latestKey(ownerBare, from)) !== presence) return;
      const nodes = new Set<string>();
      for (const feature of features ?? []) if (feature.endsWith(NOTIFY)) nodes.add(feature.slice(0, -NOTIFY.length));
      let byJid = interest.get(ownerBare);
      const before = byJid?.get(from);
      if (nodes.size === 0) {
        latest.delete(latestKey(ownerBare, from));
        byJid?.delete(from);
        if (byJid?.size === 0) interest.delete(ownerBare);
        return;
      }
      if (byJid === undefined) interest.set(ownerBare, (byJid = new Map()));
      byJid.set(from, nodes);
      const service = pep(ownerBare);
      for (const name of nodes) {
        if (before?.has(name)) continue;
        const node = await engine.node(service, name);
        if (node === undefined || node.config.send_last_published_item !== 'on_sub_and_presence') continue;
        if (await engine.mayAccess(service, node, from.split('/')[0]!)) await engine.sendLastItem(service, node, from);
      }
    }

    function forget(ownerBare: string, jid: string): void {
      latest.delete(latestKey(ownerBare, jid));
      const byJid = interest.get(ownerBare);
      if (byJid === undefined) return;
      byJid.delete(jid);
      if (byJid.size === 0) interest.delete(ownerBare);
    }

    const background = (work: Promise<unknown>, what: string) => void work.catch((err: unknown) => m.log.error({ err }, what));

    // the owner's own resources (after vCard stamping at 100, before the broadcast at 0)
    m.on('pre-presence/none', (e: StanzaEvent) => {
      const session = e.session;
      if (session === undefined) return undefined;
      // without <c/> a presence changes no interest (see presenceSeen): nothing to look up or keep
      if (e.stanza.attrs.type === undefined && e.stanza.getChild('c', NS_CAPS) !== undefined) {
        latest.set(latestKey(session.jid.bare, session.jid.toString()), e.stanza);
        background(presenceSeen(session.jid.bare, session.jid.toString(), e.stanza), 'PEP interest of an own resource');
      } else if (e.stanza.attrs.type === 'unavailable') forget(session.jid.bare, session.jid.toString());
      return undefined;
    }, 50);
    m.on('session/closed', ({ session }) => forget(session.jid.bare, session.jid.toString()));

    // contacts' presence to one of our accounts (broadcasts and answers to probes, local or remote)
    const contactPresence = (e: StanzaEvent) => {
      const type = e.stanza.attrs.type;
      if (e.from.resource === '' || e.from.bare === e.to.bare || e.to.local === '') return undefined;
      const owner = e.to.bare;
      const from = e.from.toString();
      if (type === 'unavailable') forget(owner, from);
      // without <c/> it changes no interest: no roster lookup for every presence broadcast
      else if (type === undefined && e.stanza.getChild('c', NS_CAPS) !== undefined) {
        latest.set(latestKey(owner, from), e.stanza);
        // XEP-0163 §4.1: only contacts with a subscription to the owner's presence
        background(rosterItem(owner, e.from.bare).then((item) => {
          if (item?.subscription === 'from' || item?.subscription === 'both') return presenceSeen(owner, from, e.stanza);
          if (latest.get(latestKey(owner, from)) === e.stanza) latest.delete(latestKey(owner, from));
          return undefined;
        }), 'PEP interest of a contact');
      }
      return undefined;
    };
    m.on('presence/bare', contactPresence, 20);
    m.on('presence/full', contactPresence, 20);

    m.on('account/deleting', ({ username }: AccountDeletingEvent) => {
      interest.delete(`${username}@${domain}`);
    });

    // --- the general-purpose service at pubsub.<host> ------------------------------------------
    if (options.service) {
      const service: PubsubService = { jid: serviceDomain, pep: false };

      async function discoInfo(payload: Element): Promise<Element> {
        const name = payload.attrs.node;
        const query = new Element('query', name === undefined ? { xmlns: NS_DISCO_INFO } : { xmlns: NS_DISCO_INFO, node: name });
        if (name === undefined) {
          query.c('identity', { category: 'pubsub', type: 'service', name: options.name });
          for (const feature of [NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PUBSUB, ...PUBSUB_FEATURES]) query.c('feature', { var: feature });
          return query;
        }
        // XEP-0060 §5.3 / §5.4: a node's identity and meta-data
        const node = await engine.node(service, name);
        if (node === undefined) throw new StanzaError('item-not-found', 'No such node');
        query.c('identity', { category: 'pubsub', type: 'leaf' });
        query.c('feature', { var: NS_PUBSUB });
        query.append(engine.metaData(node));
        return query;
      }

      async function discoItems(payload: Element, from: Jid): Promise<Element> {
        const name = payload.attrs.node;
        const query = new Element('query', name === undefined ? { xmlns: NS_DISCO_ITEMS } : { xmlns: NS_DISCO_ITEMS, node: name });
        if (name === undefined) {
          // §5.2: the nodes
          for (const node of await engine.nodes(service)) {
            const attrs: Record<string, string> = { jid: serviceDomain, node: node.row.node };
            if (node.config.title) attrs.name = node.config.title;
            query.c('item', attrs);
          }
          return query;
        }
        // §5.5: the items of a node, by id
        const node = await engine.node(service, name);
        if (node === undefined) throw new StanzaError('item-not-found', 'No such node');
        await engine.checkAccess(service, node, from.bare);
        for (const item of await store.items(node.row.id)) query.c('item', { jid: serviceDomain, name: item.id });
        return query;
      }

      const served = m.component(serviceDomain, options.name);
      served.identity('pubsub', 'service', options.name);
      for (const feature of [NS_PUBSUB, ...PUBSUB_FEATURES]) served.feature(feature);
      for (const xmlns of [NS_PUBSUB, NS_PUBSUB_OWNER]) {
        served.iq('get', xmlns, ({ payload, from }) => engine.handle(service, 'get', payload, from.toString()));
        served.iq('set', xmlns, ({ payload, from }) => engine.handle(service, 'set', payload, from.toString()));
      }
      // the nodes and their items are the service's own structure (XEP-0060 §5)
      served.iq('get', NS_DISCO_INFO, ({ payload }) => discoInfo(payload));
      served.iq('get', NS_DISCO_ITEMS, ({ payload, from }) => discoItems(payload, from));
    }
  },
});
