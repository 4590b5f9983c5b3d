// XEP-0386 Bind 2, inline in a SASL2 <authenticate/> (./sasl2.ts): the server picks the
// resource from the client's <tag/>, and the features the client lists in <bind/> are enabled
// in the same round trip: stream management (XEP-0198 §3, answered inside <bound/>), client
// state (XEP-0352 <inactive/>), and what modules claim through `c2s/bind2-element` (carbons).
import crypto from 'node:crypto';
import type Element from 'ltx/lib/Element.js';
import type { StanzaError } from '../../core/stanza.js';
import type { SessionRef } from '../../core/ports.js';
import { NS_CSI } from '../csi.js';
import { NS_SM } from '../sm.js';
import { bindAs } from './bind.js';
import type { NegotiatingStream } from './feature.js';
import { enable } from './sm.js';
import { randomToken } from '../../core/random.js';

export const NS_BIND2 = 'urn:xmpp:bind:0';

/** `c2s/bind2-inline`: modules list the namespaces they can enable inline (`<feature var=.../>`). */
export interface Bind2InlineEvent {
  stream: NegotiatingStream;
  features: string[];
}

/**
 * `c2s/bind2-element`: a child of the client's <bind/> that c2s does not know. The module whose
 * it is acts on the new session, puts what it answers (if anything) in `results` for <bound/>,
 * and returns true.
 */
export interface Bind2ElementEvent {
  element: Element;
  session: SessionRef;
  stream: NegotiatingStream;
  results: string[];
}

/** The <bind/> of SASL2's <inline/>. */
export function bind2Inline(stream: NegotiatingStream): string {
  const event: Bind2InlineEvent = { stream, features: [NS_SM, NS_CSI] };
  stream.server.hosts.get(stream.host)!.events.fire('c2s/bind2-inline', event);
  return `<bind xmlns='${NS_BIND2}'><inline>${event.features.map((ns) => `<feature var='${ns}'/>`).join('')}</inline></bind>`;
}

/** Longest tag kept: it names a client ("Conversations"), the rest of the resource is ours. */
const MAX_TAG = 64;

/**
 * XEP-0386 §2.3: the resource is the client's tag and a suffix of ours. With a user-agent id
 * (XEP-0388 §2.3) the suffix is derived from it, so the same installation gets the same
 * resource at each login and replaces its own stale session rather than adding one; without,
 * it is random.
 */
export function bind2Resource(tag: string | null, account: string, userAgentId: string | null): string {
  const suffix =
    userAgentId === null
      ? randomToken(6)
      : crypto.createHash('sha256').update(`${account}\0${userAgentId}`).digest('base64url').slice(0, 8);
  const cleaned = (tag ?? '').replace(/[\s/]+/g, '').slice(0, MAX_TAG);
  return cleaned === '' ? suffix : `${cleaned}.${suffix}`;
}

/** Binds a session as <bind/> asks; returns the <bound/> to put in <success/>, or why not. */
export function bind2(bind: Element, stream: NegotiatingStream, userAgentId: string | null): { xml: string } | { refused: StanzaError } {
  const resource = bind2Resource(bind.getChildText('tag'), `${stream.username}@${stream.host}`, userAgentId);
  const refused = bindAs(stream, resource);
  if (refused !== null) return { refused };
  const session = stream.session!;
  const events = stream.server.hosts.get(stream.host)!.events;
  const results: string[] = [];
  for (const child of bind.getChildElements()) {
    const xmlns = child.attrs.xmlns;
    if (child.name === 'tag' && (xmlns === undefined || xmlns === NS_BIND2)) continue;
    if (xmlns === NS_SM && child.name === 'enable') results.push(enable(child, stream));
    else if (xmlns === NS_CSI && (child.name === 'inactive' || child.name === 'active')) session.setInactive(child.name === 'inactive');
    else if (events.fire('c2s/bind2-element', { element: child, session, stream, results } satisfies Bind2ElementEvent) === undefined) {
      stream.server.log.debug({ jid: session.jid.toString(), element: child.name, xmlns }, 'Bind2: inline request nobody understands, ignored');
    }
  }
  return { xml: `<bound xmlns='${NS_BIND2}'>${results.join('')}</bound>` };
}
