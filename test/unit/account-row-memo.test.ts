// The memo of account rows (src/accounts/store.ts) never lets a login through that the table
// would refuse: an account being deleted is gone from the moment its deletion starts (the CI run
// of stop 19 logged a deleted user back in from the memo while the delete was still queued).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import type { Knex } from 'knex';
import { testStorageConfig } from '../helpers/postgres.js';
import { openDatabase, runMigrations } from '../../src/storage/db.js';
import { AccountStore, accountMigrations } from '../../src/accounts/store.js';

async function freshStore(t: { teardown(fn: () => Promise<void> | void): void }): Promise<{ db: Knex; accounts: AccountStore }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-account-memo-'));
  const storage = testStorageConfig(dir);
  const db = await openDatabase(storage ? { driver: 'postgres', sqliteFile: '', postgresUrl: storage.postgres_url } : { driver: 'sqlite', sqliteFile: path.join(dir, 'x.sqlite') });
  t.teardown(async () => {
    await db.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  await runMigrations(db, 'accounts', accountMigrations);
  return { db, accounts: new AccountStore(db, 4096) };
}

test('a login racing the deletion of its account finds no account, though the row was in the memo', async (t) => {
  const { accounts } = await freshStore(t);
  await accounts.create('localhost', 'frank', 'secret');
  t.not(await accounts.credentials('localhost', 'frank', 'sha256'), null); // now in the memo

  let releaseDeletion!: () => void;
  const held = new Promise<void>((resolve) => (releaseDeletion = resolve));
  const deletion = accounts.whileDeleting('localhost', 'frank', async () => {
    await held; // the delete statement is still queued behind other work
    return accounts.delete('localhost', 'frank');
  });
  t.is(await accounts.credentials('localhost', 'frank', 'sha256'), null);
  releaseDeletion();
  t.true(await deletion);
  t.is(await accounts.credentials('localhost', 'frank', 'sha256'), null);
});

test('a row changed on another node is read again once that node says so', async (t) => {
  const { db, accounts } = await freshStore(t);
  await accounts.create('localhost', 'grace', 'secret');
  t.is((await accounts.credentials('localhost', 'grace', 'sha256'))!.disabled, null);
  // another node disables her: our memo still says enabled until that node tells us
  await db('accounts').where({ host: 'localhost', username: 'grace' }).update({ disabled_at: Date.now(), disabled_reason: 'spam' });
  t.is((await accounts.credentials('localhost', 'grace', 'sha256'))!.disabled, null);
  accounts.forgetRow('grace@localhost');
  t.is((await accounts.credentials('localhost', 'grace', 'sha256'))!.disabled, 'spam');
});
