// XEP-0012: Last Activity — "last seen". Asked of an account, it tells how many seconds ago the
// user was last active (0 while a client is active) and the status they left with; asked of the
// server, its uptime. "Active" means the user's own doing: a client that declared itself
// inactive (XEP-0352) does not refresh it, and neither do keepalives or background IQs.
// Only the user and contacts with a presence subscription may ask (others get forbidden).
import Element from 'ltx/lib/Element.js';
import { defineModule } from '../../core/module.js';
import type { StanzaEvent } from '../../core/router.js';
import type { SessionRef } from '../../core/ports.js';
import { StanzaError } from '../../core/stanza.js';
import type { Migration } from '../../storage/db.js';
import { PreparedWrite } from '../../storage/prepared.js';

const NS_LAST = 'jabber:iq:last';

const migrations: Migration[] = [
  {
    name: '001-create-last-activity',
    async up(db) {
      await db.schema.createTable('last_activity', (t) => {
        t.string('host', 255).notNullable();
        t.string('username', 1023).notNullable();
        t.bigInteger('seen_at').notNullable(); // epoch ms
        t.text('status').notNullable().defaultTo('');
        t.primary(['host', 'username']);
      });
    },
  },
];

function lastQuery(seconds: number, status = ''): Element {
  const query = new Element('query', { xmlns: NS_LAST, seconds: String(Math.max(0, Math.floor(seconds))) });
  if (status) query.t(status);
  return query;
}

export default defineModule({
  name: 'last',
  description: 'Last activity ("last seen") of users, and server uptime',
  implements: [{ spec: 'XEP-0012', version: '2.0', status: 'complete' }],
  dependencies: ['roster'],
  migrations,
  removeAccountData: async ({ db, host, username }) => void (await db('last_activity').where({ host, username }).delete()),
  setup(m) {
    const domain = m.host.domain;
    const roster = m.use('roster');
    /** The status text of each session's goodbye presence, if it said one. */
    const leavingStatus = new WeakMap<SessionRef, string>();
    /** Per account still online somewhere: the latest activity of its sessions that already ended. */
    const endedActivity = new Map<string, number>();
    // every session's end writes this row: a statement prepared once (a knex upsert is built and
    // prepared at each call, about three times the CPU of the write itself)
    const saveLastActivity = new PreparedWrite(m.db, `insert into last_activity (host, username, seen_at, status) values (?, ?, ?, ?)
      on conflict (host, username) do update set seen_at = excluded.seen_at, status = excluded.status`);

    m.feature(NS_LAST);

    m.on('pre-presence/none', (e: StanzaEvent) => {
      if (e.session && e.stanza.attrs.type === 'unavailable') leavingStatus.set(e.session, e.stanza.getChildText('status') ?? '');
      return undefined;
    }, 20);

    m.on('session/closed', ({ session }: { session: SessionRef }) => {
      const bare = session.jid.bare;
      const seenAt = Math.max(session.lastActivity, endedActivity.get(bare) ?? 0);
      if (m.sessions.hasAccount(bare)) return void endedActivity.set(bare, seenAt);
      endedActivity.delete(bare);
      saveLastActivity.run([domain, session.jid.local, seenAt, leavingStatus.get(session) ?? ''])
        .catch((err: unknown) => m.log.error({ err, account: bare }, 'saving last activity failed'));
    });

    m.on('account/deleted', ({ username }: { username: string }) => void endedActivity.delete(`${username}@${domain}`));

    // XEP-0012 §5: asked of the server, the time since it started
    m.iq('get', NS_LAST, () => lastQuery((Date.now() - m.server.startedAt) / 1000), 'host');

    // XEP-0012 §4: asked of an account, answered by the server on the user's behalf
    m.iq('get', NS_LAST, async ({ from, to }) => {
      if (from.bare !== to.bare) {
        const r = await roster.store.withRoster(to.local, (contactRoster) => contactRoster.items.get(from.bare));
        if (r === undefined || (r.subscription !== 'from' && r.subscription !== 'both')) {
          throw new StanzaError('forbidden', 'Only contacts who see your presence may know when you were last seen');
        }
      }
      const sessions = m.sessions.resources(to.bare);
      if (sessions !== undefined && sessions.size > 0) {
        let latest = 0;
        for (const session of sessions.values()) {
          if (!session.inactive) return lastQuery(0); // someone is using a client right now
          latest = Math.max(latest, session.lastActivity);
        }
        return lastQuery((Date.now() - latest) / 1000);
      }
      const row: { seen_at: number | string; status: string } | undefined = await m.db('last_activity')
        .where({ host: domain, username: to.local })
        .first('seen_at', 'status');
      if (row === undefined) throw new StanzaError('item-not-found', 'Never seen');
      return lastQuery((Date.now() - Number(row.seen_at)) / 1000, row.status);
    }, 'account');
  },
});
