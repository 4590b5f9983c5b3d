// Stanza helpers and the protocol's error values (RFC 6120 §4.9 stream errors, §8.3 stanza errors).
import Element from 'ltx/lib/Element.js';

export const NS_CLIENT = 'jabber:client';
export const NS_STREAMS = 'http://etherx.jabber.org/streams';
export const NS_STREAM_ERRORS = 'urn:ietf:params:xml:ns:xmpp-streams';
export const NS_STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';

export type StanzaKind = 'message' | 'presence' | 'iq';

export type StreamErrorCondition =
  | 'bad-format' | 'bad-namespace-prefix' | 'conflict' | 'connection-timeout' | 'host-gone' | 'host-unknown'
  | 'improper-addressing' | 'internal-server-error' | 'invalid-from' | 'invalid-namespace' | 'invalid-xml'
  | 'not-authorized' | 'not-well-formed' | 'policy-violation' | 'remote-connection-failed' | 'reset'
  | 'resource-constraint' | 'restricted-xml' | 'see-other-host' | 'system-shutdown' | 'undefined-condition'
  | 'unsupported-encoding' | 'unsupported-feature' | 'unsupported-stanza-type' | 'unsupported-version';

export type StanzaErrorCondition =
  | 'bad-request' | 'conflict' | 'feature-not-implemented' | 'forbidden' | 'gone' | 'internal-server-error'
  | 'item-not-found' | 'jid-malformed' | 'not-acceptable' | 'not-allowed' | 'not-authorized' | 'policy-violation'
  | 'recipient-unavailable' | 'redirect' | 'registration-required' | 'remote-server-not-found'
  | 'remote-server-timeout' | 'resource-constraint' | 'service-unavailable' | 'subscription-required'
  | 'undefined-condition' | 'unexpected-request';

export type StanzaErrorType = 'auth' | 'cancel' | 'continue' | 'modify' | 'wait';

// RFC 6120 §8.3.3: the error type that goes with each condition.
const DEFAULT_ERROR_TYPE: Record<StanzaErrorCondition, StanzaErrorType> = {
  'bad-request': 'modify', conflict: 'cancel', 'feature-not-implemented': 'cancel', forbidden: 'auth',
  gone: 'cancel', 'internal-server-error': 'cancel', 'item-not-found': 'cancel', 'jid-malformed': 'modify',
  'not-acceptable': 'modify', 'not-allowed': 'cancel', 'not-authorized': 'auth', 'policy-violation': 'modify',
  'recipient-unavailable': 'wait', redirect: 'modify', 'registration-required': 'auth',
  'remote-server-not-found': 'cancel', 'remote-server-timeout': 'wait', 'resource-constraint': 'wait',
  'service-unavailable': 'cancel', 'subscription-required': 'auth', 'undefined-condition': 'cancel',
  'unexpected-request': 'wait',
};

/** A stanza error as a value: thrown or returned by handlers, turned into an error reply by the core. */
export class StanzaError extends Error {
  readonly type: StanzaErrorType;
  constructor(
    readonly condition: StanzaErrorCondition,
    readonly text?: string,
    type?: StanzaErrorType,
    readonly appCondition?: Element,
  ) {
    super(text ?? condition);
    this.type = type ?? DEFAULT_ERROR_TYPE[condition];
  }

  toElement(by?: string): Element {
    const error = new Element('error', by ? { type: this.type, by } : { type: this.type });
    error.c(this.condition, { xmlns: NS_STANZAS });
    if (this.text) error.c('text', { xmlns: NS_STANZAS, 'xml:lang': 'en' }).t(this.text);
    if (this.appCondition) error.append(this.appCondition);
    return error;
  }
}

/** A result IQ for `iq`, from the address it was sent to. */
export function iqResult(iq: Element, payload?: Element | null): Element {
  const attrs: Record<string, string> = { type: 'result', id: iq.attrs.id ?? '' };
  if (iq.attrs.from) attrs.to = iq.attrs.from;
  if (iq.attrs.to) attrs.from = iq.attrs.to;
  const result = new Element('iq', attrs);
  if (payload) result.append(payload);
  return result;
}

/**
 * The error reply to `stanza` (RFC 6120 §8.3.1): addresses swapped, type='error', the original
 * payload kept so the sender can tell which stanza failed.
 */
export function errorReply(stanza: Element, error: StanzaError): Element {
  const attrs: Record<string, string> = { type: 'error' };
  if (stanza.attrs.id !== undefined) attrs.id = stanza.attrs.id;
  if (stanza.attrs.from) attrs.to = stanza.attrs.from;
  if (stanza.attrs.to) attrs.from = stanza.attrs.to;
  const reply = new Element(stanza.name, attrs);
  for (const child of stanza.children) {
    if (typeof child !== 'string' && child.name !== 'error') reply.children.push(child);
  }
  reply.children.push(error.toElement());
  return reply;
}

/** The stream error element for `condition` (RFC 6120 §4.9.2). */
export function streamErrorXml(condition: StreamErrorCondition, text?: string): string {
  const textXml = text
    ? `<text xmlns='${NS_STREAM_ERRORS}' xml:lang='en'>${text.replace(/[&<>]/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : '&gt;'))}</text>`
    : '';
  return `<stream:error><${condition} xmlns='${NS_STREAM_ERRORS}'/>${textXml}</stream:error>`;
}

/** `chat`, `normal`... with RFC 6121 §5.2.2's default of `normal` for messages. */
export function messageType(message: Element): string {
  return message.attrs.type ?? 'normal';
}
