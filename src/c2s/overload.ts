// Overload shedding. The product brief: under excessive load the service keeps delivering
// messages and sheds the rest first. When the event loop lags (the whole server is behind) or
// one recipient falls behind (unsent output piling up on its connection, or XEP-0198 stanzas it
// does not acknowledge), what is sent to that recipient is sorted by worth (csi.ts classify):
// messages with a body, IQs and anything unknown go out as always; receipts and chat markers are
// delayed; chat states and presence broadcasts are coalesced to the latest per contact (as CSI
// does, XEP-0352) and delivered when the load falls. Only when a session's holding area is full
// are receipts and chat states dropped; a presence is never dropped (a contact would look
// online or offline wrongly until their next change), it goes out instead.
//
// While the whole server lags (or its input waits for later turns, input-turn.ts), receipts,
// markers and chat states a client sends are dropped as they arrive (dropsOnInput): holding them
// for their recipients would still cost their routing, carbons and queueing, which at twice the
// sustainable rate is the difference between messages flowing and messages queueing.
//
// XEP-0198: everything here happens before a stanza reaches ClientSession.transmit (session.ts), so nothing
// held or dropped was ever counted in the stream management queue; once counted, it is sent.
import { monitorEventLoopDelay, type ELDHistogram } from 'node:perf_hooks';
import type Element from 'ltx/lib/Element.js';
import { Counter } from 'prom-client';
import type { Kernel } from '../core/kernel.js';
import type { DeliveryTracker } from '../core/sessions.js';
import { classify } from './csi.js';

export interface OverloadSettings {
  /** false: nothing is ever held or dropped */
  shedding: boolean;
  /** Average event-loop delay in seconds over a sample period past which every recipient sheds; null: not this signal. */
  eventLoopLag: number | null;
  /** Output handed to a connection but not yet sent, in bytes, past which that recipient sheds; null: not this signal. */
  backlog: number | null;
  /** XEP-0198 stanzas sent to a session and not yet acknowledged past which it sheds; null: not this signal. */
  unacked: number | null;
  /** Stanzas one session may have held; past it receipts and chat states are dropped. */
  maxHeld: number;
}

/** How often the event-loop delay is read and held stanzas are looked at again. */
const SAMPLE_MS = 250;
/** The delay monitor's timer period; every reading includes it. */
const RESOLUTION_MS = 10;

// metric labels: class × action, counted in a flat array (no label hashing on the hot path)
const CLASSES = ['receipt', 'chat_state', 'presence'] as const;
const ACTIONS = ['delayed', 'coalesced', 'dropped'] as const;
const RECEIPT = 0;
const CHAT_STATE = 1;
const PRESENCE = 2;
const DELAYED = 0;
const COALESCED = 1;
const DROPPED = 2;

export interface HeldStanza {
  stanza: Element;
  xml: string | undefined;
  tracker: DeliveryTracker | undefined;
}

/** What one recipient has waiting, in order; chat states and presence keep one per sender. */
class HeldForSession {
  readonly entries: HeldStanza[] = [];
  /** `p<from>` / `c<from>` → index in entries of that sender's latest presence / chat state. */
  readonly latest = new Map<string, number>();
}

const NS_MUC_USER = 'http://jabber.org/protocol/muc#user';

/**
 * The recipient's own presence, which its client waits for: the reflection of its own
 * broadcast (RFC 6121 §4.2.2) or of a MUC join (XEP-0045 §7.2.2, status 110), which completes it.
 */
/** What shedding needs of a client session (src/c2s/session.ts's ClientSession is one). */
export interface SheddableSession {
  readonly jid: { readonly bare: string; toString(): string };
  readonly stream: { readonly transport: { readonly pendingOutput: number } } | null;
  readonly sm: { readonly unackedCount: number } | null;
  readonly ended: boolean;
  send(stanza: Element, xml?: string, tracker?: DeliveryTracker): void;
}

function isOwnPresence(session: SheddableSession, stanza: Element): boolean {
  const from = stanza.attrs.from;
  if (from !== undefined && from.startsWith(session.jid.bare) && (from.length === session.jid.bare.length || from[session.jid.bare.length] === '/')) return true;
  const x = stanza.getChild('x', NS_MUC_USER);
  return x !== undefined && x.getChildren('status').some((status) => status.attrs.code === '110');
}

export class OverloadShedding {
  private readonly counts = new Float64Array(CLASSES.length * ACTIONS.length);
  private readonly holding = new Map<SheddableSession, HeldForSession>();
  private readonly delay: ELDHistogram | null;
  private readonly timer: NodeJS.Timeout;
  /** The session whose held stanzas are being sent (they are not held again on the way out). */
  private releasing: SheddableSession | null = null;
  /** The event loop is behind: every recipient sheds. */
  lagging = false;

  constructor(
    private readonly server: Kernel,
    private readonly settings: OverloadSettings,
    /** Client input deferred to later turns in most turns: the server is at capacity (input-turn.ts). */
    private readonly input: { saturation(): number } | null = null,
  ) {
    this.delay = settings.eventLoopLag === null ? null : monitorEventLoopDelay({ resolution: RESOLUTION_MS });
    this.delay?.enable();
    this.timer = setInterval(() => this.sample(), SAMPLE_MS);
    this.timer.unref();
    const counts = this.counts;
    new Counter({
      name: 'xmppd_shed_stanzas_total',
      help: 'Stanzas to clients held back (delayed), replaced by a newer one from the same sender (coalesced) or dropped because of overload, by class',
      labelNames: ['class', 'action'],
      registers: [server.metrics.registry],
      collect() {
        this.reset();
        CLASSES.forEach((cls, c) => ACTIONS.forEach((action, a) => this.inc({ class: cls, action }, counts[c * ACTIONS.length + a]!)));
      },
    });
  }

  /** Shed stanzas by class and action, as in the metric (for tests and the admin). */
  shedCounts(): Record<string, number> {
    const out: Record<string, number> = {};
    CLASSES.forEach((cls, c) => ACTIONS.forEach((action, a) => (out[`${cls}/${action}`] = this.counts[c * ACTIONS.length + a]!)));
    return out;
  }

  /**
   * While the whole server lags, a chat state or receipt a client sends is given up as it
   * arrives: routing it, and carbons, and its recipient's queue would cost as much again.
   */
  dropsOnInput(stanza: Element): boolean {
    if (!this.lagging) return false;
    const worth = classify(stanza);
    if (worth === 'chat-state') {
      this.count(CHAT_STATE, DROPPED);
      return true;
    }
    if (worth === 'receipt') {
      this.count(RECEIPT, DROPPED);
      return true;
    }
    return false;
  }

  /** Whether `session` should shed now: the server is lagging or it is a recipient behind. */
  private overloaded(session: SheddableSession): boolean {
    if (this.lagging) return true;
    const { backlog, unacked } = this.settings;
    if (backlog !== null && session.stream !== null && session.stream.transport.pendingOutput > backlog) return true;
    return unacked !== null && session.sm !== null && session.sm.unackedCount > unacked;
  }

  /**
   * Called by the session for every stanza it is about to send: true when the stanza was taken
   * (held or dropped) and must not be sent now. Cheap when there is no overload: two field reads.
   */
  takes(session: SheddableSession, stanza: Element, xml: string | undefined, tracker: DeliveryTracker | undefined): boolean {
    if (session === this.releasing) return false;
    if (!this.overloaded(session)) {
      // the load fell: what was held goes first, so an older presence never follows a newer one
      if (this.holding.size !== 0 && this.holding.has(session)) this.release(session);
      return false;
    }
    const worth = classify(stanza);
    if (worth === 'essential' || (worth === 'presence' && isOwnPresence(session, stanza))) return false;
    let held = this.holding.get(session);
    if (held === undefined) {
      held = new HeldForSession();
      this.holding.set(session, held);
      this.server.log.debug({ jid: session.jid.toString(), lagging: this.lagging }, 'recipient overloaded: holding back receipts, chat states and presence');
    }
    const cls = worth === 'receipt' ? RECEIPT : worth === 'chat-state' ? CHAT_STATE : PRESENCE;
    if (cls !== RECEIPT) {
      const key = (cls === PRESENCE ? 'p' : 'c') + (stanza.attrs.from ?? '');
      const previous = held.latest.get(key);
      if (previous !== undefined) {
        // only the latest presence (RFC 6121 §4.4: it replaces the last) or chat state of a contact matters
        held.entries[previous]!.tracker?.delivered();
        held.entries[previous] = { stanza, xml, tracker };
        this.count(cls, COALESCED);
        return true;
      }
      if (held.entries.length >= this.settings.maxHeld) {
        if (cls === PRESENCE) return false; // never lose a contact's presence: send it after all
        return this.drop(cls, tracker);
      }
      held.latest.set(key, held.entries.length);
    } else if (held.entries.length >= this.settings.maxHeld) {
      return this.drop(cls, tracker);
    }
    held.entries.push({ stanza, xml, tracker });
    this.count(cls, DELAYED);
    return true;
  }

  private drop(cls: number, tracker: DeliveryTracker | undefined): true {
    // not an undelivered stanza to store offline or bounce: an expendable one given up on
    tracker?.delivered();
    this.count(cls, DROPPED);
    return true;
  }

  private count(cls: number, action: number): void {
    this.counts[cls * ACTIONS.length + action]!++;
  }

  /** Sends what `session` has held, in order. */
  private release(session: SheddableSession): void {
    const held = this.holding.get(session);
    if (held === undefined) return;
    this.holding.delete(session);
    // all of it goes, even if it fills the recipient's queue again: it was held long enough
    this.releasing = session;
    try {
      for (const entry of held.entries) session.send(entry.stanza, entry.xml, entry.tracker);
    } finally {
      this.releasing = null;
    }
  }

  /** The session ends: what it had held is handed back (to be routed elsewhere or given up). */
  takeHeld(session: SheddableSession): HeldStanza[] {
    const held = this.holding.get(session);
    if (held === undefined) return [];
    this.holding.delete(session);
    return held.entries;
  }

  private sample(): void {
    const delay = this.delay;
    const limit = this.settings.eventLoopLag;
    if (delay !== null && limit !== null) {
      const lag = Math.max(0, delay.mean / 1e6 - RESOLUTION_MS) / 1000; // ns → s, without the timer's own period
      delay.reset();
      // input waiting for later turns in most turns: the lag is bounded, the load is not
      const saturated = (this.input?.saturation() ?? 0) > 0.5;
      if (!this.lagging && (lag > limit || saturated)) {
        this.lagging = true;
        this.server.log.warn({ lagMs: Math.round(lag * 1000), inputDeferred: saturated }, 'event loop lagging: holding back receipts, chat states and presence until it catches up');
      } else if (this.lagging && lag < limit / 2 && !saturated) {
        this.lagging = false;
        this.server.log.info({ lagMs: Math.round(lag * 1000), shed: this.shedCounts() }, 'event loop caught up: delivering what was held back');
      }
    }
    for (const session of [...this.holding.keys()]) {
      if (session.ended) this.holding.delete(session);
      else if (!this.overloaded(session)) this.release(session);
    }
  }

  stop(): void {
    clearInterval(this.timer);
    this.delay?.disable();
  }
}
