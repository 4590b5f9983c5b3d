// An account's end: the account row, then every module's data for it (roster, archive, private
// XML, vCard, block list, offline messages, uploads, room affiliations...), whoever deletes it:
// `xmppd user del` with no server running, the same command through a running server's control
// socket, XEP-0077 <remove/>. A name freed this way is free of everything its last owner left, so
// the next account of that name inherits nothing (issue 11: a privacy defect before).
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import type { AccountStore } from './store.js';
import { Jid } from '../core/jid.js';

/** The account whose data is being deleted, and where data lives. */
export interface AccountDataScope {
  db: Knex;
  /** The account's virtual host, e.g. 'localhost'. */
  host: string;
  username: string;
  /** username@host */
  bareJid: string;
  /** The server's data directory. */
  dataDir: string;
  /** Where shared files are kept (storage.uploads_dir; one directory for every node of a cluster). */
  uploadsDir: string;
}

/** Where the server keeps files: its data directory, and the uploads directory. */
export interface DataDirs {
  dataDir: string;
  uploadsDir: string;
}

/** What keeps data for accounts: a module definition (src/core/module.ts) is one. */
export interface AccountDataOwner {
  name: string;
  migrations?: readonly unknown[];
  removeAccountData?(account: AccountDataScope): Promise<void>;
}

export interface AccountDeletion {
  /** Whether the account existed (its data is removed either way: leftovers of an earlier deletion go too). */
  existed: boolean;
  /** Modules whose data could not be removed (logged); empty when all went. */
  failed: string[];
}

/**
 * Runs every module's `removeAccountData` whose tables this database has, enabled on the host
 * now or not: a module turned off since still holds what it stored then.
 */
export async function removeAccountData(
  db: Knex,
  dirs: DataDirs,
  host: string,
  username: string,
  modules: Iterable<AccountDataOwner>,
  log?: Logger,
): Promise<string[]> {
  const migrated = (await db.schema.hasTable('xmppd_migrations'))
    ? new Set((await db('xmppd_migrations').distinct('module')).map((row: { module: string }) => row.module))
    : new Set<string>();
  const scope: AccountDataScope = { db, host, username, bareJid: `${username}@${host}`, dataDir: dirs.dataDir, uploadsDir: dirs.uploadsDir };
  const failed: string[] = [];
  for (const module of modules) {
    if (module.removeAccountData === undefined) continue;
    if ((module.migrations ?? []).length > 0 && !migrated.has(module.name)) continue; // never stored anything here
    try {
      await module.removeAccountData(scope);
    } catch (err) {
      failed.push(module.name);
      log?.error({ err, module: module.name, account: scope.bareJid }, "removing a deleted account's data failed; run the deletion again");
    }
  }
  return failed;
}

/** Deletes the account row, then its data: the database-only path (no server running). */
export async function deleteAccount(
  db: Knex,
  accounts: AccountStore,
  dirs: DataDirs,
  host: string,
  username: string,
  modules: Iterable<AccountDataOwner>,
  log?: Logger,
): Promise<AccountDeletion> {
  const existed = await accounts.delete(host, username);
  const failed = await removeAccountData(db, dirs, host, username, modules, log);
  return { existed, failed };
}

/** What a running server offers the deletion: its sessions and its hosts' events. */
export interface RunningServer {
  db: Knex;
  accounts: AccountStore;
  log: Logger;
  settings: DataDirs;
  /** Ends the account's sessions, on every node of a cluster. */
  closeSessions(jid: Jid, condition: 'not-authorized', text: string): number;
  hosts: ReadonlyMap<string, { events: { fire<E>(name: string, event: E): unknown } }>;
  /** Every module this build knows (not only the enabled ones). */
  moduleDefinitions(): Iterable<AccountDataOwner>;
}

/**
 * Deletes an account on a running server: the account row (no new login), its sessions (kicked),
 * `account/deleting` (contacts told, while the roster is still there), the data, then
 * `account/deleted` for what modules hold in memory.
 */
export function deleteAccountLive(server: RunningServer, host: string, username: string): Promise<AccountDeletion> {
  return server.accounts.whileDeleting(host, username, () => deleteLive(server, host, username));
}

async function deleteLive(server: RunningServer, host: string, username: string): Promise<AccountDeletion> {
  // the row goes first (queued before any later login's lookup): no new login from here on
  const rowDeleted = server.accounts.delete(host, username);
  // an in-band remove's result (XEP-0077 §3.2) goes out before its stream ends
  await new Promise((resolve) => setImmediate(resolve));
  const bare = `${username}@${host}`;
  // RFC 6120 §4.9.3.14 <not-authorized/>: the stream's authentication no longer holds. Not
  // <reset/> or <system-shutdown/>, which invite the client to reconnect, nor <conflict/>,
  // which says another session took over; clients (and Prosody, for a deleted user) treat
  // not-authorized as "stop, the credentials are gone". Closing ends the session for good:
  // it cannot be resumed (XEP-0198), and what it had not acknowledged goes to offline storage
  // before that is cleared below.
  server.closeSessions(new Jid(username, host), 'not-authorized', 'The account was deleted');
  const existed = await rowDeleted;
  const events = server.hosts.get(host)?.events;
  const pending: Array<Promise<unknown>> = [];
  events?.fire('account/deleting', { username, pending });
  await Promise.all(pending);
  // let the closed sessions' own writes (last activity, offline copies) start before the data goes
  await new Promise((resolve) => setImmediate(resolve));
  const failed = await removeAccountData(server.db, server.settings, host, username, server.moduleDefinitions(), server.log);
  events?.fire('account/deleted', { username, host });
  server.log.info({ account: bare, existed, failed }, 'account deleted with its data');
  return { existed, failed };
}
