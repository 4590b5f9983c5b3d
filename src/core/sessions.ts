// Bound client sessions of this node, by account. The router reads it for every stanza, so the
// lookups are two Map gets; modules keep per-account state keyed by the same bare JID.
import type Element from 'ltx/lib/Element.js';
import type { Delivery, DeliveryTracker, LocalSession, SessionDirectory, SessionFlag, SessionRef } from './ports.js';
import type { StreamErrorCondition } from './stanza.js';

/**
 * A bound client session of this process, whatever carries it (TCP, WebSocket): a SessionRef
 * whose `local` is itself. The kernel's in-memory directory and the c2s edge use it; modules
 * see SessionRefs (src/core/ports.ts) and write through Delivery.
 */
export interface Session extends SessionRef, LocalSession {
  readonly host: string;
  readonly remoteAddress: string;
  priority: number;
  available: boolean;
  presence: Element | null;
  readonly flags: Set<SessionFlag>;
  directedPresence: Set<string> | null;
  lastActivity: number;
  /**
   * Deliver a stanza. `xml` is its serialisation when the caller already has it (one
   * serialisation for many recipients). `tracker` learns whether the client confirmed receipt
   * (XEP-0198 ack, or written out when the stream has no acks) or the session ended without it.
   */
  send(stanza: Element, xml?: string, tracker?: DeliveryTracker): void;
  close(condition?: StreamErrorCondition, text?: string): void;
}

export type { DeliveryTracker };

/** The in-memory SessionDirectory: the sessions of this process. */
/**
 * Delivery (src/core/ports.ts) for this process: a local ref is written to at once, with the
 * caller's serialisation (no copy, no await); a ref to a session on another node would go to
 * the cluster's RemoteRoute, which does not exist yet, so it is undelivered.
 */
export class LocalDelivery implements Delivery {
  deliver(ref: SessionRef, stanza: Element, xml?: string, tracker?: DeliveryTracker): void {
    const local = ref.local;
    if (local !== undefined) return local.send(stanza, xml, tracker);
    tracker?.undelivered();
  }
}

export class SessionRegistry implements SessionDirectory {
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

  find(bare: string, resource: string): Session | undefined {
    return this.byAccount.get(bare)?.get(resource);
  }

  resources(bare: string): ReadonlyMap<string, Session> | undefined {
    return this.byAccount.get(bare);
  }

  setPresence(ref: SessionRef, presence: Element | null, priority = 0): void {
    const session = ref as Session; // this directory hands out its sessions as their refs
    session.presence = presence;
    session.available = presence !== null;
    if (presence !== null) session.priority = priority;
  }

  setFlag(ref: SessionRef, flag: SessionFlag, on: boolean): void {
    const session = ref as Session;
    if (on) session.flags.add(flag);
    else session.flags.delete(flag);
  }

  setDirectedPresence(ref: SessionRef, target: string, sent: boolean): void {
    const session = ref as Session;
    if (sent) (session.directedPresence ??= new Set()).add(target);
    else session.directedPresence?.delete(target);
  }

  clearDirectedPresence(ref: SessionRef): void {
    (ref as Session).directedPresence = null;
  }

  *all(): IterableIterator<Session> {
    for (const resources of this.byAccount.values()) yield* resources.values();
  }
}
