// RFC 6121 §4: presence. Initial presence (probes out, broadcast to subscribers and to the
// user's own resources), updates, unavailable on logout or disconnect, probes answered for
// subscribers, directed presence remembered so it can be cancelled (§4.6).
import Element from 'ltx/lib/Element.js';
import { defineModule } from '../../core/module.js';
import type { StanzaEvent } from '../../core/router.js';
import type { SessionRef } from '../../core/ports.js';
import { serialize } from '../../xml/serialize.js';
import type { SubscriptionChangeEvent } from '../roster/index.js';

declare module '../../core/event-map.js' {
  interface EventMap {
    /** The session sent its initial presence and it went out (offline messages follow, XEP-0160). */
    'presence/initial': { session: SessionRef };
  }
}

export default defineModule({
  name: 'presence',
  description: 'Presence broadcast, probes and directed presence',
  implements: [{ spec: 'RFC 6121', status: 'complete', note: 'exchanging presence (§4)' }],
  dependencies: ['roster'],
  setup(m) {
    const roster = m.use('roster');
    const domain = m.host.domain;
    /** Broadcasts waiting for a roster read: the server's shutdown waits for them before the database closes. */
    const unfinished = new Set<Promise<unknown>>();
    const inBackground = (work: Promise<unknown>, what: string, jid: string): void => {
      const done: Promise<unknown> = work.catch((err: unknown) => m.log.error({ err, jid }, `${what} failed`)).finally(() => unfinished.delete(done));
      unfinished.add(done);
    };
    m.onStop(async () => {
      while (unfinished.size > 0) await Promise.all(unfinished);
    });

    /** A copy of `presence` addressed to `to` (attributes copied, children shared: they are not modified). */
    function addressed(presence: Element, to: string, from?: string): Element {
      const copy = new Element('presence', { ...presence.attrs, to });
      if (from !== undefined) copy.attrs.from = from;
      copy.children = presence.children;
      return copy;
    }

    /** Presence to every subscriber and to all of the user's own available resources (§4.2.2, §4.4.2). */
    function broadcast(session: SessionRef, presence: Element, subscribers: string[]): void {
      for (const contact of subscribers) m.route(addressed(presence, contact));
      const own = m.sessions.resources(session.jid.bare);
      if (!own) return;
      const xml = serialize(presence);
      for (const resource of own.values()) if (resource.available || resource === session) m.deliver(resource, presence, xml);
    }

    function unavailableOf(session: SessionRef, status?: Element): Element {
      const presence = new Element('presence', { type: 'unavailable', from: session.jid.toString() });
      if (status) presence.append(status);
      return presence;
    }

    // --- presence the user sends without 'to' (broadcast) ----------------------------------------
    m.on('pre-presence/none', (e: StanzaEvent) => {
      const session = e.session;
      if (!session) return undefined;
      const presence = e.stanza;
      const type = presence.attrs.type;
      if (type !== undefined && type !== 'unavailable') return true; // subscriptions need a 'to'; errors/probes without one are dropped
      if (type === 'unavailable') {
        if (!session.available) return true;
        m.sessions.setPresence(session, null);
        inBackground(roster.store.withRoster(session.jid.local, (r) => goUnavailable(session, presence, roster.presenceSubscribers(r))),
          'presence broadcast', session.jid.toString());
        return true;
      }
      // The session is available from this moment (messages sent to it now must reach it);
      // the broadcast waits for the roster if it is still loading.
      const initial = !session.available;
      const priority = Number.parseInt(presence.getChildText('priority') ?? '0', 10);
      m.sessions.setPresence(session, presence, Number.isFinite(priority) ? Math.max(-128, Math.min(127, priority)) : 0);
      inBackground(roster.store.withRoster(session.jid.local, (r) => {
        broadcast(session, presence, roster.presenceSubscribers(r));
        if (!initial) return;
        // §4.2.2: probe the contacts we are subscribed to, from the new full JID
        for (const contact of roster.presenceSubscriptions(r)) {
          m.route(new Element('presence', { type: 'probe', from: session.jid.toString(), to: contact }));
        }
        // the other resources of the same account are present too
        for (const other of m.sessions.resources(session.jid.bare)?.values() ?? []) {
          if (other !== session && other.available && other.presence) m.deliver(session, addressed(other.presence, session.jid.toString()));
        }
        // §3.1.3: subscription requests that arrived while the user was offline
        for (const [contact, status] of r.pendingIn) {
          const request = new Element('presence', { type: 'subscribe', from: contact, to: session.jid.bare });
          if (status) request.c('status').t(status);
          m.deliver(session, request);
        }
        m.host.events.fire('presence/initial', { session });
      }), 'presence broadcast', session.jid.toString());
      return true;
    });

    /** Tells subscribers, own resources and directed-presence targets; the caller already marked the session unavailable. */
    function goUnavailable(session: SessionRef, presence: Element, subscribers: string[]): void {
      broadcast(session, presence, subscribers);
      // §4.6.3: whoever got directed presence learns we are gone
      if (session.directedPresence) {
        for (const target of session.directedPresence) m.route(addressed(presence, target));
        m.sessions.clearDirectedPresence(session);
      }
    }

    // --- directed presence (§4.6) --------------------------------------------------------------
    const directed = (e: StanzaEvent): undefined => {
      const session = e.session;
      const type = e.stanza.attrs.type;
      if (!session || (type !== undefined && type !== 'unavailable')) return undefined;
      const target = e.stanza.attrs.to!;
      m.sessions.setDirectedPresence(session, target, type === undefined);
      return undefined; // let the router deliver it
    };
    m.on('pre-presence/bare', directed);
    m.on('pre-presence/full', directed);
    m.on('pre-presence/host', directed);

    // --- the session goes away without saying goodbye (§4.5.2) ---------------------------------
    // Before the roster module (priority 0) lets go of the roster of an account's last session:
    // the broadcast uses it from memory instead of reading it back (and keeping it) for nothing.
    m.on('session/closed', ({ session }: { session: SessionRef }) => {
      if (!session.available) return;
      m.sessions.setPresence(session, null);
      const cached = roster.store.cached(session.jid.local);
      if (cached) goUnavailable(session, unavailableOf(session), roster.presenceSubscribers(cached));
      else {
        // its initial presence is still waiting for the roster
        inBackground(roster.store.withRoster(session.jid.local, (r) => {
          goUnavailable(session, unavailableOf(session), roster.presenceSubscribers(r));
          if (!m.sessions.hasAccount(session.jid.bare)) roster.store.evict(session.jid.local);
        }), 'unavailable broadcast', session.jid.toString());
      }
    }, 10);

    // --- probes from contacts (§4.3.2) ---------------------------------------------------------
    const probe = (e: StanzaEvent): true | undefined => {
      if (e.stanza.attrs.type !== 'probe') return undefined;
      const prober = e.from.bare;
      const replyTo = e.stanza.attrs.from!;
      m.server.router.whenAccountKnown(domain, e.to.local, (exists) => {
        if (!exists) return;
        inBackground(roster.store.withRoster(e.to.local, (r) => {
          const item = r.items.get(prober);
          if (!item || (item.subscription !== 'from' && item.subscription !== 'both')) {
            // §4.3.2: not entitled to our presence; say so without revealing it
            m.route(new Element('presence', { type: 'unsubscribed', from: e.to.bare, to: prober }));
            return;
          }
          answerProbe(e.to.bare, replyTo);
        }), 'probe', e.to.bare);
      });
      return true;
    };
    m.on('presence/bare', probe, 5);
    m.on('presence/full', probe, 5);

    function answerProbe(userBare: string, replyTo: string): void {
      let answered = false;
      for (const session of m.sessions.resources(userBare)?.values() ?? []) {
        if (!session.available || !session.presence) continue;
        m.route(addressed(session.presence, replyTo));
        answered = true;
      }
      if (!answered) m.route(new Element('presence', { type: 'unavailable', from: userBare, to: replyTo }));
    }

    // §3.1.5 / §3.2.2: a new subscriber gets our current presence; a cancelled one our absence
    m.on('roster/approved', ({ username, contact }: SubscriptionChangeEvent) => answerProbe(`${username}@${domain}`, contact));
    m.on('roster/cancelled', ({ username, contact }: SubscriptionChangeEvent) => {
      for (const session of m.sessions.resources(`${username}@${domain}`)?.values() ?? []) {
        if (session.available) m.route(new Element('presence', { type: 'unavailable', from: session.jid.toString(), to: contact }));
      }
    });
  },
});
