// XEP-0352 Client State Indication: while a client says it is inactive (a phone in a pocket),
// stanzas it does not need right away — presence updates, chat states — are held back, the
// latest presence per contact only, and flushed with the next important stanza (a message with a
// body, a receipt, an IQ...) or when the client becomes active. This saves radio wake-ups.
import type Element from 'ltx/lib/Element.js';
import type { DeliveryTracker } from '../core/sessions.js';

export const NS_CSI = 'urn:xmpp:csi:0';
const NS_CHATSTATES = 'http://jabber.org/protocol/chatstates';
const NS_CARBONS = 'urn:xmpp:carbons:2';
const NS_FORWARD = 'urn:xmpp:forward:0';
/** Held stanzas beyond this many are flushed: the buffer must not grow without bound. */
const MAX_HELD = 500;

interface Held {
  stanza: Element;
  xml: string | undefined;
  tracker: DeliveryTracker | undefined;
}

/**
 * What a stanza is worth when it cannot all go out at once, most valuable first: everything
 * that must arrive as sent (a message with a body, an IQ, an error, a subscription request,
 * anything not known to be expendable), then receipts and chat markers (the "delivered" and
 * "read" ticks), then chat states (typing...), then presence broadcasts (availability changes).
 * CSI (below) holds the last two while a client is inactive; overload shedding (overload.ts)
 * delays, coalesces or drops the last three.
 */
export type StanzaClass = 'essential' | 'receipt' | 'chat-state' | 'presence';

const NS_RECEIPTS = 'urn:xmpp:receipts';
const NS_MARKERS = 'urn:xmpp:chat-markers:0';
/** Children that say how to handle a message, not what it says (XEP-0334 hints, XEP-0359 ids). */
const NS_HINTS = 'urn:xmpp:hints';
const NS_SID = 'urn:xmpp:sid:0';

export function classify(stanza: Element): StanzaClass {
  switch (stanza.name) {
    case 'presence': {
      const type = stanza.attrs.type;
      // subscription requests and errors want an answer; availability changes can wait
      return type === undefined || type === 'unavailable' ? 'presence' : 'essential';
    }
    case 'message': {
      if (stanza.attrs.type === 'error') return 'essential';
      let receipt = false;
      for (const child of stanza.children) {
        if (typeof child === 'string') continue;
        const ns = child.attrs.xmlns;
        if (ns === NS_CHATSTATES || ns === NS_HINTS || ns === NS_SID) continue;
        if (ns === NS_CARBONS && (child.name === 'sent' || child.name === 'received')) {
          // a carbon copy (XEP-0280) is worth what the message it carries is worth
          const carried = child.getChild('forwarded', NS_FORWARD)?.getChild('message');
          const worth = carried === undefined ? 'essential' : classify(carried);
          if (worth === 'essential') return worth;
          if (worth === 'receipt') receipt = true;
          continue;
        }
        // XEP-0184 §5 receipt, XEP-0333 §3 marker (a <request/> or <markable/> rides on a body)
        if ((ns === NS_RECEIPTS && child.name === 'received') || (ns === NS_MARKERS && child.name !== 'markable')) {
          receipt = true;
          continue;
        }
        return 'essential'; // a body, or anything we do not know to be expendable
      }
      return receipt ? 'receipt' : 'chat-state';
    }
    default:
      return 'essential';
  }
}

/** Whether a stanza should wake an inactive client: all but chat states and presence broadcasts. */
export function isImportant(stanza: Element): boolean {
  const worth = classify(stanza);
  return worth === 'essential' || worth === 'receipt';
}

export class CsiBuffer {
  private held: Held[] = [];
  /** For presence, the index in `held` of the latest one from each sender. */
  private presenceFrom = new Map<string, number>();

  hold(stanza: Element, xml: string | undefined, tracker: DeliveryTracker | undefined): void {
    if (stanza.name === 'presence') {
      const from = stanza.attrs.from ?? '';
      const previous = this.presenceFrom.get(from);
      if (previous !== undefined) {
        // only the latest presence of a contact matters; the older one is dropped
        this.held[previous]!.tracker?.delivered();
        this.held[previous] = { stanza, xml, tracker };
        return;
      }
      this.presenceFrom.set(from, this.held.length);
    }
    this.held.push({ stanza, xml, tracker });
  }

  get full(): boolean {
    return this.held.length >= MAX_HELD;
  }

  /** Everything held, in order; the buffer is emptied. */
  take(): Held[] {
    const held = this.held;
    this.held = [];
    this.presenceFrom.clear();
    return held;
  }
}
