// vCards (XEP-0054) on disk: one serialised <vCard/> per account, with the SHA-1 of its photo
// (XEP-0153) computed once when it is set, so that stamping presence never parses a vCard.
import type { Knex } from 'knex';
import type { Migration } from '../../storage/db.js';
import { PreparedRead } from '../../storage/prepared.js';

export const vcardMigrations: Migration[] = [
  {
    name: '001-create-vcard',
    async up(db) {
      await db.schema.createTable('vcard', (t) => {
        t.string('host', 255).notNullable();
        t.string('username', 1023).notNullable();
        t.text('vcard').notNullable(); // the <vCard xmlns='vcard-temp'/> element as sent
        t.string('photo_hash', 40).notNullable().defaultTo(''); // hex SHA-1 of the photo, '' for none
        t.primary(['host', 'username']);
      });
    },
  },
];

export interface StoredVcard {
  vcard: string;
  photoHash: string;
}

export class VcardStore {
  /** Read at every login (prepared: src/storage/prepared.ts). */
  private readonly photoHashRead: PreparedRead<{ photo_hash: string }>;

  constructor(
    private readonly db: Knex,
    private readonly host: string,
  ) {
    this.photoHashRead = new PreparedRead(db, 'select photo_hash from vcard where host = ? and username = ? limit 1');
  }

  async get(username: string): Promise<StoredVcard | undefined> {
    const row: { vcard: string; photo_hash: string } | undefined = await this.db('vcard')
      .where({ host: this.host, username })
      .first('vcard', 'photo_hash');
    return row === undefined ? undefined : { vcard: row.vcard, photoHash: row.photo_hash };
  }

  /** The photo hash alone ('' when the account has no vCard or no photo). */
  async photoHash(username: string): Promise<string> {
    const row = await this.photoHashRead.first([this.host, username]);
    return row?.photo_hash ?? '';
  }

  async set(username: string, stored: StoredVcard): Promise<void> {
    await this.db('vcard')
      .insert({ host: this.host, username, vcard: stored.vcard, photo_hash: stored.photoHash })
      .onConflict(['host', 'username'])
      .merge();
  }

  async remove(username: string): Promise<void> {
    await this.db('vcard').where({ host: this.host, username }).delete();
  }
}
