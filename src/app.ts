// The composition root: from a validated configuration to a running Server (src/app/server.ts,
// which builds storage → accounts → kernel → modules → c2s / s2s / http / control socket):
// settings mapping, the module registry and the logger.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pino, { type Logger } from 'pino';
import type { z } from 'zod';
import type { CoreConfig } from './config/schema.js';
import { modulesForHost, validateModuleOptions, type ConfigSource } from './config/load.js';
import { defaultNodeId } from './cluster/node-id.js';
import { Server, type ServerSettings } from './app/server.js';
import { moduleRegistry } from './modules/index.js';
import { DEFAULT_SCRAM_ITERATIONS } from './accounts/credentials.js';
import { liveContext } from './control/context.js';

export function packageVersion(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  for (const candidate of [path.join(here, '..', 'package.json'), path.join(here, '..', '..', 'package.json')]) {
    if (fs.existsSync(candidate)) return (JSON.parse(fs.readFileSync(candidate, 'utf8')) as { version: string }).version;
  }
  return '0.0.0';
}

export function createLogger(config: CoreConfig): Logger {
  if (config.log.format === 'pretty') {
    return pino({ level: config.log.level, transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss', ignore: 'pid,hostname' } } });
  }
  return pino({ level: config.log.level });
}

export function serverSettings(config: CoreConfig, source: ConfigSource): ServerSettings {
  const { c2s } = config;
  return {
    dataDir: config.data_dir,
    uploadsDir: config.storage.uploads_dir,
    storage: { driver: config.storage.driver, sqliteFile: config.storage.sqlite_file, postgresUrl: config.storage.postgres_url },
    hosts: config.hosts.map((host) => ({
      domain: host.domain,
      registration: host.registration,
      admins: host.admins,
      tls: host.tls,
      modules: [...modulesForHost(config, host).keys()],
    })),
    c2s: {
      listen: c2s.listen,
      requireEncryption: c2s.require_encryption,
      maxStanzaSize: c2s.max_stanza_size,
      maxReceiveRate: c2s.max_receive_rate,
      maxCpuShare: c2s.max_cpu_share === 'never' ? null : c2s.max_cpu_share,
      authTimeout: c2s.auth_timeout,
      streamOpenTimeout: c2s.stream_open_timeout,
      pingInterval: c2s.ping_interval,
      pingTimeout: c2s.ping_timeout,
      whitespaceKeepalive: c2s.whitespace_keepalive,
      authThrottle: {
        perIp: c2s.auth_throttle.per_ip,
        perAccountAndIp: c2s.auth_throttle.per_account_and_ip,
        perAccount: c2s.auth_throttle.per_account,
        maxBackoff: c2s.auth_throttle.max_backoff,
      },
      resumeTimeout: c2s.resume_timeout ?? 0,
      resumeTimeoutPush: c2s.resume_timeout_push ?? 0,
      ackDelay: c2s.ack_delay,
      maxSessionsPerAccount: c2s.max_sessions_per_account,
      overload: {
        shedding: c2s.overload.shedding,
        eventLoopLag: c2s.overload.event_loop_lag,
        backlog: c2s.overload.backlog,
        unacked: c2s.overload.unacked === 'never' ? null : c2s.overload.unacked,
        maxHeld: c2s.overload.max_held,
      },
    },
    http: {
      enabled: config.http.enabled,
      listen: config.http.listen,
      publicUrl: config.http.public_url,
      defaultHost: config.http.default_host,
      maxBodySize: config.http.max_body_size,
      requestTimeout: config.http.request_timeout,
      websocket: { enabled: config.http.websocket.enabled, considerSecure: config.http.websocket.consider_secure },
      metrics: config.http.metrics,
      adminApi: { ...config.http.admin_api, token: config.http.admin_api.token },
      dashboard: {
        enabled: config.http.dashboard.enabled,
        path: config.http.dashboard.path,
        listeners: config.http.dashboard.listeners,
        sampleInterval: config.http.dashboard.sample_interval,
        idleTimeout: config.http.dashboard.idle_timeout,
      },
    },
    s2s: {
      enabled: config.s2s.enabled,
      listen: config.s2s.listen,
      routes: new Map(Object.entries(config.s2s.routes).map(([domain, route]) => [domain.toLowerCase().replace(/\.$/, ''), route])),
      dnsServers: config.s2s.dns_servers,
      caFile: config.s2s.ca_file,
      requireEncryption: config.s2s.require_encryption,
      requireValidCertificates: config.s2s.require_valid_certificates,
      dialback: config.s2s.dialback,
      secureDomains: config.s2s.secure_domains,
      insecureDomains: config.s2s.insecure_domains,
      dialbackSecret: config.s2s.dialback_secret,
      connectTimeout: config.s2s.connect_timeout,
      idleTimeout: config.s2s.idle_timeout,
      maxQueuedStanzas: config.s2s.max_queued_stanzas,
      maxStanzaSize: config.s2s.max_stanza_size,
    },
    cluster:
      config.cluster === undefined
        ? undefined
        : {
            redisUrl: config.cluster.redis_url,
            redisCluster: config.cluster.redis_cluster,
            nodeId: config.cluster.node_id ?? defaultNodeId(),
            heartbeatMs: config.cluster.heartbeat * 1000,
            nodeTimeoutMs: config.cluster.node_timeout * 1000,
          },
    moduleOptions<T>(domain: string, module: string, schema: z.ZodType<T>): T {
      const index = config.hosts.findIndex((h) => h.domain === domain);
      return validateModuleOptions(source, config, index, module, schema);
    },
    scramIterations: DEFAULT_SCRAM_ITERATIONS,
    version: packageVersion(),
  };
}

export function createServer(config: CoreConfig, source: ConfigSource, log: Logger): Server {
  const server = new Server(serverSettings(config, source), log, moduleRegistry);
  // the admin commands (src/control): control socket, ad-hoc commands, reload
  server.kernel.extensions.admin = (hosts) => liveContext(server, { configFile: source.file, settingsFor: serverSettings }, hosts);
  return server;
}
