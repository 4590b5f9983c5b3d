// RFC 6120 §7: resource binding, and the legacy session IQ (RFC 3921 §3) some clients still send.
import Element from 'ltx/lib/Element.js';
import { Jid, normalizeResource } from '../../core/jid.js';
import { StanzaError, errorReply, iqResult } from '../../core/stanza.js';
import { firstElement } from '../../core/router.js';
import type { NegotiatingStream, StreamFeature } from './feature.js';
import { randomToken } from '../../core/random.js';

export const NS_BIND = 'urn:ietf:params:xml:ns:xmpp-bind';
export const NS_SESSION = 'urn:ietf:params:xml:ns:xmpp-session';

export const bind: StreamFeature = {
  name: 'bind',
  advertise: (stream) => (stream.state === 'authenticated' ? `<bind xmlns='${NS_BIND}'/><session xmlns='${NS_SESSION}'><optional/></session>` : ''),
  accepts: (element, stream) => stream.state === 'authenticated' && element.name === 'iq' && (element.attrs.xmlns === undefined || element.attrs.xmlns === 'jabber:client'),
  handle(iq, stream) {
    const payload = firstElement(iq);
    if (iq.attrs.type === 'set' && payload?.name === 'bind' && payload.attrs.xmlns === NS_BIND) return bindResource(iq, payload, stream);
    if (iq.attrs.type === 'set' && payload?.name === 'session' && payload.attrs.xmlns === NS_SESSION) return stream.send(iqResult(iq));
    stream.close('not-authorized', 'Bind a resource first');
  },
};

function bindResource(iq: Element, payload: Element, stream: NegotiatingStream): void {
  const requested = payload.getChildText('resource');
  let resource: string | null;
  if (requested === null || requested.trim() === '') {
    resource = randomToken(9); // §7.6.2.1: server-generated
  } else {
    resource = normalizeResource(requested);
    if (resource === null) return stream.send(errorReply(iq, new StanzaError('bad-request', 'Invalid resource')));
  }
  const refused = bindAs(stream, resource);
  if (refused !== null) return stream.send(errorReply(iq, refused));
  const jid = stream.session!.jid;
  const result = new Element('bind', { xmlns: NS_BIND });
  result.c('jid').t(jid.toString());
  stream.send(iqResult(iq, result));
}

/**
 * Binds a session for `resource` on an authenticated stream (RFC 6120 §7, and XEP-0386 Bind2),
 * or says why not. RFC 6120 §7.6.2.2: an account at its limit of sessions gets
 * <resource-constraint/> (type wait); replacing one of its own resources (§7.7.2.2, conflict) is
 * not a new one.
 */
export function bindAs(stream: NegotiatingStream, resource: string): StanzaError | null {
  const jid = new Jid(stream.username, stream.host, resource);
  const limit = stream.settings.maxSessionsPerAccount;
  const bound = stream.server.sessions.resources(jid.bare);
  if (bound !== undefined && bound.size >= limit && !bound.has(resource)) {
    stream.server.log.warn({ jid: jid.bare, address: stream.remoteAddress, sessions: bound.size }, 'resource binding refused: too many sessions for the account');
    return new StanzaError('resource-constraint', `At most ${limit} sessions per account`);
  }
  stream.bindSession(jid);
  return null;
}
