// The server: owns the database, the virtual hosts with their modules, the session registry, the
// router and the listeners, and takes them up and down in order.
import type Element from 'ltx/lib/Element.js';
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { AccountStore, accountMigrations } from '../accounts/store.js';
import { deleteAccountLive, type AccountDeletion } from '../accounts/lifecycle.js';
import { ControlSocket } from '../control/socket.js';
import type { LiveAdminContext } from '../control/registry.js';
import { EventBus } from './events.js';
import { VirtualHost, type HostSettings } from './host.js';
import { ModuleContext, type ModuleDefinition } from './module.js';
import { Router } from './router.js';
import { SessionRegistry, type Session } from './sessions.js';
import { openDatabase, runMigrations, type StorageOptions } from '../storage/db.js';
import { StorageHealth, storageMigrations } from '../storage/health.js';
import { C2SListeners, type C2SSettings } from '../c2s/listener.js';
import type { OverloadShedding } from '../c2s/overload.js';
import { TlsContexts, type HostTlsFiles } from '../tls/contexts.js';
import { AuthThrottle } from '../c2s/sasl/throttle.js';
import type { Jid } from './jid.js';
import { HttpService, type HttpSettings } from '../http/service.js';
import { serveWebSocket } from '../c2s/websocket.js';
import { ServerMetrics } from './metrics.js';
import { serveEndpoints } from '../http/endpoints.js';
import { serveAdminApi } from '../http/admin-api.js';
import { S2SService } from '../s2s/service.js';
import type { S2SRoute, S2SSettings } from '../s2s/settings.js';

export interface ServerHostSettings extends HostSettings {
  tls?: HostTlsFiles | undefined;
}

export interface ServerSettings {
  dataDir: string;
  storage: StorageOptions;
  hosts: ServerHostSettings[];
  c2s: C2SSettings;
  http: HttpSettings;
  /** Federation; off when missing or not enabled. */
  s2s?: S2SSettings | undefined;
  /** A module's validated options on a host (the config layer maps problems to YAML lines). */
  moduleOptions<T>(host: string, module: string, schema: z.ZodType<T>): T;
  /** PBKDF2 iterations for new SCRAM credentials (RFC 7677 recommends at least 4096). */
  scramIterations: number;
  version: string;
}

export class Server {
  readonly events = new EventBus();
  readonly hosts = new Map<string, VirtualHost>();
  readonly sessions = new SessionRegistry();
  readonly startedAt = Date.now();
  /** Prometheus metrics, served at /metrics. */
  readonly metrics = new ServerMetrics(() => ({ ...(this.c2s?.connectionCounts() ?? { c2s_tcp: 0, c2s_websocket: 0 }) }));
  db!: Knex;
  /** Whether the database can keep what is acknowledged (checked at start, watched while running). */
  storage!: StorageHealth;
  accounts!: AccountStore;
  router!: Router;
  tls!: TlsContexts;
  authThrottle!: AuthThrottle;
  /** The HTTP listeners and their routes (modules add routes with m.http). */
  http!: HttpService;
  private c2s: C2SListeners | undefined;
  /** Federation (src/s2s), when enabled. */
  s2s: S2SService | undefined;
  private stopping: Promise<void> | undefined;
  /** The local control socket the CLI talks to (src/control). */
  private control: ControlSocket | undefined;
  /** The admin commands' context on this server (src/control/context.ts), set by src/app.ts. */
  admin: ((hosts?: readonly string[]) => LiveAdminContext) | undefined;

  constructor(
    readonly settings: ServerSettings,
    readonly log: Logger,
    private readonly availableModules: ReadonlyMap<string, ModuleDefinition<unknown>>,
  ) {}

  /**
   * Opens the database, sets up every host's modules and opens the listeners. If any of it fails,
   * what was opened is closed again (listeners, modules, database) before the error is passed on.
   */
  async start(): Promise<void> {
    try {
      await this.startUp();
    } catch (err) {
      // the reason only: whoever called start() reports the error itself (the CLI as a config line)
      this.log.error({ reason: (err as Error).message }, 'start-up failed; closing what was opened');
      await this.stop().catch((stopErr: unknown) => this.log.error({ err: stopErr }, 'closing after a failed start-up failed'));
      throw err;
    }
  }

  private async startUp(): Promise<void> {
    const definitionOf = (name: string) => {
      const definition = this.availableModules.get(name);
      if (definition === undefined) throw new Error(`unknown module "${name}" (known: ${[...this.availableModules.keys()].join(', ')})`);
      return definition;
    };
    for (const host of this.settings.hosts) {
      for (const name of host.modules) {
        for (const dependency of definitionOf(name).dependencies ?? []) {
          if (!host.modules.includes(dependency)) throw new Error(`module "${name}" needs module "${dependency}", which is not enabled on ${host.domain}`);
        }
      }
    }
    const defaultHttpHost = this.settings.http.defaultHost;
    if (defaultHttpHost !== undefined && !this.settings.hosts.some((h) => h.domain === defaultHttpHost)) {
      throw new Error(`http.default_host ${defaultHttpHost} is not one of the hosts`);
    }
    const enabled = [...new Set(this.settings.hosts.flatMap((host) => host.modules))].map(definitionOf);

    this.db = await openDatabase(this.settings.storage);
    // a corrupted or read-only database stops the start, naming the file (storage/health.ts)
    this.storage = new StorageHealth(this.db, this.settings.storage, this.log.child({ component: 'storage' }));
    await this.storage.checkIntegrity();
    await runMigrations(this.db, 'storage', storageMigrations);
    await runMigrations(this.db, 'accounts', accountMigrations);
    for (const definition of enabled) {
      const applied = await runMigrations(this.db, definition.name, definition.migrations ?? []);
      if (applied.length > 0) this.log.info({ module: definition.name, applied }, 'database migrations applied');
    }
    await this.storage.checkWritable();
    this.accounts = new AccountStore(this.db, this.settings.scramIterations);
    this.authThrottle = new AuthThrottle(this.settings.c2s.authThrottle);
    this.router = new Router(this.hosts, this.sessions, this.accounts, this.events, this.log);
    this.tls = await TlsContexts.load(this.settings.hosts, this.settings.dataDir, this.log);
    this.http = new HttpService(this.settings.http, this.hosts, () => this.tls, this.log.child({ component: 'http' }));

    for (const hostSettings of this.settings.hosts) {
      const host = new VirtualHost(hostSettings);
      this.hosts.set(host.domain, host);
      this.router.installDefaultRules(host);
      // dependencies first, whatever order the config lists them in
      for (const definition of loadOrder(hostSettings.modules.map(definitionOf))) {
        const options = definition.options ? this.settings.moduleOptions(host.domain, definition.name, definition.options) : ({} as never);
        const context = new ModuleContext(definition.name, this, host, options, this.log.child({ module: definition.name, host: host.domain }));
        await definition.setup(context);
        host.modules.set(definition.name, context as ModuleContext<unknown>);
      }
    }

    this.c2s = new C2SListeners(this, this.settings.c2s);
    await this.c2s.listen();
    if (this.settings.http.websocket.enabled) serveWebSocket(this, this.c2s, this.settings.http.websocket, this.settings.c2s.maxStanzaSize);
    serveEndpoints(this, this.settings.http.metrics, this.settings.http.websocket.enabled);
    serveAdminApi(this, this.settings.http.adminApi); // src/http/admin-api.ts, from the command registry
    await this.http.listen();
    if (this.settings.s2s?.enabled) {
      this.s2s = new S2SService(this, this.settings.s2s);
      await this.s2s.start();
    }
    this.control = await ControlSocket.open(this);
    this.log.info({ hosts: [...this.hosts.keys()], listeners: this.c2s.addresses(), http: this.httpAddresses(), s2s: this.s2s?.addresses() }, 'xmppd started');
  }

  /** Addresses the client listeners are bound to (with the real port when 0 was configured). */
  /** Overload shedding of the client listeners (src/c2s/overload.ts); null when it is off or not started. */
  c2sShedding(): OverloadShedding | null {
    return this.c2s?.shedding ?? null;
  }

  c2sAddresses(): Array<{ host: string; port: number; tls: 'starttls' | 'direct' }> {
    return this.c2s?.addresses() ?? [];
  }

  /** Every configured listener is accepting connections (readiness). */
  listenersUp(): boolean {
    return this.c2s !== undefined && this.c2s.addresses().length === this.settings.c2s.listen.length && this.http.ready;
  }

  /** Addresses the HTTP listeners are bound to (with the real port when 0 was configured). */
  httpAddresses(): Array<{ host: string; port: number; tls: 'none' | 'direct' }> {
    return this.http?.addresses() ?? [];
  }

  /**
   * A client stanza, `from` already stamped by its stream: the `pre-` events, then the router
   * (DESIGN.md "flow"). Returns a promise when the stanza is accepted only once it settles (a
   * write to offline storage), which stream management waits for before acknowledging.
   */
  processFromClient(stanza: Element, session: Session, to: Jid | null): unknown {
    const host = this.hosts.get(session.host)!;
    const target = to === null ? 'none' : to.local === '' ? 'host' : to.resource === '' ? 'bare' : 'full';
    const event = { stanza, from: session.jid, to: to ?? session.jid.toBare(), host, session };
    const handled = host.events.fire(`pre-${stanza.name}/${target}`, event);
    if (handled !== undefined) return handled;
    return this.router.routeAddressed(stanza, event.from, event.to, session);
  }

  /** Every module this build knows (a disabled one may still hold data from when it was on). */
  moduleDefinitions(): Iterable<ModuleDefinition<unknown>> {
    return this.availableModules.values();
  }

  /** Deletes an account, kicks its sessions and removes every module's data for it (src/accounts/lifecycle.ts). */
  deleteAccount(host: string, username: string): Promise<AccountDeletion> {
    return deleteAccountLive(this, host, username);
  }

  /** Addresses the server-to-server listeners are bound to (empty when federation is off). */
  s2sAddresses(): S2SRoute[] {
    return this.s2s?.addresses() ?? [];
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

  /** Called by a stream when its bound session ends, whatever the reason. */
  sessionClosed(session: Session, reason: string): void {
    if (!this.sessions.remove(session)) return;
    this.hosts.get(session.host)?.events.fire('session/closed', { session, reason });
  }

  async stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async shutdown(): Promise<void> {
    this.log.info('shutting down');
    await this.control?.close();
    let phaseStart = performance.now();
    const phaseDone = (phase: string) => {
      const now = performance.now();
      this.log.debug({ phase, ms: Math.round(now - phaseStart) }, 'shutdown phase done');
      phaseStart = now;
    };
    await this.c2s?.close();
    phaseDone('c2s');
    await this.http?.close();
    phaseDone('http');
    await this.s2s?.close();
    phaseDone('s2s');
    for (const host of this.hosts.values()) {
      for (const module of [...host.modules.values()].reverse()) {
        await module.stop().catch((err: unknown) => this.log.error({ err, module: module.name }, 'module failed to stop'));
        phaseDone(`${host.domain}/${module.name}`);
      }
    }
    this.storage?.stop();
    if (this.db) {
      await drainDatabase(this.db, 5000);
      phaseDone('database drain');
      await this.db.destroy();
    }
    this.log.info('stopped');
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
