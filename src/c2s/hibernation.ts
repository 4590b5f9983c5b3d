// A durable note of each session waiting to be resumed (XEP-0198 §5), so that what was queued
// for it survives a crash. The queue itself lives in memory; the messages in it are already in
// the recipient's archive (they are acknowledged to their senders only once archived). One row
// per hibernating session — written when the connection drops, deleted when the session is
// resumed or ended and its queue re-routed — names the account, the resource and the time of the
// oldest stanza it had not acknowledged. A row still there at start means the process died
// (kill -9, power cut) with that queue: the archive's messages for that resource since that time
// are handed back to the router, and so to offline storage (event `c2s/session-lost`).
// Nothing is written per stanza: one write when a connection drops, one when the session is over.
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import type { Jid } from '../core/jid.js';
import type { Migration } from '../storage/db.js';

export const hibernationMigrations: Migration[] = [
  {
    name: '001-create-hibernated-sessions',
    async up(db) {
      await db.schema.createTable('c2s_hibernated_sessions', (t) => {
        t.string('jid', 3071).primary(); // full JID
        t.string('host', 1023).notNullable();
        /** epoch ms: the oldest unacknowledged stanza (or when the connection dropped) */
        t.bigInteger('since').notNullable();
      });
    },
  },
  {
    // in a cluster every node writes here: each takes back only its own rows at start, and the
    // node that cleans up after a dead one takes that one's (src/cluster/liveness.ts)
    name: '002-hibernated-sessions-node',
    async up(db) {
      await db.schema.alterTable('c2s_hibernated_sessions', (t) => {
        t.string('node', 64).notNullable().defaultTo('');
      });
    },
  },
];

/** What a session left behind when the process died: fired per row at start, before clients connect. */
export interface SessionLostEvent {
  jid: Jid;
  /** epoch ms of the oldest stanza the session may not have delivered */
  since: number;
}

declare module '../core/event-map.js' {
  interface EventMap {
    'c2s/session-lost': SessionLostEvent;
  }
}

export class HibernationRecords {
  constructor(
    private readonly db: Knex,
    private readonly log: Logger,
    /** This node's id in a cluster, '' alone. */
    private readonly node: string,
  ) {}

  /** The session `jid` waits for resumption with stanzas queued since `since`. */
  async hibernating(jid: Jid, since: number): Promise<void> {
    await this.db('c2s_hibernated_sessions')
      .insert({ jid: jid.toString(), host: jid.domain, since, node: this.node })
      .onConflict('jid')
      .merge()
      .catch((err: unknown) => this.log.error({ err, jid: jid.toString() }, 'recording a hibernating session failed; its queue is lost if the process dies'));
  }

  /** The session is resumed, or over and its queue handed on (or moved to another node). */
  async over(jid: Jid, node = this.node): Promise<void> {
    // this node's row only: a session that moved on may be hibernating on its new node already
    await this.db('c2s_hibernated_sessions')
      .where({ jid: jid.toString(), node })
      .delete()
      .catch((err: unknown) => this.log.error({ err, jid: jid.toString() }, 'forgetting a hibernating session failed'));
  }

  /** Rows left by a process (this node's last one, or a dead node of the cluster) that did not shut down. */
  async left(node = this.node): Promise<Array<{ jid: string; host: string; since: number }>> {
    const rows = await this.db('c2s_hibernated_sessions').where({ node }).select('jid', 'host', 'since');
    return rows.map((row: { jid: string; host: string; since: number | string }) => ({ jid: row.jid, host: row.host, since: Number(row.since) }));
  }
}
