// The publish-subscribe protocol of XEP-0060, for any service: the `pubsub.<host>` component and
// every account's PEP service (XEP-0163) run the same code over the same tables. What differs is
// a `PubsubService` value: its JID, whether it is an account's PEP, and who owns it.
import { randomUUID } from 'node:crypto';
import Element from 'ltx/lib/Element.js';
import type { Logger } from 'pino';
import { StanzaError } from '../../core/stanza.js';
import { parseElement } from '../../xml/parse.js';
import { serialize } from '../../xml/serialize.js';
import { applyForm, checkPreconditions, configForm, defaultConfig, formValues, itemLimit, parseConfig, type NodeConfig } from './config.js';
import { NS_PUBSUB, NS_PUBSUB_ERRORS, NS_PUBSUB_EVENT, NS_PUBSUB_OWNER, NS_PUBSUB_PUBLISH_OPTIONS } from './ns.js';
import type { Affiliation, NodeRow, PubsubStore, StoredItem } from './store.js';

export interface PubsubService {
  /** The service's address: a component domain, or an account's bare JID for PEP. */
  jid: string;
  /** XEP-0163: the account's own service; its owner owns every node. */
  pep: boolean;
}

/** What the engine needs from the server around it. */
export interface PubsubEnvironment {
  store: PubsubStore;
  log: Logger;
  route(stanza: Element): void;
  /** The most items a node may keep (`max`). */
  maxItems: number;
  /** The contact's entry in a local account's roster, or undefined when not there (or not local). */
  rosterItem(ownerBare: string, contactBare: string): Promise<{ subscription: string; groups: string[] } | undefined>;
  /** Whether `requester` may create nodes on a (non-PEP) service. */
  mayCreate(service: PubsubService, requesterBare: string): boolean;
  /** Told of each item published (after it is stored), e.g. for avatar conversion (XEP-0398). */
  published?(service: PubsubService, node: string, item: StoredItem): Promise<unknown> | void;
  /** Told of each item retracted, and by whom (a bare or full JID), e.g. for bookmarks conversion (XEP-0411). */
  retracted?(service: PubsubService, node: string, id: string, by: string): void;
  /** PEP: full JIDs that asked for notifications of `node` by +notify (XEP-0163 §4), access not yet checked. */
  interested(service: PubsubService, node: string): string[];
}

export interface Node {
  row: NodeRow;
  config: NodeConfig;
}

const pubsubError = (condition: ConstructorParameters<typeof StanzaError>[0], app: string, attrs: Record<string, string> = {}, text?: string) =>
  new StanzaError(condition, text, undefined, new Element(app, { xmlns: NS_PUBSUB_ERRORS, ...attrs }));
/** XEP-0060 §7.1.3 etc.: `<feature-not-implemented/>` with the feature that is missing. */
const unsupported = (feature: string) => pubsubError('feature-not-implemented', 'unsupported', { feature });
const noSuchNode = () => new StanzaError('item-not-found', 'No such node');

function bareOf(jid: string): string {
  const slash = jid.indexOf('/');
  return slash === -1 ? jid : jid.slice(0, slash);
}

export class PubsubEngine {
  /** Operations on one node run one after the other (publish, trim and notify stay in order). */
  private readonly queues = new Map<string, Promise<unknown>>();

  constructor(private readonly env: PubsubEnvironment) {}

  private serially<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.queues.get(key) ?? Promise.resolve();
    const next = previous.then(work, work);
    const settled = next.catch(() => undefined);
    this.queues.set(key, settled);
    void settled.then(() => {
      if (this.queues.get(key) === settled) this.queues.delete(key);
    });
    return next;
  }

  async node(service: PubsubService, name: string): Promise<Node | undefined> {
    const row = await this.env.store.node(service.jid, name);
    return row === undefined ? undefined : { row, config: parseConfig(row.config, service.pep) };
  }

  async nodes(service: PubsubService): Promise<Node[]> {
    return (await this.env.store.nodes(service.jid)).map((row) => ({ row, config: parseConfig(row.config, service.pep) }));
  }

  async affiliation(service: PubsubService, node: Node, requesterBare: string): Promise<Affiliation> {
    if (service.pep && requesterBare === service.jid) return 'owner';
    return this.env.store.affiliation(node.row.id, requesterBare);
  }

  /** The owner whose roster the presence and roster access models look at. */
  private async rosterOwner(service: PubsubService, node: Node): Promise<string | undefined> {
    if (service.pep) return service.jid;
    return (await this.env.store.affiliations(node.row.id)).find((a) => a.affiliation === 'owner')?.jid;
  }

  /** XEP-0060 §6.1.3 / §6.5.4: may `requesterBare` see the node's items and subscribe? Throws the error the XEP names. */
  async checkAccess(service: PubsubService, node: Node, requesterBare: string): Promise<void> {
    const affiliation = await this.affiliation(service, node, requesterBare);
    if (affiliation === 'outcast') throw new StanzaError('forbidden', 'You are banned from this node');
    if (affiliation === 'owner' || affiliation === 'publisher' || affiliation === 'member') return;
    switch (node.config.access_model) {
      case 'open':
        return;
      case 'presence': {
        const owner = await this.rosterOwner(service, node);
        const item = owner === undefined ? undefined : await this.env.rosterItem(owner, requesterBare);
        if (item?.subscription === 'from' || item?.subscription === 'both') return;
        throw pubsubError('not-authorized', 'presence-subscription-required');
      }
      case 'roster': {
        const owner = await this.rosterOwner(service, node);
        const item = owner === undefined ? undefined : await this.env.rosterItem(owner, requesterBare);
        if (item !== undefined && item.groups.some((g) => node.config.roster_groups_allowed.includes(g))) return;
        throw pubsubError('not-authorized', 'not-in-roster-group');
      }
      case 'whitelist':
        throw pubsubError('not-allowed', 'closed-node');
    }
  }

  async mayAccess(service: PubsubService, node: Node, requesterBare: string): Promise<boolean> {
    try {
      await this.checkAccess(service, node, requesterBare);
      return true;
    } catch (err) {
      if (err instanceof StanzaError) return false;
      throw err;
    }
  }

  /** A pubsub IQ (XEP-0060 §6-§8) to `service` from `from`; returns the result payload. */
  async handle(service: PubsubService, type: 'get' | 'set', payload: Element, from: string): Promise<Element | null> {
    const owner = payload.attrs.xmlns === NS_PUBSUB_OWNER;
    const actions = payload.getChildElements();
    const action = actions.find((a) => a.name !== 'publish-options' && a.name !== 'configure' && a.name !== 'options') ?? actions[0];
    if (action === undefined) throw new StanzaError('bad-request', 'No pubsub action');
    const requester = bareOf(from);
    const key = (node: string | undefined) => `${service.jid}\u0000${node ?? ''}`;
    if (!owner) {
      if (type === 'set') {
        switch (action.name) {
          case 'publish':
            return this.serially(key(action.attrs.node), () => this.publish(service, action, payload.getChild('publish-options'), from));
          case 'create':
            return this.serially(key(action.attrs.node), () => this.create(service, action, payload.getChild('configure'), requester));
          case 'subscribe':
            return this.subscribe(service, action, from);
          case 'unsubscribe':
            return this.unsubscribe(service, action, from);
          case 'retract':
            return this.serially(key(action.attrs.node), () => this.retract(service, action, requester, from));
          case 'options':
            throw unsupported('subscription-options');
        }
      } else {
        switch (action.name) {
          case 'items':
            return this.items(service, action, requester);
          case 'subscriptions':
            return this.ownSubscriptions(service, action, requester);
          case 'affiliations':
            return this.ownAffiliations(service, action, requester);
          case 'default':
            return this.defaultForm(service, NS_PUBSUB);
          case 'options':
            throw unsupported('subscription-options');
        }
      }
    } else if (type === 'get') {
      switch (action.name) {
        case 'configure':
          return this.configureForm(service, action, requester);
        case 'default':
          return this.defaultForm(service, NS_PUBSUB_OWNER);
        case 'subscriptions':
          return this.nodeSubscriptions(service, action, requester);
        case 'affiliations':
          return this.nodeAffiliations(service, action, requester);
      }
    } else {
      switch (action.name) {
        case 'configure':
          return this.serially(key(action.attrs.node), () => this.configure(service, action, requester));
        case 'delete':
          return this.serially(key(action.attrs.node), () => this.delete(service, action, requester));
        case 'purge':
          return this.serially(key(action.attrs.node), () => this.purge(service, action, requester));
        case 'affiliations':
          return this.setAffiliations(service, action, requester);
        case 'subscriptions':
          throw unsupported('manage-subscriptions');
      }
    }
    throw new StanzaError('feature-not-implemented', `${action.name} is not supported`);
  }

  private nodeName(action: Element): string {
    const name = action.attrs.node;
    if (name === undefined || name === '') throw pubsubError('bad-request', 'nodeid-required');
    return name;
  }

  private async existing(service: PubsubService, action: Element): Promise<Node> {
    const node = await this.node(service, this.nodeName(action));
    if (node === undefined) throw noSuchNode();
    return node;
  }

  private async requireOwner(service: PubsubService, node: Node, requesterBare: string): Promise<void> {
    if ((await this.affiliation(service, node, requesterBare)) !== 'owner') throw new StanzaError('forbidden', 'Only an owner may do this');
  }

  private mayCreate(service: PubsubService, requesterBare: string): boolean {
    return service.pep ? requesterBare === service.jid : this.env.mayCreate(service, requesterBare);
  }

  // --- §8.1 create ----------------------------------------------------------------------------
  private async create(service: PubsubService, action: Element, configure: Element | undefined, requesterBare: string): Promise<Element | null> {
    if (!this.mayCreate(service, requesterBare)) throw new StanzaError('forbidden', 'You may not create nodes here');
    // §8.1.2: an instant node gets a name from the service
    const name = action.attrs.node ?? randomUUID();
    let config = defaultConfig(service.pep);
    const values = formValues(configure?.getChild('x', 'jabber:x:data'));
    if (values !== undefined) config = applyForm(config, values, this.env.maxItems);
    const row = await this.env.store.createNode(service.jid, name, JSON.stringify(config), requesterBare);
    if (row === undefined) throw new StanzaError('conflict', 'The node exists already');
    if (action.attrs.node !== undefined) return null;
    return new Element('pubsub', { xmlns: NS_PUBSUB }).c('create', { node: name }).up();
  }

  // --- §7.1 publish -------------------------------------------------------------------------
  private async publish(service: PubsubService, action: Element, options: Element | undefined, from: string): Promise<Element> {
    const requesterBare = bareOf(from);
    const name = this.nodeName(action);
    const optionValues = formValues(options?.getChild('x', 'jabber:x:data'));
    if (optionValues !== undefined && (optionValues.get('FORM_TYPE')?.[0] ?? NS_PUBSUB_PUBLISH_OPTIONS) !== NS_PUBSUB_PUBLISH_OPTIONS) {
      throw new StanzaError('bad-request', 'publish-options need FORM_TYPE http://jabber.org/protocol/pubsub#publish-options');
    }
    let node = await this.node(service, name);
    if (node === undefined) {
      // §7.1.4 / XEP-0163 §3: auto-create, with the publish-options as its configuration (§7.1.5)
      if (!this.mayCreate(service, requesterBare)) throw noSuchNode();
      let config = defaultConfig(service.pep);
      if (optionValues !== undefined) {
        try {
          config = applyForm(config, optionValues, this.env.maxItems);
        } catch (err) {
          if (!(err instanceof StanzaError)) throw err;
          throw new StanzaError('conflict', err.text, 'cancel', new Element('precondition-not-met', { xmlns: NS_PUBSUB_ERRORS }));
        }
      }
      const row = (await this.env.store.createNode(service.jid, name, JSON.stringify(config), requesterBare)) ?? (await this.env.store.node(service.jid, name))!;
      node = { row, config: parseConfig(row.config, service.pep) };
    } else if (optionValues !== undefined) {
      checkPreconditions(node.config, optionValues);
    }
    const affiliation = await this.affiliation(service, node, requesterBare);
    const allowed =
      affiliation === 'owner' || affiliation === 'publisher' || affiliation === 'publish-only' ||
      (node.config.publish_model === 'open' && affiliation !== 'outcast') ||
      (node.config.publish_model === 'subscribers' && (await this.env.store.subscriptionsOf(service.jid, requesterBare)).some((s) => s.node === name));
    if (!allowed) throw new StanzaError('forbidden', 'You may not publish to this node');

    const items = action.getChildren('item');
    if (items.length > 1) throw pubsubError('bad-request', 'invalid-payload', {}, 'One item per publish');
    const item = items[0];
    if (item === undefined) throw pubsubError('bad-request', 'item-required');
    const payloads = item.getChildElements();
    if (payloads.length === 0 && node.config.deliver_payloads) throw pubsubError('bad-request', 'payload-required');
    if (payloads.length > 1) throw pubsubError('bad-request', 'invalid-payload', {}, 'One payload element per item');
    // §7.1.2: the service makes up an id when the publisher gave none
    const id = item.attrs.id !== undefined && item.attrs.id !== '' ? item.attrs.id : randomUUID();
    const stored: StoredItem = { id, publisher: from, payload: payloads.length === 0 ? '' : serialize(payloads[0]!), publishedAt: Date.now() };
    await this.env.store.publish(node.row.id, stored, itemLimit(node.config, this.env.maxItems));
    // what follows from it (XEP-0398's vCard) is done before the publisher hears back
    await Promise.resolve(this.env.published?.(service, name, stored)).catch((err: unknown) => this.env.log.error({ err, node: name }, 'after-publish work failed'));
    if (node.config.deliver_notifications) {
      const items = new Element('items', { node: name });
      items.append(this.itemElement(stored, node.config.deliver_payloads));
      await this.notify(service, node, items);
    }
    return new Element('pubsub', { xmlns: NS_PUBSUB }).c('publish', { node: name }).c('item', { id }).up().up();
  }

  itemElement(item: StoredItem, withPayload = true): Element {
    const element = new Element('item', { id: item.id });
    if (withPayload && item.payload !== '') element.append(parseElement(item.payload));
    return element;
  }

  // --- §7.2 retract -------------------------------------------------------------------------
  private async retract(service: PubsubService, action: Element, requesterBare: string, from: string): Promise<null> {
    const node = await this.existing(service, action);
    const item = action.getChild('item');
    if (item?.attrs.id === undefined) throw pubsubError('bad-request', 'item-required');
    const affiliation = await this.affiliation(service, node, requesterBare);
    if (affiliation !== 'owner' && affiliation !== 'publisher') throw new StanzaError('forbidden', 'You may not retract from this node');
    if (!(await this.env.store.retract(node.row.id, item.attrs.id))) throw new StanzaError('item-not-found', 'No such item');
    // §7.2.2.1: subscribers are told when the node says so, or the publisher asked
    const notify = action.attrs.notify === 'true' || action.attrs.notify === '1' || node.config.notify_retract;
    if (notify) await this.notify(service, node, new Element('items', { node: node.row.node }).c('retract', { id: item.attrs.id }).up());
    this.env.retracted?.(service, node.row.node, item.attrs.id, from);
    return null;
  }

  // --- §6.1 subscribe / §6.2 unsubscribe ---------------------------------------------------------
  private async subscribe(service: PubsubService, action: Element, from: string): Promise<Element> {
    const jid = action.attrs.jid;
    // §6.1.3.1: the JID must be the requester's own (bare or full)
    if (jid === undefined || bareOf(jid) !== bareOf(from)) throw pubsubError('bad-request', 'invalid-jid');
    const node = await this.existing(service, action);
    await this.checkAccess(service, node, bareOf(from));
    const subid = await this.env.store.subscribe(node.row.id, jid, randomUUID());
    const reply = new Element('pubsub', { xmlns: NS_PUBSUB });
    reply.c('subscription', { node: node.row.node, jid, subid, subscription: 'subscribed' });
    // §6.1.7: the last published item, after the result
    if (node.config.send_last_published_item !== 'never') setImmediate(() => void this.sendLastItem(service, node, jid).catch((err: unknown) => this.env.log.error({ err }, 'sending the last item failed')));
    return reply;
  }

  private async unsubscribe(service: PubsubService, action: Element, from: string): Promise<null> {
    const jid = action.attrs.jid;
    if (jid === undefined || bareOf(jid) !== bareOf(from)) throw pubsubError('bad-request', 'invalid-jid');
    const node = await this.existing(service, action);
    if (!(await this.env.store.unsubscribe(node.row.id, jid))) throw pubsubError('unexpected-request', 'not-subscribed');
    return null;
  }

  /** The newest item of a node to one entity, as a notification (§6.1.7, XEP-0163 §4.3.2). */
  async sendLastItem(service: PubsubService, node: Node, to: string): Promise<void> {
    const last = await this.env.store.lastItem(node.row.id);
    if (last === undefined) return;
    const items = new Element('items', { node: node.row.node });
    items.append(this.itemElement(last, node.config.deliver_payloads));
    const message = this.eventMessage(service, node, to, items);
    // XEP-0203: it was published earlier
    message.c('delay', { xmlns: 'urn:xmpp:delay', from: service.jid, stamp: new Date(last.publishedAt).toISOString() });
    this.env.route(message);
  }

  // --- §6.5 items -----------------------------------------------------------------------------
  private async items(service: PubsubService, action: Element, requesterBare: string): Promise<Element> {
    const node = await this.existing(service, action);
    await this.checkAccess(service, node, requesterBare);
    const ids = action.getChildren('item').map((i) => i.attrs.id).filter((id): id is string => id !== undefined);
    let items: StoredItem[];
    if (ids.length > 0) items = await this.env.store.itemsById(node.row.id, ids);
    else {
      const max = action.attrs.max_items === undefined ? undefined : Number(action.attrs.max_items);
      if (max !== undefined && (!Number.isInteger(max) || max < 0)) throw new StanzaError('bad-request', 'max_items must be a number');
      items = await this.env.store.items(node.row.id, max);
    }
    // §6.5.8: ask for items by id and none is there: an empty result, as the item may have gone
    const result = new Element('pubsub', { xmlns: NS_PUBSUB });
    const list = result.c('items', { node: node.row.node });
    for (const item of items) list.append(this.itemElement(item));
    return result;
  }

  // --- §5.6 / §5.7 the requester's own subscriptions and affiliations ----------------------------
  private async ownSubscriptions(service: PubsubService, action: Element, requesterBare: string): Promise<Element> {
    const result = new Element('pubsub', { xmlns: NS_PUBSUB });
    const list = result.c('subscriptions', action.attrs.node ? { node: action.attrs.node } : {});
    for (const s of await this.env.store.subscriptionsOf(service.jid, requesterBare)) {
      if (action.attrs.node !== undefined && s.node !== action.attrs.node) continue;
      list.c('subscription', { node: s.node, jid: s.jid, subid: s.subid, subscription: 'subscribed' });
    }
    return result;
  }

  private async ownAffiliations(service: PubsubService, action: Element, requesterBare: string): Promise<Element> {
    const result = new Element('pubsub', { xmlns: NS_PUBSUB });
    const list = result.c('affiliations', action.attrs.node ? { node: action.attrs.node } : {});
    const rows = service.pep && requesterBare === service.jid
      ? (await this.env.store.nodes(service.jid)).map((n) => ({ node: n.node, affiliation: 'owner' as Affiliation }))
      : await this.env.store.affiliationsOf(service.jid, requesterBare);
    for (const a of rows) {
      if (action.attrs.node !== undefined && a.node !== action.attrs.node) continue;
      list.c('affiliation', { node: a.node, affiliation: a.affiliation });
    }
    return result;
  }

  // --- §8.2 configure, §8.3 default, §8.4 delete, §8.5 purge ------------------------------------
  private async configureForm(service: PubsubService, action: Element, requesterBare: string): Promise<Element> {
    const node = await this.existing(service, action);
    await this.requireOwner(service, node, requesterBare);
    const result = new Element('pubsub', { xmlns: NS_PUBSUB_OWNER });
    result.c('configure', { node: node.row.node }).append(configForm(node.config));
    return result;
  }

  private defaultForm(service: PubsubService, xmlns: string): Element {
    const result = new Element('pubsub', { xmlns });
    result.c('default').append(configForm(defaultConfig(service.pep)));
    return result;
  }

  private async configure(service: PubsubService, action: Element, requesterBare: string): Promise<null> {
    const node = await this.existing(service, action);
    await this.requireOwner(service, node, requesterBare);
    const form = action.getChild('x', 'jabber:x:data');
    if (form === undefined) throw new StanzaError('bad-request', 'A configuration form is needed');
    if (form.attrs.type === 'cancel') return null;
    if (form.attrs.type !== 'submit') throw new StanzaError('bad-request', "The form's type must be submit");
    const config = applyForm(node.config, formValues(form)!, this.env.maxItems);
    await this.env.store.configure(node.row.id, JSON.stringify(config));
    await this.env.store.trim(node.row.id, itemLimit(config, this.env.maxItems));
    if (config.notify_config) {
      const updated = { row: node.row, config };
      await this.notify(service, updated, new Element('configuration', { node: node.row.node }));
    }
    return null;
  }

  private async delete(service: PubsubService, action: Element, requesterBare: string): Promise<null> {
    const node = await this.existing(service, action);
    await this.requireOwner(service, node, requesterBare);
    // §8.4.2: subscribers learn of it; the recipients are worked out before the node goes
    const recipients = node.config.notify_delete ? await this.recipients(service, node) : [];
    await this.env.store.deleteNode(node.row.id);
    for (const to of recipients) this.env.route(this.eventMessage(service, node, to, new Element('delete', { node: node.row.node })));
    return null;
  }

  private async purge(service: PubsubService, action: Element, requesterBare: string): Promise<null> {
    const node = await this.existing(service, action);
    await this.requireOwner(service, node, requesterBare);
    if (!node.config.persist_items) throw unsupported('persistent-items');
    await this.env.store.purge(node.row.id);
    if (node.config.notify_retract) await this.notify(service, node, new Element('purge', { node: node.row.node }));
    return null;
  }

  // --- §8.8 / §8.9 owner views of subscriptions and affiliations ---------------------------------
  private async nodeSubscriptions(service: PubsubService, action: Element, requesterBare: string): Promise<Element> {
    const node = await this.existing(service, action);
    await this.requireOwner(service, node, requesterBare);
    const result = new Element('pubsub', { xmlns: NS_PUBSUB_OWNER });
    const list = result.c('subscriptions', { node: node.row.node });
    for (const s of await this.env.store.subscriptions(node.row.id)) list.c('subscription', { jid: s.jid, subid: s.subid, subscription: 'subscribed' });
    return result;
  }

  private async nodeAffiliations(service: PubsubService, action: Element, requesterBare: string): Promise<Element> {
    const node = await this.existing(service, action);
    await this.requireOwner(service, node, requesterBare);
    const result = new Element('pubsub', { xmlns: NS_PUBSUB_OWNER });
    const list = result.c('affiliations', { node: node.row.node });
    if (service.pep) list.c('affiliation', { jid: service.jid, affiliation: 'owner' });
    for (const a of await this.env.store.affiliations(node.row.id)) {
      if (!(service.pep && a.jid === service.jid)) list.c('affiliation', { jid: a.jid, affiliation: a.affiliation });
    }
    return result;
  }

  private async setAffiliations(service: PubsubService, action: Element, requesterBare: string): Promise<null> {
    const node = await this.existing(service, action);
    await this.requireOwner(service, node, requesterBare);
    const known: readonly string[] = ['owner', 'publisher', 'publish-only', 'member', 'none', 'outcast'];
    const changes: Array<{ jid: string; affiliation: Affiliation }> = [];
    for (const a of action.getChildren('affiliation')) {
      if (a.attrs.jid === undefined || !known.includes(a.attrs.affiliation ?? '')) throw new StanzaError('bad-request', 'Each affiliation needs a jid and a known affiliation');
      const jid = bareOf(a.attrs.jid);
      // the PEP owner stays the owner (XEP-0163 §1)
      if (service.pep && jid === service.jid) continue;
      changes.push({ jid, affiliation: a.attrs.affiliation as Affiliation });
    }
    if (!service.pep) {
      // §8.9.2.4: a node is never left without an owner
      const current = await this.env.store.affiliations(node.row.id);
      const owners = new Set(current.filter((a) => a.affiliation === 'owner').map((a) => a.jid));
      for (const c of changes) {
        if (c.affiliation === 'owner') owners.add(c.jid);
        else owners.delete(c.jid);
      }
      if (owners.size === 0) throw new StanzaError('not-acceptable', 'A node needs an owner');
    }
    await this.env.store.setAffiliations(node.row.id, changes);
    return null;
  }

  // --- notifications (§7.1.2.1) ------------------------------------------------------------
  private eventMessage(service: PubsubService, node: Node, to: string, child: Element): Element {
    const message = new Element('message', { from: service.jid, to, type: node.config.notification_type, id: randomUUID() });
    message.c('event', { xmlns: NS_PUBSUB_EVENT }).append(child);
    return message;
  }

  /**
   * Who gets a node's notifications: its subscribers, and for PEP the full JIDs whose
   * capabilities ask for it (+notify), each still entitled by the access model.
   */
  private async recipients(service: PubsubService, node: Node): Promise<string[]> {
    const recipients = new Set<string>();
    const entitled = new Map<string, boolean>();
    const mayGet = async (jid: string) => {
      const bare = bareOf(jid);
      let ok = entitled.get(bare);
      if (ok === undefined) entitled.set(bare, (ok = await this.mayAccess(service, node, bare)));
      return ok;
    };
    const subscribedBare = new Set<string>();
    for (const s of await this.env.store.subscriptions(node.row.id)) {
      if (!(await mayGet(s.jid))) continue;
      recipients.add(s.jid);
      if (!s.jid.includes('/')) subscribedBare.add(s.jid);
    }
    for (const jid of this.env.interested(service, node.row.node)) {
      // a subscription of the bare JID already reaches every resource
      if (subscribedBare.has(bareOf(jid)) || !(await mayGet(jid))) continue;
      recipients.add(jid);
    }
    return [...recipients];
  }

  private async notify(service: PubsubService, node: Node, child: Element): Promise<void> {
    for (const to of await this.recipients(service, node)) this.env.route(this.eventMessage(service, node, to, child));
  }

  /** Meta-data of a node for disco#info (§5.4). */
  metaData(node: Node): Element {
    const form = configForm(node.config, 'result');
    const formType = form.getChildren('field').find((f) => f.attrs.var === 'FORM_TYPE')!;
    formType.getChild('value')!.children = ['http://jabber.org/protocol/pubsub#meta-data'];
    return form;
  }
}
