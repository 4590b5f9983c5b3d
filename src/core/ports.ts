// The ports of the kernel: small interfaces that the edges (c2s, s2s, http, later the cluster)
// implement and the kernel and modules use, so that src/core never imports an edge
// (docs/architecture.md). The HTTP port is in ./http-port.ts.
import type Element from 'ltx/lib/Element.js';
import type { Jid } from './jid.js';

// --- sessions -------------------------------------------------------------------------------
// A session is known to the kernel and modules as a SessionRef, found in the SessionDirectory;
// only Delivery writes a stanza to it. The in-memory directory (src/core/sessions.ts) holds the
// sessions of this process; a shared one (Redis, the cluster) would hand out refs to sessions on
// other nodes, which Delivery passes to the RemoteRoute.

/** Told exactly once what became of a stanza handed to Delivery (or Session.send). */
export interface DeliveryTracker {
  delivered(): void;
  undelivered(): void;
}

/** A bound client session as the kernel and modules see it, wherever it lives. */
export interface SessionRef {
  readonly jid: Jid;
  /** The node (process) holding the session; LOCAL_NODE for this one. */
  readonly node: string;
  /** Sent initial presence and not yet unavailable (RFC 6121 §4.2). */
  readonly available: boolean;
  /** Priority from the last available presence (RFC 6121 §4.7.2.3); meaningful when `available`. */
  readonly priority: number;
  /** The last broadcast available presence (with `from` stamped), for probes and new contacts. */
  readonly presence: Element | null;
  /** Per-session flags set through the directory, e.g. 'carbons' (XEP-0280), 'interested' (RFC 6121 §2.1.6). */
  readonly flags: ReadonlySet<SessionFlag>;
  /** Full or bare JIDs this session sent directed presence to (RFC 6121 §4.6). */
  readonly directedPresence: ReadonlySet<string> | null;
  /** The client declared itself inactive (XEP-0352 Client State Indication). */
  readonly inactive: boolean;
  /** Epoch ms of the user's own last activity (XEP-0012): not keepalives, not while inactive (XEP-0352). */
  readonly lastActivity: number;
  /** What an admin's session list shows of it (src/control), wherever it is. */
  describe(): SessionDescription;
  /**
   * The live session behind a ref to a session of this process: today's zero-copy fast path,
   * for Delivery (and the c2s edge) only, never for modules.
   */
  readonly local: LocalSession | undefined;
}

export interface SessionDescription {
  ip: string;
  transport: 'tcp' | 'websocket' | 'hibernating';
  secure: boolean;
  /** Epoch ms it was bound. */
  since: number;
  /** XEP-0198 stream management on. */
  sm: boolean;
}

/**
 * Flags a module sets on a session; a string so that a module can add its own. `push:<id>`: the
 * device registered for push notifications (the push module), which c2s lets hibernate longer.
 */
export type SessionFlag = 'carbons' | 'interested' | (string & {});

/** The writing side of a session of this process (src/c2s/session.ts implements it). */
export interface LocalSession {
  send(stanza: Element, xml?: string, tracker?: DeliveryTracker): void;
}

export const LOCAL_NODE = 'local';

/** Where the bound sessions are: bind, unbind, presence, flags, lookups. */
export interface SessionDirectory {
  /** Bound sessions (of this directory). */
  readonly size: number;
  /** The session of a full JID, if bound. */
  find(bare: string, resource: string): SessionRef | undefined;
  /** The sessions of an account by resource (undefined when none). Not copied: do not keep it. */
  resources(bare: string): ReadonlyMap<string, SessionRef> | undefined;
  hasAccount(bare: string): boolean;
  /**
   * RFC 6121 §4.2 / §4.5: the session's presence. `presence` null is unavailable; else it is
   * the broadcast available presence and `priority` its priority.
   */
  setPresence(ref: SessionRef, presence: Element | null, priority?: number): void;
  setFlag(ref: SessionRef, flag: SessionFlag, on: boolean): void;
  /** RFC 6121 §4.6: the session sent available (`sent` true) or unavailable presence to `target`. */
  setDirectedPresence(ref: SessionRef, target: string, sent: boolean): void;
  /** Forgets every directed-presence target (the session went unavailable, §4.6.3). */
  clearDirectedPresence(ref: SessionRef): void;
}

/** The only writer of a stanza to a session (local: the session object; other node: the NodeLink). */
export interface Delivery {
  /** `xml`: the serialisation when the caller already has it (one for many recipients). */
  deliver(ref: SessionRef, stanza: Element, xml?: string, tracker?: DeliveryTracker): void;
}

/**
 * The way to sessions held by other nodes of a cluster (src/cluster implements it): the node
 * holding the session delivers the stanza, or routes it as undelivered (offline storage, another
 * resource) when the session has gone by the time it arrives.
 */
export interface NodeLink {
  /** This node's id in the cluster. */
  readonly node: string;
  deliver(ref: SessionRef, stanza: Element, xml: string | undefined, tracker: DeliveryTracker | undefined): void;
  /** Ends a session of another node (RFC 6120 §4.9: conflict, not-authorized, policy-violation...). */
  close(ref: SessionRef, condition: string, text: string | undefined): void;
  /**
   * XEP-0198 §5 across nodes: asks `node`, which issued the resumption id, to hand over the
   * session it names (and where it moved since, to follow it there).
   */
  takeOver(node: string, request: HandOffRequest): Promise<HandOffAnswer>;
  /** A session taken over is bound here: what arrived for it meanwhile is delivered to it. */
  arrived(jid: string): void;
}

// --- stream management across nodes ------------------------------------------------------------
// A client whose connection to node B dropped may resume on node A (XEP-0198 §5): A asks B, B
// hands over the session's state and the stanzas the client has not acknowledged, and ends its
// copy quietly (contacts see no unavailable presence); A binds it and resends them.

export interface HandOffRequest {
  previd: string;
  /** The node asking, where the session moves. */
  by: string;
  /** The account resuming: only its own sessions are handed over. */
  bare: string;
  /** The client's 'h': what it acknowledged. */
  h: number;
}

/** A session's state as it leaves its node. */
export interface SessionHandOff {
  jid: string;
  /** Stanzas handled from the client (the 'h' the server reports in <resumed/>). */
  received: number;
  /** The client's 'h'. */
  acknowledged: number;
  /** Sent and not acknowledged, oldest first: resent after <resumed/>; `at` epoch ms first queued. */
  unacked: Array<{ xml: string; at: number }>;
  available: boolean;
  priority: number;
  presence: string | null;
  flags: string[];
  directedPresence: string[] | null;
  lastActivity: number;
  since: number;
}

export type HandOffAnswer =
  | { session: SessionHandOff }
  /** the session moved to another node since: ask it there */
  | { movedTo: string }
  | { failed: 'item-not-found' }
  /** the client acknowledged more than was sent (XEP-0198 §4): a stream error */
  | { failed: 'handled-count-too-high'; sent: number };

/** This node's sessions waiting to be resumed, as the cluster sees them (the c2s edge implements it). */
export interface ResumableSessions {
  /** Hands over the session another node's client resumes (see HandOffRequest). */
  handOut(request: HandOffRequest): HandOffAnswer;
  /**
   * A dead node's sessions that were waiting to be resumed: what they had queued is handed on
   * (to offline storage, from the archive), as at the start after a crash.
   */
  recoverNode(node: string): Promise<void>;
}

/**
 * Where each entity under a component (a room) runs in a cluster: on one node at a time
 * (src/cluster). It hands the stanza to that node, or to the component when it is this one.
 */
export interface Placement {
  receive(component: PlacedComponent, stanza: Element, from: Jid, to: Jid): unknown;
}

/** What Placement needs of a component (src/core/router.ts Component). */
export interface PlacedComponent {
  readonly domain: string;
  receive(stanza: Element, from: Jid, to: Jid): unknown;
  entityPlaced?(local: string): Promise<void>;
}

/** Tells the other nodes of a cluster that a cached entry changed here (src/core/caches.ts). */
export interface CacheBus {
  changed(scope: string, key: string): void;
}

/**
 * Told of every change to this process's own sessions, once the directory has applied it: the
 * cluster shares them with the other nodes (src/cluster). Calls are synchronous and cheap.
 */
export interface SessionObserver {
  bound(ref: SessionRef): void;
  unbound(ref: SessionRef): void;
  /** Presence, priority, a flag or directed presence changed. */
  changed(ref: SessionRef): void;
}

/**
 * A stanza for another domain (s2s, src/s2s/service.ts) — later, for another node of the
 * cluster. Returns false when the stanza cannot be taken (federation off): the router bounces it.
 */
export interface RemoteRoute {
  route(stanza: Element, from: Jid, to: Jid): boolean;
}
