// A bound client session: what the router delivers to. It outlives its connection when stream
// management allows resumption (XEP-0198 §5): a dropped mobile link leaves the session
// "hibernating" — still online for its contacts, stanzas queued — until the client resumes on a
// new connection or the resumption window ends.
import type { Kernel } from '../core/kernel.js';
import type { DeliveryTracker, Session, SessionDescription } from '../core/sessions.js';
import { LOCAL_NODE, type SessionFlag, type SessionHandOff, type SessionRef } from '../core/ports.js';
import type { Jid } from '../core/jid.js';
import { messageType, type StreamErrorCondition } from '../core/stanza.js';
import Element from 'ltx/lib/Element.js';
import { parseElement } from '../xml/parse.js';
import { serialize } from '../xml/serialize.js';
import { CsiBuffer, isImportant } from './csi.js';
import type { OverloadShedding } from './overload.js';
import { StreamManagement } from './sm.js';
import type { C2SStream } from './stream.js';
import type { C2SListeners } from './listener.js';
import type { HibernationRecords } from './hibernation.js';

const NS_DELAY = 'urn:xmpp:delay';

/** Unacknowledged stanzas a hibernating session may collect before it is ended early. */
const MAX_HIBERNATION_QUEUE = 10_000;

export class ClientSession implements Session {
  priority = 0;
  available = false;
  presence: Element | null = null;
  readonly flags = new Set<SessionFlag>();
  readonly node = LOCAL_NODE;
  directedPresence: Set<string> | null = null;
  lastActivity = Date.now();
  /** Epoch ms the session was bound (`xmppd sessions list`); kept when it moves to another node. */
  since = Date.now();
  remoteAddress: string;
  stream: C2SStream | null;
  sm: StreamManagement | null = null;
  private readonly listeners: C2SListeners;
  /** Set while the client has declared itself inactive (XEP-0352). */
  private csi: CsiBuffer | null = null;
  private hibernation: NodeJS.Timeout | undefined;
  ended = false;
  /** Called once when the session ends (the stream uses it to forget the resumption id). */
  onEnded: (() => void) | undefined;
  /** The durable note of this session's hibernation (./hibernation.ts): written, then deleted, in order. */
  private hibernationRecord: Promise<void> | undefined;

  constructor(
    private readonly server: Kernel,
    stream: C2SStream,
    readonly jid: Jid,
    /** Under overload, holds back or drops what is worth least (src/c2s/overload.ts). */
    private readonly shedding: OverloadShedding | null = null,
  ) {
    this.stream = stream;
    this.remoteAddress = stream.remoteAddress;
    this.listeners = stream.listeners;
  }

  /** A session of this process is its own local ref (src/core/ports.ts). */
  get local(): this {
    return this;
  }

  get host(): string {
    return this.jid.domain;
  }

  describe(): SessionDescription {
    const stream = this.stream;
    return {
      ip: this.remoteAddress,
      transport: stream === null ? 'hibernating' : stream.transport.kind,
      secure: stream?.secure ?? false,
      since: this.since,
      sm: this.sm !== null,
    };
  }

  get inactive(): boolean {
    return this.csi !== null;
  }

  get hibernating(): boolean {
    return this.stream === null && !this.ended;
  }

  send(stanza: Element, xml?: string, tracker?: DeliveryTracker): void {
    if (this.ended) return tracker?.undelivered();
    if (this.shedding?.takes(this, stanza, xml, tracker)) return;
    if (this.csi !== null) {
      if (!isImportant(stanza) && !this.csi.full) return this.csi.hold(stanza, xml, tracker);
      this.flushHeld();
    }
    this.transmit(stanza, xml ?? serialize(stanza), tracker);
  }

  private transmit(stanza: Element, xml: string, tracker: DeliveryTracker | undefined): void {
    const metrics = this.server.metrics;
    metrics.stanzasOut.count(stanza.name);
    metrics.delivered();
    if (this.sm !== null) {
      this.sm.sent(stanza, xml, tracker, this.otherRecipients(stanza));
      if (this.stream === null) {
        if (this.sm.unackedCount > MAX_HIBERNATION_QUEUE) {
          this.server.log.warn({ jid: this.jid.toString() }, 'too many stanzas queued for a hibernating session; ending it');
          this.end('resumption queue full');
          return;
        }
        this.server.stanzaHeldForResumption(this, stanza);
        return;
      }
      this.stream.write(xml);
    } else if (this.stream !== null) {
      this.stream.write(xml, tracker);
    } else {
      tracker?.undelivered();
    }
  }

  /**
   * For a message to the account's bare JID: the account's other resources that got their own
   * copy (RFC 6121 §8.5.2.1.1: every available resource with non-negative priority). If this
   * session never confirms its copy, the message is routed again only when none of them is left:
   * a resource that comes online later did not get it.
   */
  private otherRecipients(stanza: Element): SessionRef[] | undefined {
    if (stanza.name !== 'message' || stanza.attrs.to?.includes('/')) return undefined;
    let others: SessionRef[] | undefined;
    for (const other of this.server.sessions.resources(this.jid.bare)?.values() ?? []) {
      if (other !== this && other.available && other.priority >= 0) (others ??= []).push(other);
    }
    return others;
  }

  private flushHeld(): void {
    const held = this.csi?.take();
    if (!held) return;
    for (const h of held) this.transmit(h.stanza, h.xml ?? serialize(h.stanza), h.tracker);
  }

  /** XEP-0352: `<inactive/>` holds unimportant traffic, `<active/>` releases it. */
  setInactive(inactive: boolean): void {
    if (inactive) {
      this.csi ??= new CsiBuffer();
    } else if (this.csi !== null) {
      this.flushHeld();
      this.csi = null;
      this.lastActivity = Date.now();
    }
  }

  /**
   * Called once a resumed stream has resent what was unacknowledged. XEP-0352 §4: "A stream
   * always begins in 'active' state", a resumed one too: what CSI held goes out now, and a
   * client still in the background says <inactive/> again.
   */
  streamResumed(): void {
    if (this.csi === null) return;
    this.flushHeld();
    this.csi = null;
  }

  close(condition?: StreamErrorCondition, text?: string): void {
    if (this.stream !== null) this.stream.close(condition, text);
    else this.end(condition ?? 'closed');
  }

  /** The connection is gone without a goodbye: hibernate if the client can resume, else end. */
  connectionLost(reason: string, resumeTimeoutSeconds: number): void {
    if (this.ended) return;
    this.stream = null;
    if (this.sm?.resumable && resumeTimeoutSeconds > 0) {
      this.server.log.debug({ jid: this.jid.toString(), reason }, 'session hibernating, waiting for resumption');
      this.hibernation = setTimeout(() => this.end('resumption timed out'), resumeTimeoutSeconds * 1000);
      this.hibernation.unref();
      // so that what it queues survives a crash (its messages are in the archive): one write
      const since = Math.min(this.sm.oldestUnacked ?? Date.now(), Date.now());
      this.recordHibernation((records) => records.hibernating(this.jid, since));
      this.server.sessionHibernating(this, this.sm.unacked().map((entry) => entry.stanza));
      return;
    }
    this.end(reason);
  }

  private recordHibernation(write: (records: HibernationRecords) => Promise<void>): Promise<void> | undefined {
    const records = this.listeners.hibernations;
    if (records === undefined) return undefined;
    this.hibernationRecord = (this.hibernationRecord ?? Promise.resolve()).then(() => write(records));
    return this.hibernationRecord;
  }

  /** A new connection takes this session over (XEP-0198 §5). The old one, if any, is dropped quietly. */
  resumeOn(stream: C2SStream): void {
    clearTimeout(this.hibernation);
    const old = this.stream;
    this.stream = stream;
    this.remoteAddress = stream.remoteAddress;
    if (old !== stream) old?.detach('Resumed on another connection');
    if (this.hibernationRecord !== undefined) this.recordHibernation((records) => records.over(this.jid));
    this.server.sessionResumed(this);
  }

  /**
   * XEP-0198 §5 across nodes: this session's state for the node its client resumed on, which
   * acknowledged `h`. The session is then forgotten here quietly: its contacts see no unavailable
   * presence, and what the client has not acknowledged goes with it rather than elsewhere.
   */
  handOut(h: number): SessionHandOff | { failed: 'handled-count-too-high'; sent: number } {
    const sm = this.sm!;
    if (!sm.acknowledge(h)) return { failed: 'handled-count-too-high', sent: sm.sentCount };
    // what CSI or overload held back goes too, as if sent (the new node sends it after <resumed/>)
    this.flushHeld();
    this.csi = null;
    for (const held of this.shedding?.takeHeld(this) ?? []) this.transmit(held.stanza, held.xml ?? serialize(held.stanza), held.tracker);
    const unacked = sm.takeUnacked();
    // the new node resends them; an offline message's tracker lets go of its stored copy now
    for (const entry of unacked) entry.tracker?.delivered();
    const handOff: SessionHandOff = {
      jid: this.jid.toString(),
      received: sm.received,
      acknowledged: h,
      unacked: unacked.map((entry) => ({ xml: entry.xml, at: entry.at })),
      available: this.available,
      priority: this.priority,
      presence: this.presence === null ? null : serialize(this.presence),
      flags: [...this.flags],
      directedPresence: this.directedPresence === null ? null : [...this.directedPresence],
      lastActivity: this.lastActivity,
      since: this.since,
    };
    this.ended = true;
    clearTimeout(this.hibernation);
    const old = this.stream;
    this.stream = null;
    old?.detach('Resumed on another server node');
    this.onEnded?.();
    this.server.sessionHandedOut(this);
    if (this.hibernationRecord !== undefined) this.recordHibernation((records) => records.over(this.jid));
    return handOff;
  }

  /** A session another node handed over (see handOut), to be resumed on `stream` under `previd`. */
  static handedIn(server: Kernel, stream: C2SStream, jid: Jid, handOff: SessionHandOff, previd: string, shedding: OverloadShedding | null): ClientSession {
    const session = new ClientSession(server, stream, jid, shedding);
    session.available = handOff.available;
    session.priority = handOff.priority;
    session.presence = handOff.presence === null ? null : parseElement(handOff.presence);
    for (const flag of handOff.flags) session.flags.add(flag);
    session.directedPresence = handOff.directedPresence === null ? null : new Set(handOff.directedPresence);
    session.lastActivity = handOff.lastActivity;
    session.since = handOff.since;
    const unacked = handOff.unacked.map(({ xml, at }) => ({ stanza: parseElement(xml), xml, tracker: undefined, otherCopies: undefined, at }));
    session.sm = StreamManagement.handedIn(previd, handOff.received, handOff.acknowledged, unacked);
    return session;
  }

  /**
   * Ends the session for good: contacts see it go offline, unacknowledged stanzas find another
   * way. Returns a promise when some of them are being stored (offline storage), which a
   * shutdown waits for.
   */
  end(reason: string): Promise<unknown> | undefined {
    if (this.ended) return undefined;
    this.ended = true;
    clearTimeout(this.hibernation);
    this.stream = null;
    this.onEnded?.();
    this.server.sessionClosed(this, reason);
    const unacked = this.sm?.takeUnacked() ?? [];
    let handingOn: Array<Promise<unknown>> | undefined;
    for (const entry of unacked) {
      if (entry.tracker) {
        entry.tracker.undelivered();
        continue;
      }
      if (entry.stanza.name === 'message') this.stampDelay(entry.stanza, entry.at);
      const rerouted = this.server.router.undelivered(entry.stanza, this.jid, entry.otherCopies);
      if (rerouted instanceof Promise) (handingOn ??= []).push(rerouted);
    }
    // held back by CSI or overload, never sent: the account's other resources had theirs at the same time
    const held = [...(this.shedding?.takeHeld(this) ?? []), ...(this.csi?.take() ?? [])];
    this.csi = null;
    for (const entry of held) {
      if (entry.tracker) entry.tracker.undelivered();
      else {
        const rerouted = this.server.router.undelivered(entry.stanza, this.jid, this.otherRecipients(entry.stanza));
        if (rerouted instanceof Promise) (handingOn ??= []).push(rerouted);
      }
    }
    // never rejects: whoever ends a session (a timer, a conflict) need not catch
    const handedOn = handingOn === undefined ? undefined : Promise.all(handingOn).catch((err: unknown) => this.server.log.error({ err, jid: this.jid.toString() }, 'handing on the queue of an ended session failed'));
    if (this.hibernationRecord === undefined) return handedOn;
    // the durable note goes once the queue is handed on (stored), not before
    return (handedOn ?? Promise.resolve()).then(() => this.recordHibernation((records) => records.over(this.jid)));
  }

  /**
   * XEP-0203: a message handed on from the queue carries the time the server first had it, not
   * when the session ended (as Prosody's mod_smacks does). A new children array: the old one
   * may be shared with copies already made.
   */
  private stampDelay(message: Element, at: number): void {
    const type = messageType(message);
    if (type === 'groupchat' || type === 'headline' || type === 'error') return;
    if (message.children.some((c) => typeof c !== 'string' && c.name === 'delay' && c.attrs.xmlns === NS_DELAY)) return;
    const delay = new Element('delay', { xmlns: NS_DELAY, from: this.jid.domain, stamp: new Date(at).toISOString() });
    message.children = [...message.children, delay];
  }
}
