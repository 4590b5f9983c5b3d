// The admin commands, each declared once (registry.ts). The CLI, the control socket, XEP-0050
// ad-hoc commands and the HTTP admin API are generated from this list.
import { migrateLocked } from '../storage/db.js';
import { MailStore, isEmailAddress, mailMigrations } from '../modules/mail/store.js';
import { FastTokenStore, fastMigrations } from '../modules/fast/store.js';
import { normalizeUsername, parseJid } from '../core/jid.js';
import { AccountExistsError } from '../accounts/store.js';
import { parseDuration } from '../config/units.js';
import type { Invite } from '../modules/invites/store.js';
import {
  CommandError, defineCommand, parseArgs,
  type AdminContext, type AnyCommand, type LiveAdminContext, type Needs,
} from './registry.js';

export { CommandError } from './registry.js';
export type { AdminContext as CommandContext } from './registry.js';

/** An account's bare JID on one of the hosts the caller may act on. */
function account(context: AdminContext, jid: string): { host: string; username: string; bare: string } {
  const parsed = parseJid(jid);
  if (parsed === null || parsed.local === '' || parsed.resource !== '') throw new CommandError(`"${jid}" is not an account address like alice@${context.hosts[0] ?? 'example.org'}`);
  if (!context.hosts.includes(parsed.domain)) throw new CommandError(`${parsed.domain} is not a host in this configuration`);
  return { host: parsed.domain, username: parsed.local, bare: `${parsed.local}@${parsed.domain}` };
}

/** A host the caller may act on; the first one when none is given. */
function hostOf(context: AdminContext, host: string | undefined): string {
  if (host === undefined) return context.hosts[0]!;
  const domain = host.toLowerCase();
  if (!context.hosts.includes(domain)) throw new CommandError(`${host} is not a host in this configuration`);
  return domain;
}

function isoTime(ms: number | null): string {
  return ms === null ? '-' : new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export const status = defineCommand({
  name: 'status',
  description: 'version, uptime, hosts and their modules, connections by kind, Node and database versions',
  args: {},
  access: 'admin',
  needs: 'server',
  run: (context) => context.status(),
  format: (s) => [
    `xmppd ${s.version}, up ${s.uptimeSeconds}s`,
    `node ${s.node}, database ${s.database.driver} ${s.database.version}`,
    `connections: c2s ${s.connections.c2s}, websocket ${s.connections.websocket}, s2s ${s.connections.s2s}`,
    ...s.hosts.map((h) => `host ${h.domain}: ${h.sessions} sessions; modules ${h.modules.join(', ')}`),
  ].join('\n'),
});

export const stats = defineCommand({
  name: 'stats',
  description: 'accounts (registered, disabled, online), sessions, rooms and waiting data per host; stanzas, deliveries and failed logins since the start',
  args: {},
  access: 'admin',
  needs: 'server',
  run: (context) => context.stats(),
  format: (s) => [
    `up ${s.uptimeSeconds}s; connections ${Object.entries(s.connections).map(([kind, n]) => `${kind} ${n}`).join(', ')}`,
    ...s.hosts.map((h) => [
      `host ${h.domain}: accounts ${h.accounts} (${h.disabledAccounts} disabled, ${h.onlineAccounts} online), sessions ${h.sessions}, rooms ${h.rooms}`,
      ...Object.entries(h.gauges).map(([name, value]) => `  ${name.replace(/^xmppd_/, '')} ${value}`),
    ].join('\n')),
    `since start: received ${s.sinceStart.received.message} messages, ${s.sinceStart.received.presence} presences, ${s.sinceStart.received.iq} iqs; ` +
      `sent ${s.sinceStart.sent.message} messages, ${s.sinceStart.sent.presence} presences, ${s.sinceStart.sent.iq} iqs`,
    `since start: ${s.sinceStart.deliveries} deliveries, mean latency ${s.sinceStart.meanDeliveryMs === null ? '-' : `${s.sinceStart.meanDeliveryMs} ms`}; ${s.sinceStart.authFailures} failed logins`,
  ].join('\n'),
});

export const sessionsList = defineCommand({
  name: 'sessions.list',
  description: 'the client sessions online: JID, address, transport, since when, stream management and client state',
  args: { host: { type: 'string', description: 'only this host', optional: true, positional: true } },
  access: 'admin',
  needs: 'server',
  xep0133: 'get-online-users-list',
  async run(context, { host }) {
    return context.sessions(host === undefined ? undefined : hostOf(context, host));
  },
  format: (sessions) => sessions
    .map((s) => `${s.jid} ${s.ip} ${s.transport}${s.secure ? '+tls' : ''} since=${s.since} sm=${s.sm ? 'on' : 'off'} csi=${s.inactive ? 'inactive' : 'active'}${s.client === undefined ? '' : ` client=${JSON.stringify(s.client)}`}${s.node === undefined ? '' : ` node=${s.node}`}`)
    .join('\n'),
});

export const sessionsKick = defineCommand({
  name: 'sessions.kick',
  description: 'end a session (full JID) or all sessions of an account (bare JID) with a stream error',
  args: {
    jid: { type: 'jid', description: 'full JID (one session) or bare JID (all of the account)', positional: true, field: 'accountjid' },
    reason: { type: 'text', description: 'text sent with the stream error', optional: true },
    'not-authorized': { type: 'boolean', description: 'send not-authorized (credentials revoked) instead of policy-violation', optional: true },
  },
  access: 'admin',
  needs: 'server',
  xep0133: 'end-user-session',
  async run(context, args) {
    const parsed = parseJid(args.jid);
    if (parsed === null || parsed.local === '') throw new CommandError(`"${args.jid}" is not a user's JID`);
    account(context, parsed.bare);
    // RFC 6120 §4.9.3.18 policy-violation: the admin's decision; §4.9.3.14 not-authorized tells
    // the client its credentials no longer hold (it should not reconnect on its own)
    const ended = context.kick(parsed.toString(), args['not-authorized'] ? 'not-authorized' : 'policy-violation', args.reason ?? 'Disconnected by an administrator');
    if (ended === 0) throw new CommandError(`no session of ${parsed.toString()} is online`);
    return { jid: parsed.toString(), ended };
  },
  format: (r) => `ended ${r.ended} session${r.ended === 1 ? '' : 's'} of ${r.jid}`,
});

export const userAdd = defineCommand({
  name: 'user.add',
  description: 'create an account',
  args: {
    jid: { type: 'jid', description: 'the new account, like alice@example.org', positional: true, field: 'accountjid' },
    password: { type: 'password', description: 'its password (the CLI reads it from standard input when not given)', field: 'password' },
  },
  access: 'admin',
  needs: 'either',
  xep0133: 'add-user',
  async run(context, args) {
    const { host, username, bare } = account(context, args.jid);
    try {
      await context.accounts.create(host, username, args.password);
    } catch (err) {
      if (err instanceof AccountExistsError) throw new CommandError(`${bare} already exists`);
      throw err;
    }
    return { jid: bare };
  },
  format: (r) => `created ${r.jid}`,
});

export const userDelete = defineCommand({
  name: 'user.delete',
  aliases: ['del'],
  description: 'delete an account with all its data (roster, archive, offline messages, files...); its sessions are ended',
  args: { jid: { type: 'jid', description: 'the account', positional: true, field: 'accountjid' } },
  access: 'admin',
  needs: 'either',
  xep0133: 'delete-user',
  async run(context, { jid }) {
    const { host, username, bare } = account(context, jid);
    const deletion = await context.deleteAccount(host, username);
    if (deletion.failed.length > 0) throw new CommandError(`${bare}: the data of ${deletion.failed.join(', ')} could not be removed (see the log); run the command again`);
    if (!deletion.existed) throw new CommandError(`no account ${bare}`);
    return { jid: bare, ...deletion };
  },
  format: (r) => `deleted ${r.jid}`,
});

export const userPasswd = defineCommand({
  name: 'user.passwd',
  description: "change an account's password",
  args: {
    jid: { type: 'jid', description: 'the account', positional: true, field: 'accountjid' },
    password: { type: 'password', description: 'the new password (the CLI reads it from standard input when not given)', field: 'password' },
  },
  access: 'admin',
  needs: 'either',
  xep0133: 'change-user-password',
  async run(context, args) {
    const { host, username, bare } = account(context, args.jid);
    if (!(await context.accounts.setPassword(host, username, args.password))) throw new CommandError(`no account ${bare}`);
    return { jid: bare };
  },
  format: (r) => `password changed for ${r.jid}`,
});

export const userList = defineCommand({
  name: 'user.list',
  description: 'list the accounts of a host (default: every host)',
  args: { host: { type: 'string', description: 'only this host', optional: true, positional: true } },
  access: 'admin',
  needs: 'either',
  xep0133: 'get-registered-users-list',
  async run(context, { host }) {
    const jids: string[] = [];
    for (const h of host === undefined ? context.hosts : [hostOf(context, host)]) {
      for (const username of await context.accounts.list(h)) jids.push(`${username}@${h}`);
    }
    return jids;
  },
  format: (jids) => jids.join('\n'),
});

export const userInfo = defineCommand({
  name: 'user.info',
  description: 'an account: when it was created, whether it is disabled',
  args: { jid: { type: 'jid', description: 'the account', positional: true, field: 'accountjid' } },
  access: 'admin',
  needs: 'either',
  async run(context, { jid }) {
    const { host, username, bare } = account(context, jid);
    const info = await context.accounts.info(host, username);
    if (info === null) throw new CommandError(`no account ${bare}`);
    return { jid: bare, created: isoTime(info.createdAt), disabled: info.disabledAt !== null, disabledSince: info.disabledAt === null ? null : isoTime(info.disabledAt), reason: info.disabledReason };
  },
  format: (r) => [
    `jid: ${r.jid}`,
    `created: ${r.created}`,
    `disabled: ${r.disabled ? `since ${r.disabledSince}${r.reason ? ` (${r.reason})` : ''}` : 'no'}`,
  ].join('\n'),
});

export const userEmail = defineCommand({
  name: 'user.email',
  description: "an account's email address, where password reset links go: shows it, sets it, or with `none` clears it",
  args: {
    jid: { type: 'jid', description: 'the account', positional: true, field: 'accountjid' },
    address: { type: 'string', description: 'the new address, or none', optional: true, positional: true },
  },
  access: 'admin',
  needs: 'either',
  async run(context, args) {
    const { host, username, bare } = account(context, args.jid);
    if (!(await context.accounts.exists(host, username))) throw new CommandError(`no account ${bare}`);
    // the mail module's table (created here too when the server has not run with it yet)
    await migrateLocked(context.db, [['mail', mailMigrations]]);
    const store = new MailStore(context.db, host);
    if (args.address === undefined) return { jid: bare, email: await store.emailOf(username) };
    const email = args.address.trim().toLowerCase() === 'none' ? null : args.address.trim();
    if (email !== null && !isEmailAddress(email)) throw new CommandError(`"${args.address}" is not an email address`);
    await store.setEmail(username, email);
    return { jid: bare, email };
  },
  format: (r) => `${r.jid}: ${r.email ?? 'no email address'}`,
});

export const userTokens = defineCommand({
  name: 'user.tokens',
  description: "the devices that can log in to an account without its password (FAST tokens, XEP-0484): the client's user-agent id, software, when issued, last used, valid until",
  args: { jid: { type: 'jid', description: 'the account', positional: true, field: 'accountjid' } },
  access: 'admin',
  needs: 'either',
  async run(context, args) {
    const { host, username, bare } = account(context, args.jid);
    // the fast module's table (created here too when the server has not run with it yet)
    await migrateLocked(context.db, [['fast', fastMigrations]]);
    return { jid: bare, devices: await new FastTokenStore(context.db).devices(host, username) };
  },
  format: (r) =>
    r.devices.length === 0
      ? `${r.jid}: no device holds a login token`
      : r.devices
          .map((d) => `${d.userAgent}  ${d.software ?? '-'}${d.device ? ` (${d.device})` : ''}  issued ${isoTime(d.createdAt)}  used ${isoTime(d.usedAt)}  until ${isoTime(d.expiresAt)}`)
          .join('\n'),
});

export const userRevokeTokens = defineCommand({
  name: 'user.revoke-tokens',
  description: "ends an account's FAST login tokens (one device's with --agent, else all): those devices log in with the password next time",
  args: {
    jid: { type: 'jid', description: 'the account', positional: true, field: 'accountjid' },
    agent: { type: 'string', description: "one device's user-agent id (as `user tokens` shows it)", optional: true },
  },
  access: 'admin',
  needs: 'either',
  async run(context, args) {
    const { host, username, bare } = account(context, args.jid);
    await migrateLocked(context.db, [['fast', fastMigrations]]);
    return { jid: bare, revoked: await new FastTokenStore(context.db).revoke(host, username, args.agent) };
  },
  format: (r) => `${r.jid}: ${r.revoked} device(s) will need the password at their next login`,
});

export const userDisable = defineCommand({
  name: 'user.disable',
  description: 'disable an account: its data stays, its sessions are ended, logins are refused (account-disabled)',
  args: {
    jid: { type: 'jid', description: 'the account', positional: true, field: 'accountjid' },
    reason: { type: 'text', description: 'shown to the user when a login is refused', optional: true },
  },
  access: 'admin',
  needs: 'either',
  xep0133: 'disable-user',
  async run(context, args) {
    const { host, username, bare } = account(context, args.jid);
    if (!(await context.setDisabled(host, username, true, args.reason))) throw new CommandError(`no account ${bare}`);
    return { jid: bare };
  },
  format: (r) => `disabled ${r.jid}`,
});

export const userEnable = defineCommand({
  name: 'user.enable',
  description: 'enable a disabled account again',
  args: { jid: { type: 'jid', description: 'the account', positional: true, field: 'accountjid' } },
  access: 'admin',
  needs: 'either',
  xep0133: 'reenable-user',
  async run(context, { jid }) {
    const { host, username, bare } = account(context, jid);
    if (!(await context.setDisabled(host, username, false))) throw new CommandError(`no account ${bare}`);
    return { jid: bare };
  },
  format: (r) => `enabled ${r.jid}`,
});

export const announce = defineCommand({
  name: 'announce',
  description: 'send a headline message to every online user of a host',
  args: {
    text: { type: 'text', description: 'the announcement', positional: true, field: 'body' },
    host: { type: 'string', description: 'the host (default: the first)', optional: true },
    subject: { type: 'string', description: 'its subject', optional: true, field: 'subject' },
  },
  access: 'admin',
  needs: 'server',
  xep0133: 'announce',
  async run(context, args) {
    const host = hostOf(context, args.host);
    return { host, sessions: context.announce(host, args.subject, args.text) };
  },
  format: (r) => `announced to ${r.sessions} session${r.sessions === 1 ? '' : 's'} on ${r.host}`,
});

export const motdSet = defineCommand({
  name: 'motd.set',
  description: 'set the message of the day: sent now to every online user of the host, then to every user who logs in',
  args: {
    text: { type: 'text', description: 'the message', positional: true, field: 'body' },
    host: { type: 'string', description: 'the host (default: the first)', optional: true },
    subject: { type: 'string', description: 'its subject', optional: true, field: 'subject' },
  },
  access: 'admin',
  needs: 'server',
  xep0133: 'set-motd',
  async run(context, args) {
    const host = hostOf(context, args.host);
    return { host, sessions: await context.setMotd(host, args.subject, args.text) };
  },
  format: (r) => `message of the day set on ${r.host} (sent to ${r.sessions} online)`,
});

export const motdClear = defineCommand({
  name: 'motd.clear',
  description: 'remove the message of the day',
  args: { host: { type: 'string', description: 'the host (default: the first)', optional: true } },
  access: 'admin',
  needs: 'server',
  xep0133: 'delete-motd',
  async run(context, args) {
    const host = hostOf(context, args.host);
    await context.setMotd(host, undefined, null);
    return { host };
  },
  format: (r) => `message of the day removed on ${r.host}`,
});

export const roomList = defineCommand({
  name: 'room.list',
  description: 'the group chat rooms of a host',
  args: { host: { type: 'string', description: 'the host (default: every host)', optional: true, positional: true } },
  access: 'admin',
  needs: 'server',
  async run(context, { host }) {
    return (host === undefined ? context.hosts : [hostOf(context, host)]).flatMap((h) => context.rooms(h));
  },
  format: (rooms) => rooms.map((r) => `${r.jid} occupants=${r.occupants}${r.persistent ? ' persistent' : ''}${r.name ? ` "${r.name}"` : ''}`).join('\n'),
});

export const roomDestroy = defineCommand({
  name: 'room.destroy',
  description: 'destroy a room: its occupants are told and removed, its configuration and archive deleted',
  args: {
    room: { type: 'jid', description: 'the room, like lobby@conference.example.org', positional: true, field: 'roomjid' },
    reason: { type: 'text', description: 'told to the occupants', optional: true },
  },
  access: 'admin',
  needs: 'server',
  async run(context, args) {
    const parsed = parseJid(args.room);
    if (parsed === null || parsed.local === '' || parsed.resource !== '') throw new CommandError(`"${args.room}" is not a room address`);
    if (!(await context.destroyRoom(parsed.toString(), args.reason))) throw new CommandError(`no room ${parsed.toString()}`);
    return { room: parsed.toString() };
  },
  format: (r) => `destroyed ${r.room}`,
});

/** An invitation as the commands show it. */
interface InvitationInfo {
  token: string;
  host: string;
  kind: Invite['kind'];
  /** The inviting user's bare JID; null for an admin's invitation. */
  inviter: string | null;
  /** The only username it may register, when it names one. */
  username: string | null;
  /** ISO time */
  expires: string;
}

function invitationInfo(invite: Invite): InvitationInfo {
  return {
    token: invite.token,
    host: invite.host,
    kind: invite.kind,
    inviter: invite.inviter === null ? null : `${invite.inviter}@${invite.host}`,
    username: invite.username,
    expires: new Date(invite.expiresAt).toISOString(),
  };
}

export const inviteCreate = defineCommand({
  name: 'invite.create',
  description: 'an invitation to create an account on a host (default: the first), or with --contact to become that user\'s contact; prints its link',
  args: {
    host: { type: 'string', description: 'the host (default: the first, or the contact\'s)', optional: true, positional: true },
    contact: { type: 'jid', description: 'from this user: the invitee also becomes their contact (XEP-0379)', optional: true },
    username: { type: 'string', description: 'the only username the invitation may register', optional: true },
    ttl: { type: 'string', description: 'how long it stays valid, like 7d or 12h (default: modules.invites.ttl)', optional: true },
    email: { type: 'string', description: 'mail the invitation there (needs modules.mail.smtp_url)', optional: true },
  },
  access: 'admin',
  needs: 'either',
  async run(context, args) {
    let host = hostOf(context, args.host);
    let inviter: string | null = null;
    if (args.contact !== undefined) {
      const from = account(context, args.contact);
      if (args.host !== undefined && from.host !== host) throw new CommandError(`${from.bare} is not an account of ${host}`);
      if (!(await context.accounts.exists(from.host, from.username))) throw new CommandError(`no account ${from.bare}`);
      ({ host } = from);
      inviter = from.username;
    }
    const username = args.username === undefined ? null : normalizeUsername(args.username);
    if (username === null && args.username !== undefined) throw new CommandError(`"${args.username}" is not a valid username`);
    const ttl = args.ttl === undefined ? undefined : parseDuration(args.ttl.trim().toLowerCase());
    if (ttl !== undefined ? ttl <= 0 : args.ttl !== undefined) throw new CommandError(`"${args.ttl}" is not a duration like 7d or 12h`);
    if (args.email !== undefined && !isEmailAddress(args.email)) throw new CommandError(`"${args.email}" is not an email address`);
    const desk = await context.invitations(host);
    if (args.email !== undefined && desk.mail === null) throw new CommandError('no mail without modules.mail.smtp_url in the configuration');

    const invite = await desk.store.create(host, { kind: inviter === null ? 'account' : 'contact', inviter, username, mayRegister: true, ttl: ttl ?? desk.defaultTtl });
    const { url, uri } = desk.links(invite);
    if (args.email !== undefined) {
      const who = inviter === null ? `You are invited to chat on ${host}` : `${inviter}@${host} invites you to chat`;
      try {
        await desk.mail!({
          to: args.email,
          subject: who,
          text: `${who}.\n\nOpen this link to create your account or to open the invitation in your chat app:\n${url}\n\n` +
            `It works once, until ${new Date(invite.expiresAt).toUTCString()}.\n`,
        });
      } catch (err) {
        // an invitation nobody received must not stay usable
        await desk.store.revoke(host, invite.token);
        throw new CommandError(`the mail to ${args.email} could not be sent (${(err as Error).message}); the invitation was withdrawn`);
      }
    }
    return { ...invitationInfo(invite), url, uri, mailedTo: args.email ?? null };
  },
  format: (r) => [r.url, r.uri, `valid until ${r.expires}`, ...(r.mailedTo === null ? [] : [`mailed to ${r.mailedTo}`])].join('\n'),
});

export const inviteList = defineCommand({
  name: 'invite.list',
  description: 'the invitations not used yet (default: of every host)',
  args: { host: { type: 'string', description: 'only this host', optional: true, positional: true } },
  access: 'admin',
  needs: 'either',
  async run(context, args) {
    const hosts = args.host === undefined ? context.hosts : [hostOf(context, args.host)];
    const invitations: InvitationInfo[] = [];
    for (const host of hosts) {
      const desk = await context.invitations(host).catch((err: unknown) => {
        if (args.host === undefined && err instanceof CommandError) return null; // a host without invitations
        throw err;
      });
      if (desk !== null) invitations.push(...(await desk.store.list(host)).map(invitationInfo));
    }
    return invitations;
  },
  format: (list) => list
    .map((i) => `${i.token}  ${i.host}  ${i.kind}  from ${i.inviter ?? 'admin'}${i.username === null ? '' : `  for ${i.username}`}  until ${i.expires}`)
    .join('\n'),
});

export const inviteRevoke = defineCommand({
  name: 'invite.revoke',
  description: 'withdraw an invitation not used yet',
  args: { token: { type: 'string', description: 'the invitation\'s token (the end of its link)', positional: true } },
  access: 'admin',
  needs: 'either',
  async run(context, { token }) {
    for (const host of context.hosts) {
      const desk = await context.invitations(host).catch(() => null);
      if (desk !== null && (await desk.store.revoke(host, token))) return { token, host };
    }
    throw new CommandError(`no invitation ${token} (used, revoked or expired already)`);
  },
  format: (r) => `revoked ${r.token}`,
});

export const storageUsage = defineCommand({
  name: 'storage.usage',
  description: "what the server's data takes: free disk space, the database's size, shared files (HTTP upload) per host",
  args: {},
  access: 'admin',
  needs: 'server',
  run: (context) => context.storage(),
  format: (s) => [
    `data directory ${s.dataDir}: ${s.disk === null ? 'disk space unknown' : `${s.disk.freeBytes} of ${s.disk.totalBytes} bytes free`}`,
    `database ${s.database.driver}: ${s.database.bytes ?? 'unknown'} bytes`,
    ...(s.uploads === null
      ? ['uploads: the upload module is not enabled']
      : [
          `uploads: ${s.uploads.storedBytes} bytes stored; since start ${s.uploads.sinceStart.files} files, ${s.uploads.sinceStart.bytesReceived} bytes received`,
          ...s.uploads.hosts.map((h) => `uploads on ${h.host}: ${h.files} files, ${h.bytes} bytes`),
        ]),
  ].join('\n'),
});

export const certList = defineCommand({
  name: 'cert.list',
  description: "each host's TLS certificate: the file, the names it covers, when it expires, what is wrong with it",
  args: {},
  access: 'admin',
  needs: 'server',
  async run(context) {
    return context.certificates();
  },
  format: (certs) => certs
    .map((c) => `${c.host} ${c.file}${c.generated ? ' (self-signed, generated)' : ''} expires=${c.notAfter ?? '-'} days-left=${c.daysLeft ?? '-'} names=${c.names.join(',')}${c.problems.length > 0 ? ` problems: ${c.problems.join('; ')}` : ''}`)
    .join('\n'),
});

export const reload = defineCommand({
  name: 'reload',
  description: 're-read the configuration file and apply what can be applied without dropping anyone (log level, certificates, registration, admins, limits, modules); an invalid file is refused and the running configuration kept',
  args: {},
  access: 'local',
  needs: 'server',
  run: (context) => context.reload(),
  format: (r) => [
    `reloaded ${r.file}`,
    ...r.applied.map((line) => `applied: ${line}`),
    ...r.needsRestart.map((line) => `needs a restart: ${line}`),
  ].join('\n'),
});

export const commandList: readonly AnyCommand[] = [
  status, stats, sessionsList, sessionsKick,
  userAdd, userDelete, userPasswd, userList, userInfo, userEmail, userTokens, userRevokeTokens, userDisable, userEnable,
  inviteCreate, inviteList, inviteRevoke,
  announce, motdSet, motdClear, roomList, roomDestroy, storageUsage, certList, reload,
] as AnyCommand[];

export const commands: ReadonlyMap<string, AnyCommand> = new Map(commandList.map((command) => [command.name, command]));

/** The named command, or a CommandError listing the known ones. */
export function commandNamed(name: string): AnyCommand {
  const command = commands.get(name);
  if (command === undefined) throw new CommandError(`unknown command "${name}" (known: ${[...commands.keys()].join(', ')})`);
  return command;
}

/** Validates the arguments and runs the named command on a running server's context. */
export async function runCommand(context: LiveAdminContext | AdminContext, name: string, args: unknown): Promise<unknown> {
  const command = commandNamed(name);
  const values = parseArgs(command, args);
  if (command.needs === ('server' satisfies Needs) && !('status' in context)) throw new CommandError(`${name} needs the running server`);
  return command.run(context as LiveAdminContext, values);
}
