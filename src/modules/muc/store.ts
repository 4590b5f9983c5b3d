// Persistent rooms (XEP-0045 §10.1.3 muc#roomconfig_persistentroom): their configuration, subject,
// affiliations and discussion history survive a restart. Temporary rooms never touch the
// database. Nothing here runs per recipient: configuration and affiliations are written when an
// owner or admin changes them, history once per message, batched per event-loop turn.
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import type { Migration } from '../../storage/db.js';
import type { RoomConfig } from './forms.js';

export const mucMigrations: Migration[] = [
  {
    name: '001-create-muc-rooms',
    async up(db) {
      await db.schema.createTable('muc_rooms', (t) => {
        t.string('service', 255).notNullable();
        t.string('room', 1023).notNullable();
        /** RoomConfig as JSON: new fields get their defaults when read back */
        t.text('config').notNullable();
        t.text('subject').notNullable().defaultTo('');
        t.string('subject_by', 1023).notNullable().defaultTo('');
        t.bigInteger('created_at').notNullable();
        t.primary(['service', 'room']);
      });
      await db.schema.createTable('muc_affiliations', (t) => {
        t.string('service', 255).notNullable();
        t.string('room', 1023).notNullable();
        t.string('jid', 3071).notNullable();
        t.string('affiliation', 16).notNullable(); // owner | admin | member | outcast
        t.text('reason').notNullable().defaultTo('');
        t.primary(['service', 'room', 'jid']);
      });
    },
  },
  {
    name: '002-create-muc-history',
    async up(db) {
      await db.schema.createTable('muc_history', (t) => {
        t.bigIncrements('id').primary();
        t.string('service', 255).notNullable();
        t.string('room', 1023).notNullable();
        /** ms since the epoch: the XEP-0203 delay stamp */
        t.bigInteger('stamp').notNullable();
        /** the reflected message without 'to', serialised once */
        t.text('stanza').notNullable();
        t.index(['service', 'room', 'id'], 'muc_history_by_room');
      });
    },
  },
  {
    name: '003-add-muc-room-secret',
    async up(db) {
      await db.schema.alterTable('muc_rooms', (t) => {
        /** salt of the room's XEP-0421 occupant ids: stable across restarts, never sent */
        t.string('secret', 64).notNullable().defaultTo('');
      });
    },
  },
  {
    name: '004-add-muc-room-vcard',
    async up(db) {
      await db.schema.alterTable('muc_rooms', (t) => {
        /** the room's <vCard xmlns='vcard-temp'/> as its owner set it (XEP-0486), null for none */
        t.text('vcard').nullable();
        /** hex SHA-1 of its photo (XEP-0153 §2), '' for none: the room information form shows it */
        t.string('avatar_hash', 40).notNullable().defaultTo('');
      });
    },
  },
];

export type Affiliation = 'owner' | 'admin' | 'member' | 'outcast' | 'none';

export interface StoredMessage {
  stamp: number;
  stanza: string;
}

interface PendingMessage {
  room: string;
  row: { service: string; room: string; stamp: number; stanza: string };
  keep: number;
}

export interface StoredRoom {
  room: string;
  config: Partial<RoomConfig>;
  subject: string;
  subjectBy: string;
  createdAt: number;
  secret: string;
  /** The room's vCard, serialised (XEP-0486), and the hash of its photo ('' for none). */
  vcard: RoomVcard | undefined;
  affiliations: Map<string, { affiliation: Affiliation; reason: string }>;
}

export interface RoomVcard {
  vcard: string;
  avatarHash: string;
}

export class RoomStore {
  /** History rows waiting for this event-loop turn's batch insert. */
  private pending: PendingMessage[] = [];
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly db: Knex,
    private readonly service: string,
    private readonly log: Logger,
  ) {}

  /**
   * Keeps a message of a persistent room's discussion history (XEP-0045 §7.2.15) across
   * restarts: once per message, never per recipient. Messages of one event-loop turn share
   * one transaction, and each room keeps only its newest `keep` rows.
   */
  addHistory(room: string, stamp: number, stanza: string, keep: number): void {
    if (this.pending.length === 0) setImmediate(() => this.scheduleFlush());
    this.pending.push({ room, row: { service: this.service, room, stamp, stanza }, keep });
  }

  private scheduleFlush(): void {
    this.flushing = this.flushing
      .then(() => this.flushHistory())
      .catch((err: unknown) => this.log.error({ err, service: this.service }, 'storing room history failed'));
  }

  private async flushHistory(): Promise<void> {
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    const keep = new Map<string, number>();
    for (const p of batch) keep.set(p.room, p.keep);
    await this.db.transaction(async (trx) => {
      for (let i = 0; i < batch.length; i += 200) await trx('muc_history').insert(batch.slice(i, i + 200).map((p) => p.row));
      for (const [room, n] of keep) {
        const newest = trx('muc_history').where({ service: this.service, room }).orderBy('id', 'desc').offset(n).limit(1).select('id');
        const [row] = (await newest) as Array<{ id: number | string }>;
        if (row !== undefined) await trx('muc_history').where({ service: this.service, room }).andWhere('id', '<=', row.id).delete();
      }
    });
  }

  /** Waits for history writes under way. */
  async settled(): Promise<void> {
    if (this.pending.length > 0) this.scheduleFlush();
    await this.flushing;
  }

  /** The newest `limit` messages of a room, oldest first. */
  async history(room: string, limit: number): Promise<StoredMessage[]> {
    if (limit === 0) return [];
    const rows: Array<{ stamp: number | string; stanza: string }> = await this.db('muc_history')
      .where({ service: this.service, room })
      .orderBy('id', 'desc')
      .limit(limit)
      .select('stamp', 'stanza');
    return rows.reverse().map((r) => ({ stamp: Number(r.stamp), stanza: r.stanza }));
  }

  async clearHistory(room: string): Promise<void> {
    await this.db('muc_history').where({ service: this.service, room }).delete();
  }

  /** Every stored room of the service, or the one named `only`. */
  async loadAll(only?: string): Promise<StoredRoom[]> {
    const where = only === undefined ? { service: this.service } : { service: this.service, room: only };
    const rooms: Array<{ room: string; config: string; subject: string; subject_by: string; created_at: number | string; secret: string; vcard: string | null; avatar_hash: string }> =
      await this.db('muc_rooms').where(where).select('room', 'config', 'subject', 'subject_by', 'created_at', 'secret', 'vcard', 'avatar_hash');
    const byRoom = new Map<string, StoredRoom>();
    for (const r of rooms) {
      byRoom.set(r.room, {
        room: r.room,
        config: JSON.parse(r.config) as Partial<RoomConfig>,
        subject: r.subject,
        subjectBy: r.subject_by,
        createdAt: Number(r.created_at),
        secret: r.secret,
        vcard: r.vcard === null ? undefined : { vcard: r.vcard, avatarHash: r.avatar_hash },
        affiliations: new Map(),
      });
    }
    const affiliations: Array<{ room: string; jid: string; affiliation: Affiliation; reason: string }> =
      await this.db('muc_affiliations').where(where).select('room', 'jid', 'affiliation', 'reason');
    for (const a of affiliations) byRoom.get(a.room)?.affiliations.set(a.jid, { affiliation: a.affiliation, reason: a.reason });
    return [...byRoom.values()];
  }

  /** Writes the room and all its affiliations (when it becomes persistent). */
  async saveRoom(room: string, config: RoomConfig, subject: string, subjectBy: string, createdAt: number, secret: string, affiliations: Iterable<[string, { affiliation: Affiliation; reason: string }]>, vcard?: RoomVcard): Promise<void> {
    await this.db.transaction(async (trx) => {
      const card = { vcard: vcard?.vcard ?? null, avatar_hash: vcard?.avatarHash ?? '' };
      await trx('muc_rooms')
        .insert({ service: this.service, room, config: JSON.stringify(config), subject, subject_by: subjectBy, created_at: createdAt, secret, ...card })
        .onConflict(['service', 'room'])
        .merge(['config', 'subject', 'subject_by', 'secret', 'vcard', 'avatar_hash']);
      await trx('muc_affiliations').where({ service: this.service, room }).delete();
      const rows = [...affiliations].map(([jid, a]) => ({ service: this.service, room, jid, affiliation: a.affiliation, reason: a.reason }));
      for (let i = 0; i < rows.length; i += 150) await trx('muc_affiliations').insert(rows.slice(i, i + 150));
    });
  }

  async saveConfig(room: string, config: RoomConfig): Promise<void> {
    await this.db('muc_rooms').where({ service: this.service, room }).update({ config: JSON.stringify(config) });
  }

  async saveSecret(room: string, secret: string): Promise<void> {
    await this.db('muc_rooms').where({ service: this.service, room }).update({ secret });
  }

  async saveVcard(room: string, vcard: RoomVcard): Promise<void> {
    await this.db('muc_rooms').where({ service: this.service, room }).update({ vcard: vcard.vcard, avatar_hash: vcard.avatarHash });
  }

  async saveSubject(room: string, subject: string, subjectBy: string): Promise<void> {
    await this.db('muc_rooms').where({ service: this.service, room }).update({ subject, subject_by: subjectBy });
  }

  async setAffiliation(room: string, jid: string, affiliation: Affiliation, reason: string): Promise<void> {
    const key = { service: this.service, room, jid };
    if (affiliation === 'none') await this.db('muc_affiliations').where(key).delete();
    else await this.db('muc_affiliations').insert({ ...key, affiliation, reason }).onConflict(['service', 'room', 'jid']).merge(['affiliation', 'reason']);
  }

  async removeRoom(room: string): Promise<void> {
    await this.db.transaction(async (trx) => {
      await trx('muc_history').where({ service: this.service, room }).delete();
      await trx('muc_affiliations').where({ service: this.service, room }).delete();
      await trx('muc_rooms').where({ service: this.service, room }).delete();
    });
  }
}
