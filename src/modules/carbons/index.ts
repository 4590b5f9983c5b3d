// XEP-0280 Message Carbons: a person's phone and laptop show the same conversation. A client
// that enables carbons gets, wrapped per XEP-0297, a copy of every instant message its account
// sends from another resource (<sent/>) and of every one delivered to another of its resources
// by full JID (<received/>). Messages to the bare JID already reach every resource (RFC 6121
// §8.5.2.1.1, as the router does it), so only the resources that rule skips get a copy of those.
import Element from 'ltx/lib/Element.js';
import { defineModule } from '../../core/module.js';
import type { StanzaEvent } from '../../core/router.js';
import type { DeliveryTracker, SessionRef } from '../../core/ports.js';
import { NS_CLIENT, StanzaError, messageType } from '../../core/stanza.js';
import { escapeAttribute, serialize } from '../../xml/serialize.js';

export const NS_CARBONS = 'urn:xmpp:carbons:2';
const NS_FORWARD = 'urn:xmpp:forward:0';
const NS_HINTS = 'urn:xmpp:hints';
const NS_MUC_USER = 'http://jabber.org/protocol/muc#user';
/**
 * Payloads that make a message part of a conversation even without a body (XEP-0280 §6: "payload
 * elements typically used in IM"): the ticks, typing, corrections, reactions, call invitations.
 */
const IM_PAYLOADS = new Set([
  'urn:xmpp:receipts',
  'urn:xmpp:chat-markers:0',
  'http://jabber.org/protocol/chatstates',
  'urn:xmpp:message-correct:0',
  'urn:xmpp:reactions:0',
  'urn:xmpp:message-retract:1',
  'urn:xmpp:jingle-message:0',
  'urn:xmpp:jingle-message:1',
  'eu.siacs.conversations.axolotl',
  'urn:xmpp:omemo:2',
]);

/** A copy that never reaches its client is not re-routed like a message would be: it is only a copy. */
const COPY_TRACKER: DeliveryTracker = { delivered() {}, undelivered() {} };

type Direction = 'sent' | 'received';

/**
 * Marks a message to a full JID whose delivery the other resources get a <received/> copy of.
 * A property, not a WeakSet: no ephemeron per message (see mam's Archiving).
 */
const COPY_ON_DELIVERY = Symbol('carbons: copy on delivery');
type CopiedElement = Element & { [COPY_ON_DELIVERY]?: boolean };

/** What the hints on a message say, in one pass over its children. */
function inspect(message: Element): { hinted: boolean; muc: boolean; body: boolean; im: boolean } {
  let hinted = false;
  let muc = false;
  let body = false;
  let im = false;
  for (const child of message.children) {
    if (typeof child === 'string') continue;
    const xmlns = child.attrs.xmlns;
    if (xmlns === undefined) {
      if (child.name === 'body') body = true;
    } else if (xmlns === NS_CARBONS) {
      // <private/> (§9), or a carbon itself: never copied again
      hinted = true;
    } else if (xmlns === NS_HINTS) {
      if (child.name === 'no-copy') hinted = true; // XEP-0334 §4.3
    } else if (xmlns === NS_MUC_USER) {
      muc = true;
    } else if (IM_PAYLOADS.has(xmlns)) {
      im = true;
    }
  }
  return { hinted, muc, body, im };
}

/**
 * XEP-0280 §6, the suggested rules: chat messages, normal ones with a body or an IM payload; not
 * group chat, headlines, nor anything a MUC sends (private messages included). An error is
 * eligible when it answers an eligible message; instead of tracking every message sent we
 * recognise the answer by what RFC 6120 §8.3.1 lets a bounce carry, the original payload, or (as
 * Prosody does) by its coming from a bare JID, where the messages people send go.
 */
export function eligible(message: Element, direction: Direction, fromBare: boolean, fromMucService: boolean): boolean {
  const type = messageType(message);
  if (type === 'groupchat' || type === 'headline') return false;
  const { hinted, muc, body, im } = inspect(message);
  if (hinted) return false;
  if (direction === 'received' && (muc || fromMucService)) return false;
  if (type === 'chat') return true;
  if (type === 'error') return direction === 'received' && (body || im || fromBare);
  return body || im;
}

/** XEP-0280 §9: the receiving server removes <private/> before delivering. */
function stripPrivate(message: Element): void {
  let found = false;
  for (const child of message.children) {
    if (typeof child !== 'string' && child.name === 'private' && child.attrs.xmlns === NS_CARBONS) found = true;
  }
  // a new array: a copy already made of this message keeps its own children
  if (found) message.children = message.children.filter((c) => typeof c === 'string' || c.name !== 'private' || c.attrs.xmlns !== NS_CARBONS);
}

export default defineModule({
  name: 'carbons',
  description: 'Copies of sent and received messages to all of an account\'s devices',
  implements: [
    { spec: 'XEP-0280', version: '1.0.1', status: 'complete' },
    { spec: 'XEP-0297', version: '1.0', status: 'complete', note: 'forwarded messages in carbon copies' },
    { spec: 'XEP-0334', version: '0.3.0', status: 'partial', note: 'no-copy hint respected by carbons' },
  ],
  setup(m) {
    const sessions = m.sessions;
    const components = m.server.router.components;

    m.feature(NS_CARBONS);

    // §4, §5: enable and disable, for the requesting session only; repeating either is fine (§10.1)
    m.iq('set', NS_CARBONS, ({ payload, from, to, session }) => {
      if (session === undefined || (to.local !== '' && to.bare !== from.bare)) {
        throw new StanzaError('not-allowed', 'Carbons are enabled by a client for its own session');
      }
      // the session's 'carbons' flag (src/core/ports.ts); it ends with the session
      if (payload.name === 'enable') m.sessions.setFlag(session, 'carbons', true);
      else if (payload.name === 'disable') m.sessions.setFlag(session, 'carbons', false);
      else throw new StanzaError('bad-request', 'Expected <enable/> or <disable/>');
      return null;
    }, 'both');

    /**
     * Sends `message` wrapped in <sent/> or <received/> to each available carbons-enabled resource
     * of `account` that `wanted` accepts. The wrapper is serialised once; each copy only differs
     * by its 'to', spliced in.
     */
    function copy(direction: Direction, message: Element, account: string, wanted: (session: SessionRef) => boolean): void {
      const resources = sessions.resources(account);
      if (resources === undefined) return;
      let wrapper: Element | undefined;
      let head = '';
      let tail = '';
      for (const session of resources.values()) {
        if (!session.available || !session.flags.has('carbons') || !wanted(session)) continue;
        if (wrapper === undefined) {
          // XEP-0297: the forwarded stanza keeps its namespace explicitly
          const original = new Element('message', { xmlns: NS_CLIENT, ...message.attrs });
          original.children = message.children;
          const container = new Element(direction, { xmlns: NS_CARBONS });
          container.c('forwarded', { xmlns: NS_FORWARD }).append(original);
          const type = message.attrs.type;
          // §7, §8: from the bare JID, same type as the original
          wrapper = new Element('message', type === undefined ? { from: account } : { from: account, type });
          wrapper.append(container);
          head = `<message from="${escapeAttribute(account)}"${type === undefined ? '' : ` type="${escapeAttribute(type)}"`} to="`;
          tail = '">' + serialize(container) + '</message>';
        }
        const to = session.jid.toString();
        const addressed = new Element('message', { ...wrapper.attrs, to });
        addressed.children = wrapper.children;
        m.deliver(session, addressed, head + escapeAttribute(to) + tail, COPY_TRACKER);
      }
    }

    // XEP-0386 §2.4: enabled at login, inline in a Bind2 request, for the session it binds
    m.on('c2s/bind2-inline', (e) => {
      e.features.push(NS_CARBONS);
    });
    m.on('c2s/bind2-element', ({ element, session }) => {
      if (element.attrs.xmlns !== NS_CARBONS || element.name !== 'enable') return undefined;
      m.sessions.setFlag(session, 'carbons', true);
      return true;
    });

    // --- sent copies (§8): what one resource sends, to the others ---------------------------------
    const outbound = (e: StanzaEvent): undefined => {
      const sender = e.session;
      // to the account itself: its resources get the message, or a received copy of it
      if (sender === undefined || e.to.bare === e.from.bare) return undefined;
      if (eligible(e.stanza, 'sent', false, false)) copy('sent', e.stanza, e.from.bare, (s) => s !== sender);
      return undefined;
    };
    // below everything that may refuse or consume the message (blocking, ...): a copy says it went out
    for (const target of ['none', 'host', 'bare', 'full'] as const) m.on(`pre-message/${target}`, outbound, -100);

    // --- received copies (§7): what one resource receives, to the others ------------------------
    const fromMuc = (e: StanzaEvent) => components.has(e.from.domain);

    m.on('message/full', (e: StanzaEvent) => {
      const copied = eligible(e.stanza, 'received', e.from.isBare, fromMuc(e));
      stripPrivate(e.stanza);
      const recipient = sessions.find(e.to.bare, e.to.resource);
      if (recipient === undefined) {
        // no such resource: chat and normal go to the bare JID (RFC 6121 §8.5.3.2.1), as below
        if (copied && messageType(e.stanza) !== 'error') copy('received', e.stanza, e.to.bare, (s) => s.priority < 0 && s !== e.session);
        return undefined;
      }
      // the router delivers it (RFC 6121 §8.5.3.1), then says so: the copies follow in `message/delivered`
      if (copied && (sessions.resources(e.to.bare)?.size ?? 0) > 1) (e.stanza as CopiedElement)[COPY_ON_DELIVERY] = true;
      return undefined;
    }, -990);
    m.on('message/delivered', (e: StanzaEvent) => {
      const stanza = e.stanza as CopiedElement;
      if (stanza[COPY_ON_DELIVERY] !== true) return undefined;
      stanza[COPY_ON_DELIVERY] = false;
      const recipient = sessions.find(e.to.bare, e.to.resource);
      copy('received', stanza, e.to.bare, (s) => s !== recipient && s !== e.session);
      return undefined;
    });

    m.on('message/bare', (e: StanzaEvent) => {
      const copied = eligible(e.stanza, 'received', e.from.isBare, fromMuc(e));
      stripPrivate(e.stanza);
      // RFC 6121 §8.5.2.1.1 as the router applies it skips negative priorities: those get a copy
      if (copied) copy('received', e.stanza, e.to.bare, (s) => s.priority < 0 && s !== e.session);
      return undefined; // the router delivers it
    }, -990);
  },
});
