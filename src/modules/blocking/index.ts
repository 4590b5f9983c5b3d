// XEP-0191 Blocking Command: a user blocks a pest, on every device at once. A blocked JID's
// messages, presence and requests never reach the account, the user appears offline to it, and
// what the user's clients address to it is refused. The lists live in the database and, for the
// accounts the router asks about, in memory: a routing check is a few Set lookups.
import Element from 'ltx/lib/Element.js';
import { defineModule } from '../../core/module.js';
import { parseJid, type Jid } from '../../core/jid.js';
import type { StanzaEvent } from '../../core/router.js';
import { SerialQueue } from '../../core/serial.js';
import type { SessionRef } from '../../core/ports.js';
import { StanzaError, errorReply, messageType } from '../../core/stanza.js';
import { BlocklistStore, blockingMigrations } from './store.js';

export const NS_BLOCKING = 'urn:xmpp:blocking';
const NS_BLOCKING_ERRORS = 'urn:xmpp:blocking:errors';
/** The session flag of a resource that asked for its block list (XEP-0191 §3.1): it gets the pushes (§5.3). */
const BLOCKLIST_INTERESTED = 'blocklist-interested';

/** What the module offers the same module on other hosts: a sender's list, for stanzas it sends. */
declare module '../../core/module.js' {
  interface Services {
    blocking: BlockingService;
  }
}

export interface BlockingService {
  /** The account's list, or undefined when it is not in memory yet. */
  cached(username: string): ReadonlySet<string> | undefined;
  load(username: string): Promise<ReadonlySet<string>>;
}

const NOBODY: ReadonlySet<string> = new Set();
/**
 * Presence this module sends itself to a blocked contact (the goodbye of §5.3), which the
 * contact's host — maybe another virtual host, with its own instance of this module — lets through.
 */
const goodbyes = new WeakSet<Element>();

/**
 * XEP-0191 §4 (as XEP-0016): an item matches the full JID, the bare JID, domain/resource, or the
 * domain — which also covers its users and its subdomains.
 */
export function matches(list: ReadonlySet<string>, jid: Jid): boolean {
  if (list.size === 0) return false;
  if (jid.resource !== '' && list.has(jid.toString())) return true;
  if (jid.local !== '' && list.has(jid.bare)) return true;
  if (jid.local !== '' && jid.resource !== '' && list.has(`${jid.domain}/${jid.resource}`)) return true;
  for (let domain = jid.domain; ; ) {
    if (list.has(domain)) return true;
    const dot = domain.indexOf('.');
    if (dot === -1) return false;
    domain = domain.slice(dot + 1);
  }
}

function itemsElement(name: 'blocklist' | 'block' | 'unblock', jids: Iterable<string>): Element {
  const element = new Element(name, { xmlns: NS_BLOCKING });
  for (const jid of jids) element.c('item', { jid });
  return element;
}

export default defineModule({
  name: 'blocking',
  description: 'Block lists: blocked contacts cannot reach the user, on any device',
  implements: [{ spec: 'XEP-0191', version: '1.3', status: 'complete' }],
  dependencies: ['roster'],
  migrations: blockingMigrations,
  removeAccountData: async ({ db, host, username }) => void (await db('blocklist').where({ host, username }).delete()),
  async setup(m) {
    const domain = m.host.domain;
    const sessions = m.sessions;
    const roster = m.use('roster');
    const store = new BlocklistStore(m.db, domain, (username) => sessions.hasAccount(`${username}@${domain}`), (username) => listChanged(username));
    // a cluster's other nodes drop their copy of a list changed here (and this node theirs)
    const listChanged = m.sharedCache('lists', (username) => store.changedElsewhere(username));
    await store.init();
    /** Changes to one account's list, in order. */
    const changes = new SerialQueue();
    let pushes = 0;

    const service: BlockingService = { cached: (username) => store.cached(username), load: (username) => store.load(username) };
    m.provide('blocking', service);
    m.feature(NS_BLOCKING);

    const blockingOf = (jid: Jid): BlockingService | undefined =>
      jid.local === '' ? undefined : m.optional('blocking', jid.domain);

    /** Whether `jid` is the user's own account or its server: never blockable, or the user could lock itself out. */
    const exempt = (user: Jid, jid: Jid) => jid.bare === user.bare || (jid.local === '' && jid.resource === '' && jid.domain === user.domain);

    m.on('session/bound', ({ session }: { session: SessionRef }) => {
      // read now, so that the first stanzas of the session do not wait for it
      store.load(session.jid.local).catch((err: unknown) => m.log.error({ err, account: session.jid.bare }, 'loading a block list failed'));
    });
    m.on('session/closed', ({ session }: { session: SessionRef }) => {
      if (!sessions.hasAccount(session.jid.bare)) store.trim();
    });
    m.on('account/deleted', ({ username }: { username: string }) => {
      store.forget(username);
    });

    // --- the commands (§5.2-§5.5) ----------------------------------------------------------------

    const userOf = (from: Jid, to: Jid): Jid => {
      // addressed to the account (no 'to', the usual case) or to the server, by a user of this host
      if (from.domain !== domain || from.local === '' || (to.local !== '' && to.bare !== from.bare)) {
        throw new StanzaError('forbidden', 'A block list is managed by its own account');
      }
      return from;
    };

    m.iq('get', NS_BLOCKING, async ({ payload, from, to, session }) => {
      const user = userOf(from, to);
      if (payload.name !== 'blocklist') throw new StanzaError('bad-request', 'Expected <blocklist/>');
      if (session) m.sessions.setFlag(session, BLOCKLIST_INTERESTED, true);
      return itemsElement('blocklist', await store.load(user.local));
    }, 'both');

    m.iq('set', NS_BLOCKING, async ({ payload, from, to }) => {
      const user = userOf(from, to);
      if (payload.name !== 'block' && payload.name !== 'unblock') throw new StanzaError('bad-request', 'Expected <block/> or <unblock/>');
      const items = payload.getChildren('item');
      if (payload.name === 'block' && items.length === 0) throw new StanzaError('bad-request', 'Block at least one JID'); // §5.3
      const jids: string[] = [];
      for (const item of items) {
        const jid = item.attrs.jid === undefined ? null : parseJid(item.attrs.jid);
        if (jid === null) throw new StanzaError('jid-malformed', `Not a JID: ${item.attrs.jid ?? '(missing)'}`);
        if (payload.name === 'block' && exempt(user, jid)) throw new StanzaError('not-acceptable', 'You cannot block yourself or your own server');
        jids.push(jid.toString());
      }
      await changes.run(user.local, async () => {
        if (payload.name === 'block') {
          const added = await store.add(user.local, jids);
          push(user, itemsElement('block', jids));
          if (added.length > 0) {
            await dropPendingRequests(user, new Set(added));
            await presenceTo(user, new Set(added), 'unavailable');
          }
        } else {
          const removed = await store.remove(user.local, items.length === 0 ? null : jids);
          push(user, itemsElement('unblock', items.length === 0 ? [] : jids)); // §5.5: empty means everyone
          if (removed.length > 0) await presenceTo(user, new Set(removed), 'current');
        }
      });
      return null;
    }, 'both');

    /** §5.3-§5.5: the change goes to every resource that asked for the list. */
    function push(user: Jid, change: Element): void {
      for (const session of sessions.resources(user.bare)?.values() ?? []) {
        if (!session.flags.has(BLOCKLIST_INTERESTED)) continue;
        const iq = new Element('iq', { type: 'set', id: `block-push-${++pushes}`, to: session.jid.toString() });
        iq.children = [change];
        m.deliver(session, iq);
      }
    }

    /**
     * A subscription request still waiting from a JID now blocked is dropped unanswered ("polite
     * blocking", §6): nothing from the contact reaches the user, not at the next login either.
     */
    async function dropPendingRequests(user: Jid, items: ReadonlySet<string>): Promise<void> {
      await roster.store.withRoster(user.local, async (r) => {
        for (const contact of [...r.pendingIn.keys()]) {
          const jid = parseJid(contact);
          if (jid !== null && matches(items, jid)) await roster.store.clearPendingIn(user.local, r, contact);
        }
      });
    }

    /**
     * §5.3: a newly blocked contact that may see the user's presence sees the user go offline;
     * §5.4: an unblocked one gets the current presence back. "May see" is RFC 6121's: a presence
     * subscriber, or someone the session sent directed presence to.
     */
    async function presenceTo(user: Jid, items: ReadonlySet<string>, what: 'unavailable' | 'current'): Promise<void> {
      const resources = sessions.resources(user.bare);
      if (resources === undefined) return;
      const subscribers = await roster.store.withRoster(user.local, (r) => roster.presenceSubscribers(r));
      const list = store.cached(user.local);
      for (const session of resources.values()) {
        if (!session.available || session.presence === null) continue;
        const targets = new Set<string>(subscribers);
        for (const target of session.directedPresence ?? []) targets.add(target);
        for (const target of targets) {
          const jid = parseJid(target);
          if (jid === null || !matches(items, jid)) continue;
          if (what === 'current' && list !== undefined && matches(list, jid)) continue; // still blocked by another item
          const presence = what === 'unavailable'
            ? new Element('presence', { type: 'unavailable', from: session.jid.toString(), to: target })
            : new Element('presence', { ...session.presence.attrs, from: session.jid.toString(), to: target });
          if (what === 'current') presence.children = session.presence.children;
          goodbyes.add(presence);
          m.route(presence);
        }
      }
    }

    // --- what a blocked JID sends to the account (§5.3) -----------------------------------------

    /** The account's answer to a stanza from a JID it blocks: the user looks offline. */
    function refuseInbound(e: StanzaEvent): true {
      const stanza = e.stanza;
      const type = stanza.attrs.type;
      if (stanza.name === 'presence') return true; // MUST NOT respond
      if (stanza.name === 'iq') {
        if (type === 'get' || type === 'set') m.server.router.bounce(stanza, new StanzaError('service-unavailable'));
        return true;
      }
      const kind = messageType(stanza);
      // chat and normal SHOULD bounce as if nobody were there; group chat, headlines and errors vanish
      if (kind === 'chat' || kind === 'normal') m.server.router.bounce(stanza, new StanzaError('service-unavailable'));
      m.log.debug({ from: e.from.toString(), to: e.to.bare }, 'stanza from a blocked JID dropped');
      return true;
    }

    /** Whether a stanza goes on, given the recipient's list and, for presence, its sender's. */
    function verdict(e: StanzaEvent, recipientList: ReadonlySet<string>, senderList: ReadonlySet<string>): true | undefined {
      if (matches(recipientList, e.from)) return refuseInbound(e);
      // the sender, one of our users, blocks the recipient: what the server sends on the user's
      // behalf (presence broadcasts, probe answers) does not go there; its clients were refused earlier
      if (matches(senderList, e.to)) return true;
      return undefined;
    }

    const inbound = (e: StanzaEvent): unknown => {
      const recipientList = e.to.local === '' || exempt(e.to, e.from) ? NOBODY : store.cached(e.to.local);
      const senderBlocking = e.stanza.name === 'presence' && !goodbyes.has(e.stanza) && !exempt(e.from, e.to) ? blockingOf(e.from) : undefined;
      const senderList = senderBlocking === undefined ? NOBODY : senderBlocking.cached(e.from.local);
      if (recipientList !== undefined && senderList !== undefined) return verdict(e, recipientList, senderList);
      // a list not in memory yet (its account has no session): the stanza waits for it (in order
      // with the ones behind it: the loads are shared), then the chain goes on
      return m.wait(Promise.all([recipientList ?? store.load(e.to.local), senderList ?? senderBlocking!.load(e.from.local)]).then(
        ([r, s]) => verdict(e, r, s),
        (err: unknown) => {
          m.log.error({ err, to: e.to.toString() }, 'reading a block list failed; the stanza goes through unchecked');
          return undefined;
        },
      ));
    };
    // above every module that acts on what arrives (roster subscriptions, probes, delivery)
    for (const kind of ['message', 'presence', 'iq'] as const) {
      for (const target of ['bare', 'full'] as const) m.on(`${kind}/${target}`, inbound, 1000);
    }
    // presence of our users to other servers: a blocked contact there does not get it either
    const remote = (e: { stanza: Element; from: Jid; to: Jid }): unknown => {
      if (e.stanza.name !== 'presence' || e.from.domain !== domain || e.from.local === '' || goodbyes.has(e.stanza)) return undefined;
      const list = store.cached(e.from.local);
      return list !== undefined && matches(list, e.to) ? true : undefined;
    };
    m.onStop(m.server.events.on('route/remote', remote, 1000));

    // --- what the user's clients send to a blocked JID (§5.3) -------------------------------------

    const outbound = (e: StanzaEvent): unknown => {
      const session = e.session;
      if (session === undefined || exempt(e.from, e.to)) return undefined;
      const list = store.cached(e.from.local);
      if (list === undefined) {
        // the session's list is still being read: decide once it is there (the client's later
        // stanzas wait behind this one), then the chain goes on
        return m.wait(store.load(e.from.local).then(
          (loaded) => (matches(loaded, e.to) ? refuseOutbound(e, session) : undefined),
          (err: unknown) => {
            m.log.error({ err, from: e.from.toString() }, 'reading a block list failed; the stanza goes through unchecked');
            return undefined;
          },
        ));
      }
      return matches(list, e.to) ? refuseOutbound(e, session) : undefined;
    };

    /** §5.3: not-acceptable with <blocked/>, from the address the stanza was meant for. */
    function refuseOutbound(e: StanzaEvent, session: SessionRef): true {
      const type = e.stanza.attrs.type;
      if (type !== 'error' && !(e.stanza.name === 'iq' && type === 'result')) {
        const error = errorReply(e.stanza, new StanzaError('not-acceptable', 'You have blocked this contact', 'cancel', new Element('blocked', { xmlns: NS_BLOCKING_ERRORS })));
        error.attrs.to = session.jid.toString();
        error.attrs.from = e.stanza.attrs.to ?? e.to.toString();
        m.deliver(session, error);
      }
      return true;
    }
    for (const kind of ['message', 'presence', 'iq'] as const) {
      for (const target of ['host', 'bare', 'full'] as const) m.on(`pre-${kind}/${target}`, outbound, 1000);
    }
  },
});
