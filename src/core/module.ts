// The plugin API. A feature is a folder under src/modules/ whose index.ts exports one definition:
// what it implements (for the DOAP file and the docs), its options schema, its tables, and a
// `setup` that says what it hooks into on one virtual host. Modelled on Prosody's module API
// (module:hook, module:add_feature) with ejabberd's declarative handlers and -protocol list.
import type Element from 'ltx/lib/Element.js';
import type { Logger } from 'pino';
import type { z } from 'zod';
import type { Knex } from 'knex';
import type { Migration } from '../storage/db.js';
import type { AccountDataScope } from '../accounts/lifecycle.js';
import { wait, type Pause } from './events.js';
import { ServedDomain } from './component.js';
import type { EventMap, EventName } from './event-map.js';
import type { IqHandler, IqTarget, IqType } from './iq.js';
import type { Kernel } from './kernel.js';
import type { VirtualHost } from './host.js';
import type { HttpHandler, HttpRouteOptions } from './http-port.js';
import type { DeliveryTracker, SessionDirectory, SessionRef } from './ports.js';
import { parseJid } from './jid.js';

/** One entry of a module's claim, as in a DOAP `xmpp:SupportedXep` (or an RFC). */
export interface ProtocolSupport {
  /** 'XEP-0199' or 'RFC 6121' */
  spec: string;
  version?: string;
  status: 'complete' | 'partial' | 'planned';
  note?: string;
}

export type { AccountDataScope };

/**
 * The services modules offer each other, by module name (m.provide, m.use, m.optional). A
 * module that provides one declares its type here, by declaration merging:
 * `declare module '../../core/module.js' { interface Services { roster: RosterService } }`.
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface Services {}

export interface ModuleDefinition<Options = Record<string, never>> {
  name: string;
  description: string;
  implements: ProtocolSupport[];
  /** Modules that must be enabled on the same host; checked at start. */
  dependencies?: string[];
  /** Schema of the module's YAML section (`modules.<name>`); defaults make an empty section valid. */
  options?: z.ZodType<Options>;
  /** The module's own tables, applied once per database in order. */
  migrations?: Migration[];
  /**
   * Deletes everything the module keeps for one account, when the account is deleted, whoever
   * deletes it (`xmppd user del`, XEP-0077 remove, an admin command). Works on the database and
   * data directory alone: the CLI runs it with no server running, a running server runs the same
   * code and then fires `account/deleted` for the module's in-memory state. Must not throw when
   * the account has no data.
   */
  removeAccountData?(account: AccountDataScope): Promise<void>;
  setup(m: ModuleContext<Options>): void | Promise<void>;
}

export type { AccountDeletingEvent, EventMap } from './event-map.js';

export function defineModule<Options = Record<string, never>>(definition: ModuleDefinition<Options>): ModuleDefinition<Options> {
  return definition;
}

export type { IqHandler, IqRequest, IqTarget, IqType } from './iq.js';

export class ModuleContext<Options> {
  private readonly cleanups: Array<() => void | Promise<void>> = [];

  constructor(
    readonly name: string,
    readonly server: Kernel,
    readonly host: VirtualHost,
    readonly options: Options,
    readonly log: Logger,
  ) {}

  get db(): Knex {
    return this.server.db;
  }

  /** Where the bound sessions are (src/core/ports.ts): find, resources, presence, flags. */
  get sessions(): SessionDirectory {
    return this.server.sessions;
  }

  /** Write a stanza to a session (src/core/ports.ts Delivery): the only way a module reaches one. */
  deliver(ref: SessionRef, stanza: Element, xml?: string, tracker?: DeliveryTracker): void {
    this.server.delivery.deliver(ref, stanza, xml, tracker);
  }

  /**
   * A cache of stored data that other nodes of a cluster may change: `evict(key)` runs when one
   * did; call the returned function with the key once this node's change is committed. Scoped
   * to this host and module. In one process it does nothing.
   */
  sharedCache(name: string, evict: (key: string) => void): (key: string) => void {
    const scope = `${this.host.domain}/${this.name}/${name}`;
    this.cleanups.push(this.server.caches.register(scope, evict));
    return (key) => this.server.caches.changed(scope, key);
  }

  /** Advertise a feature in the host's service discovery (XEP-0030). */
  feature(namespace: string): void {
    const host = this.host;
    const remove = addToSet(host.features, namespace);
    host.featuresVersion++;
    this.cleanups.push(() => {
      remove();
      host.featuresVersion++;
    });
  }

  /** Advertise a feature on every account's bare JID (e.g. a message archive, XEP-0313 §6). */
  accountFeature(namespace: string): void {
    this.cleanups.push(addToSet(this.host.accountFeatures, namespace));
  }

  identity(category: string, type: string, name?: string): void {
    this.cleanups.push(addToList(this.host.identities, { category, type, name }));
  }

  /** Handle IQs of `type` whose payload is in `xmlns`, addressed to the host or to an account. */
  iq(type: IqType, xmlns: string, handler: IqHandler, target: IqTarget | 'both' = 'host'): void {
    if (target === 'both' || target === 'host') this.cleanups.push(this.host.setIqHandler('host', type, xmlns, handler));
    if (target === 'both' || target === 'account') this.cleanups.push(this.host.setIqHandler('account', type, xmlns, handler));
  }

  /** Hook a host event (`message/bare`, `pre-presence/none`, `session/bound`...), its payload typed by name (event-map.ts). */
  on<K extends EventName>(event: K, handler: (event: EventMap[K]) => unknown, priority = 0): void {
    this.cleanups.push(this.host.events.on(event, handler, priority));
  }

  /**
   * From a handler, pause its event chain until `promise` settles: `return m.wait(p)`. Its value
   * is the handler's result (undefined: the chain goes on). A client's later stanzas wait behind it.
   */
  wait(promise: Promise<unknown>): Pause {
    return wait(promise);
  }

  /** Offer this module's service to the other modules on this host (its type declared in Services). */
  provide<K extends keyof Services>(name: K, service: Services[K]): void {
    if (name !== this.name) throw new Error(`module "${this.name}" cannot provide the service of module "${name}"`);
    this.host.services.set(name, service);
    this.cleanups.push(() => {
      if (this.host.services.get(name) === service) this.host.services.delete(name);
    });
  }

  /** The service of a module this one depends on (declared in `dependencies`: loaded before it). */
  use<K extends keyof Services>(module: K): Services[K] {
    const service = this.host.services.get(module);
    if (service === undefined) throw new Error(`module "${this.name}" needs module "${module}" to be loaded before it`);
    return service as Services[K];
  }

  /**
   * A soft dependency: the service of `module` if it is enabled, on this host or on `domain`
   * (looked up at each call: a module set up later is found too).
   */
  optional<K extends keyof Services>(module: K, domain?: string): Services[K] | undefined {
    const host = domain === undefined ? this.host : this.server.hosts.get(domain);
    return host?.services.get(module) as Services[K] | undefined;
  }

  /**
   * Serve a domain of our own (e.g. conference.<host>), listed in the host's disco#items. The
   * returned ServedDomain (src/core/component.ts) takes its IQ handlers, disco identity,
   * features and items, and the handler of the addresses under it; it answers disco and ping
   * and bounces the rest.
   */
  component(domain: string, name?: string): ServedDomain {
    const router = this.server.router;
    if (router.components.has(domain) || this.server.hosts.has(domain)) throw new Error(`${domain} is already served`);
    const served = new ServedDomain(domain, this.host, router, this.log);
    router.components.set(domain, served);
    this.discoItem(domain, name);
    this.cleanups.push(() => void router.components.delete(domain));
    return served;
  }

  /** Add an item to the host's service discovery items (XEP-0030 §4), e.g. a MUC service. */
  discoItem(jid: string, name?: string): void {
    this.cleanups.push(addToList(this.host.items, { jid, name }));
  }

  /** Send a stanza on its way through the router, as the server. */
  route(stanza: Element): void {
    this.server.router.route(stanza);
  }

  /**
   * A stanza as if this process's session `ref` had sent it: its `pre-` hooks, then the router
   * (Kernel.processFromClient), e.g. a client's presence sent again for it. A session of another
   * node, or one that is gone, is left alone.
   */
  sendAs(ref: SessionRef, stanza: Element): void {
    const session = this.server.sessions.ownSession(ref.jid.toString());
    const to = stanza.attrs.to === undefined ? null : parseJid(stanza.attrs.to);
    if (session === undefined || (to === null && stanza.attrs.to !== undefined)) return;
    stanza.attrs.from = session.jid.toString();
    this.server.processFromClient(stanza, session, to);
  }

  /**
   * Serve HTTP requests under a path prefix on this host's HTTP listeners (src/http/router.ts):
   * `m.http('/upload', handler)` or `m.http({ prefix, methods: ['GET', 'PUT'], maxBodySize }, handler)`.
   * The handler gets node's req/res plus the virtual host; a thrown HttpError becomes its status.
   */
  http(route: HttpRouteOptions | string, handler: HttpHandler): void {
    this.cleanups.push(this.server.http.route(route, handler, this.host.domain));
  }

  /** The public base URL of this host's HTTP service, no trailing slash (for URLs given to clients). */
  httpUrl(path = ''): string {
    return this.server.http.publicUrl(this.host.domain) + path;
  }

  /**
   * Report a number per host in /metrics (a Prometheus gauge labelled with the host), read when
   * scraped: `m.gauge('xmppd_offline_messages', 'Messages waiting offline', () => store.total())`.
   */
  gauge(name: string, help: string, read: () => number | Promise<number>): void {
    this.cleanups.push(this.server.metrics.hostGauge(name, help, this.host.domain, read));
  }

  onStop(cleanup: () => void | Promise<void>): void {
    this.cleanups.push(cleanup);
  }

  async stop(): Promise<void> {
    for (const cleanup of this.cleanups.reverse()) await cleanup();
  }
}

/** Adds `value` unless another module did; returns its removal (a no-op when it was there already). */
function addToSet<T>(set: Set<T>, value: T): () => void {
  if (set.has(value)) return () => undefined;
  set.add(value);
  return () => void set.delete(value);
}

/** Appends `entry`; returns its removal. */
function addToList<T>(list: T[], entry: T): () => void {
  list.push(entry);
  return () => {
    const index = list.indexOf(entry);
    if (index !== -1) list.splice(index, 1);
  };
}
