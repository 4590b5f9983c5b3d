// XEP-0160: Best Practices for Handling Offline Messages. A message for an account with no
// available resource is stored — before anything acknowledges it to the sender — and delivered
// in order, with a XEP-0203 delay stamp, when the account next sends available presence. It is
// deleted only once the client confirmed receipt (XEP-0198 ack, or written out without SM).
import Element from 'ltx/lib/Element.js';
import { z } from 'zod';
import { defineModule } from '../../core/module.js';
import type { OfflineEvent } from '../../core/router.js';
import type { DeliveryTracker, SessionRef } from '../../core/ports.js';
import { StanzaError } from '../../core/stanza.js';
import { parseElement } from '../../xml/parse.js';
import { SerialQueue } from '../../core/serial.js';
import { serializeToKeep } from '../../xml/serialize.js';
import { OfflineStore, offlineMigrations } from './store.js';
import { matches } from '../blocking/index.js';
import { parseJid } from '../../core/jid.js';
import type { OfflineExpiry } from '../mam/index.js';

/** How often refusals of a full offline store are logged per account. */
const REFUSAL_LOG_MS = 60_000;

const NS_HINTS = 'urn:xmpp:hints';
const NS_DELAY = 'urn:xmpp:delay';
// Payloads worth keeping for later even without a body: delivery receipts and read markers
// (the brief's ticks), invitations, and end-to-end encrypted payloads.
const STORABLE_PAYLOADS = new Set([
  'urn:xmpp:receipts',
  'urn:xmpp:chat-markers:0',
  'jabber:x:conference',
  'eu.siacs.conversations.axolotl',
  'urn:xmpp:omemo:2',
  'jabber:x:encrypted',
  'urn:xmpp:openpgp:0',
]);

/** XEP-0160 §3 and XEP-0334: chat and normal messages with content; chat states alone are not kept. */
export function storable(message: Element): boolean {
  let hinted = false;
  for (const child of message.children) {
    if (typeof child === 'string') continue;
    const xmlns = child.attrs.xmlns;
    if (xmlns === NS_HINTS) {
      if (child.name === 'no-store' || child.name === 'no-permanent-store') return false;
      if (child.name === 'store') hinted = true;
    }
  }
  if (hinted) return true;
  for (const child of message.children) {
    if (typeof child === 'string') continue;
    if ((child.name === 'body' || child.name === 'subject') && child.attrs.xmlns === undefined) return true;
    if (STORABLE_PAYLOADS.has(child.attrs.xmlns ?? '')) return true;
  }
  return false;
}

/** What waits in offline storage for an account: messages with a body, by sender. */
export interface OfflineSummary {
  messages: number;
  /** ms: when the oldest of them was stored */
  oldest: number;
  /** bare JID of each sender → how many */
  senders: Map<string, number>;
}

/** Rows read for a summary at most (a digest says "100 or more" past it). */
const SUMMARY_LIMIT = 500;

/** What other modules use of offline storage: retention (mam), and what waits (mail digests). */
export interface OfflineService extends OfflineExpiry {
  /** The messages with a body stored for `username` after `after` (ms); null when none. */
  waiting(username: string, after: number): Promise<OfflineSummary | null>;
}

declare module '../../core/module.js' {
  interface Services {
    offline: OfflineService;
  }
}

export default defineModule({
  name: 'offline',
  description: 'Keeps messages for offline users and delivers them at their next login',
  implements: [
    { spec: 'XEP-0160', version: '1.0.1', status: 'complete' },
    { spec: 'XEP-0203', version: '2.0', status: 'complete', note: 'delay stamps on messages delivered from offline storage' },
    { spec: 'XEP-0334', version: '0.3.0', status: 'partial', note: 'no-store and store hints for offline storage' },
  ],
  options: z.strictObject({
    /** Messages kept per account; beyond that senders get resource-constraint. */
    max_messages: z.number().int().min(1).default(1000),
  }),
  migrations: offlineMigrations,
  removeAccountData: async ({ db, host, username }) => void (await db('offline_messages').where({ host, username }).delete()),
  setup(m) {
    const domain = m.host.domain;
    const store = new OfflineStore(m.db, domain);
    /** Stored-message counts of accounts seen since start (for the quota without a count query each time). */
    const counts = new Map<string, number>();
    /** Store writes per account, in order; a login waits for the ones still under way. */
    const writing = new SerialQueue();
    /** Per account, the commit of its last message stored (batches commit in order). */
    const committing = new Map<string, Promise<void>>();
    /** Ids handed to a session and not yet confirmed: not handed out twice. */
    const inFlight = new Set<number>();
    let toDelete: number[] = [];

    // In a cluster, a message stored here may be for a user who just came online on another
    // node that this one did not know of yet: after the commit the other nodes are told, and one
    // with an available session of that user that already had its offline messages delivers it
    // (it read the store before this commit, or the notice finds it). The other nodes also drop
    // their count of the account's stored messages.
    const storedHere = m.sharedCache('stored', (username) => {
      counts.delete(username);
      const local = availableSession(`${username}@${domain}`, true);
      if (local !== undefined) deliver(local).catch((err: unknown) => m.log.error({ err, jid: local.jid.toString() }, 'offline delivery failed'));
    });
    /**
     * Accounts with messages committed this turn: one notice each, not one per message of a burst
     * (here, not in the shared caches: other notices on that bus are events, each one counted).
     */
    const committedThisTurn = new Set<string>();
    const tellOtherNodes = (username: string): void => {
      if (committedThisTurn.size === 0) {
        setImmediate(() => {
          for (const name of committedThisTurn) storedHere(name);
          committedThisTurn.clear();
        });
      }
      committedThisTurn.add(username);
    };

    m.feature('msgoffline'); // XEP-0160 §2.1
    m.gauge('xmppd_offline_messages', 'Messages waiting in offline storage', () => store.total());

    // retention (the mam module's archive_expires_after) applies to offline storage too: its sweep calls these
    const pause = () => new Promise<void>((resolve) => setImmediate(resolve));
    m.provide('offline', {
      async expire(cutoff, keep, batch) {
        const deleted = await store.expire(cutoff, keep, batch, pause);
        if (deleted > 0) counts.clear(); // the quotas are counted again from the store
        return deleted;
      },
      async expireAccount(username, cutoff) {
        const deleted = await store.expireAccount(username, cutoff);
        if (deleted > 0) counts.delete(username);
        return deleted;
      },
      async waiting(username, after) {
        let summary: OfflineSummary | null = null;
        for (const row of await store.storedAfter(username, after, SUMMARY_LIMIT)) {
          let message: Element;
          try {
            message = parseElement(row.stanza);
          } catch {
            continue;
          }
          // receipts, markers and chat states are not what a person waits for
          if (message.getChild('body') === undefined) continue;
          const sender = parseJid(message.attrs.from ?? '')?.bare ?? 'someone';
          summary ??= { messages: 0, oldest: row.storedAt, senders: new Map() };
          summary.messages++;
          summary.senders.set(sender, (summary.senders.get(sender) ?? 0) + 1);
        }
        return summary;
      },
    } satisfies OfflineService);

    const countOf = async (username: string): Promise<number> => {
      const known = counts.get(username);
      if (known !== undefined) return known;
      const n = await store.count(username);
      return counts.get(username) ?? (counts.set(username, n), n);
    };

    /**
     * A full store refuses every message of a burst: the first refusal for an account is logged
     * at once, the rest as one line per minute with their count, not a line per message.
     */
    const refusals = new Map<string, number>();
    const refusedFor = (account: string): void => {
      const before = refusals.get(account);
      refusals.set(account, (before ?? 0) + 1);
      if (before !== undefined) return;
      m.log.warn({ account, limit: m.options.max_messages }, 'offline storage full; message refused');
      setTimeout(() => {
        const more = refusals.get(account)! - 1;
        refusals.delete(account);
        if (more > 0) m.log.warn({ account, refused: more, limit: m.options.max_messages }, 'offline storage still full; more messages refused');
      }, REFUSAL_LOG_MS).unref();
    };

    m.on('message/offline', (e: OfflineEvent) => {
      if (!storable(e.stanza)) return true; // dropped quietly: nothing a user would miss (XEP-0160 §3)
      const username = e.to.local;
      const storedAt = Date.now();
      // The queue orders the quota checks (and the first count read) per account; it does not
      // wait for the commit, so one account's burst shares the store's group commits.
      const queued = writing.run(username, async () => {
        const n = counts.get(username) ?? (await countOf(username));
        if (n >= m.options.max_messages) {
          refusedFor(e.to.bare);
          m.server.router.bounce(e.stanza, new StanzaError('resource-constraint', 'The recipient\'s offline storage is full', 'wait'));
          return undefined;
        }
        counts.set(username, n + 1);
        // into the recipient's archive once accepted, so that the stored copy carries its stanza-id
        m.optional('mam')?.archiveOffline(e.stanza, e.to);
        const stored = store.add(username, serializeToKeep(e.stanza), storedAt).then(
          () => tellOtherNodes(username),
          (err: unknown) => {
            counts.set(username, (counts.get(username) ?? 1) - 1);
            m.log.error({ err, account: e.to.bare }, 'storing an offline message failed');
            m.server.router.bounce(e.stanza, new StanzaError('internal-server-error', 'The message could not be stored'));
          },
        );
        committing.set(username, stored);
        void stored.then(() => {
          if (committing.get(username) === stored) committing.delete(username);
        });
        return { stored };
      });
      return queued.then((write) => write?.stored); // the sender's stream acknowledges only once this settles
    });

    const scheduleDeletes = () => {
      if (toDelete.length === 0) return;
      const ids = toDelete;
      toDelete = [];
      store.remove(ids).then(
        () => ids.forEach((id) => inFlight.delete(id)),
        (err: unknown) => m.log.error({ err }, 'deleting delivered offline messages failed'),
      );
    };

    /** A stored message that is done with: deleted in the next batch. */
    function forget(username: string, id: number): void {
      toDelete.push(id);
      counts.set(username, Math.max(0, (counts.get(username) ?? 1) - 1));
      if (toDelete.length === 1) setImmediate(scheduleDeletes);
    }

    async function deliver(session: SessionRef): Promise<void> {
      const username = session.jid.local;
      await writing.idle(username); // messages still being stored belong to this delivery too
      await committing.get(username);
      const messages = (await store.list(username)).filter((message) => !inFlight.has(message.id));
      // past the retention period a message is not delivered, even before the sweep deletes it
      const cutoff = m.optional('mam')?.expiryCutoff(username) ?? null;
      // XEP-0191 §5.3, when the blocking module runs here: nothing from a JID the user blocked
      // since reaches the user, not even what was stored before
      const blocking = m.optional('blocking');
      const blocked = messages.length > 0 && blocking ? await blocking.load(username) : undefined;
      for (const message of messages) {
        if (inFlight.has(message.id)) continue; // handed out by a delivery that ran meanwhile
        let stanza: Element;
        try {
          stanza = parseElement(message.stanza);
        } catch (err) {
          m.log.error({ err, id: message.id }, 'unreadable offline message skipped');
          continue;
        }
        if (cutoff !== null && message.storedAt < cutoff) {
          inFlight.add(message.id);
          forget(username, message.id);
          continue;
        }
        const sender = blocked === undefined || stanza.attrs.from === undefined ? null : parseJid(stanza.attrs.from);
        if (sender !== null && matches(blocked!, sender)) {
          inFlight.add(message.id);
          forget(username, message.id);
          continue;
        }
        // XEP-0203: when, and by whom, it was delayed; a message handed on from a session's
        // queue already says when the server first had it
        if (!stanza.getChildren('delay', NS_DELAY).some((d) => d.attrs.from === domain)) {
          stanza.c('delay', { xmlns: NS_DELAY, from: domain, stamp: new Date(message.storedAt).toISOString() });
        }
        inFlight.add(message.id);
        const tracker: DeliveryTracker = {
          delivered: () => forget(username, message.id),
          undelivered() {
            inFlight.delete(message.id); // still stored: another available client, or the next login, gets it
            scheduleRedelivery(session.jid.bare);
          },
        };
        m.deliver(session, stanza, undefined, tracker);
      }
    }

    /** An available session of the account with a non-negative priority (XEP-0160 §5), on this node if `localOnly`. */
    function availableSession(bare: string, localOnly: boolean): SessionRef | undefined {
      for (const session of m.sessions.resources(bare)?.values() ?? []) {
        if (session.available && session.priority >= 0 && (!localOnly || session.local !== undefined)) return session;
      }
      return undefined;
    }

    /** After a session died with offline messages unconfirmed: hand them to another available client, if any. */
    const redeliver = new Set<string>();
    function scheduleRedelivery(bare: string): void {
      if (redeliver.has(bare)) return;
      redeliver.add(bare);
      setImmediate(() => {
        redeliver.delete(bare);
        const other = availableSession(bare, false);
        if (other !== undefined) deliver(other).catch((err: unknown) => m.log.error({ err, jid: other.jid.toString() }, 'offline delivery failed'));
      });
    }

    // XEP-0160 §5: delivered on initial presence with a non-negative priority
    m.on('presence/initial', ({ session }: { session: SessionRef }) => {
      if (session.priority < 0) return;
      deliver(session).catch((err: unknown) => m.log.error({ err, jid: session.jid.toString() }, 'offline delivery failed'));
    });

    m.on('account/deleted', ({ username }: { username: string }) => {
      counts.delete(username);
    });

    m.onStop(async () => {
      await store.settled();
      scheduleDeletes();
    });
  },
});
