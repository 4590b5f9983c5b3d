// The core configuration schema: everything the server itself reads from xmppd.yml.
// Every object is strict (an unknown key is a mistake worth stopping for) and every option has a
// default, so an empty file is a valid configuration. Module options are only checked for shape
// here (enabled/disabled/a map); each module validates its own section with its own schema at
// start (see validateModuleOptions in load.ts). config/xmppd.example.yml documents every option.

import path from 'node:path';
import { z } from 'zod';
import { byteSize, byteSizeOrNever, describeValue, duration, durationOrNever } from './units.js';

/**
 * A module's entry under `modules:`: `true`, an empty value or a map of options enables it,
 * `false` disables it. Normalised to `false` or the options map (`{}` for "defaults").
 */
export const moduleSettingSchema = z
  .union([z.boolean(), z.null(), z.record(z.string(), z.unknown())], {
    error: (issue) => `expected true, false or a map of module options, got ${describeValue(issue.input)}`,
  })
  .transform((value): ModuleSetting => (value === true || value === null ? {} : value));

export type ModuleSetting = false | Record<string, unknown>;

export const modulesSchema = z.record(z.string(), moduleSettingSchema);

/**
 * A section whose options are all commented out is an empty YAML value (null): it keeps its
 * defaults, as if it were absent, rather than failing with "expected a map".
 */
function section<T extends z.ZodType>(schema: T) {
  return z.preprocess((value) => (value === null ? undefined : value), schema);
}

/** The modules a fresh server runs: the ones every XMPP client expects to find. */
export const STANDARD_MODULES = ['roster', 'presence', 'offline', 'last', 'register', 'disco', 'version', 'time', 'ping', 'muc', 'carbons', 'blocking', 'vcard', 'private', 'mam', 'upload', 'webchat', 'invites', 'mail', 'caps', 'pubsub', 'external_services', 'bookmarks', 'avatar_conversion', 'adhoc', 'fast', 'push', 'proxy65'] as const;

const logSchema = z.strictObject({
  level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  format: z.enum(['json', 'pretty']).default('json'),
});

const storageSchema = z
  .strictObject({
    driver: z.enum(['sqlite', 'postgres']).default('sqlite'),
    /** Default: <data_dir>/xmppd.sqlite, filled in by the root transform. ':memory:' for tests. */
    sqlite_file: z.string().min(1).optional(),
    postgres_url: z.string().min(1).optional(),
    /**
     * Where uploaded files are kept. Default: <data_dir>/uploads. In a cluster, one directory
     * every node reaches (a network mount), since each file is stored once for all.
     */
    uploads_dir: z.string().min(1).optional(),
  })
  .superRefine((storage, ctx) => {
    if (storage.driver === 'postgres' && storage.postgres_url === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['postgres_url'],
        message: 'missing required option: driver postgres needs a postgres_url like postgres://user:pass@host/db',
      });
    }
  });

// RFC 7622 domainparts are far richer than this; the check only catches the usual slips
// (a JID or a URL where a domain belongs). The domain is lower-cased, as JID comparison does.
const domainSchema = z
  .string()
  .regex(/^[^\s@/\\"'<>&]+$/, { error: (issue) => `expected a domain name like example.org, got ${describeValue(issue.input)}` })
  .transform((d) => d.toLowerCase().replace(/\.$/, ''));

const bareJidSchema = z
  .string()
  .regex(/^[^\s@/]+@[^\s@/]+$/, { error: (issue) => `expected a bare JID like admin@example.org, got ${describeValue(issue.input)}` });

const hostSchema = z
  .strictObject({
    domain: domainSchema,
    /** Missing: a self-signed certificate is generated under <data_dir>/certs. */
    tls: z.strictObject({ cert: z.string().min(1), key: z.string().min(1) }).optional(),
    /**
     * open: anyone may register in-band; invite: only with an invitation (XEP-0445, the invites
     * module); closed: nobody. Missing: open for localhost (a dev box), invite for any real domain.
     */
    registration: z.enum(['open', 'invite', 'closed']).optional(),
    admins: section(z.array(bareJidSchema).default([])),
    /** Per-host overrides of the top-level `modules:` map. */
    modules: section(modulesSchema.default({})),
  })
  .transform((host) => ({
    ...host,
    registration: host.registration ?? (host.domain === 'localhost' ? 'open' : 'invite'),
  }));

/** A listener; a missing port is the standard one for its kind of TLS. 0 picks a free port (tests). */
const listenerSchemaWithPorts = (defaultPorts: { starttls: number; direct: number }) =>
  z
    .strictObject({
      host: z.string().min(1).default('0.0.0.0'),
      port: z.number().int().min(0).max(65535).optional(),
      tls: z.enum(['starttls', 'direct']).default('starttls'),
    })
    .transform((l) => ({ ...l, port: l.port ?? defaultPorts[l.tls] }));

/** Missing port: 5222 for starttls, 5223 for direct TLS (XEP-0368). */
const listenerSchema = listenerSchemaWithPorts({ starttls: 5222, direct: 5223 });

const throttleSchema = (attempts: number) =>
  z.strictObject({
    attempts: z.number().int().min(1).default(attempts),
    window: duration().prefault('1m'),
  });

const c2sSchema = z.strictObject({
  listen: section(
    z.array(listenerSchema).prefault([
      { host: '0.0.0.0', port: 5222, tls: 'starttls' },
      { host: '0.0.0.0', port: 5223, tls: 'direct' },
    ]),
  ),
  require_encryption: z.boolean().default(true),
  max_stanza_size: byteSize().prefault('256KiB'),
  /** Bytes per second one client connection may send on average (bursts of 4x); past it, reading pauses. */
  max_receive_rate: byteSizeOrNever().prefault('512KiB'),
  /** Share of one core one client connection may take on average to parse and handle its input (bursts of 200 ms); past it, reading pauses. */
  max_cpu_share: z.union([z.number().gt(0).max(1), z.literal('never')]).default(0.25),
  stream_open_timeout: duration().prefault('30s'),
  auth_timeout: duration().prefault('30s'),
  ping_interval: durationOrNever().prefault('5m'),
  ping_timeout: duration().prefault('60s'),
  whitespace_keepalive: durationOrNever().prefault('never'),
  /** XEP-0198: how long an <r/> may go unanswered before the connection counts as asleep for push notifications. */
  ack_delay: duration().prefault('30s'),
  /** XEP-0198: how long a session whose connection dropped waits to be resumed (and looks online). */
  resume_timeout: durationOrNever().prefault('5m'),
  /**
   * The same for a device that registered for push notifications (XEP-0357): its phone is woken
   * by a push and comes back to resume, which can take a while in doze; never: as resume_timeout.
   */
  resume_timeout_push: durationOrNever().prefault('1h'),
  /** Sessions (resources) one account may have bound at once; beyond it binding fails (RFC 6120 §7.6.2.2). */
  max_sessions_per_account: z.number().int().min(1).default(10),
  /** What gives way when the server or one recipient cannot keep up: see src/c2s/overload.ts. */
  overload: section(
    z.strictObject({
      shedding: z.boolean().default(true),
      event_loop_lag: durationOrNever().prefault('200ms'),
      backlog: byteSizeOrNever().prefault('256KiB'),
      unacked: z.union([z.number().int().min(1), z.literal('never')]).default(1000),
      max_held: z.number().int().min(1).default(1000),
    }).prefault({}),
  ),
  auth_throttle: section(
    z.strictObject({
      /** Failures from one address, any account: the address is refused (with backoff). */
      per_ip: section(throttleSchema(10).prefault({})),
      /** Failures for one account from one address: that pair is refused (with backoff). */
      per_account_and_ip: section(throttleSchema(5).prefault({})),
      /** Failures for one account from anywhere: a soft limit, past it failures are delayed, never refused. */
      per_account: section(throttleSchema(5).prefault({})),
      /** The longest an address is refused after repeated offences (each doubles the last). */
      max_backoff: duration().prefault('1h'),
    }).prefault({}),
  ),
});

const httpListenerSchema = z
  .strictObject({
    host: z.string().min(1).default('127.0.0.1'),
    /** Missing: 5280 for plain HTTP, 5443 for HTTPS. 0 picks a free port (tests). */
    port: z.number().int().min(0).max(65535).optional(),
    /** none: plain HTTP (behind a reverse proxy); direct: HTTPS with the hosts' certificates (SNI). */
    tls: z.enum(['none', 'direct']).default('none'),
  })
  .transform((l) => ({ ...l, port: l.port ?? (l.tls === 'direct' ? 5443 : 5280) }));

const httpSchema = z.strictObject({
  /** false: no HTTP listener at all (no WebSocket, web chat, upload, health or metrics). */
  enabled: z.boolean().default(true),
  listen: section(
    z.array(httpListenerSchema).prefault([
      { host: '127.0.0.1', port: 5280, tls: 'none' },
      { host: '127.0.0.1', port: 5443, tls: 'direct' },
    ]),
  ),
  /**
   * The URL clients reach the HTTP listener at (behind a proxy it differs from the listener's);
   * `{host}` stands for the virtual host. Missing: taken from each request.
   */
  public_url: z
    .string()
    .regex(/^https?:\/\/[^\s/]+(\/[^\s]*)?$/, { error: (issue) => `expected a URL like https://{host}:5443, got ${describeValue(issue.input)}` })
    .transform((url) => url.replace(/\/+$/, ''))
    .optional(),
  /** The virtual host for requests whose Host header names none of ours (an IP address). Missing: the first host. */
  default_host: domainSchema.optional(),
  /** The largest request body a handler accepts unless it sets its own limit (upload does). */
  max_body_size: byteSize().prefault('64KiB'),
  /** Time a client may take to send a whole request (headers and body). */
  request_timeout: duration().prefault('5m'),
  /** XMPP over WebSocket (RFC 7395) at /xmpp-websocket. */
  websocket: section(
    z
      .strictObject({
        enabled: z.boolean().default(true),
        consider_secure: z.enum(['auto', 'always']).default('auto'),
      })
      .prefault({}),
  ),
  /** Prometheus metrics at /metrics. */
  metrics: section(
    z
      .strictObject({
        enabled: z.boolean().default(true),
        /** loopback: plain listeners on a loopback address only; all: every listener. */
        listeners: z.enum(['loopback', 'all']).default('loopback'),
      })
      .prefault({}),
  ),
  /** The admin API at /admin/api (src/http/admin-api.ts). */
  admin_api: section(
    z
      .strictObject({
        enabled: z.boolean().default(false),
        token: z.string().min(16, 'the token must have at least 16 characters (e.g. openssl rand -hex 32)').optional(),
        listeners: z.enum(['loopback', 'all']).default('loopback'),
      })
      .superRefine((api, ctx) => {
        if (api.enabled && api.token === undefined) ctx.addIssue({ code: 'custom', path: ['enabled'], message: 'the admin API needs a token (http.admin_api.token)' });
      })
      .prefault({}),
  ),
  /** The web admin dashboard (src/http/dashboard): admins log in with their XMPP account. */
  dashboard: section(
    z
      .strictObject({
        enabled: z.boolean().default(true),
        /** Where it is served; the admin API keeps <path>/api when its path is /admin. */
        path: z
          .string()
          .regex(/^\/[A-Za-z0-9._~\-/]*[A-Za-z0-9._~-]$/, { error: (issue) => `expected a path like /admin, got ${describeValue(issue.input)}` })
          .default('/admin'),
        /** loopback: listeners bound to a loopback address, requests from this machine only; all: every listener and client. */
        listeners: z.enum(['loopback', 'all']).default('loopback'),
        /** How often the charts' samples of the /metrics counters are taken (an hour of them is kept). */
        sample_interval: duration().refine((s) => s >= 1, 'at least 1s').prefault('10s'),
        /** A login ends after this long without a request. */
        idle_timeout: duration().prefault('30m'),
      })
      .prefault({}),
  ),
});

// Federation (RFC 6120 server-to-server streams). Off by default: a dev box serving `localhost`
// has no one to federate with, and many test servers would fight over port 5269.
/** Missing port: 5269 for starttls, 5270 for direct TLS (XEP-0368). */
const s2sListenerSchema = listenerSchemaWithPorts({ starttls: 5269, direct: 5270 });

/** A static route: `host:port` (STARTTLS) or `{ host, port, tls }`. */
const s2sRouteSchema = z
  .union([
    z.string().regex(/^(\[[^\]]+\]|[^\s:]+):[0-9]{1,5}$/, { error: (issue) => `expected host:port like 127.0.0.1:5269, got ${describeValue(issue.input)}` }),
    z.strictObject({ host: z.string().min(1), port: z.number().int().min(1).max(65535).default(5269), tls: z.enum(['starttls', 'direct']).default('starttls') }),
  ], { error: (issue) => `expected host:port like 127.0.0.1:5269, or { host, port, tls }, got ${describeValue(issue.input)}` })
  .transform((route) => {
    if (typeof route !== 'string') return route;
    const colon = route.lastIndexOf(':');
    return { host: route.slice(0, colon).replace(/^\[|\]$/g, ''), port: Number(route.slice(colon + 1)), tls: 'starttls' as const };
  });

const s2sSchema = z.strictObject({
  enabled: z.boolean().default(false),
  listen: section(z.array(s2sListenerSchema).prefault([{ host: '0.0.0.0', port: 5269, tls: 'starttls' }])),
  /** Remote domain → where to connect, instead of DNS (private networks, tests). */
  routes: section(z.record(z.string(), s2sRouteSchema).default({})),
  /** DNS servers to ask ("ip" or "ip:port") instead of the system's resolver. */
  dns_servers: section(z.array(z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[0-9.]+|[0-9a-fA-F:]+)(:[0-9]{1,5})?$/, {
    error: (issue) => `expected a DNS server address like 127.0.0.1 or 127.0.0.1:5353, got ${describeValue(issue.input)}`,
  })).default([])),
  /** PEM bundle of the CAs that peers' certificates must chain to; missing: the system's roots. */
  ca_file: z.string().min(1).optional(),
  require_encryption: z.boolean().default(true),
  require_valid_certificates: z.boolean().default(false),
  dialback: z.boolean().default(true),
  /** Peers that must present a valid certificate even when require_valid_certificates is false. */
  secure_domains: section(z.array(domainSchema).default([])),
  /** Peers allowed to use dialback even when require_valid_certificates is true. */
  insecure_domains: section(z.array(domainSchema).default([])),
  /** XEP-0185 key secret; missing: a random one kept in <data_dir>/s2s-dialback-secret. */
  dialback_secret: z.string().min(16).optional(),
  connect_timeout: duration().prefault('10s'),
  idle_timeout: duration().prefault('5m'),
  max_queued_stanzas: z.number().int().min(1).default(1000),
  max_stanza_size: byteSize().prefault('512KiB'),
});

/** Cluster mode (docs/architecture.md "Cluster"): nodes sharing PostgreSQL and Redis. */
const clusterSchema = z.strictObject({
  redis_url: z
    .string()
    .min(1)
    .refine((url) => /^rediss?:\/\//.test(url), { error: 'redis_url must look like redis://host:6379 (or rediss:// for TLS)' }),
  /** Unique among the nodes; default hostname-pid. */
  /** redis_url names one node of a Redis Cluster (not a single Redis server). */
  redis_cluster: z.boolean().default(false),
  node_id: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,64}$/, { error: 'node_id: 1 to 64 letters, digits, dots, dashes or underscores' })
    .optional(),
  /** How often a node says it is alive; a node silent for node_timeout is dead and cleaned up after. */
  heartbeat: duration().prefault('5s'),
  node_timeout: duration().prefault('15s'),
});

export const coreConfigSchema = z
  .strictObject({
    data_dir: z.string().min(1).default('./data'),
    log: section(logSchema.prefault({})),
    storage: section(storageSchema.prefault({})),
    hosts: section(
      z
        .array(hostSchema)
        .min(1, { error: 'at least one host is needed' })
        .prefault([{ domain: 'localhost' }])
        .superRefine((hosts, ctx) => {
          const seen = new Set<string>();
          hosts.forEach((host, i) => {
            if (seen.has(host.domain)) {
              ctx.addIssue({ code: 'custom', path: [i, 'domain'], message: `host ${host.domain} is listed twice` });
            }
            seen.add(host.domain);
          });
        }),
    ),
    c2s: section(c2sSchema.prefault({})),
    http: section(httpSchema.prefault({})),
    s2s: section(s2sSchema.prefault({})),
    modules: section(modulesSchema.prefault(Object.fromEntries(STANDARD_MODULES.map((name) => [name, {}])))),
    cluster: section(clusterSchema.optional()),
  })
  .superRefine((config, ctx) => {
    if (config.cluster !== undefined && config.storage.driver !== 'postgres') {
      ctx.addIssue({ code: 'custom', path: ['cluster'], message: 'cluster mode needs storage.driver: postgres (every node shares one database; SQLite is one process\'s file)' });
    }
    if (config.cluster !== undefined && config.cluster.node_timeout <= config.cluster.heartbeat) {
      ctx.addIssue({ code: 'custom', path: ['cluster', 'node_timeout'], message: 'node_timeout must be longer than heartbeat (e.g. 3 heartbeats)' });
    }
  })
  .transform((config) => ({
    ...config,
    storage: {
      ...config.storage,
      sqlite_file: config.storage.sqlite_file ?? path.join(config.data_dir, 'xmppd.sqlite'),
      uploads_dir: config.storage.uploads_dir ?? path.join(config.data_dir, 'uploads'),
    },
  }));

export type CoreConfig = z.output<typeof coreConfigSchema>;
export type HostConfig = CoreConfig['hosts'][number];
export type ListenerConfig = CoreConfig['c2s']['listen'][number];
export type HttpConfig = CoreConfig['http'];
