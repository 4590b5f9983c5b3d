// The kernel: the database and its health, the accounts, the virtual hosts with their modules,
// the session directory, the event bus and the router. It knows no edge (c2s, s2s, http, tls,
// control) and no module by name: src/app/server.ts builds it and connects the edges to it
// through the ports (src/core/ports.ts). See docs/architecture.md.
import type Element from 'ltx/lib/Element.js';
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { AccountStore, accountMigrations } from '../accounts/store.js';
import { SCRAM_HASHES, SCRAM_MECHANISMS } from '../accounts/credentials.js';
import { deleteAccountLive, type AccountDeletion } from '../accounts/lifecycle.js';
import { migrateLocked, openDatabase, runMigrations, withMigrationLock, type Migration, type StorageOptions } from '../storage/db.js';
import { StorageHealth, storageMigrations } from '../storage/health.js';
import { SharedCaches } from './caches.js';
import { EventBus, Pause, Waiting } from './events.js';
import { VirtualHost, type HostSettings } from './host.js';
import type { Jid } from './jid.js';
import { ServerMetrics } from './metrics.js';
import { ModuleContext, type ModuleDefinition } from './module.js';
import type { HttpPort } from './http-port.js';
import type { HandOffAnswer, HandOffRequest, NodeLink, RemoteRoute, ResumableSessions, SessionRef } from './ports.js';
import type { StreamErrorCondition } from './stanza.js';
import { Router, stanzaEvent, targetOf, type StanzaEvent } from './router.js';
import { LocalDelivery, SessionRegistry, type Session } from './sessions.js';

/** What a module reload did on a host (Kernel.reloadModules). */
export interface ModuleReload {
  started: string[];
  stopped: string[];
  /** Stopped and set up again: options changed, or a module it depends on did. */
  restarted: string[];
  failed: string[];
}

export interface KernelSettings {
  dataDir: string;
  /** Where shared files are kept (storage.uploads_dir). */
  uploadsDir: string;
  storage: StorageOptions;
  hosts: HostSettings[];
  /** A module's validated options on a host (the config layer maps problems to YAML lines). */
  moduleOptions<T>(host: string, module: string, schema: z.ZodType<T>): T;
  /** PBKDF2 iterations for new SCRAM credentials (RFC 7677 recommends at least 4096). */
  scramIterations: number;
  version: string;
}

/** Slots for what edges give modules through the kernel (see Kernel.extensions). */
// eslint-disable-next-line @typescript-eslint/no-empty-interface
export interface KernelExtensions {}

export class Kernel {
  readonly events = new EventBus();
  readonly hosts = new Map<string, VirtualHost>();
  /** The in-memory SessionDirectory (src/core/ports.ts) of this process's sessions. */
  readonly sessions = new SessionRegistry();
  /** The only writer of stanzas to sessions (src/core/ports.ts). */
  readonly delivery = new LocalDelivery();
  readonly startedAt = Date.now();
  /** Caches of stored data kept coherent across a cluster's nodes (src/core/caches.ts). */
  readonly caches = new SharedCaches();
  /**
   * What the composition root hangs on the kernel for modules whose partner is an edge (the
   * admin commands of src/control for the ad-hoc module), typed where it is declared:
   * `declare module '../core/kernel.js' { interface KernelExtensions { admin: ... } }`.
   */
  readonly extensions: Partial<KernelExtensions> = {};
  /** Prometheus metrics, served at /metrics. */
  readonly metrics: ServerMetrics;
  db!: Knex;
  /** Whether the database can keep what is acknowledged (checked at start, watched while running). */
  storage!: StorageHealth;
  accounts!: AccountStore;
  router!: Router;
  /** The HTTP listeners' routes (modules add theirs with m.http); connected before the modules are set up. */
  http!: HttpPort;

  constructor(
    readonly settings: KernelSettings,
    readonly log: Logger,
    private readonly availableModules: ReadonlyMap<string, ModuleDefinition<unknown>>,
    /** Open connections by kind, for /metrics (the edges know them). */
    connectionCounts: () => Record<string, number>,
  ) {
    this.metrics = new ServerMetrics(connectionCounts);
  }

  private definitionOf(name: string): ModuleDefinition<unknown> {
    const definition = this.availableModules.get(name);
    if (definition === undefined) throw new Error(`unknown module "${name}" (known: ${[...this.availableModules.keys()].join(', ')})`);
    return definition;
  }

  /** Fails at boot, with one line, when a module is unknown or misses a dependency on its host. */
  checkModules(): void {
    for (const host of this.settings.hosts) {
      for (const name of host.modules) {
        for (const dependency of this.definitionOf(name).dependencies ?? []) {
          if (!host.modules.includes(dependency)) throw new Error(`module "${name}" needs module "${dependency}", which is not enabled on ${host.domain}`);
        }
      }
    }
  }

  /**
   * Migrations of a part that opens its tables after the storage (the c2s listener's hibernated
   * sessions), under the same lock as openStorage's: a cluster's nodes start together on one
   * PostgreSQL database, and two creating one table at once fail.
   */
  migrate(part: string, migrations: readonly Migration[]): Promise<void> {
    return migrateLocked(this.db, [[part, migrations]]);
  }

  /**
   * Opens the database (a corrupted or read-only one stops the start, naming the file), applies
   * the migrations of storage, accounts and every enabled module, and makes the accounts and the
   * router.
   */
  async openStorage(): Promise<void> {
    const enabled = [...new Set(this.settings.hosts.flatMap((host) => host.modules))].map((name) => this.definitionOf(name));
    this.db = await openDatabase(this.settings.storage);
    this.storage = new StorageHealth(this.db, this.settings.storage, this.log.child({ component: 'storage' }));
    await this.storage.checkIntegrity();
    await withMigrationLock(this.db, this.settings.storage.driver, async () => {
      await runMigrations(this.db, 'storage', storageMigrations);
      await runMigrations(this.db, 'accounts', accountMigrations);
      for (const definition of enabled) {
        const applied = await runMigrations(this.db, definition.name, definition.migrations ?? []);
        if (applied.length > 0) this.log.info({ module: definition.name, applied }, 'database migrations applied');
      }
    });
    await this.storage.checkWritable();
    this.accounts = new AccountStore(this.db, this.settings.scramIterations);
    // a SCRAM mechanism is offered on a host only while every account there has its keys (AccountStore.missing)
    this.accounts.keysComplete = (host, hash) => {
      this.log.info({ host, mechanism: SCRAM_MECHANISMS[hash] }, `every account of ${host} has ${SCRAM_MECHANISMS[hash]} keys now: it is offered again`);
      this.caches.changed('accounts/keys', host);
    };
    for (const host of this.settings.hosts) {
      const missing = await this.accounts.countMissingKeys(host.domain);
      for (const hash of SCRAM_HASHES) {
        if (missing[hash] === 0) continue;
        const mechanism = SCRAM_MECHANISMS[hash];
        const upgrade = hash === 'sha1' ? '' : ', done a SASL2 upgrade task (XEP-0480)';
        this.log.warn(
          { host: host.domain, accounts: missing[hash], mechanism },
          `${missing[hash]} accounts of ${host.domain} have no ${mechanism} keys (imported, or made before xmppd kept them): ${mechanism} is not offered on this host until each has logged in once with PLAIN${upgrade} or had its password set (xmppd user passwd)`,
        );
      }
    }
    // another node gave an account keys it lacked: its counts are ours too
    this.caches.register('accounts/keys', (host) => {
      this.accounts.countMissingKeys(host).catch((err: unknown) => this.log.error({ err, host }, 'counting the accounts without SCRAM keys failed'));
    });
    this.caches.register('accounts/existence', (key) => this.accounts.forgetExistence(key));
    this.accounts.deleted = (key) => this.caches.changed('accounts/existence', key);
    this.caches.register('accounts/row', (key) => this.accounts.forgetRow(key));
    this.accounts.rowChanged = (key) => this.caches.changed('accounts/row', key);
    this.router = new Router(this.hosts, this.sessions, this.delivery, this.accounts, this.events, this.log);
  }

  /** Makes the virtual hosts and sets up their modules, dependencies first. */
  async setUpModules(): Promise<void> {
    for (const hostSettings of this.settings.hosts) {
      const host = new VirtualHost(hostSettings);
      this.hosts.set(host.domain, host);
      this.router.installDefaultRules(host);
      // dependencies first, whatever order the config lists them in
      for (const definition of loadOrder(hostSettings.modules.map((name) => this.definitionOf(name)))) {
        await this.setUpModule(host, definition, this.settings.moduleOptions);
      }
    }
  }

  /** Sets up one module on a host with its options; one that fails is undone as far as it went, then the error goes on. */
  private async setUpModule(host: VirtualHost, definition: ModuleDefinition<unknown>, options: KernelSettings['moduleOptions']): Promise<void> {
    const context = new ModuleContext(definition.name, this, host, definition.options ? options(host.domain, definition.name, definition.options) : ({} as never), this.log.child({ module: definition.name, host: host.domain }));
    try {
      await definition.setup(context);
    } catch (err) {
      await context.stop().catch(() => undefined);
      throw err;
    }
    host.modules.set(definition.name, context);
  }

  /**
   * Live reload of one host's modules (`xmppd reload`): `wanted` is the new list, `changed` the
   * modules whose options changed. What goes, and what changed, stops, with every module that
   * depends on one of them (it holds their service); then what is new, changed or stopped with
   * them is set up again, dependencies first, with `options` (the new configuration's). Connected
   * clients stay; a module set up again starts afresh (its in-memory state is its store's).
   */
  async reloadModules(domain: string, wanted: readonly string[], changed: ReadonlySet<string>, options: KernelSettings['moduleOptions']): Promise<ModuleReload> {
    const host = this.hosts.get(domain);
    if (host === undefined) throw new Error(`no host ${domain}`);
    const running = [...host.modules.keys()];
    const report: ModuleReload = { started: [], stopped: [], restarted: [], failed: [] };
    // what stops: removed or changed, and what depends on those (transitively)
    const stopping = new Set(running.filter((name) => !wanted.includes(name) || changed.has(name)));
    for (let grew = true; grew; ) {
      grew = false;
      for (const name of running) {
        if (stopping.has(name)) continue;
        if ((this.definitionOf(name).dependencies ?? []).some((dependency) => stopping.has(dependency))) {
          stopping.add(name);
          grew = true;
        }
      }
    }
    for (const name of running.reverse()) {
      if (!stopping.has(name)) continue;
      await host.modules.get(name)!.stop().catch((err: unknown) => this.log.error({ err, module: name, host: domain }, 'module failed to stop'));
      host.modules.delete(name);
      if (!wanted.includes(name)) report.stopped.push(name);
    }
    const starting = loadOrder(wanted.map((name) => this.definitionOf(name))).filter((definition) => !host.modules.has(definition.name));
    await withMigrationLock(this.db, this.settings.storage.driver, async () => {
      for (const definition of starting) await runMigrations(this.db, definition.name, definition.migrations ?? []);
    });
    for (const definition of starting) {
      try {
        await this.setUpModule(host, definition, options);
        (running.includes(definition.name) ? report.restarted : report.started).push(definition.name);
      } catch (err) {
        this.log.error({ err, module: definition.name, host: domain }, 'module failed to start on reload');
        report.failed.push(`${definition.name}: ${(err as Error).message}`);
      }
    }
    host.settings.modules = [...host.modules.keys()];
    return report;
  }

  /**
   * A client stanza, `from` already stamped by its stream: the `pre-` events, then the router
   * (docs/architecture.md "flow"). Returns a promise when the stanza is accepted only once it
   * settles (a write to offline storage or the archive), which stream management waits for
   * before acknowledging.
   */
  processFromClient(stanza: Element, session: Session, to: Jid | null): unknown {
    const host = this.hosts.get(session.host)!;
    const target = to === null ? 'none' : targetOf(to);
    const event: StanzaEvent = { stanza, from: session.jid, to: to ?? session.jid.toBare(), host, session, durable: undefined };
    const handled = host.events.fire(stanzaEvent(stanza.name, target, true), event);
    if (handled !== undefined) return handled instanceof Pause ? this.afterPause(handled, event) : handled;
    return this.routeFromClient(event);
  }

  /** A `pre-` hook waited (events.ts wait()): the rest of the chain and the routing follow once it is done. */
  private afterPause(paused: Pause, event: StanzaEvent): Waiting {
    let accepted: unknown;
    const routed = paused.promise
      .then((result) => {
        accepted = result !== undefined ? result : this.routeFromClient(event);
      })
      // a failed handler (or router) ends the stanza here, logged; the client's next stanzas go on
      .catch((err: unknown) => this.log.error({ err, from: event.from.toString(), kind: event.stanza.name }, 'handling a stanza that waited failed; it goes no further'));
    return new Waiting(routed, routed.then(() => accepted));
  }

  private routeFromClient(event: StanzaEvent): unknown {
    const { stanza, session } = event;
    let routed = this.router.routeAddressed(stanza, event.from, event.to, session);
    // a recipient-side hook waited (e.g. for a block list): accepted once the rest of its chain is done
    if (routed instanceof Pause) routed = routed.promise;
    // what a hook must store before the stanza is accepted (the archive), once it is routed
    const durable = event.durable;
    if (durable === undefined) return routed;
    return routed instanceof Promise ? routed.then(() => durable.written()) : durable.written();
  }

  /**
   * A stanza from another server, whose stream has authenticated `from`'s domain for `to`'s (one
   * of ours): it enters the router on the recipient's side, as a local user's stanza does after
   * its `pre-` events, so every module sees it. Never relayed to a third server.
   */
  processFromRemote(stanza: Element, from: Jid, to: Jid): unknown {
    if (!this.hosts.has(to.domain) && !this.router.components.has(to.domain)) {
      this.log.warn({ from: from.toString(), to: to.toString() }, 'refusing to relay a stanza from another server');
      return undefined;
    }
    return this.router.routeAddressed(stanza, from, to);
  }

  /** Called by a stream once its session is bound (registered in the session registry). */
  sessionBound(session: Session): void {
    // RFC 6120 §7.7.2.2: a new session for the same full JID replaces the old one. The old one
    // is closed first, while still registered, so it ends like any other (contacts see it go).
    const previous = this.sessions.get(session.jid.bare, session.jid.resource);
    if (previous !== undefined && previous !== session) previous.close('conflict', 'Replaced by a new connection for the same resource');
    this.sessions.add(session);
    this.hosts.get(session.host)?.events.fire('session/bound', { session });
  }

  /**
   * Ends sessions with a stream error (RFC 6120 §4.9.3): the one with a full JID, or every one of
   * an account; in a cluster, those of other nodes are ended by their node. Returns how many.
   */
  closeSessions(jid: Jid, condition: StreamErrorCondition, text: string): number {
    const all = this.sessions.resources(jid.bare);
    const targets = jid.resource === '' ? [...(all?.values() ?? [])] : [all?.get(jid.resource)].filter((s): s is SessionRef => s !== undefined);
    for (const ref of targets) {
      if (ref.local !== undefined) (ref as Session).close(condition, text);
      else this.delivery.link?.close(ref, condition, text);
    }
    return targets.length;
  }

  /** This node's sessions waiting to be resumed, for the other nodes of a cluster (set by the c2s edge). */
  resumable: ResumableSessions | undefined;

  /** The cluster's id of this node; undefined when not clustered. */
  get nodeId(): string | undefined {
    return this.delivery.link?.node;
  }

  /** XEP-0198 §5 across nodes: the session `request.previd` names, from the node that issued it. */
  async takeOver(node: string, request: HandOffRequest): Promise<HandOffAnswer> {
    const link = this.delivery.link;
    if (link === undefined) return { failed: 'item-not-found' };
    // the session may have moved on since its id was issued: follow it, a few hops at most
    for (let hops = 0; hops < 3; hops++) {
      // an id this node issued for a session that moved on: where it went is known here
      const answer = node === link.node ? (this.resumable?.handOut(request) ?? { failed: 'item-not-found' as const }) : await link.takeOver(node, request);
      if (!('movedTo' in answer)) return answer;
      node = answer.movedTo;
    }
    return { failed: 'item-not-found' };
  }

  /**
   * A session resumed here from another node: bound without `session/bound` side effects other
   * than the modules' (no presence is sent: its contacts saw it online all along).
   */
  sessionHandedIn(session: Session): void {
    this.sessions.add(session);
    this.hosts.get(session.host)?.events.fire('session/bound', { session });
  }

  /**
   * A session resumed here, after its <resumed/> and what it had not acknowledged went out: in a
   * cluster, stanzas the node it came from sent on meanwhile follow (NodeLink.arrived).
   */
  afterResume(session: Session): void {
    this.delivery.link?.arrived(session.jid.toString());
  }

  /** A session handed to another node: forgotten here without `session/closed` (it did not end). */
  sessionHandedOut(session: Session): void {
    this.sessions.remove(session);
  }

  /** Called by a stream when its bound session ends, whatever the reason. */
  sessionClosed(session: Session, reason: string): void {
    if (!this.sessions.remove(session)) return;
    this.hosts.get(session.host)?.events.fire('session/closed', { session, reason });
  }

  /** Called by a session whose connection dropped and that waits for resumption (XEP-0198 §5). */
  sessionHibernating(session: Session, queued: readonly Element[]): void {
    this.hosts.get(session.host)?.events.fire('session/hibernating', { session, queued });
  }

  /** Called when a connected session's client has not acknowledged stanzas for a while (XEP-0198 <r/> unanswered). */
  sessionAckDelayed(session: Session, queued: readonly Element[]): void {
    this.hosts.get(session.host)?.events.fire('session/ack-delayed', { session, queued });
  }

  /** Called by a hibernating session resumed on a new connection. */
  sessionResumed(session: Session): void {
    this.hosts.get(session.host)?.events.fire('session/resumed', { session });
  }

  /** Called by a hibernating session for each stanza it queues for its client's return. */
  stanzaHeldForResumption(session: Session, stanza: Element): void {
    const host = this.hosts.get(session.host);
    if (host?.events.has('session/hibernated-stanza')) host.events.fire('session/hibernated-stanza', { session, stanza });
  }

  /** Connects (or, with undefined, disconnects) the other nodes of a cluster (src/cluster). */
  connectNodes(link: NodeLink | undefined): void {
    this.delivery.link = link;
  }

  /** Connects (or, with undefined, disconnects) the route to other domains: s2s. */
  connectRemote(route: RemoteRoute | undefined): void {
    this.router.remote = route;
  }

  /** Every module this build knows (a disabled one may still hold data from when it was on). */
  moduleDefinitions(): Iterable<ModuleDefinition<unknown>> {
    return this.availableModules.values();
  }

  /** Deletes an account, kicks its sessions and removes every module's data for it (src/accounts/lifecycle.ts). */
  deleteAccount(host: string, username: string): Promise<AccountDeletion> {
    return deleteAccountLive(this, host, username);
  }

  /** Stops every host's modules, last set up first. */
  async stopModules(phaseDone: (phase: string) => void): Promise<void> {
    for (const host of this.hosts.values()) {
      for (const module of [...host.modules.values()].reverse()) {
        await module.stop().catch((err: unknown) => this.log.error({ err, module: module.name }, 'module failed to stop'));
        phaseDone(`${host.domain}/${module.name}`);
      }
    }
  }

  /** Lets the queries under way finish (up to 5 s), then closes the database. */
  async closeStorage(phaseDone: (phase: string) => void): Promise<void> {
    this.storage?.stop();
    if (this.db) {
      await drainDatabase(this.db, 5000);
      phaseDone('database drain');
      await this.db.destroy();
    }
  }
}

/** Orders module definitions so that each comes after the modules it depends on. */
function loadOrder(definitions: ModuleDefinition<unknown>[]): ModuleDefinition<unknown>[] {
  const byName = new Map(definitions.map((d) => [d.name, d]));
  const ordered: ModuleDefinition<unknown>[] = [];
  const visit = (definition: ModuleDefinition<unknown>, path: string[]) => {
    if (ordered.includes(definition)) return;
    if (path.includes(definition.name)) throw new Error(`modules depend on each other in a cycle: ${[...path, definition.name].join(' → ')}`);
    for (const dependency of definition.dependencies ?? []) visit(byName.get(dependency)!, [...path, definition.name]);
    ordered.push(definition);
  };
  for (const definition of definitions) visit(definition, []);
  return ordered;
}

/** Waits (up to `timeoutMs`) for queries already under way, e.g. writes caused by the streams just closed. */
async function drainDatabase(db: Knex, timeoutMs: number): Promise<void> {
  const pool = (db.client as { pool?: { numUsed(): number; numPendingAcquires(): number; numPendingCreates(): number } }).pool;
  if (!pool) return;
  const deadline = Date.now() + timeoutMs;
  // let the events of the closed streams start their work before looking
  await new Promise((resolve) => setImmediate(resolve));
  while (pool.numUsed() + pool.numPendingAcquires() + pool.numPendingCreates() > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
