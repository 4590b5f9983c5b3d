// Bound client sessions of this node, by account. The router reads it for every stanza, so the
// lookups are two Map gets; modules keep per-account state keyed by the same bare JID.
import type Element from 'ltx/lib/Element.js';
import type { Jid } from './jid.js';
import type { StreamErrorCondition } from './stanza.js';

/** What the core and modules know of a bound client session, whatever carries it (TCP, WebSocket). */
export interface Session {
  readonly jid: Jid;
  readonly host: string;
  readonly remoteAddress: string;
  /** Priority from the last available presence (RFC 6121 §4.7.2.3); meaningful when `available`. */
  priority: number;
  /** Sent initial presence and not yet unavailable (RFC 6121 §4.2). */
  available: boolean;
  /** The last broadcast available presence (with `from` stamped), for probes and new contacts. */
  presence: Element | null;
  /** Requested the roster: an "interested resource" that gets roster pushes (RFC 6121 §2.1.6). */
  interested: boolean;
  /** Full or bare JIDs this session sent directed presence to (RFC 6121 §4.6). */
  directedPresence: Set<string> | null;
  /** The client declared itself inactive (XEP-0352 Client State Indication). */
  readonly inactive: boolean;
  /** Epoch ms of the user's own last activity (XEP-0012): not keepalives, not while inactive (XEP-0352). */
  lastActivity: number;
  /**
   * Deliver a stanza. `xml` is its serialisation when the caller already has it (one
   * serialisation for many recipients). `tracker` learns whether the client confirmed receipt
   * (XEP-0198 ack, or written out when the stream has no acks) or the session ended without it.
   */
  send(stanza: Element, xml?: string, tracker?: DeliveryTracker): void;
  close(condition?: StreamErrorCondition, text?: string): void;
}

/** Told exactly once what became of a stanza handed to Session.send. */
export interface DeliveryTracker {
  delivered(): void;
  undelivered(): void;
}

export class SessionRegistry {
  private readonly byAccount = new Map<string, Map<string, Session>>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** Adds a session; returns the session it replaces (same full JID), which the caller closes. */
  add(session: Session): Session | undefined {
    const bare = session.jid.bare;
    let resources = this.byAccount.get(bare);
    if (resources === undefined) {
      resources = new Map();
      this.byAccount.set(bare, resources);
    }
    const previous = resources.get(session.jid.resource);
    resources.set(session.jid.resource, session);
    if (previous === undefined) this.count++;
    return previous;
  }

  /** Removes the session if it is still the one registered under its JID. */
  remove(session: Session): boolean {
    const bare = session.jid.bare;
    const resources = this.byAccount.get(bare);
    if (resources === undefined || resources.get(session.jid.resource) !== session) return false;
    resources.delete(session.jid.resource);
    this.count--;
    if (resources.size === 0) this.byAccount.delete(bare);
    return true;
  }

  get(bare: string, resource: string): Session | undefined {
    return this.byAccount.get(bare)?.get(resource);
  }

  /** All sessions of an account (empty when none). */
  ofAccount(bare: string): ReadonlyMap<string, Session> | undefined {
    return this.byAccount.get(bare);
  }

  hasAccount(bare: string): boolean {
    return this.byAccount.has(bare);
  }

  *all(): IterableIterator<Session> {
    for (const resources of this.byAccount.values()) yield* resources.values();
  }
}
