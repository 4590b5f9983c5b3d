// The admin command registry's shapes: a command is declared once (name, typed arguments, a
// description, who may run it, whether it needs the running server) and exposed by every admin
// surface from that one declaration: the CLI (src/main.ts generates `xmppd <group> <command>`),
// the control socket (socket.ts), XEP-0050 ad-hoc commands (src/modules/adhoc) and the HTTP
// admin API. A command never knows which of them called it.
import type { Knex } from 'knex';
import { z } from 'zod';
import { ILLEGAL_CHARS } from '../xml/parser.js';
import type { AccountStore } from '../accounts/store.js';
import type { AccountDeletion } from '../accounts/lifecycle.js';
import type { Invite, InviteStore } from '../modules/invites/store.js';

/** How an argument is typed; also the XEP-0004 field type it becomes in an ad-hoc command's form. */
export type ArgType = 'jid' | 'string' | 'text' | 'password' | 'boolean' | 'integer' | 'jids';

export interface ArgSpec {
  type: ArgType;
  description: string;
  optional?: boolean;
  /** A CLI positional argument (in declaration order); else an option `--name`. */
  positional?: boolean;
  /** The data form field's `var` when a XEP-0133 command names it (e.g. `accountjid`). */
  field?: string;
}

export type ArgSpecs = Record<string, ArgSpec>;

type ValueOf<T extends ArgType> = T extends 'boolean' ? boolean : T extends 'integer' ? number : T extends 'jids' ? string[] : string;
export type ArgValues<S extends ArgSpecs> = {
  [K in keyof S]: S[K]['optional'] extends true ? ValueOf<S[K]['type']> | undefined : ValueOf<S[K]['type']>;
};

/** Who may run a command: `local` — the machine's admin only (CLI, control socket, API token); `admin` — also a host's admins over XMPP. */
export type Access = 'local' | 'admin';
/** `server`: only a running server can do it (sessions, reload); `either`: also on the database when it is stopped. */
export type Needs = 'server' | 'either';

/** A refusal the caller shows as is (bad arguments, no such account...). */
export class CommandError extends Error {}

/** What every command may act on, whether or not the server runs: the database. */
export interface AdminContext {
  /** The virtual hosts this caller may act on (an XMPP admin: their own host only). */
  hosts: readonly string[];
  accounts: AccountStore;
  /** Deletes an account and all its data; a running server also ends its sessions. */
  deleteAccount(host: string, username: string): Promise<AccountDeletion>;
  /** Disables or re-enables an account; a running server also ends a disabled account's sessions. */
  setDisabled(host: string, username: string, disabled: boolean, reason?: string): Promise<boolean>;
  /** The database, for commands on a module's data (an account's email address, the mail module's). */
  db: Knex;
  /** A host's invitations (XEP-0401): a refusal when the host does not run the invites module. */
  invitations(host: string): Promise<InvitationDesk>;
}

/** What the invitation commands use: the running invites module, or the configuration's view of it. */
export interface InvitationDesk {
  store: InviteStore;
  /** Seconds a new invitation stays valid unless told otherwise (modules.invites.ttl). */
  defaultTtl: number;
  /** Its landing page on the HTTP listener, and its xmpp: URI for an installed client. */
  links(invite: Invite): { url: string; uri: string };
  /** Mails a message from the server; null when mail is not configured (modules.mail.smtp_url). */
  mail: ((message: { to: string; subject: string; text: string }) => Promise<void>) | null;
}

export interface SessionInfo {
  jid: string;
  ip: string;
  transport: 'tcp' | 'websocket' | 'hibernating';
  secure: boolean;
  /** ISO time the session was bound. */
  since: string;
  /** XEP-0198 stream management on; resumable. */
  sm: boolean;
  /** XEP-0352: the client said it is inactive. */
  inactive: boolean;
  available: boolean;
  priority: number;
  /** The cluster node holding it, when it is not the node answering. */
  node?: string;
  /** The client's software (and device) as it named itself in SASL2 (XEP-0388 <user-agent/>), when it did. */
  client?: string;
}

export interface ServerStatus {
  version: string;
  uptimeSeconds: number;
  node: string;
  database: { driver: string; version: string };
  hosts: Array<{ domain: string; modules: string[]; sessions: number }>;
  connections: { c2s: number; websocket: number; s2s: number };
}

/** What `stats` reports: per host now, and counters since the server started (the /metrics ones). */
export interface ServerStats {
  uptimeSeconds: number;
  hosts: Array<{
    domain: string;
    accounts: number;
    disabledAccounts: number;
    /** Accounts with at least one session (in a cluster, on any node). */
    onlineAccounts: number;
    sessions: number;
    rooms: number;
    /** Per-host gauges modules report (offline messages, uploaded files, push registrations), by metric name. */
    gauges: Record<string, number>;
  }>;
  connections: Record<string, number>;
  sinceStart: {
    received: { message: number; presence: number; iq: number };
    sent: { message: number; presence: number; iq: number };
    authFailures: number;
    deliveries: number;
    /** Mean delivery latency in ms; null before the first delivery. */
    meanDeliveryMs: number | null;
  };
}

export interface RoomInfo {
  jid: string;
  occupants: number;
  persistent: boolean;
  name: string;
}

/** What the server's data takes: the disk of its data directory, the database, the shared files. */
export interface StorageUsage {
  dataDir: string;
  /** The file system holding the data directory (null when it cannot be asked). */
  disk: { totalBytes: number; freeBytes: number } | null;
  database: { driver: string; bytes: number | null };
  /** HTTP file upload (XEP-0363); null when no host runs the upload module. */
  uploads: {
    /** On disk, each stored file once (a file shared twice is stored once). */
    storedBytes: number;
    hosts: Array<{ host: string; files: number; bytes: number }>;
    /** Since the server started. */
    sinceStart: { files: number; bytesReceived: number };
  } | null;
}

/** A host's TLS certificate as the server uses it now. */
export interface CertificateStatus {
  host: string;
  file: string;
  /** The self-signed certificate the server made because none is configured. */
  generated: boolean;
  names: string[];
  /** ISO time; null when it could not be read. */
  notAfter: string | null;
  daysLeft: number | null;
  problems: string[];
}

export interface ReloadReport {
  file: string;
  /** What the running server now uses. */
  applied: string[];
  /** What changed but only takes effect after a restart. */
  needsRestart: string[];
}

/** What only a running server offers. */
declare module '../core/kernel.js' {
  interface KernelExtensions {
    /** The admin commands' context on the running server, for the hosts given (all by default). */
    admin: (hosts?: readonly string[]) => LiveAdminContext;
  }
}

export interface LiveAdminContext extends AdminContext {
  status(): Promise<ServerStatus>;
  stats(): Promise<ServerStats>;
  sessions(host?: string): SessionInfo[];
  /** Ends the sessions of a full JID (one) or a bare JID (all); how many were ended. */
  kick(jid: string, condition: 'policy-violation' | 'not-authorized', text: string): number;
  /** A headline message to every online user of a host (XEP-0133 §4.23); how many sessions got it. */
  announce(host: string, subject: string | undefined, body: string): number;
  /** The message of the day (XEP-0133 §4.24): sent now and to every later login; null clears it. */
  setMotd(host: string, subject: string | undefined, body: string | null): Promise<number>;
  rooms(host: string): RoomInfo[];
  destroyRoom(room: string, reason: string | undefined): Promise<boolean>;
  reload(): Promise<ReloadReport>;
  storage(): Promise<StorageUsage>;
  certificates(): CertificateStatus[];
}

export interface CommandDefinition<S extends ArgSpecs = ArgSpecs, N extends Needs = Needs, R = unknown> {
  /** Dotted: `user.add` is `xmppd user add`. */
  name: string;
  /** Other CLI words for the last part (`user del` for `user.delete`). */
  aliases?: string[];
  description: string;
  args: S;
  access: Access;
  needs: N;
  /** The XEP-0133 command it is (`add-user` → node `http://jabber.org/protocol/admin#add-user`). */
  xep0133?: string;
  run(context: N extends 'server' ? LiveAdminContext : AdminContext, args: ArgValues<S>): Promise<R>;
  /** The result as the CLI prints it (one line per item); JSON when missing. */
  format?(result: R): string;
}

export function defineCommand<S extends ArgSpecs, N extends Needs, R>(definition: CommandDefinition<S, N, R>): CommandDefinition<S, N, R> {
  return definition;
}

/** A command of any arguments and result, as the surfaces handle them. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyCommand = CommandDefinition<ArgSpecs, Needs, any>;

/** The zod schema an argument's values are validated with (strings from a CLI or a form are coerced). */
function argSchema(spec: ArgSpec): z.ZodType {
  let schema: z.ZodType;
  switch (spec.type) {
    case 'boolean':
      schema = z.preprocess((v) => (v === 'true' || v === '1' ? true : v === 'false' || v === '0' ? false : v), z.boolean());
      break;
    case 'integer':
      schema = z.coerce.number().int();
      break;
    case 'jids':
      schema = z.preprocess((v) => (typeof v === 'string' ? v.split(/[\s,]+/).filter((s) => s !== '') : v), z.array(z.string().min(1)).min(1));
      break;
    case 'text':
    case 'string':
    case 'jid':
      // what ends up in a stanza (an announcement, a room's name) must be writable as XML: a
      // control character would go onto every recipient's stream as malformed XML
      schema = z.string().min(1).refine((v) => !ILLEGAL_CHARS.test(v), 'contains a control character that XML cannot carry');
      break;
    case 'password':
      schema = z.string().min(1);
      break;
  }
  return spec.optional ? schema.optional() : schema;
}

/** Validates `args` against a command's declaration: its values, or a CommandError naming what is wrong. */
export function parseArgs<S extends ArgSpecs>(command: CommandDefinition<S, Needs, unknown>, args: unknown): ArgValues<S> {
  const shape: Record<string, z.ZodType> = {};
  for (const [name, spec] of Object.entries(command.args)) shape[name] = argSchema(spec);
  const parsed = z.strictObject(shape).safeParse(args ?? {});
  if (!parsed.success) throw new CommandError(`${command.name}: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'arguments'}: ${i.message}`).join('; ')}`);
  return parsed.data as ArgValues<S>;
}
