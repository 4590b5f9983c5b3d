// Content-addressed upload storage: identical bytes are one blob on disk whatever the number of
// slots referring to it, the blob goes with its last reference, and an upload larger than its
// slot leaves nothing behind. Real SQLite (in memory) and a real directory.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import test from 'ava';
import { openDatabase, runMigrations } from '../../src/storage/db.js';
import { BlobTooLarge, LocalDiskBlobStore } from '../../src/modules/upload/blobs.js';
import { SlotAlreadyUsed, UploadStore, uploadMigrations } from '../../src/modules/upload/store.js';

async function setup(t: { teardown(fn: () => unknown): void }) {
  const db = await openDatabase({ driver: 'sqlite', sqliteFile: ':memory:' });
  await runMigrations(db, 'upload', uploadMigrations);
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-blobs-'));
  const blobs = new LocalDiskBlobStore(root);
  await blobs.init();
  t.teardown(async () => {
    await db.destroy();
    fs.rmSync(root, { recursive: true, force: true });
  });
  const store = new UploadStore(db, blobs);
  let n = 0;
  const slot = async (owner: string, size: number, expiresAt: number | null = Date.now() + 60_000) => {
    const id = `slot-${++n}-${randomBytes(6).toString('hex')}`;
    await store.createSlot({ id, host: 'localhost', owner, filename: 'f.bin', contentType: '', size, tokenHash: '00', createdAt: Date.now(), sha256: null, uploadedAt: null, expiresAt });
    return id;
  };
  const filesOnDisk = () => fs.readdirSync(root, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => e.name);
  return { db, blobs, store, slot, filesOnDisk, root };
}

test('the same bytes in three slots are one file with three references', async (t) => {
  const { store, blobs, slot, filesOnDisk, db } = await setup(t);
  const bytes = randomBytes(5000);
  const results: boolean[] = [];
  for (const owner of ['a@localhost', 'b@localhost', 'c@localhost']) {
    const staged = await blobs.stage(Readable.from([bytes]), bytes.length);
    results.push(await store.completeUpload(await slot(owner, bytes.length), staged, Date.now(), null));
  }
  t.deepEqual(results, [true, false, false]);
  t.deepEqual(filesOnDisk(), [(await db('upload_blobs').first('sha256')).sha256]);
  t.is(Number((await db('upload_blobs').first('refcount')).refcount), 3);
});

test('concurrent uploads of the same new bytes still make one blob', async (t) => {
  const { store, blobs, slot, filesOnDisk, db } = await setup(t);
  const bytes = randomBytes(20_000);
  const ids = await Promise.all([1, 2, 3, 4].map(() => slot('a@localhost', bytes.length)));
  const staged = await Promise.all(ids.map(() => blobs.stage(Readable.from([bytes.subarray(0, 7000), bytes.subarray(7000)]), bytes.length)));
  const isNew = await Promise.all(ids.map((id, i) => store.completeUpload(id, staged[i]!, Date.now(), null)));
  t.is(isNew.filter(Boolean).length, 1);
  t.is(filesOnDisk().length, 1);
  t.is(Number((await db('upload_blobs').first('refcount')).refcount), 4);
});

test('expiry removes a reference at a time, and the file with the last one', async (t) => {
  const { store, blobs, slot, filesOnDisk } = await setup(t);
  const bytes = randomBytes(100);
  const now = Date.now();
  const early = await slot('a@localhost', 100);
  const late = await slot('b@localhost', 100);
  await store.completeUpload(early, await blobs.stage(Readable.from([bytes]), 100), now, now + 1000);
  await store.completeUpload(late, await blobs.stage(Readable.from([bytes]), 100), now, now + 2000);

  t.deepEqual(await store.expire('localhost', now + 1500), { slots: 1, blobsDeleted: 0 });
  t.is(filesOnDisk().length, 1);
  t.is(await store.slot(early), undefined);
  t.deepEqual(await store.expire('localhost', now + 2500), { slots: 1, blobsDeleted: 1 });
  t.deepEqual(filesOnDisk(), []);
  t.is(await store.blobCount(), 0);
});

test('an unused slot expires when its authorisation does, with no file to delete', async (t) => {
  const { store, slot } = await setup(t);
  const id = await slot('a@localhost', 10, Date.now() - 1);
  t.deepEqual(await store.expire('localhost', Date.now()), { slots: 1, blobsDeleted: 0 });
  t.is(await store.slot(id), undefined);
});

test('a slot takes one upload: the second is refused and its staged copy removed', async (t) => {
  const { store, blobs, slot, filesOnDisk } = await setup(t);
  const id = await slot('a@localhost', 10);
  await store.completeUpload(id, await blobs.stage(Readable.from([randomBytes(10)]), 10), Date.now(), null);
  await t.throwsAsync(store.completeUpload(id, await blobs.stage(Readable.from([randomBytes(10)]), 10), Date.now(), null), { instanceOf: SlotAlreadyUsed });
  t.is(filesOnDisk().length, 1);
});

test('more bytes than allowed stop the staging and leave no partial file', async (t) => {
  const { blobs, filesOnDisk } = await setup(t);
  await t.throwsAsync(blobs.stage(Readable.from([randomBytes(600), randomBytes(600)]), 1000), { instanceOf: BlobTooLarge });
  t.deepEqual(filesOnDisk(), []);
});

test('usage counts the files and open slots of an account that have not expired', async (t) => {
  const { store, slot } = await setup(t);
  const now = Date.now();
  await slot('a@localhost', 100, now + 10_000);
  await slot('a@localhost', 50, now + 5_000);
  await slot('a@localhost', 999, now - 1); // expired
  await slot('b@localhost', 7);
  t.deepEqual(await store.usage('localhost', 'a@localhost', now), { bytes: 150, nextExpiry: now + 5_000 });
});

test('storage used counts each blob once, and slots still waiting for their upload', async (t) => {
  const { store, blobs, slot } = await setup(t);
  const bytes = randomBytes(300);
  for (const owner of ['a@localhost', 'b@localhost']) {
    await store.completeUpload(await slot(owner, 300), await blobs.stage(Readable.from([bytes]), 300), Date.now(), null);
  }
  await slot('c@localhost', 40);
  await slot('c@localhost', 1000, Date.now() - 1); // its authorisation ran out
  t.is(await store.storageUsed(Date.now()), 340);
});

test('stored files no row refers to (left by a crash) are found and deleted, the others kept', async (t) => {
  const { store, blobs, slot, filesOnDisk, root } = await setup(t);
  const kept = randomBytes(64);
  await store.completeUpload(await slot('a@localhost', 64), await blobs.stage(Readable.from([kept]), 64), Date.now(), null);
  const orphan = await blobs.stage(Readable.from([randomBytes(64)]), 64);
  await orphan.keep(); // stored, and then the process died before the database heard of it
  fs.writeFileSync(path.join(root, 'README'), 'not a blob');
  t.is(filesOnDisk().length, 3);
  t.is(await store.removeOrphans(), 1);
  t.false(await blobs.has(orphan.sha256));
  t.is(filesOnDisk().length, 2);
});

test('a removed account takes its files with it', async (t) => {
  const { store, blobs, slot, filesOnDisk } = await setup(t);
  const id = await slot('gone@localhost', 10);
  await store.completeUpload(id, await blobs.stage(Readable.from([randomBytes(10)]), 10), Date.now(), null);
  t.deepEqual(await store.removeOwner('localhost', 'gone@localhost'), { slots: 1, blobsDeleted: 1 });
  t.deepEqual(filesOnDisk(), []);
});
