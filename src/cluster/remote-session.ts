// A session held by another node, as this node's directory knows it: what the session record
// (published by its node on every change) says. Modules read it like any SessionRef; Delivery
// hands stanzas for it to the NodeLink.
import type Element from 'ltx/lib/Element.js';
import { parseJid, type Jid } from '../core/jid.js';
import type { SessionDescription, SessionFlag, SessionHandOff, SessionRef } from '../core/ports.js';
import type { MutableSessionState } from '../core/sessions.js';
import { parseElement } from '../xml/parse.js';
import { serialize } from '../xml/serialize.js';

/** A session as it travels between nodes (JSON, in Redis and on the sessions channel). */
export interface SessionRecord {
  /** full JID */
  j: string;
  /** node */
  n: string;
  /** version: increases with each change the node publishes */
  v: number;
  /** available, priority, presence (XML) */
  a: boolean;
  p: number;
  x: string | null;
  f: string[];
  d: string[] | null;
  i: boolean;
  l: number;
  /** what an admin's session list shows */
  e: SessionDescription;
}

export class RemoteSession implements SessionRef, MutableSessionState {
  readonly local = undefined;
  readonly boundAt: number;
  readonly flags = new Set<SessionFlag>();
  // the rest is the record's, set by update()
  version!: number;
  available!: boolean;
  priority!: number;
  /** The presence as it came (parsed when first read: most are never read, and a parsed one is ~1.5 KB). */
  private presenceXml!: string | null;
  private parsedPresence: Element | null | undefined;
  directedPresence!: Set<string> | null;
  inactive!: boolean;
  lastActivity!: number;
  private description!: SessionDescription;

  constructor(
    readonly jid: Jid,
    readonly node: string,
    record: SessionRecord,
  ) {
    this.boundAt = record.e.since; // of two sessions with one full JID, the later one wins
    this.update(record);
  }

  describe(): SessionDescription {
    return this.description;
  }

  /** Takes the session's record (at creation, then each newer one). */
  update(record: SessionRecord): void {
    this.version = record.v;
    this.available = record.a;
    this.priority = record.p;
    this.presenceXml = record.x;
    this.parsedPresence = undefined;
    this.flags.clear();
    for (const flag of record.f) this.flags.add(flag);
    this.directedPresence = record.d === null ? null : new Set(record.d);
    this.inactive = record.i;
    this.lastActivity = record.l;
    this.description = record.e;
  }

  get presence(): Element | null {
    if (this.parsedPresence === undefined) this.parsedPresence = this.presenceXml === null ? null : parseElement(this.presenceXml);
    return this.parsedPresence;
  }

  /** Set by the directory (setPresence: a survivor ending a dead node's session). */
  set presence(value: Element | null) {
    this.parsedPresence = value;
    this.presenceXml = null;
  }

  static fromRecord(record: SessionRecord): RemoteSession | undefined {
    const jid = parseJid(record.j);
    return jid === null || jid.resource === '' ? undefined : new RemoteSession(jid, record.n, record);
  }
}

/**
 * The record of a session this node handed to `node` (XEP-0198 §5 across nodes), until that node
 * publishes its own: version 0, so the first real record replaces it.
 */
export function handedOffRecord(handOff: SessionHandOff, node: string): SessionRecord {
  return {
    j: handOff.jid,
    n: node,
    v: 0,
    a: handOff.available,
    p: handOff.priority,
    x: handOff.presence,
    f: handOff.flags,
    d: handOff.directedPresence,
    i: false,
    l: handOff.lastActivity,
    e: { ip: '', transport: 'tcp', secure: true, since: handOff.since, sm: true },
  };
}

/** The record of a session of this node. */
export function recordOf(ref: SessionRef, node: string, version: number): SessionRecord {
  return {
    j: ref.jid.toString(),
    n: node,
    v: version,
    a: ref.available,
    p: ref.priority,
    x: ref.presence === null ? null : serialize(ref.presence),
    f: [...ref.flags],
    d: ref.directedPresence === null ? null : [...ref.directedPresence],
    i: ref.inactive,
    l: ref.lastActivity,
    e: ref.describe(),
  };
}
