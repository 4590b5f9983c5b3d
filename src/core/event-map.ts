// The payload type of every event by name (Prosody's event names, typed as Hocuspocus types
// its hooks): `m.on('session/closed', (e) => ...)` gets `e` typed without a cast. The kernel's
// events are declared here; an edge or module that fires its own declares them where it fires
// them, by declaration merging:
//   declare module '../core/event-map.js' { interface EventMap { 'c2s/session-lost': SessionLostEvent } }
import type Element from 'ltx/lib/Element.js';
import type { OfflineEvent, StanzaEvent } from './router.js';
import type { SessionRef } from './ports.js';

/**
 * `account/deleting`, fired on the account's host by a running server before the account's data
 * is removed (its sessions are already closed). A handler with I/O to finish first (e.g. telling
 * contacts) pushes its promise to `pending`. `account/deleted` ({ username, host }) follows once
 * the data is gone, for modules to drop what they hold in memory.
 */
export interface AccountDeletingEvent {
  username: string;
  pending: Array<Promise<unknown>>;
}

type StanzaKind = 'message' | 'presence' | 'iq';
type RouteTarget = 'host' | 'bare' | 'full';

/** A client stanza before routing (`none`: no 'to'), then a stanza routed to one of our hosts. */
type StanzaEvents = { [K in `pre-${StanzaKind}/${RouteTarget | 'none'}` | `${StanzaKind}/${RouteTarget}`]: StanzaEvent };

export interface EventMap extends StanzaEvents {
  /** The router delivered a message addressed to a full JID (carbons adds its copies). */
  'message/delivered': StanzaEvent;
  /** A message for an account with no available resource: store it (offline) or it bounces. */
  'message/offline': OfflineEvent;
  'session/bound': { session: SessionRef };
  'session/closed': { session: SessionRef; reason: string };
  /**
   * XEP-0198 §5: the session's connection is gone and it waits for the client to resume
   * (Prosody's smacks-hibernation-start). `queued`: what was sent and not yet acknowledged,
   * oldest first. It stays bound and available meanwhile; `session/resumed` or
   * `session/closed` follows.
   */
  'session/hibernating': { session: SessionRef; queued: readonly Element[] };
  /**
   * A connected session's client has not answered an XEP-0198 <r/> for c2s.ack_delay (Prosody's
   * smacks-ack-delayed): it may be asleep on a link that looks open. `queued`: what it has not
   * acknowledged, oldest first. Told once per unanswered request.
   */
  'session/ack-delayed': { session: SessionRef; queued: readonly Element[] };
  /** A session's client came back on a new connection (XEP-0198 §5 resumption), hibernating or not yet. */
  'session/resumed': { session: SessionRef };
  /**
   * A stanza was queued for a hibernating session, to be sent if it resumes (Prosody's
   * smacks-hibernation-stanza-queued): push notifications (XEP-0357) wake the client for it.
   */
  'session/hibernated-stanza': { session: SessionRef; stanza: Element };
  'account/deleting': AccountDeletingEvent;
  'account/deleted': { username: string; host: string };
}

export type EventName = keyof EventMap;
