// Where every importer writes: one account's data at a time, each kind through its module's own
// store (accounts, roster, vcard, private, offline, mam, pubsub), all inside the transaction
// the caller opened (src/migrate/index.ts). The formats' readers (xep0227.ts, prosody.ts) turn
// their files into these calls and know nothing of the tables.
import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import type Element from 'ltx/lib/Element.js';
import { AccountStore, accountMigrations, type ImportedCredentials } from '../accounts/store.js';
import { computeScramCredentials, DEFAULT_SCRAM_ITERATIONS } from '../accounts/credentials.js';
import { normalizeUsername, parseJid } from '../core/jid.js';
import { migrateLocked } from '../storage/db.js';
import { serialize } from '../xml/serialize.js';
import { RosterStore, rosterMigrations, type RosterItem, type Subscription } from '../modules/roster/store.js';
import { VcardStore, vcardMigrations } from '../modules/vcard/store.js';
import { photoHash } from '../modules/vcard/index.js';
import { PrivateStore, privateMigrations } from '../modules/private/store.js';
import { OfflineStore, offlineMigrations } from '../modules/offline/store.js';
import { ArchiveStore, archiveMigrations } from '../modules/mam/store.js';
import { PubsubStore, pubsubMigrations } from '../modules/pubsub/store.js';
import { applyForm, defaultConfig, formValues, parseConfig, type NodeConfig } from '../modules/pubsub/config.js';
import type { Progress } from './progress.js';

/** An import that cannot go on: the file and the position of the problem are in the message. */
export class ImportError extends Error {}

/** What an account brings to log in with. */
export type AccountSecret =
  | { kind: 'scram'; credentials: ImportedCredentials }
  | { kind: 'password'; password: string }
  | { kind: 'none' };

/** A count and the first few names, for the summary (an import may bring a million accounts). */
export interface Tally {
  count: number;
  sample: string[];
}

const SAMPLE = 10;
const tally = (): Tally => ({ count: 0, sample: [] });
function add(t: Tally, name: string): void {
  t.count++;
  if (t.sample.length < SAMPLE) t.sample.push(name);
}

export interface ImportReport {
  accounts: number;
  /** Accounts that existed already: left as they were, their data in the file not imported. */
  skipped: Tally;
  /** Accounts imported without any credentials: they log in once `xmppd user passwd` sets one. */
  withoutPassword: Tally;
  /** Accounts with SHA-1 keys only: SCRAM-SHA-1 and PLAIN work; the first PLAIN login adds SHA-256. */
  sha1Only: Tally;
  /** Hosts of the file this server does not serve: their users were not imported. */
  unknownHosts: string[];
  rosterItems: number;
  offlineMessages: number;
  archivedMessages: number;
  pepItems: number;
  /** Things read but not carried over, with why (one line each, deduplicated). */
  ignored: string[];
}

export function emptyReport(): ImportReport {
  return { accounts: 0, skipped: tally(), withoutPassword: tally(), sha1Only: tally(), unknownHosts: [], rosterItems: 0, offlineMessages: 0, archivedMessages: 0, pepItems: 0, ignored: [] };
}

/** The migrations of every store an import or export touches, run before its transaction. */
export async function migrateStores(db: Knex): Promise<void> {
  await migrateLocked(db, [
    ['accounts', accountMigrations],
    ['roster', rosterMigrations],
    ['vcard', vcardMigrations],
    ['private', privateMigrations],
    ['offline', offlineMigrations],
    ['mam', archiveMigrations],
    ['pubsub', pubsubMigrations],
  ]);
}

const SUBSCRIPTIONS = new Set<Subscription>(['none', 'to', 'from', 'both']);
/** PEP items kept per node on import: every one the file has (the node's own limit applies from the next publish). */
const IMPORT_ITEM_LIMIT = Number.MAX_SAFE_INTEGER;

interface HostStores {
  roster: RosterStore;
  vcard: VcardStore;
  private: PrivateStore;
  offline: OfflineStore;
  archive: ArchiveStore;
}

export class ImportSink {
  readonly report = emptyReport();
  private readonly accounts: AccountStore;
  private readonly pubsub: PubsubStore;
  private readonly stores = new Map<string, HostStores>();
  /** The account being imported and its keys so far: classified once it is complete. */
  private current: { jid: string; credentials: ImportedCredentials } | null = null;
  /** PEP nodes made in this import: `bare JID\0node` → id. Cleared per account. */
  private readonly nodes = new Map<string, number>();

  constructor(
    private readonly db: Knex,
    private readonly hosts: ReadonlySet<string>,
    private readonly progress: Progress,
  ) {
    this.accounts = new AccountStore(db, DEFAULT_SCRAM_ITERATIONS);
    this.pubsub = new PubsubStore(db);
  }

  ignored(what: string): void {
    if (!this.report.ignored.includes(what) && this.report.ignored.length < 50) this.report.ignored.push(what);
  }

  servesHost(host: string): boolean {
    if (this.hosts.has(host)) return true;
    if (!this.report.unknownHosts.includes(host)) this.report.unknownHosts.push(host);
    return false;
  }

  private storesOf(host: string): HostStores {
    let stores = this.stores.get(host);
    if (stores === undefined) {
      stores = {
        roster: new RosterStore(this.db, host),
        vcard: new VcardStore(this.db, host),
        private: new PrivateStore(this.db, host),
        offline: new OfflineStore(this.db, host),
        // through knex (the transaction), not the SQLite connection's own statements
        archive: new ArchiveStore(this.db, host, () => {}, { sqliteDirect: false }),
      };
      this.stores.set(host, stores);
    }
    return stores;
  }

  /**
   * A new account; false (and nothing of it is imported) when it exists already or its name is
   * not a valid username. Returns the name as stored (nodeprep'd).
   */
  async account(host: string, name: string, secret: AccountSecret, createdAt?: number): Promise<string | null> {
    const username = normalizeUsername(name);
    if (username === null) {
      this.ignored(`"${name}@${host}": not a valid username`);
      return null;
    }
    this.nodes.clear();
    this.finishAccount();
    const jid = `${username}@${host}`;
    const credentials = secret.kind === 'scram' ? secret.credentials : secret.kind === 'password' ? await this.fromPassword(secret.password) : {};
    if (!(await this.accounts.createImported(host, username, credentials, createdAt))) {
      add(this.report.skipped, jid);
      return null;
    }
    this.report.accounts++;
    this.current = { jid, credentials };
    this.progress.tick('accounts');
    return username;
  }

  /** Keys that came after the account was made (XEP-0227 puts them inside <user/>). */
  async credentials(host: string, username: string, credentials: ImportedCredentials): Promise<void> {
    await this.accounts.setImportedCredentials(host, username, credentials);
    if (this.current?.jid === `${username}@${host}`) this.current.credentials = credentials;
  }

  /** The last account is complete: what it can log in with goes into the report. */
  private finishAccount(): void {
    const done = this.current;
    this.current = null;
    if (done === null) return;
    if (done.credentials.sha256 === undefined && done.credentials.sha1 === undefined) add(this.report.withoutPassword, done.jid);
    else if (done.credentials.sha256 === undefined) add(this.report.sha1Only, done.jid);
  }

  /** A plain password (XEP-0227 `password`, Prosody's internal_plain): hashed now, never stored. */
  private async fromPassword(password: string): Promise<ImportedCredentials> {
    const salt = () => randomBytes(16);
    try {
      const [sha1, sha256, sha512] = await Promise.all([
        computeScramCredentials(password, 'sha1', salt(), DEFAULT_SCRAM_ITERATIONS),
        computeScramCredentials(password, 'sha256', salt(), DEFAULT_SCRAM_ITERATIONS),
        computeScramCredentials(password, 'sha512', salt(), DEFAULT_SCRAM_ITERATIONS),
      ]);
      return { sha1, sha256, sha512 };
    } catch (err) {
      this.ignored(`a password that SASLprep refuses (${(err as Error).message}): that account has none`);
      return {};
    }
  }

  async roster(host: string, username: string, items: RosterItem[], pendingIn: Array<{ jid: string; status: string | null }>): Promise<void> {
    const store = this.storesOf(host).roster;
    await store.withRoster(username, async (roster) => {
      for (const item of items) {
        const jid = parseJid(item.jid);
        if (jid === null || jid.resource !== '') {
          this.ignored(`roster item "${item.jid}": not a bare JID`);
          continue;
        }
        const subscription = SUBSCRIPTIONS.has(item.subscription) ? item.subscription : 'none';
        await store.saveItem(username, roster, { ...item, jid: jid.toString(), subscription });
        this.report.rosterItems++;
      }
      for (const pending of pendingIn) {
        const jid = parseJid(pending.jid);
        if (jid !== null) await store.setPendingIn(username, roster, jid.bare, pending.status);
      }
    });
    store.evict(username);
  }

  async vcard(host: string, username: string, vcard: Element): Promise<void> {
    vcard.attrs.xmlns = 'vcard-temp';
    await this.storesOf(host).vcard.set(username, { vcard: serialize(vcard), photoHash: photoHash(vcard) });
  }

  /** XEP-0049 elements, each in its own namespace. */
  async privateXml(host: string, username: string, elements: Element[]): Promise<void> {
    const items = [];
    for (const element of elements) {
      const namespace = element.attrs.xmlns;
      if (typeof namespace !== 'string' || namespace === '') {
        this.ignored(`private XML <${element.name}/> without a namespace`);
        continue;
      }
      items.push({ namespace, name: element.name, data: serialize(element) });
    }
    await this.storesOf(host).private.set(username, items);
  }

  async offline(host: string, username: string, message: Element, storedAt: number): Promise<void> {
    message.attrs.xmlns = 'jabber:client';
    await this.storesOf(host).offline.add(username, serialize(message), storedAt);
    this.report.offlineMessages++;
    this.progress.tick('messages');
  }

  /** One message of the account's archive (XEP-0313), at the time it was archived. */
  async archive(host: string, username: string, message: Element, time: number): Promise<void> {
    message.attrs.xmlns = 'jabber:client';
    const owner = `${username}@${host}`;
    const from = parseJid(message.attrs.from ?? '');
    const to = parseJid(message.attrs.to ?? '');
    const peer = from !== null && from.bare !== owner ? from : to;
    if (peer === null) {
      this.ignored('archived messages with neither a from nor a to of another address');
      return;
    }
    await this.storesOf(host).archive.importRow(
      { owner, withBare: peer.bare, withResource: peer.resource, stanza: serialize(message) },
      time,
    );
    this.report.archivedMessages++;
    this.progress.tick('messages');
  }

  /** A PEP node of the account (XEP-0163), made if needed; `form` is its configuration (XEP-0060 §16.4). */
  async pepNode(host: string, username: string, node: string, config?: Element | Partial<NodeConfig>): Promise<number> {
    const service = `${username}@${host}`;
    const key = `${service}\0${node}`;
    let id = this.nodes.get(key);
    if (id === undefined) {
      const row = (await this.pubsub.createNode(service, node, JSON.stringify(defaultConfig(true)), service)) ?? (await this.pubsub.node(service, node))!;
      id = row.id;
      this.nodes.set(key, id);
    }
    if (config !== undefined) {
      const row = (await this.pubsub.node(service, node))!;
      let next = parseConfig(row.config, true);
      if ('name' in config && typeof config.name === 'string') {
        const values = formValues(config as Element);
        try {
          if (values !== undefined) next = applyForm(next, values, IMPORT_ITEM_LIMIT);
        } catch {
          this.ignored(`a configuration of PEP node ${node} this server does not accept: the defaults kept`);
        }
      } else {
        next = { ...next, ...(config as Partial<NodeConfig>) };
      }
      await this.pubsub.configure(id, JSON.stringify(next));
    }
    return id;
  }

  async pepItem(host: string, username: string, node: string, itemId: string, payload: Element, publishedAt = Date.now()): Promise<void> {
    const id = await this.pepNode(host, username, node);
    await this.pubsub.publish(id, { id: itemId, publisher: `${username}@${host}`, payload: serialize(payload), publishedAt }, IMPORT_ITEM_LIMIT);
    this.report.pepItems++;
  }

  /** Every write buffered by a store is committed (before the transaction ends). */
  async flush(): Promise<void> {
    this.finishAccount();
    for (const stores of this.stores.values()) await stores.offline.settled();
  }
}

/** Credentials of one hash from the base64 fields of an export (XEP-0227 §4 scram-credentials). */
export function scramFromBase64(fields: { salt?: string; iterations?: string | number; storedKey?: string; serverKey?: string }): ImportedCredentials['sha1'] {
  const iterations = Number(fields.iterations);
  const b64 = /^[A-Za-z0-9+/]+=*$/;
  if (!Number.isInteger(iterations) || iterations < 1) return undefined;
  if (![fields.salt, fields.storedKey, fields.serverKey].every((v) => typeof v === 'string' && b64.test(v.trim()))) return undefined;
  return { salt: fields.salt!.trim(), iterations, storedKey: fields.storedKey!.trim(), serverKey: fields.serverKey!.trim() };
}
