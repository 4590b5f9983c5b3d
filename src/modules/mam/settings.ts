// Per-account archive settings: XEP-0313 §7 preferences (set by the user) and the retention
// override (set by the admin with `xmppd user retention`). Both tables are small — only accounts
// that changed something have a row — so each host keeps them in memory, which lets the routing
// path decide synchronously whether a message is archived.
import type { Knex } from 'knex';

export type DefaultPolicy = 'always' | 'never' | 'roster';

export interface ArchivePrefs {
  default: DefaultPolicy;
  /** bare JIDs */
  always: string[];
  never: string[];
}

export class PrefsStore {
  private readonly prefs = new Map<string, ArchivePrefs>();

  constructor(
    private readonly db: Knex,
    private readonly host: string,
  ) {}

  async init(): Promise<void> {
    const rows: Array<{ username: string; default_policy: string; always: string; never: string }> = await this.db('mam_prefs').where('host', this.host).select();
    for (const row of rows) {
      this.prefs.set(row.username, { default: row.default_policy as DefaultPolicy, always: JSON.parse(row.always) as string[], never: JSON.parse(row.never) as string[] });
    }
  }

  get(username: string): ArchivePrefs | undefined {
    return this.prefs.get(username);
  }

  async set(username: string, prefs: ArchivePrefs): Promise<void> {
    await this.db('mam_prefs')
      .insert({ host: this.host, username, default_policy: prefs.default, always: JSON.stringify(prefs.always), never: JSON.stringify(prefs.never) })
      .onConflict(['host', 'username'])
      .merge();
    this.prefs.set(username, prefs);
  }

  /** Drops a deleted account's preferences from memory (the row goes with the account's data). */
  forget(username: string): void {
    this.prefs.delete(username);
  }
}

/** Per-account retention overrides: seconds, or null for "kept forever". */
export class RetentionStore {
  private overrides = new Map<string, number | null>();

  constructor(
    private readonly db: Knex,
    private readonly host: string,
  ) {}

  /** (Re)reads the overrides: the admin CLI changes them from another process. */
  async load(): Promise<ReadonlyMap<string, number | null>> {
    const rows: Array<{ username: string; expires_after: number | string | null }> = await this.db('mam_retention').where('host', this.host).select('username', 'expires_after');
    this.overrides = new Map(rows.map((r) => [r.username, r.expires_after === null ? null : Number(r.expires_after)]));
    return this.overrides;
  }

  /** The account's override: seconds, null for never, undefined for "the server's default". */
  override(username: string): number | null | undefined {
    return this.overrides.get(username);
  }

  all(): ReadonlyMap<string, number | null> {
    return this.overrides;
  }

  /** `seconds` null: kept forever; undefined: back to the server's default. */
  /** Drops a deleted account's override from memory (the row goes with the account's data). */
  forget(username: string): void {
    this.overrides.delete(username);
  }

  async set(username: string, seconds: number | null | undefined): Promise<void> {
    if (seconds === undefined) {
      await this.db('mam_retention').where({ host: this.host, username }).delete();
      this.overrides.delete(username);
      return;
    }
    await this.db('mam_retention').insert({ host: this.host, username, expires_after: seconds }).onConflict(['host', 'username']).merge();
    this.overrides.set(username, seconds);
  }
}
