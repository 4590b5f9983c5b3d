// RFC 6121 §2-3: the roster (get, set, push, versioning per XEP-0237) and the presence
// subscription state machine, for stanzas our users send (pre-presence/*) and receive (presence/bare).
import Element from 'ltx/lib/Element.js';
import { defineModule } from '../../core/module.js';
import { parseJid, type Jid } from '../../core/jid.js';
import type { StanzaEvent } from '../../core/router.js';
import { StanzaError } from '../../core/stanza.js';
import type { SessionRef } from '../../core/ports.js';
import type { AccountDeletingEvent } from '../../core/module.js';
import { RosterStore, removeRosterData, rosterMigrations, type Roster, type RosterItem, type Subscription } from './store.js';

export const NS_ROSTER = 'jabber:iq:roster';
const NS_ROSTER_VER = 'urn:xmpp:features:rosterver';
const MAX_NAME_LENGTH = 1023;

/** What the roster offers other modules on the same host (presence, last activity, ...). */
declare module '../../core/module.js' {
  interface Services {
    roster: RosterService;
  }
}

export interface RosterService {
  store: RosterStore;
  /** Contacts that receive the account's presence (subscription from or both). */
  presenceSubscribers(roster: Roster): string[];
  /** Contacts whose presence the account receives (subscription to or both). */
  presenceSubscriptions(roster: Roster): string[];
  /**
   * Two accounts of this host become mutual contacts at once, as an invitation both sides
   * agreed to (XEP-0401: the new account and its inviter).
   */
  befriend(username: string, contactUsername: string): Promise<void>;
  /**
   * XEP-0379 §3: a subscription request that carried the account's own valid invitation token is
   * approved on its behalf, and a request goes back so the subscription becomes mutual.
   */
  approveInvited(username: string, contact: string): Promise<void>;
}

/** Event payload of `roster/approved` and `roster/cancelled` (presence reacts to them). */
export interface SubscriptionChangeEvent {
  username: string;
  contact: string;
}

declare module '../../core/event-map.js' {
  interface EventMap {
    /** The user approved a contact's subscription request (RFC 6121 §3.1.4). */
    'roster/approved': SubscriptionChangeEvent;
    /** A subscription from the user to the contact ended (RFC 6121 §3.2-3.3). */
    'roster/cancelled': SubscriptionChangeEvent;
  }
}

function itemElement(item: RosterItem, removed = false): Element {
  const attrs: Record<string, string> = { jid: item.jid, subscription: removed ? 'remove' : item.subscription };
  if (item.name) attrs.name = item.name;
  if (item.ask && !removed) attrs.ask = 'subscribe';
  const element = new Element('item', attrs);
  if (!removed) for (const group of item.groups) element.c('group').t(group);
  return element;
}

export default defineModule({
  name: 'roster',
  description: 'Contact lists and presence subscriptions',
  implements: [
    { spec: 'RFC 6121', status: 'complete', note: 'roster management and subscriptions (§2, §3)' },
    { spec: 'XEP-0237', version: '1.3', status: 'partial', note: 'versioning: an unchanged roster is not resent; otherwise the full roster' },
  ],
  migrations: rosterMigrations,
  removeAccountData: ({ db, host, username, bareJid }) => removeRosterData(db, host, username, bareJid),
  setup(m) {
    const domain = m.host.domain;
    const store = new RosterStore(m.db, domain, (username) => rosterChanged(username));
    // a cluster's other nodes drop their copy of a roster changed here (and this node theirs)
    const rosterChanged = m.sharedCache('rosters', (username) => store.evict(username));
    const has = (s: Subscription, bit: 'to' | 'from') => s === 'both' || s === bit;
    // §3.1.3 in a cluster: a request stored on one node while its user's session on another was
    // not yet known there. That node reads the roster again (the notice follows the roster's own)
    // and hands the request to the user's available sessions, which may have read the pending
    // requests before it was stored. Key: "username contact" (a bare JID has no space).
    const requestWaiting = m.sharedCache('waiting-requests', (key) => {
      const [username, contact] = key.split(' ');
      if (username === undefined || contact === undefined) return;
      const userJid = `${username}@${domain}`;
      const sessions = [...(m.sessions.resources(userJid)?.values() ?? [])].filter((s) => s.local !== undefined && s.available);
      if (sessions.length === 0) return;
      store
        .withRoster(username, (roster) => {
          if (!roster.pendingIn.has(contact)) return;
          const request = new Element('presence', { type: 'subscribe', from: contact, to: userJid });
          const status = roster.pendingIn.get(contact);
          if (status) request.c('status').t(status);
          for (const session of sessions) m.deliver(session, request);
        })
        .catch((err: unknown) => m.log.error({ err, user: userJid, contact }, 'reading a roster for a waiting subscription request failed'));
    });

    m.provide('roster', {
      store,
      presenceSubscribers: (roster) => [...roster.items.values()].filter((i) => has(i.subscription, 'from')).map((i) => i.jid),
      presenceSubscriptions: (roster) => [...roster.items.values()].filter((i) => has(i.subscription, 'to')).map((i) => i.jid),
      befriend: async (username, contactUsername) => {
        const both = async (user: string, contact: string) =>
          store.withRoster(user, async (roster) => {
            const item = roster.items.get(contact) ?? { jid: contact, name: null, groups: [], subscription: 'none' as Subscription, ask: false };
            await store.clearPendingIn(user, roster, contact);
            if (item.subscription !== 'both' || item.ask) await update(user, roster, { ...item, subscription: 'both', ask: false });
          });
        await both(username, `${contactUsername}@${domain}`);
        await both(contactUsername, `${username}@${domain}`);
      },
      approveInvited: (username, contact) =>
        store.withRoster(username, async (roster) => {
          const item = roster.items.get(contact) ?? { jid: contact, name: null, groups: [], subscription: 'none' as Subscription, ask: false };
          const sub = item.subscription;
          await store.clearPendingIn(username, roster, contact);
          const asking = !has(sub, 'to');
          await update(username, roster, { ...item, subscription: sub === 'to' || sub === 'both' ? 'both' : 'from', ask: asking || item.ask });
          routeSubscription('subscribed', `${username}@${domain}`, contact);
          m.host.events.fire('roster/approved', { username, contact } satisfies SubscriptionChangeEvent);
          if (asking) routeSubscription('subscribe', `${username}@${domain}`, contact);
        }),
    } satisfies RosterService);

    m.feature(NS_ROSTER);
    m.on('c2s/features', (e: { stage: string; features: string[] }) => {
      if (e.stage === 'post-auth') e.features.push(`<ver xmlns='${NS_ROSTER_VER}'/>`);
    });

    // Rosters of online accounts stay in memory from their first use (roster get or presence)
    // until the account's last session ends.
    m.on('session/closed', ({ session }: { session: SessionRef }) => {
      if (!m.sessions.hasAccount(session.jid.bare)) store.evict(session.jid.local);
    });
    // An account about to be deleted (its data goes next, removeAccountData): its contacts are
    // told it no longer shares or wants presence, as Prosody's mod_presence does on user-deleted
    // (RFC 6121 §3.2, §3.3), so remote contacts' rosters are updated too, and the next owner of
    // the name does not inherit a subscription.
    m.on('account/deleting', ({ username, pending }: AccountDeletingEvent) => {
      const roster = store.cached(username);
      const notify = (r: Roster) => {
        const from = `${username}@${domain}`;
        for (const item of r.items.values()) {
          if (has(item.subscription, 'from')) m.route(new Element('presence', { type: 'unsubscribed', from, to: item.jid }));
          if (has(item.subscription, 'to') || item.ask) m.route(new Element('presence', { type: 'unsubscribe', from, to: item.jid }));
        }
        for (const contact of r.pendingIn.keys()) m.route(new Element('presence', { type: 'unsubscribed', from, to: contact }));
      };
      if (roster !== undefined) return void notify(roster);
      pending.push(store.load(username).then(notify, (err: unknown) => m.log.error({ err }, 'reading a deleted account\'s roster failed')));
    });
    m.on('account/deleted', ({ username }: { username: string }) => store.evict(username));

    /** RFC 6121 §2.1.6: a roster push to every interested resource of the account. */
    function push(username: string, version: number, item: RosterItem, removed = false): void {
      const sessions = m.sessions.resources(`${username}@${domain}`);
      if (!sessions) return;
      for (const session of sessions.values()) {
        if (!session.flags.has('interested')) continue;
        const iq = new Element('iq', { type: 'set', id: `push-${version}`, to: session.jid.toString() });
        iq.c('query', { xmlns: NS_ROSTER, ver: String(version) }).append(itemElement(item, removed));
        m.deliver(session, iq);
      }
    }

    async function update(username: string, roster: Roster, item: RosterItem): Promise<void> {
      push(username, await store.saveItem(username, roster, item), item);
    }

    // --- roster get / set (§2.1.3, §2.3-2.5) ---------------------------------------------------

    m.iq('get', NS_ROSTER, async ({ from, to, session, payload }) => {
      if (from.bare !== to.bare) throw new StanzaError('forbidden');
      if (session) m.sessions.setFlag(session, 'interested', true);
      const roster = await store.load(from.local);
      const version = String(roster.version);
      // XEP-0237 §3: an up-to-date client gets an empty result and then only pushes
      if (payload.attrs.ver !== undefined && payload.attrs.ver === version) return null;
      const query = new Element('query', { xmlns: NS_ROSTER, ver: version });
      for (const item of roster.items.values()) query.append(itemElement(item));
      return query;
    }, 'account');

    m.iq('set', NS_ROSTER, async ({ from, to, payload }) => {
      if (from.bare !== to.bare) throw new StanzaError('forbidden');
      const items = payload.getChildren('item');
      if (items.length !== 1) throw new StanzaError('bad-request', 'A roster set carries exactly one item'); // §2.3.3
      const element = items[0]!;
      const contact = element.attrs.jid === undefined ? null : parseJid(element.attrs.jid);
      if (contact === null) throw new StanzaError('bad-request', 'The item needs a valid jid');
      const jid = contact.toString();
      if (jid === from.bare) throw new StanzaError('not-allowed', 'Your own address is not a contact');
      return store.withRoster(from.local, async (roster) => {
        const existing = roster.items.get(jid);
        if (element.attrs.subscription === 'remove') {
          if (!existing) throw new StanzaError('item-not-found');
          await removeItem(from, roster, existing);
          return null;
        }
        const name = element.attrs.name ?? null;
        if (name !== null && name.length > MAX_NAME_LENGTH) throw new StanzaError('not-acceptable', 'The name is too long');
        const groups = element.getChildren('group').map((g) => g.getText());
        if (groups.some((g) => g === '' || g.length > MAX_NAME_LENGTH)) throw new StanzaError('not-acceptable', 'Empty or overlong group name');
        if (new Set(groups).size !== groups.length) throw new StanzaError('bad-request', 'A group is listed twice');
        // §2.1.2.5: the client cannot set subscription or ask; those only change by presence
        await update(from.local, roster, { jid, name, groups, subscription: existing?.subscription ?? 'none', ask: existing?.ask ?? false });
        return null;
      });
    }, 'account');

    /** §2.5.2: removing a contact cancels the subscriptions both ways. */
    async function removeItem(user: Jid, roster: Roster, item: RosterItem): Promise<void> {
      push(user.local, await store.saveItem(user.local, roster, item, true), item, true);
      await store.clearPendingIn(user.local, roster, item.jid);
      if (has(item.subscription, 'to') || item.ask) routeSubscription('unsubscribe', user.bare, item.jid);
      if (has(item.subscription, 'from')) {
        routeSubscription('unsubscribed', user.bare, item.jid);
        m.host.events.fire('roster/cancelled', { username: user.local, contact: item.jid } satisfies SubscriptionChangeEvent);
      }
    }

    function routeSubscription(type: string, from: string, to: string, status?: string | null, extensions: Element[] = []): void {
      const presence = new Element('presence', { type, from, to });
      if (status) presence.c('status').t(status);
      for (const extension of extensions) presence.append(extension);
      m.route(presence);
    }

    // --- subscriptions our user sends (§3.1.2, §3.1.5, §3.2.2, §3.3.2) --------------------------

    const outbound = (e: StanzaEvent): true | undefined => {
      const type = e.stanza.attrs.type;
      if (type !== 'subscribe' && type !== 'subscribed' && type !== 'unsubscribe' && type !== 'unsubscribed') return undefined;
      const user = e.from;
      const contact = e.to.bare;
      if (contact === user.bare) return true;
      const status = e.stanza.getChildText('status');
      store.withRoster(user.local, async (roster) => {
        const item = roster.items.get(contact) ?? { jid: contact, name: null, groups: [], subscription: 'none' as Subscription, ask: false };
        const sub = item.subscription;
        switch (type) {
          case 'subscribe':
            if (!has(sub, 'to') && !item.ask) await update(user.local, roster, { ...item, ask: true });
            // §3.1.2: what rides along (a nickname, XEP-0172; an invitation token, XEP-0379) goes too
            routeSubscription('subscribe', user.bare, contact, status, e.stanza.getChildElements().filter((c) => c.name !== 'status'));
            break;
          case 'subscribed': {
            if (!roster.pendingIn.has(contact)) return; // nothing to approve (no pre-approval support)
            await store.clearPendingIn(user.local, roster, contact);
            if (!has(sub, 'from')) await update(user.local, roster, { ...item, subscription: sub === 'to' ? 'both' : 'from' });
            routeSubscription('subscribed', user.bare, contact);
            m.host.events.fire('roster/approved', { username: user.local, contact } satisfies SubscriptionChangeEvent);
            break;
          }
          case 'unsubscribe':
            if (has(sub, 'to') || item.ask) {
              await update(user.local, roster, { ...item, ask: false, subscription: sub === 'both' ? 'from' : 'none' });
            }
            routeSubscription('unsubscribe', user.bare, contact);
            break;
          case 'unsubscribed': {
            const wasPending = roster.pendingIn.has(contact);
            await store.clearPendingIn(user.local, roster, contact);
            if (has(sub, 'from')) {
              await update(user.local, roster, { ...item, subscription: sub === 'both' ? 'to' : 'none' });
              m.host.events.fire('roster/cancelled', { username: user.local, contact } satisfies SubscriptionChangeEvent);
            }
            if (has(sub, 'from') || wasPending) routeSubscription('unsubscribed', user.bare, contact);
            break;
          }
        }
      }).catch((err: unknown) => m.log.error({ err, user: user.bare, contact, type }, 'outbound subscription failed'));
      return true;
    };
    m.on('pre-presence/bare', outbound, 10);
    m.on('pre-presence/full', outbound, 10);
    m.on('pre-presence/host', outbound, 10);

    // --- subscriptions our user receives (§3.1.3, §3.1.6, §3.2.3, §3.3.3) ------------------------

    m.on('presence/bare', (e: StanzaEvent) => {
      const type = e.stanza.attrs.type;
      if (type !== 'subscribe' && type !== 'subscribed' && type !== 'unsubscribe' && type !== 'unsubscribed') return undefined;
      const username = e.to.local;
      const contact = e.from.bare;
      const userJid = e.to.bare;
      m.server.router.whenAccountKnown(domain, username, (exists) => {
        if (!exists) {
          // §3.1.3: no such user; tell the requester so it does not wait forever
          if (type === 'subscribe') routeSubscription('unsubscribed', userJid, contact);
          return;
        }
        store.withRoster(username, async (roster) => {
          const item = roster.items.get(contact);
          const sub = item?.subscription ?? 'none';
          const deliver = () => {
            const presence = new Element('presence', { ...e.stanza.attrs, from: contact, to: userJid });
            presence.children = e.stanza.children;
            return m.server.router.deliverToAvailable(userJid, presence, false);
          };
          switch (type) {
            case 'subscribe':
              if (item && has(sub, 'from')) return routeSubscription('subscribed', userJid, contact); // already approved
              await store.setPendingIn(username, roster, contact, e.stanza.getChildText('status'));
              // if nobody is online it waits in pending-in for the next login, or for a session
              // that another node of a cluster bound before this one heard of it
              if (deliver() === 0) requestWaiting(`${username} ${contact}`);
              break;
            case 'subscribed':
              if (!item || (!item.ask && !has(sub, 'to'))) return; // §3.1.6: unrequested approvals are ignored
              if (!has(sub, 'to') || item.ask) await update(username, roster, { ...item, ask: false, subscription: sub === 'from' ? 'both' : sub === 'none' ? 'to' : sub });
              deliver();
              break;
            case 'unsubscribe':
              await store.clearPendingIn(username, roster, contact);
              if (!item || !has(sub, 'from')) return;
              await update(username, roster, { ...item, subscription: sub === 'both' ? 'to' : 'none' });
              deliver();
              // §3.3.3: the contact no longer receives our user's presence, so it learns our user is unavailable
              m.host.events.fire('roster/cancelled', { username, contact } satisfies SubscriptionChangeEvent);
              break;
            case 'unsubscribed':
              if (!item || (!has(sub, 'to') && !item.ask)) return;
              await update(username, roster, { ...item, ask: false, subscription: sub === 'both' ? 'from' : 'none' });
              deliver();
              break;
          }
        }).catch((err: unknown) => m.log.error({ err, user: userJid, contact, type }, 'inbound subscription failed'));
      });
      return true;
    }, 10);
  },
});
