// Bound client sessions of this node, by account. The router reads it for every stanza, so the
// lookups are two Map gets; modules keep per-account state keyed by the same bare JID.
import type Element from 'ltx/lib/Element.js';
import type { Delivery, DeliveryTracker, LocalSession, NodeLink, SessionDirectory, SessionFlag, SessionObserver, SessionRef } from './ports.js';
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

/**
 * Delivery (src/core/ports.ts): a local ref is written to at once, with the caller's
 * serialisation (no copy, no await); a ref to a session on another node goes through the
 * cluster's NodeLink, and is undelivered when there is none.
 */
export class LocalDelivery implements Delivery {
  /** The other nodes of the cluster, connected by the composition root in cluster mode. */
  link: NodeLink | undefined;

  deliver(ref: SessionRef, stanza: Element, xml?: string, tracker?: DeliveryTracker): void {
    const local = ref.local;
    if (local !== undefined) return local.send(stanza, xml, tracker);
    if (this.link !== undefined) return this.link.deliver(ref, stanza, xml, tracker);
    tracker?.undelivered();
  }
}

/** What a directory changes on a session, local or held by another node (setPresence, setFlag...). */
export interface MutableSessionState {
  available: boolean;
  priority: number;
  presence: Element | null;
  readonly flags: Set<SessionFlag>;
  directedPresence: Set<string> | null;
}

/**
 * The SessionDirectory of this process: its own sessions and, in cluster mode, refs to the
 * sessions of the other nodes (kept up to date by src/cluster), in one map per account, so a
 * lookup is two Map gets whichever node holds the session.
 */
export class SessionRegistry implements SessionDirectory {
  private readonly byAccount = new Map<string, Map<string, SessionRef>>();
  /** This process's sessions, also the one a newer session on another node displaced until it closes. */
  private readonly own = new Set<Session>();
  /** The same by full JID: the latest of this process's sessions with it. */
  private readonly ownByJid = new Map<string, Session>();
  /** Told of changes to this process's sessions (the cluster); none in one process. */
  observer: SessionObserver | undefined;

  /** Bound sessions of this process. */
  get size(): number {
    return this.own.size;
  }

  /** Adds a session of this process; the caller has closed the one it replaces (same full JID). */
  add(session: Session): void {
    this.own.add(session);
    this.ownByJid.set(session.jid.toString(), session);
    this.put(session);
    this.observer?.bound(session);
  }

  /** Removes a session of this process; false when it was removed already. */
  remove(session: Session): boolean {
    if (!this.own.delete(session)) return false;
    const key = session.jid.toString();
    if (this.ownByJid.get(key) === session) this.ownByJid.delete(key);
    this.drop(session);
    this.observer?.unbound(session);
    return true;
  }

  /**
   * A session held by another node (src/cluster). It takes the full JID even from a session of
   * ours, which the cluster is closing (a newer session elsewhere, RFC 6120 §7.7.2.2).
   */
  addRemote(ref: SessionRef): void {
    this.put(ref);
  }

  /** Forgets a session of another node, if it is still the one registered under its JID. */
  removeRemote(ref: SessionRef): boolean {
    return ref.local === undefined && this.drop(ref);
  }

  private put(ref: SessionRef): SessionRef | undefined {
    const bare = ref.jid.bare;
    let resources = this.byAccount.get(bare);
    if (resources === undefined) {
      resources = new Map();
      this.byAccount.set(bare, resources);
    }
    const previous = resources.get(ref.jid.resource);
    resources.set(ref.jid.resource, ref);
    return previous;
  }

  private drop(ref: SessionRef): boolean {
    const bare = ref.jid.bare;
    const resources = this.byAccount.get(bare);
    if (resources === undefined || resources.get(ref.jid.resource) !== ref) return false;
    resources.delete(ref.jid.resource);
    if (resources.size === 0) this.byAccount.delete(bare);
    return true;
  }

  /** The session of this process bound to a full JID. */
  get(bare: string, resource: string): Session | undefined {
    const ref = this.byAccount.get(bare)?.get(resource);
    return ref?.local === undefined ? undefined : (ref as Session);
  }

  /** This process's session with a full JID, even one a newer session on another node displaced. */
  ownSession(fullJid: string): Session | undefined {
    return this.ownByJid.get(fullJid);
  }

  /** The sessions of this process of an account. */
  localSessions(bare: string): Session[] {
    const sessions: Session[] = [];
    for (const ref of this.byAccount.get(bare)?.values() ?? []) if (ref.local !== undefined) sessions.push(ref as Session);
    return sessions;
  }

  hasAccount(bare: string): boolean {
    return this.byAccount.has(bare);
  }

  find(bare: string, resource: string): SessionRef | undefined {
    return this.byAccount.get(bare)?.get(resource);
  }

  resources(bare: string): ReadonlyMap<string, SessionRef> | undefined {
    return this.byAccount.get(bare);
  }

  setPresence(ref: SessionRef, presence: Element | null, priority = 0): void {
    const session = ref as SessionRef & MutableSessionState; // every ref this directory hands out is one
    session.presence = presence;
    session.available = presence !== null;
    if (presence !== null) session.priority = priority;
    if (ref.local !== undefined) this.observer?.changed(ref);
  }

  setFlag(ref: SessionRef, flag: SessionFlag, on: boolean): void {
    const session = ref as SessionRef & MutableSessionState;
    if (on === session.flags.has(flag)) return;
    if (on) session.flags.add(flag);
    else session.flags.delete(flag);
    if (ref.local !== undefined) this.observer?.changed(ref);
  }

  setDirectedPresence(ref: SessionRef, target: string, sent: boolean): void {
    const session = ref as SessionRef & MutableSessionState;
    if (sent) (session.directedPresence ??= new Set()).add(target);
    else session.directedPresence?.delete(target);
    if (ref.local !== undefined) this.observer?.changed(ref);
  }

  clearDirectedPresence(ref: SessionRef): void {
    (ref as SessionRef & MutableSessionState).directedPresence = null;
    if (ref.local !== undefined) this.observer?.changed(ref);
  }

  /** Every session of this process. */
  all(): IterableIterator<Session> {
    return this.own.values();
  }

  /** Every session of the cluster (this process's and the other nodes'). */
  *everywhere(): IterableIterator<SessionRef> {
    for (const resources of this.byAccount.values()) yield* resources.values();
  }
}
