// What the admin commands act on: a running server (its sessions, hosts, modules), or the
// database alone when the server is stopped. Both implement the registry's contexts.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Knex } from 'knex';
import type { Server } from '../app/server.js';
import type { Session } from '../core/sessions.js';
import { Jid, parseJid } from '../core/jid.js';
import type { SessionRef } from '../core/ports.js';
import type { ClientSession } from '../c2s/session.js';
import { userAgentOf } from '../c2s/features/sasl2.js';
import { deleteAccount, type DataDirs } from '../accounts/lifecycle.js';
import type { AccountStore } from '../accounts/store.js';
import type { ModuleDefinition } from '../core/module.js';
import type { MucAdminService } from '../modules/muc/index.js';
import { headline, type MotdService } from '../modules/adhoc/motd.js';
import { uploadServiceOf } from '../modules/upload/index.js';
import { loadCertificateInfo } from '../tls/certs.js';
import { CommandError, type AdminContext, type CertificateStatus, type InvitationDesk, type LiveAdminContext, type ReloadReport, type ServerStats, type SessionInfo, type StorageUsage } from './registry.js';
import { reloadConfiguration, type SettingsFor } from './reload.js';
import type { CoreConfig } from '../config/schema.js';
import { modulesForHost } from '../config/load.js';
import { migrateLocked } from '../storage/db.js';
import { InviteStore, invitationRegisters, inviteMigrations, inviteUri } from '../modules/invites/store.js';
import type { InviteService } from '../modules/invites/index.js';
import { mailOptions, mailTransport, type MailService } from '../modules/mail/index.js';

/** The context with no server running: the database itself. */
export function databaseContext(options: {
  hosts: readonly string[];
  db: Knex;
  accounts: AccountStore;
  dirs: DataDirs;
  modules: Iterable<ModuleDefinition<unknown>>;
  config: CoreConfig;
}): AdminContext {
  const { db, accounts, dirs, config } = options;
  const modules = [...options.modules];
  return {
    hosts: options.hosts,
    accounts,
    db,
    deleteAccount: (host, username) => deleteAccount(db, accounts, dirs, host, username, modules),
    setDisabled: (host, username, disabled, reason?: string) => accounts.setDisabled(host, username, disabled, reason),
    invitations: (host) => configuredInvitations(config, db, host, modules),
  };
}

/**
 * With the server stopped, invitations as the invites module would make them once it runs: its
 * table, its default validity, the landing page on the configured HTTP listener (as
 * HttpService.publicUrl picks it), mail through modules.mail.smtp_url.
 */
async function configuredInvitations(config: CoreConfig, db: Knex, host: string, modules: Iterable<ModuleDefinition<unknown>>): Promise<InvitationDesk> {
  const hostConfig = config.hosts.find((h) => h.domain === host)!;
  const enabled = modulesForHost(config, hostConfig);
  const invitesOptions = enabled.get('invites');
  if (invitesOptions === undefined) throw new CommandError(`invitations need module invites, which is not enabled on ${host}`);
  // the module's own schema gives its defaults (ttl 7d, users_invite_accounts)
  const parsed = [...modules].find((d) => d.name === 'invites')?.options?.safeParse(invitesOptions).data as { ttl: number; users_invite_accounts: boolean } | undefined;
  const { ttl, users_invite_accounts: usersInviteAccounts } = parsed ?? { ttl: 7 * 86_400, users_invite_accounts: true };
  await migrateLocked(db, [['invites', inviteMigrations]]);
  const listener = config.http.listen.find((l) => l.tls === 'direct') ?? config.http.listen[0];
  const base = config.http.public_url !== undefined
    ? config.http.public_url.replaceAll('{host}', host)
    : listener === undefined ? `https://${host}` : `${listener.tls === 'direct' ? 'https' : 'http'}://${host}:${listener.port}`;
  const mailSettings = enabled.get('mail');
  const mail = mailSettings === undefined ? undefined : mailOptions.safeParse(mailSettings);
  if (mail?.success === false) throw new CommandError('modules.mail is not valid: run xmppd check');
  const smtpUrl = mail?.data?.smtp_url;
  return {
    store: new InviteStore(db),
    defaultTtl: ttl,
    links: (invite) => ({ url: `${base}/invite/${invite.token}`, uri: inviteUri(invite, invitationRegisters(invite, hostConfig.registration, usersInviteAccounts)) }),
    mail: smtpUrl === undefined ? null : async (message) => {
      const transport = mailTransport(smtpUrl)!;
      try {
        await transport.sendMail({ from: mail?.data?.from ?? `xmppd <noreply@${host}>`, ...message });
      } finally {
        transport.close();
      }
    },
  };
}

async function databaseVersion(db: Knex, driver: string): Promise<string> {
  try {
    if (driver === 'postgres') {
      const result = (await db.raw('show server_version')) as { rows: Array<{ server_version: string }> };
      return result.rows[0]?.server_version ?? 'unknown';
    }
    const rows = (await db.raw('select sqlite_version() as version')) as Array<{ version: string }>;
    return rows[0]?.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

async function databaseSize(db: Knex, driver: string, sqliteFile: string): Promise<number | null> {
  try {
    if (driver === 'postgres') {
      const result = (await db.raw('select pg_database_size(current_database()) as bytes')) as { rows: Array<{ bytes: string | number }> };
      return Number(result.rows[0]?.bytes ?? NaN);
    }
    if (sqliteFile === ':memory:' || sqliteFile.startsWith('file:')) return null;
    // the WAL holds what is not checkpointed yet
    let bytes = (await fs.promises.stat(sqliteFile)).size;
    bytes += await fs.promises.stat(`${sqliteFile}-wal`).then((s) => s.size, () => 0);
    return bytes;
  } catch {
    return null;
  }
}

/** A session of this node, or (in a cluster) of another: `node` names it then. */
function sessionInfo(session: SessionRef): SessionInfo {
  const described = session.describe();
  const stream = session.local === undefined ? undefined : (session as Partial<ClientSession> & Session).stream;
  const agent = stream ? userAgentOf(stream) : undefined;
  const software = agent?.software ? `${agent.software}${agent.device ? ` (${agent.device})` : ''}` : undefined;
  return {
    jid: session.jid.toString(),
    ip: described.ip,
    transport: described.transport,
    secure: described.secure,
    since: new Date(described.since).toISOString(),
    sm: described.sm,
    inactive: session.inactive,
    available: session.available,
    priority: session.priority,
    ...(software === undefined ? {} : { client: software }),
    ...(session.local === undefined ? { node: session.node } : {}),
  };
}

/** A headline message (XEP-0133 §4.23: announcements are headlines, not stored offline). */

/**
 * The context of a running server. `hosts` narrows what the caller may act on (an XMPP admin:
 * their own host); the control socket gets every host.
 */
export function liveContext(
  server: Server,
  options: { configFile: string | undefined; settingsFor: SettingsFor },
  hosts: readonly string[] = [...server.hosts.keys()],
): LiveAdminContext {
  const motdOf = (host: string): MotdService => {
    const motd = server.hosts.get(host)?.services.get('adhoc') as MotdService | undefined;
    if (motd === undefined) throw new CommandError(`the message of the day needs module adhoc, which is not enabled on ${host}`);
    return motd;
  };
  const mucOf = (host: string) => server.hosts.get(host)?.services.get('muc') as MucAdminService | undefined;
  // in a cluster, every node's sessions (the directory holds the others' too)
  const sessionsOf = (host: string | undefined) => [...server.sessions.everywhere()].filter((s) => (host === undefined ? hosts.includes(s.jid.domain) : s.jid.domain === host));
  return {
    hosts,
    accounts: server.accounts,
    db: server.db,
    deleteAccount: (host, username) => server.deleteAccount(host, username),
    async setDisabled(host, username, disabled, reason?: string) {
      if (!(await server.accounts.setDisabled(host, username, disabled, reason))) return false;
      if (disabled) {
        // RFC 6120 §4.9.3.14: the credentials no longer hold; the client should not retry
        server.kernel.closeSessions(new Jid(username, host), 'not-authorized', reason ?? 'The account was disabled');
      }
      server.log.info({ account: `${username}@${host}`, disabled }, disabled ? 'account disabled' : 'account enabled');
      return true;
    },
    async status() {
      const sessions = [...server.sessions.all()].map(sessionInfo);
      return {
        version: server.settings.version,
        uptimeSeconds: Math.floor((Date.now() - server.startedAt) / 1000),
        node: process.version,
        database: { driver: server.settings.storage.driver, version: await databaseVersion(server.db, server.settings.storage.driver) },
        hosts: hosts.map((domain) => ({
          domain,
          modules: [...(server.hosts.get(domain)?.modules.keys() ?? [])],
          sessions: sessions.filter((s) => s.jid.split('/')[0]!.endsWith(`@${domain}`)).length,
        })),
        connections: {
          c2s: sessions.filter((s) => s.transport === 'tcp').length,
          websocket: sessions.filter((s) => s.transport === 'websocket').length,
          s2s: server.s2s?.streams().length ?? 0,
        },
      };
    },
    async stats(): Promise<ServerStats> {
      const { metrics } = server.kernel;
      const everywhere = sessionsOf(undefined);
      const mean = metrics.meanDeliverySeconds;
      return {
        uptimeSeconds: Math.floor((Date.now() - server.startedAt) / 1000),
        hosts: await Promise.all(hosts.map(async (domain) => {
          const here = everywhere.filter((s) => s.jid.domain === domain);
          const accounts = await server.accounts.count(domain);
          return {
            domain,
            accounts: accounts.registered,
            disabledAccounts: accounts.disabled,
            onlineAccounts: new Set(here.map((s) => s.jid.local)).size,
            sessions: here.length,
            rooms: mucOf(domain)?.rooms().length ?? 0,
            gauges: await metrics.hostGaugeValues(domain),
          };
        })),
        connections: { ...metrics.connectionCounts(), s2s: server.s2s?.streams().length ?? 0 },
        sinceStart: {
          received: { message: metrics.stanzasIn.message, presence: metrics.stanzasIn.presence, iq: metrics.stanzasIn.iq },
          sent: { message: metrics.stanzasOut.message, presence: metrics.stanzasOut.presence, iq: metrics.stanzasOut.iq },
          authFailures: metrics.authFailures,
          deliveries: metrics.deliveriesObserved,
          meanDeliveryMs: Number.isNaN(mean) ? null : Math.round(mean * 1e6) / 1e3,
        },
      };
    },
    sessions: (host) => sessionsOf(host).map(sessionInfo),
    kick(jid, condition, text) {
      const parsed = parseJid(jid);
      // in a cluster, a session of another node is ended by its node
      const ended = parsed === null ? 0 : server.kernel.closeSessions(parsed, condition, text);
      if (ended > 0) server.log.info({ jid, condition, sessions: ended }, 'sessions ended by an administrator');
      return ended;
    },
    announce(host, subject, body) {
      const targets = sessionsOf(host);
      for (const session of targets) server.kernel.delivery.deliver(session, headline(host, session.jid.toString(), subject, body));
      server.log.info({ host, sessions: targets.length }, 'announcement sent');
      return targets.length;
    },
    async setMotd(host, subject, body) {
      await motdOf(host).setMotd(subject, body);
      if (body === null) return 0;
      const targets = sessionsOf(host).filter((s) => s.available);
      for (const session of targets) server.kernel.delivery.deliver(session, headline(host, session.jid.toString(), subject, body));
      return targets.length;
    },
    rooms: (host) => mucOf(host)?.rooms() ?? [],
    async destroyRoom(room, reason) {
      const at = room.indexOf('@');
      const domain = room.slice(at + 1);
      for (const host of hosts) {
        const muc = mucOf(host);
        if (muc?.domain === domain) return muc.destroy(room.slice(0, at), reason);
      }
      throw new CommandError(`${domain} is not a group chat service of this server`);
    },
    async invitations(host): Promise<InvitationDesk> {
      const services = server.hosts.get(host)?.services;
      const invites = services?.get('invites') as InviteService | undefined;
      if (invites === undefined) throw new CommandError(`invitations need module invites, which is not enabled on ${host}`);
      const mail = services?.get('mail') as MailService | undefined;
      return {
        store: invites.store,
        defaultTtl: invites.defaultTtl,
        links: (invite) => ({ url: invites.landingUrl(invite), uri: invites.uri(invite) }),
        mail: mail?.enabled === true ? (message) => mail.send(message) : null,
      };
    },
    reload: (): Promise<ReloadReport> => reloadConfiguration(server, options.configFile, options.settingsFor),
    async storage(): Promise<StorageUsage> {
      const { dataDir, storage } = server.settings;
      const disk = await fs.promises.statfs(dataDir).then(
        (s) => ({ totalBytes: s.blocks * s.bsize, freeBytes: s.bavail * s.bsize }),
        () => null,
      );
      const upload = uploadServiceOf(server.kernel);
      let uploads: StorageUsage['uploads'] = null;
      if (upload !== undefined) {
        const service = await upload;
        const now = Date.now();
        uploads = {
          storedBytes: await service.store.storageUsed(now),
          hosts: (await service.store.filesByHost(now)).filter((h) => hosts.includes(h.host)),
          sinceStart: { files: service.counters.files, bytesReceived: service.counters.bytesReceived },
        };
      }
      return { dataDir, disk, database: { driver: storage.driver, bytes: await databaseSize(server.db, storage.driver, storage.sqliteFile) }, uploads };
    },
    certificates(): CertificateStatus[] {
      return server.settings.hosts
        .filter((h) => hosts.includes(h.domain))
        .map((h) => {
          // without tls.cert/tls.key the one under <data_dir>/certs: made by the server (self-signed,
          // src/tls/contexts.ts) unless `xmppd cert import` put a CA's there
          const files = h.tls ?? { cert: path.join(server.settings.dataDir, 'certs', `${h.domain}.crt`), key: path.join(server.settings.dataDir, 'certs', `${h.domain}.key`) };
          const info = loadCertificateInfo(files.cert, files.key);
          const generated = h.tls === undefined && selfSigned(files.cert);
          const valid = !Number.isNaN(info.notAfter.getTime());
          return {
            host: h.domain,
            file: files.cert,
            generated,
            names: info.subjectNames,
            notAfter: valid ? info.notAfter.toISOString() : null,
            daysLeft: valid ? Math.floor((info.notAfter.getTime() - Date.now()) / 86_400_000) : null,
            problems: info.problems,
          };
        });
    },
  };
}

/** Whether the certificate in `file` issued itself (false when it cannot be read). */
function selfSigned(file: string): boolean {
  try {
    const cert = new crypto.X509Certificate(fs.readFileSync(file));
    // not checkIssued: OpenSSL wants keyCertSign of an issuer, which a server's own certificate lacks
    return cert.subject === cert.issuer && cert.verify(cert.publicKey);
  } catch {
    return false;
  }
}
