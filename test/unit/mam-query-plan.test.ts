// The archive answers from its indexes: SQLite's EXPLAIN QUERY PLAN for every query shape the
// module runs (pages with each filter, both directions, counts, the retention sweep) must be an
// index SEARCH, never a SCAN of the table nor a sort of its rows.
import ava from 'ava';
import { onPostgres } from '../helpers/postgres.js';

// About SQLite's own planner: skipped, explicitly, on the PostgreSQL pass of the suite.
const test = onPostgres ? Object.assign(ava.skip, { before: () => undefined, after: { always: () => undefined } }) as unknown as typeof ava : ava;
import type { Knex } from 'knex';
import { openDatabase, runMigrations } from '../../src/storage/db.js';
import { ArchiveStore, IDS_PER_MS, archiveMigrations, type ArchiveFilter } from '../../src/modules/mam/store.js';

let db: Knex;
let store: ArchiveStore;
test.before(async () => {
  db = await openDatabase({ driver: 'sqlite', sqliteFile: ':memory:' });
  await runMigrations(db, 'mam', archiveMigrations);
  store = new ArchiveStore(db, 'localhost');
  // a few thousand rows over several owners, so the planner sees a table worth indexing
  const rows = [];
  for (let i = 0; i < 3000; i++) {
    rows.push({ owner: `user${i % 30}@localhost`, withBare: `peer${i % 7}@localhost`, withResource: 'phone', stanza: `<message xmlns="jabber:client"><body>${i}</body></message>` });
  }
  await Promise.all(rows.map((row, i) => store.append(row, (1_700_000_000_000 + i * 1000) * IDS_PER_MS).written));
});
test.after.always(async () => {
  await store?.close();
  await db?.destroy();
});

async function plan(query: Knex.QueryBuilder): Promise<string[]> {
  const { sql, bindings } = query.toSQL().toNative();
  const rows: Array<{ detail: string }> = await db.raw(`EXPLAIN QUERY PLAN ${sql}`, bindings as Knex.RawBinding[]);
  return rows.map((r) => r.detail);
}

const start = (1_700_000_000_000 + 500_000) * IDS_PER_MS;
const end = (1_700_000_000_000 + 2_000_000) * IDS_PER_MS;
const shapes: Array<[string, Partial<ArchiveFilter>]> = [
  ['the whole archive', {}],
  ['with a bare JID', { withBare: 'peer3@localhost' }],
  ['with a full JID', { withBare: 'peer3@localhost', withResource: 'phone' }],
  ['a start/end window', { minId: start, maxId: end }],
  ['with a JID in a window', { withBare: 'peer3@localhost', minId: start, maxId: end }],
  ['after an id', { minId: start }],
  ['before an id', { maxId: end }],
  ['ids', { ids: [start, start + 1, end] }],
];

for (const [name, filter] of shapes) {
  for (const backwards of [false, true]) {
    test(`a page of ${name}, ${backwards ? 'backwards' : 'forwards'}, is an index search`, async (t) => {
      const details = await plan(store.pageQuery({ owner: 'user3@localhost', ...filter }, 50, backwards));
      t.true(details.some((d) => d.startsWith('SEARCH')), details.join('; '));
      t.false(details.some((d) => /^SCAN/.test(d)), details.join('; '));
      t.false(details.some((d) => /TEMP B-TREE/.test(d)), `no sort: ${details.join('; ')}`);
      // one conversation is read from its own index, not picked out of the whole archive's rows
      if (filter.withBare !== undefined) t.true(details.some((d) => d.includes('mam_entry_by_owner_with (owner_id=? AND with_id=?')), details.join('; '));
      // and each entry's stored message by its id
      t.true(details.some((d) => d.startsWith('SEARCH m USING INTEGER PRIMARY KEY')), details.join('; '));
    });
  }
  test(`counting ${name} is an index search`, async (t) => {
    const details = await plan(store.countQuery({ owner: 'user3@localhost', ...filter }));
    t.false(details.some((d) => /^SCAN/.test(d)), details.join('; '));
  });
}

test("the retention sweep reads the host's oldest rows and one owner's from indexes", async (t) => {
  for (const query of [store.expiryScanQuery(0, end, 1000), store.ownerExpiryQuery('user3@localhost', end, 1000)]) {
    const details = await plan(query);
    t.false(details.some((d) => /^SCAN/.test(d) || /TEMP B-TREE/.test(d)), details.join('; '));
  }
});

test('a full table scan would be caught', async (t) => {
  const details = await plan(db('mam_message').where('stanza', 'like', '%1%').select('id'));
  t.true(details.some((d) => /^SCAN/.test(d)), details.join('; '));
});
