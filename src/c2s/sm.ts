// XEP-0198 Stream Management state of one client session: the count of stanzas received from
// the client (the `h` we report, the "sent" tick), and the stanzas sent to it that it has not
// acknowledged yet (kept so they can be resent after a resume, or re-routed if it never comes).
import type Element from 'ltx/lib/Element.js';
import type { DeliveryTracker } from '../core/sessions.js';
import type { SessionRef } from '../core/ports.js';
import { clock } from './clock.js';
import { randomToken } from '../core/random.js';

export const NS_SM = 'urn:xmpp:sm:3';

export interface Unacked {
  stanza: Element;
  xml: string;
  tracker: DeliveryTracker | undefined;
  /** For a message to the account: the other resources that got their own copy of it. */
  otherCopies: SessionRef[] | undefined;
  /** epoch ms (the coarse clock) it was queued: its XEP-0203 delay stamp if it is re-routed */
  at: number;
}

const UINT32 = 2 ** 32;

/**
 * In a cluster a resumption id names the node that issued it (`<node>~<random>`), so that a
 * client resuming on another node is handed its session from there (kernel.takeOver).
 */
export function issuingNode(previd: string): string | undefined {
  const tilde = previd.lastIndexOf('~');
  return tilde > 0 ? previd.slice(0, tilde) : undefined;
}

export class StreamManagement {
  /** The resumption token (`previd`); unguessable, tied to the account on resume. */
  readonly id: string;
  /** Stanzas received from the client, modulo 2^32 (XEP-0198 §4). */
  received = 0;
  /** Our outbound count the client last acknowledged. */
  private acknowledged = 0;
  private queue: Unacked[] = [];
  private head = 0;
  /** An <r/> is outstanding: do not ask again until the client answers. */
  ackRequested = false;
  /** When that <r/> was sent (the coarse clock), and whether its lateness was reported. */
  ackRequestedAt = 0;
  ackDelayReported = false;
  /** Inbound stanzas whose handling (e.g. an offline store write) has not finished. */
  private pendingInbound = 0;
  private settled: Promise<unknown> = Promise.resolve();

  /** `node`: this node's id in a cluster, put in the id; `id`: a session taken over keeps its own. */
  constructor(readonly resumable: boolean, node?: string, id?: string) {
    const random = randomToken(18);
    this.id = id ?? (node === undefined ? random : `${node}~${random}`);
  }

  /** The counters and queue of a session handed over by another node (XEP-0198 §5). */
  static handedIn(id: string, received: number, acknowledged: number, unacked: Unacked[]): StreamManagement {
    const sm = new StreamManagement(true, undefined, id);
    sm.received = received % UINT32;
    sm.acknowledged = acknowledged % UINT32;
    sm.queue = unacked;
    return sm;
  }

  get unackedCount(): number {
    return this.queue.length - this.head;
  }

  /** Stanzas sent to the client since <enable/>, modulo 2^32: what its 'h' may reach at most. */
  get sentCount(): number {
    return (this.acknowledged + this.unackedCount) % UINT32;
  }

  sent(stanza: Element, xml: string, tracker: DeliveryTracker | undefined, otherCopies?: SessionRef[]): void {
    this.queue.push({ stanza, xml, tracker, otherCopies, at: clock.now });
  }

  /**
   * The client acknowledged up to `h` (XEP-0198 §4). Returns false when `h` acknowledges more
   * than we sent, which the caller turns into an undefined-condition stream error (§4, v1.6).
   */
  acknowledge(h: number): boolean {
    const count = (h - this.acknowledged + UINT32) % UINT32;
    // An ack older than one already received (some clients resend a stale count when closing)
    // acknowledges nothing new; only a count beyond what we sent is an error.
    const behind = (this.acknowledged - h + UINT32) % UINT32;
    if (behind > 0 && behind < UINT32 / 2) return true;
    if (count > this.unackedCount) return false;
    for (let i = 0; i < count; i++) {
      const entry = this.queue[this.head]!;
      this.queue[this.head++] = undefined as never; // let it be collected
      entry.tracker?.delivered();
    }
    // compact now and then so the array does not grow forever
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    this.acknowledged = h % UINT32;
    this.ackRequested = false;
    this.ackDelayReported = false;
    return true;
  }

  /** An <r/> goes out now. */
  requestingAck(): void {
    this.ackRequested = true;
    this.ackRequestedAt = clock.now;
  }

  /** Everything not acknowledged, oldest first; the queue is emptied. */
  takeUnacked(): Unacked[] {
    const rest = this.queue.slice(this.head);
    this.queue = [];
    this.head = 0;
    return rest;
  }

  /** When the oldest unacknowledged stanza was queued, or undefined when none is. */
  get oldestUnacked(): number | undefined {
    return this.head < this.queue.length ? this.queue[this.head]!.at : undefined;
  }

  /** Still unacknowledged, for resending after a resume (kept in the queue). */
  unacked(): Unacked[] {
    return this.queue.slice(this.head);
  }

  /** A client stanza arrived; `handling` is set when it is accepted only once that promise settles. */
  inbound(handling?: Promise<unknown>): void {
    this.received = (this.received + 1) % UINT32;
    if (handling === undefined) return;
    this.pendingInbound++;
    const done = () => {
      this.pendingInbound--;
    };
    this.settled = Promise.all([this.settled, handling.then(done, done)]);
  }

  /**
   * Calls `report(h)` with the count of handled stanzas: at once, or (when some are still being
   * stored) as soon as every stanza received so far is handled, so an ack never runs ahead of
   * the storage of what it acknowledges.
   */
  whenHandled(report: (h: number) => void): void {
    const h = this.received;
    if (this.pendingInbound === 0) report(h);
    else void this.settled.then(() => report(h));
  }
}
