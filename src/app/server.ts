// The running server, as the composition root puts it together: storage → accounts → kernel →
// modules → c2s / s2s / http / control socket, and down again in the reverse order. The only
// place that knows every layer (docs/architecture.md); the kernel (src/core/kernel.ts) knows none
// of the edges built here.
import type { Logger } from 'pino';
import type { ServerMetrics } from '../core/metrics.js';
import type { HostSettings } from '../core/host.js';
import type { Cluster, ClusterSettings } from '../cluster/index.js';
import { Kernel, type KernelSettings } from '../core/kernel.js';
import type { ModuleDefinition } from '../core/module.js';
import type { AccountDeletion } from '../accounts/lifecycle.js';
import { C2SListeners, type C2SSettings } from '../c2s/listener.js';
import type { OverloadShedding } from '../c2s/overload.js';
import { AuthThrottle } from '../c2s/sasl/throttle.js';
import { serveWebSocket } from '../c2s/websocket.js';
import { ControlSocket } from '../control/socket.js';
import { serveEndpoints } from '../http/endpoints.js';
import { serveAdminApi } from '../http/admin-api.js';
import { serveDashboard, type Dashboard } from '../http/dashboard/index.js';
import type { LiveAdminContext } from '../control/registry.js';
import { HttpService, type HttpSettings } from '../http/service.js';
import { S2SService } from '../s2s/service.js';
import type { S2SRoute, S2SSettings } from '../s2s/settings.js';
import { TlsContexts, type HostTlsFiles } from '../tls/contexts.js';

export interface ServerHostSettings extends HostSettings {
  tls?: HostTlsFiles | undefined;
}

export interface ServerSettings extends KernelSettings {
  hosts: ServerHostSettings[];
  c2s: C2SSettings;
  http: HttpSettings;
  /** Federation; off when missing or not enabled. */
  s2s?: S2SSettings | undefined;
  /** Cluster mode (src/cluster); one process when missing. */
  cluster?: ClusterSettings | undefined;
}

export class Server {
  readonly kernel: Kernel;
  tls!: TlsContexts;
  authThrottle!: AuthThrottle;
  /** The HTTP listeners and their routes (modules add routes with m.http). */
  http!: HttpService;
  private c2s: C2SListeners | undefined;
  /** The other nodes, in cluster mode. */
  cluster: Cluster | undefined;
  /** Federation (src/s2s), when enabled. */
  s2s: S2SService | undefined;
  private stopping: Promise<void> | undefined;
  /** The local control socket the CLI talks to (src/control). */
  private control: ControlSocket | undefined;
  /** The web admin dashboard (src/http/dashboard), when enabled. */
  dashboard: Dashboard | undefined;

  constructor(
    readonly settings: ServerSettings,
    readonly log: Logger,
    availableModules: ReadonlyMap<string, ModuleDefinition<unknown>>,
  ) {
    this.kernel = new Kernel(settings, log, availableModules, () => ({ ...(this.c2s?.connectionCounts() ?? { c2s_tcp: 0, c2s_websocket: 0 }) }));
  }

  /** The admin commands' context (src/control), set by the composition root (src/app.ts). */
  get admin(): ((hosts?: readonly string[]) => LiveAdminContext) | undefined {
    return this.kernel.extensions.admin;
  }

  // What tests and tools read of the kernel, as before the split.
  get db() {
    return this.kernel.db;
  }
  get accounts() {
    return this.kernel.accounts;
  }
  get sessions() {
    return this.kernel.sessions;
  }
  get hosts() {
    return this.kernel.hosts;
  }
  get router() {
    return this.kernel.router;
  }
  get events() {
    return this.kernel.events;
  }
  get storage() {
    return this.kernel.storage;
  }
  get metrics(): ServerMetrics {
    return this.kernel.metrics;
  }
  get startedAt(): number {
    return this.kernel.startedAt;
  }

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
    const kernel = this.kernel;
    kernel.checkModules();
    const defaultHttpHost = this.settings.http.defaultHost;
    if (defaultHttpHost !== undefined && !this.settings.hosts.some((h) => h.domain === defaultHttpHost)) {
      throw new Error(`http.default_host ${defaultHttpHost} is not one of the hosts`);
    }
    // storage → accounts → kernel (router, hosts)
    await kernel.openStorage();
    this.authThrottle = new AuthThrottle(this.settings.c2s.authThrottle);
    this.authThrottle.shareAcross(kernel.caches); // a cluster's nodes count each other's failures
    this.tls = await TlsContexts.load(this.settings.hosts, this.settings.dataDir, this.log);
    // the HTTP port before the modules, which add their routes while being set up
    this.http = new HttpService(this.settings.http, kernel.hosts, () => this.tls, this.log.child({ component: 'http' }));
    kernel.http = this.http;
    // → modules
    await kernel.setUpModules();
    // → the cluster (before the listeners: a client's session is shared from its first stanza)
    if (this.settings.cluster !== undefined) {
      // loaded only here: a server that runs alone never loads node-redis
      const { Cluster: ClusterNode } = await import('../cluster/index.js');
      this.cluster = new ClusterNode(kernel, this.settings.cluster, this.log.child({ component: 'cluster', node: this.settings.cluster.nodeId }));
      await this.cluster.start();
    }
    // → the edges
    this.c2s = new C2SListeners(kernel, this.settings.c2s, this.tls, this.authThrottle);
    await this.c2s.listen();
    if (this.settings.http.websocket.enabled) serveWebSocket(kernel, this.c2s, this.settings.http.websocket, this.settings.c2s.maxStanzaSize);
    serveEndpoints(this, this.settings.http.metrics, this.settings.http.websocket.enabled);
    serveAdminApi(this, this.settings.http.adminApi); // src/http/admin-api.ts, from the command registry
    if (this.settings.http.enabled) this.dashboard = serveDashboard(this, this.settings.http.dashboard); // src/http/dashboard, the same registry
    await this.http.listen();
    if (this.settings.s2s?.enabled) {
      this.s2s = new S2SService(kernel, this.settings.s2s, this.tls);
      await this.s2s.start();
      kernel.connectRemote(this.s2s);
    }
    this.control = await ControlSocket.open(this);
    this.log.info({ hosts: [...kernel.hosts.keys()], listeners: this.c2s.addresses(), http: this.httpAddresses(), s2s: this.s2s?.addresses() }, 'xmppd started');
  }

  /** Overload shedding of the client listeners (src/c2s/overload.ts); null when it is off or not started. */
  c2sShedding(): OverloadShedding | null {
    return this.c2s?.shedding ?? null;
  }

  /** Addresses the client listeners are bound to (with the real port when 0 was configured). */
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

  /** Addresses the server-to-server listeners are bound to (empty when federation is off). */
  s2sAddresses(): S2SRoute[] {
    return this.s2s?.addresses() ?? [];
  }

  /** Deletes an account, kicks its sessions and removes every module's data for it (src/accounts/lifecycle.ts). */
  deleteAccount(host: string, username: string): Promise<AccountDeletion> {
    return this.kernel.deleteAccount(host, username);
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
    await this.cluster?.stop();
    phaseDone('cluster');
    this.dashboard?.close();
    await this.http?.close();
    phaseDone('http');
    if (this.s2s !== undefined) this.kernel.connectRemote(undefined);
    await this.s2s?.close();
    phaseDone('s2s');
    await this.kernel.stopModules(phaseDone);
    await this.kernel.closeStorage(phaseDone);
    this.log.info('stopped');
  }
}
