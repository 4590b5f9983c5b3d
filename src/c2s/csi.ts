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

/** Whether a stanza should wake an inactive client. */
export function isImportant(stanza: Element): boolean {
  switch (stanza.name) {
    case 'presence': {
      const type = stanza.attrs.type;
      // subscription requests and errors want an answer; availability changes can wait
      return type !== undefined && type !== 'unavailable';
    }
    case 'message': {
      if (stanza.attrs.type === 'error') return true;
      for (const child of stanza.children) {
        if (typeof child === 'string') continue;
        if (child.attrs.xmlns === NS_CARBONS && (child.name === 'sent' || child.name === 'received')) {
          // a carbon copy (XEP-0280) matters as much as the message it carries
          const carried = child.getChild('forwarded', NS_FORWARD)?.getChild('message');
          if (carried === undefined || isImportant(carried)) return true;
          continue;
        }
        // a message carrying nothing but a chat state (typing...) can wait; anything else can not
        if (child.attrs.xmlns !== NS_CHATSTATES) return true;
      }
      return false;
    }
    default:
      return true;
  }
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
