// Publish-subscribe on disk (XEP-0060): nodes with their configuration, their items in publish
// order, subscriptions and affiliations. One set of tables serves every pubsub service: the
// `pubsub.<host>` component (service = its domain) and each account's PEP service (service =
// the account's bare JID, XEP-0163), so deleting an account is deleting its service.
import type { Knex } from 'knex';
import type { Migration } from '../../storage/db.js';

export const pubsubMigrations: Migration[] = [
  {
    name: '001-create-pubsub',
    async up(db) {
      await db.schema.createTable('pubsub_nodes', (t) => {
        t.increments('id').primary();
        t.string('service', 1023).notNullable(); // 'pubsub.example.org' or 'alice@example.org' (PEP)
        t.string('node', 1023).notNullable();
        t.text('config').notNullable(); // NodeConfig as JSON
        t.unique(['service', 'node']);
      });
      await db.schema.createTable('pubsub_items', (t) => {
        t.increments('seq').primary(); // publish order: a republished id gets a new seq
        t.integer('node_id').notNullable().references('id').inTable('pubsub_nodes').onDelete('CASCADE');
        t.string('item_id', 1023).notNullable();
        t.string('publisher', 3071).notNullable();
        t.text('payload').notNullable(); // the <item/> element's children, serialised
        t.bigInteger('published_at').notNullable();
        t.unique(['node_id', 'item_id']);
      });
      await db.schema.createTable('pubsub_subscriptions', (t) => {
        t.integer('node_id').notNullable().references('id').inTable('pubsub_nodes').onDelete('CASCADE');
        t.string('jid', 3071).notNullable(); // as subscribed: bare or full
        t.string('subid', 64).notNullable();
        t.primary(['node_id', 'jid']);
      });
      await db.schema.createTable('pubsub_affiliations', (t) => {
        t.integer('node_id').notNullable().references('id').inTable('pubsub_nodes').onDelete('CASCADE');
        t.string('jid', 3071).notNullable(); // a bare JID
        t.string('affiliation', 16).notNullable();
        t.primary(['node_id', 'jid']);
      });
    },
  },
];

export interface NodeRow {
  id: number;
  service: string;
  node: string;
  config: string;
}

export interface StoredItem {
  id: string;
  publisher: string;
  payload: string;
  publishedAt: number;
}

export type Affiliation = 'owner' | 'publisher' | 'publish-only' | 'member' | 'none' | 'outcast';

interface ItemRow {
  item_id: string;
  publisher: string;
  payload: string;
  published_at: number | string;
}

const toItem = (row: ItemRow): StoredItem => ({ id: row.item_id, publisher: row.publisher, payload: row.payload, publishedAt: Number(row.published_at) });

export class PubsubStore {
  constructor(private readonly db: Knex) {}

  node(service: string, node: string): Promise<NodeRow | undefined> {
    return this.db('pubsub_nodes').where({ service, node }).first();
  }

  nodes(service: string): Promise<NodeRow[]> {
    return this.db('pubsub_nodes').where({ service }).orderBy('node');
  }

  /** Creates the node with its first owner; undefined when it exists already. */
  async createNode(service: string, node: string, config: string, owner: string): Promise<NodeRow | undefined> {
    return this.db.transaction(async (trx) => {
      if ((await trx('pubsub_nodes').where({ service, node }).first('id')) !== undefined) return undefined;
      await trx('pubsub_nodes').insert({ service, node, config });
      const row: NodeRow = await trx('pubsub_nodes').where({ service, node }).first();
      await trx('pubsub_affiliations').insert({ node_id: row.id, jid: owner, affiliation: 'owner' });
      return row;
    });
  }

  async configure(nodeId: number, config: string): Promise<void> {
    await this.db('pubsub_nodes').where({ id: nodeId }).update({ config });
  }

  async deleteNode(nodeId: number): Promise<void> {
    // the children first: SQLite enforces foreign keys only when told to
    await this.db.transaction(async (trx) => {
      for (const table of ['pubsub_items', 'pubsub_subscriptions', 'pubsub_affiliations']) await trx(table).where({ node_id: nodeId }).delete();
      await trx('pubsub_nodes').where({ id: nodeId }).delete();
    });
  }

  /**
   * Stores an item (replacing one with the same id, which becomes the newest) and keeps only the
   * newest `maxItems`; returns the ids removed to make room.
   */
  async publish(nodeId: number, item: StoredItem, maxItems: number): Promise<void> {
    await this.db.transaction(async (trx) => {
      await trx('pubsub_items').where({ node_id: nodeId, item_id: item.id }).delete();
      await trx('pubsub_items').insert({ node_id: nodeId, item_id: item.id, publisher: item.publisher, payload: item.payload, published_at: item.publishedAt });
      await trimItems(trx, nodeId, maxItems);
    });
  }

  async trim(nodeId: number, maxItems: number): Promise<void> {
    await trimItems(this.db, nodeId, maxItems);
  }

  /** The newest `max` items (all when undefined), oldest first. */
  async items(nodeId: number, max?: number): Promise<StoredItem[]> {
    let query = this.db('pubsub_items').where({ node_id: nodeId }).orderBy('seq', 'desc');
    if (max !== undefined) query = query.limit(max);
    const rows: ItemRow[] = await query;
    return rows.reverse().map(toItem);
  }

  async itemsById(nodeId: number, ids: string[]): Promise<StoredItem[]> {
    const rows: ItemRow[] = await this.db('pubsub_items').where({ node_id: nodeId }).whereIn('item_id', ids).orderBy('seq');
    return rows.map(toItem);
  }

  async lastItem(nodeId: number): Promise<StoredItem | undefined> {
    const row: ItemRow | undefined = await this.db('pubsub_items').where({ node_id: nodeId }).orderBy('seq', 'desc').first();
    return row === undefined ? undefined : toItem(row);
  }

  /** Whether the item was there to retract. */
  async retract(nodeId: number, itemId: string): Promise<boolean> {
    return (await this.db('pubsub_items').where({ node_id: nodeId, item_id: itemId }).delete()) > 0;
  }

  async purge(nodeId: number): Promise<void> {
    await this.db('pubsub_items').where({ node_id: nodeId }).delete();
  }

  async subscriptions(nodeId: number): Promise<Array<{ jid: string; subid: string }>> {
    return this.db('pubsub_subscriptions').where({ node_id: nodeId }).select('jid', 'subid');
  }

  /** A JID's subscriptions on one service (bare JID and its full JIDs). */
  async subscriptionsOf(service: string, bareJid: string): Promise<Array<{ node: string; jid: string; subid: string }>> {
    return this.db('pubsub_subscriptions as s')
      .join('pubsub_nodes as n', 'n.id', 's.node_id')
      .where('n.service', service)
      .andWhere((q) => void q.where('s.jid', bareJid).orWhereRaw("s.jid like ? escape '\\'", [`${escapeLike(bareJid)}/%`]))
      .select('n.node as node', 's.jid as jid', 's.subid as subid');
  }

  async subscribe(nodeId: number, jid: string, subid: string): Promise<string> {
    const existing: { subid: string } | undefined = await this.db('pubsub_subscriptions').where({ node_id: nodeId, jid }).first('subid');
    if (existing !== undefined) return existing.subid;
    await this.db('pubsub_subscriptions').insert({ node_id: nodeId, jid, subid });
    return subid;
  }

  async unsubscribe(nodeId: number, jid: string): Promise<boolean> {
    return (await this.db('pubsub_subscriptions').where({ node_id: nodeId, jid }).delete()) > 0;
  }

  async affiliation(nodeId: number, bareJid: string): Promise<Affiliation> {
    const row: { affiliation: Affiliation } | undefined = await this.db('pubsub_affiliations').where({ node_id: nodeId, jid: bareJid }).first('affiliation');
    return row?.affiliation ?? 'none';
  }

  async affiliations(nodeId: number): Promise<Array<{ jid: string; affiliation: Affiliation }>> {
    return this.db('pubsub_affiliations').where({ node_id: nodeId }).select('jid', 'affiliation');
  }

  async affiliationsOf(service: string, bareJid: string): Promise<Array<{ node: string; affiliation: Affiliation }>> {
    return this.db('pubsub_affiliations as a')
      .join('pubsub_nodes as n', 'n.id', 'a.node_id')
      .where({ 'n.service': service, 'a.jid': bareJid })
      .select('n.node as node', 'a.affiliation as affiliation');
  }

  async setAffiliations(nodeId: number, changes: Array<{ jid: string; affiliation: Affiliation }>): Promise<void> {
    await this.db.transaction(async (trx) => {
      for (const { jid, affiliation } of changes) {
        await trx('pubsub_affiliations').where({ node_id: nodeId, jid }).delete();
        if (affiliation !== 'none') await trx('pubsub_affiliations').insert({ node_id: nodeId, jid, affiliation });
      }
    });
  }
}

async function trimItems(db: Knex, nodeId: number, maxItems: number): Promise<void> {
  const keep: Array<{ seq: number }> = await db('pubsub_items').where({ node_id: nodeId }).orderBy('seq', 'desc').limit(maxItems).select('seq');
  if (keep.length < maxItems) return;
  const oldestKept = keep[keep.length - 1]!.seq;
  await db('pubsub_items').where({ node_id: nodeId }).andWhere('seq', '<', oldestKept).delete();
}

function escapeLike(value: string): string {
  return value.replace(/[\\%_]/g, (c) => `\\${c}`);
}

/**
 * Everything an account leaves in publish-subscribe: its PEP service (nodes, items, who
 * subscribed to them) and its subscriptions and affiliations on other services here.
 */
export async function removePubsubData(db: Knex, bareJid: string): Promise<void> {
  await db.transaction(async (trx) => {
    const own = trx('pubsub_nodes').where({ service: bareJid }).select('id');
    for (const table of ['pubsub_items', 'pubsub_subscriptions', 'pubsub_affiliations']) await trx(table).whereIn('node_id', own.clone()).delete();
    await trx('pubsub_nodes').where({ service: bareJid }).delete();
    await trx('pubsub_subscriptions').where('jid', bareJid).orWhereRaw("jid like ? escape '\\'", [`${escapeLike(bareJid)}/%`]).delete();
    await trx('pubsub_affiliations').where('jid', bareJid).delete();
  });
}
