// The upload module's tables: slots (what a user asked to upload, and once uploaded, which blob
// holds it) and blobs (each stored content once, with how many slots refer to it). A blob's
// reference count and its file change together under a per-digest lock, so that a new upload of
// the same bytes and the expiry of the last file using them cannot interleave.
import type { Knex } from 'knex';
import type { Migration } from '../../storage/db.js';
import type { BlobStore, StagedBlob } from './blobs.js';

export const uploadMigrations: Migration[] = [
  {
    name: '001-create-upload-tables',
    async up(db) {
      await db.schema.createTable('upload_blobs', (t) => {
        t.string('sha256', 64).primary(); // hex digest of the content: its name in the BlobStore
        t.bigInteger('size').notNullable();
        t.integer('refcount').notNullable(); // slots whose file is this blob
        t.bigInteger('created_at').notNullable();
      });
      await db.schema.createTable('upload_slots', (t) => {
        t.string('id', 64).primary(); // random, unguessable: the URL path
        t.string('host', 255).notNullable();
        t.string('owner', 3071).notNullable(); // bare JID of the uploader
        t.string('filename', 255).notNullable();
        t.string('content_type', 255).notNullable();
        t.bigInteger('size').notNullable(); // announced in the request, enforced on PUT
        t.string('token_hash', 64).notNullable(); // SHA-256 of the PUT authorisation token
        t.bigInteger('created_at').notNullable();
        t.string('sha256', 64).nullable(); // null until uploaded
        t.bigInteger('uploaded_at').nullable();
        // before the upload: when the PUT authorisation ends; after: when the file goes (null: never)
        t.bigInteger('expires_at').nullable();
        t.index(['host', 'owner'], 'upload_slots_by_owner');
        t.index(['expires_at'], 'upload_slots_by_expiry');
      });
    },
  },
];

export interface Slot {
  id: string;
  host: string;
  owner: string;
  filename: string;
  contentType: string;
  size: number;
  tokenHash: string;
  createdAt: number;
  sha256: string | null;
  uploadedAt: number | null;
  expiresAt: number | null;
}

interface SlotRow {
  id: string;
  host: string;
  owner: string;
  filename: string;
  content_type: string;
  size: number | string;
  token_hash: string;
  created_at: number | string;
  sha256: string | null;
  uploaded_at: number | string | null;
  expires_at: number | string | null;
}

const numberOrNull = (value: number | string | null): number | null => (value === null ? null : Number(value));

function slotFromRow(row: SlotRow): Slot {
  return {
    id: row.id,
    host: row.host,
    owner: row.owner,
    filename: row.filename,
    contentType: row.content_type,
    size: Number(row.size),
    tokenHash: row.token_hash,
    createdAt: Number(row.created_at),
    sha256: row.sha256,
    uploadedAt: numberOrNull(row.uploaded_at),
    expiresAt: numberOrNull(row.expires_at),
  };
}

/** What an account's files (and slots not yet used) take, for its quota. */
export interface Usage {
  bytes: number;
  /** When the soonest of them expires (frees space), null if none does. */
  nextExpiry: number | null;
}

export class SlotAlreadyUsed extends Error {
  constructor() {
    super('the slot has been uploaded to already');
  }
}

/** Runs tasks one after another per key (here: per blob digest). */
class KeyedLock {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const result = previous.then(task, task);
    const tail = result.catch(() => undefined);
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }

  async idle(): Promise<void> {
    while (this.tails.size > 0) await Promise.all([...this.tails.values()]);
  }
}

/**
 * Slots and blobs, shared by every virtual host of the process (blobs are deduplicated across
 * hosts too). In a cluster the lock would have to move to the database or Redis.
 */
export class UploadStore {
  private readonly lock = new KeyedLock();

  constructor(
    private readonly db: Knex,
    readonly blobs: BlobStore,
  ) {}

  async createSlot(slot: Slot): Promise<void> {
    await this.db('upload_slots').insert({
      id: slot.id,
      host: slot.host,
      owner: slot.owner,
      filename: slot.filename,
      content_type: slot.contentType,
      size: slot.size,
      token_hash: slot.tokenHash,
      created_at: slot.createdAt,
      sha256: null,
      uploaded_at: null,
      expires_at: slot.expiresAt,
    });
  }

  async slot(id: string): Promise<Slot | undefined> {
    const row: SlotRow | undefined = await this.db('upload_slots').where({ id }).first();
    return row === undefined ? undefined : slotFromRow(row);
  }

  async usage(host: string, owner: string, now: number): Promise<Usage> {
    const rows: Array<{ bytes: number | string | null; next: number | string | null }> = await this.db('upload_slots')
      .where({ host, owner })
      .andWhere((q) => q.whereNull('expires_at').orWhere('expires_at', '>', now))
      .select(this.db.raw('sum(size) as bytes'), this.db.raw('min(expires_at) as next'));
    return { bytes: Number(rows[0]?.bytes ?? 0), nextExpiry: numberOrNull(rows[0]?.next ?? null) };
  }

  /** Per host: the files kept now (uploaded, not expired) and the bytes their uploads announced (a shared blob counts for each). */
  async filesByHost(now: number): Promise<Array<{ host: string; files: number; bytes: number }>> {
    const rows: Array<{ host: string; files: number | string; bytes: number | string | null }> = await this.db('upload_slots')
      .whereNotNull('sha256')
      .andWhere((q) => q.whereNull('expires_at').orWhere('expires_at', '>', now))
      .groupBy('host')
      .select('host', this.db.raw('count(*) as files'), this.db.raw('sum(size) as bytes'));
    return rows.map((r) => ({ host: r.host, files: Number(r.files), bytes: Number(r.bytes ?? 0) }));
  }

  /** Bytes on disk (each blob once) plus those reserved by slots not uploaded to yet. */
  async storageUsed(now: number): Promise<number> {
    const [blobs, pending] = await Promise.all([
      this.db('upload_blobs').sum({ bytes: 'size' }),
      this.db('upload_slots').whereNull('sha256').andWhere('expires_at', '>', now).sum({ bytes: 'size' }),
    ]);
    return Number(blobs[0]?.bytes ?? 0) + Number(pending[0]?.bytes ?? 0);
  }

  /**
   * Records the upload of `staged` to the slot (with the content type the PUT gave, when the
   * request announced none): the blob is kept if these bytes are new,
   * otherwise the existing blob gains a reference and the staged copy is discarded.
   * Returns whether the bytes were new. Throws SlotAlreadyUsed if another upload won.
   */
  completeUpload(slotId: string, staged: StagedBlob, uploadedAt: number, expiresAt: number | null, contentType?: string): Promise<boolean> {
    return this.lock.run(staged.sha256, async () => {
      const existing = await this.db('upload_blobs').where({ sha256: staged.sha256 }).first('refcount');
      const isNew = existing === undefined;
      if (isNew) await staged.keep();
      else await staged.discard();
      try {
        await this.db.transaction(async (trx) => {
          const updated = await trx('upload_slots')
            .where({ id: slotId })
            .whereNull('sha256')
            .update({ sha256: staged.sha256, uploaded_at: uploadedAt, expires_at: expiresAt, ...(contentType === undefined ? {} : { content_type: contentType }) });
          if (updated === 0) throw new SlotAlreadyUsed();
          if (isNew) await trx('upload_blobs').insert({ sha256: staged.sha256, size: staged.size, refcount: 1, created_at: uploadedAt });
          else await trx('upload_blobs').where({ sha256: staged.sha256 }).increment('refcount', 1);
        });
      } catch (err) {
        if (isNew) await this.blobs.delete(staged.sha256); // nothing else refers to it yet
        throw err;
      }
      return isNew;
    });
  }

  /**
   * Deletes up to `batch` of the host's slots that expired by `now` (unused ones whose PUT
   * authorisation ended, and files past their time), and each blob no slot refers to any more.
   * Returns how many slots were deleted.
   */
  async expire(host: string, now: number, batch = 500): Promise<{ slots: number; blobsDeleted: number }> {
    const rows: Array<{ id: string; sha256: string | null }> = await this.db('upload_slots')
      .where({ host })
      .andWhere('expires_at', '<=', now)
      .limit(batch)
      .select('id', 'sha256');
    return this.removeSlots(rows);
  }

  /** Deletes every slot and file of an account (it was removed). */
  async removeOwner(host: string, owner: string): Promise<{ slots: number; blobsDeleted: number }> {
    const rows: Array<{ id: string; sha256: string | null }> = await this.db('upload_slots').where({ host, owner }).select('id', 'sha256');
    return this.removeSlots(rows);
  }

  private async removeSlots(rows: ReadonlyArray<{ id: string; sha256: string | null }>): Promise<{ slots: number; blobsDeleted: number }> {
    const unused: string[] = [];
    const byBlob = new Map<string, string[]>();
    for (const row of rows) {
      if (row.sha256 === null) unused.push(row.id);
      else {
        const ids = byBlob.get(row.sha256);
        if (ids === undefined) byBlob.set(row.sha256, [row.id]);
        else ids.push(row.id);
      }
    }
    // chunks keep each statement under SQLite's bound-parameter limit
    for (let i = 0; i < unused.length; i += 500) await this.db('upload_slots').whereIn('id', unused.slice(i, i + 500)).delete();
    let blobsDeleted = 0;
    for (const [sha256, ids] of byBlob) {
      const unreferenced = await this.lock.run(sha256, async () => {
        const gone = await this.db.transaction(async (trx) => {
          const deleted = await trx('upload_slots').whereIn('id', ids).whereNotNull('sha256').delete();
          await trx('upload_blobs').where({ sha256 }).decrement('refcount', deleted);
          const blob = await trx('upload_blobs').where({ sha256 }).first('refcount');
          if (blob === undefined || Number(blob.refcount) > 0) return false;
          await trx('upload_blobs').where({ sha256 }).delete();
          return true;
        });
        // the row goes first: a crash in between leaves an orphan file, never a row without one
        if (gone) await this.blobs.delete(sha256);
        return gone;
      });
      if (unreferenced) blobsDeleted++;
    }
    return { slots: rows.length, blobsDeleted };
  }

  /**
   * Deletes stored blobs that no database row knows: what a crash between storing a file and
   * recording it (or between forgetting one and deleting it) leaves behind. Returns how many.
   */
  async removeOrphans(): Promise<number> {
    let removed = 0;
    let batch: string[] = [];
    const check = async () => {
      const known = new Set(
        (await this.db('upload_blobs').whereIn('sha256', batch).select('sha256')).map((row: { sha256: string }) => row.sha256),
      );
      for (const sha256 of batch) {
        if (known.has(sha256)) continue;
        // checked again under the digest's lock: an upload of these bytes may be finishing now
        const gone = await this.lock.run(sha256, async () => {
          if ((await this.db('upload_blobs').where({ sha256 }).first('sha256')) !== undefined) return false;
          await this.blobs.delete(sha256);
          return true;
        });
        if (gone) removed++;
      }
      batch = [];
    };
    for await (const sha256 of this.blobs.list()) {
      batch.push(sha256);
      if (batch.length === 500) await check();
    }
    if (batch.length > 0) await check();
    return removed;
  }

  /** Files uploaded to the host and not expired yet (for /metrics). */
  async fileCount(host: string): Promise<number> {
    const rows: Array<{ n: number | string }> = await this.db('upload_slots').where({ host }).whereNotNull('sha256').count({ n: '*' });
    return Number(rows[0]?.n ?? 0);
  }

  async blobCount(): Promise<number> {
    const rows: Array<{ n: number | string }> = await this.db('upload_blobs').count({ n: '*' });
    return Number(rows[0]?.n ?? 0);
  }

  /** Waits for every blob operation under way (shutdown). */
  async settled(): Promise<void> {
    await this.lock.idle();
  }
}
