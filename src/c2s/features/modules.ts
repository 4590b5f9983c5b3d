// What modules add to negotiation through host events: features (`c2s/features`, e.g. in-band
// registration's <register/>), IQs before login (`c2s/unauthenticated-iq`, XEP-0077), and
// top-level elements of a bound stream no feature knows (`c2s/nonza`).
import type Element from 'ltx/lib/Element.js';
import { isStanza, type NegotiatingStream, type StreamFeature } from './feature.js';

/** The payload of the `c2s/features` host event: modules append feature XML for this stage. */
export interface StreamFeaturesEvent {
  stream: NegotiatingStream;
  stage: 'pre-auth' | 'post-auth';
  features: string[];
}

/** The payload of `c2s/unauthenticated-iq` (in-band registration before login, XEP-0077). */
export interface UnauthenticatedIqEvent {
  iq: Element;
  stream: NegotiatingStream;
  reply(stanza: Element): void;
}

/** The payload of `c2s/nonza`: a top-level element that is not a stanza (stream management...). */
export interface NonzaEvent {
  element: Element;
  stream: NegotiatingStream;
}

export const moduleFeatures: StreamFeature = {
  name: 'modules',
  advertise(stream) {
    if (stream.state !== 'connected' && stream.state !== 'authenticated') return '';
    const event: StreamFeaturesEvent = { stream, stage: stream.state === 'connected' ? 'pre-auth' : 'post-auth', features: [] };
    stream.server.hosts.get(stream.host)!.events.fire('c2s/features', event);
    return event.features.join('');
  },
  accepts: (element, stream) =>
    (stream.state === 'connected' && isStanza(element) && element.name === 'iq') || (stream.state === 'bound' && !isStanza(element)),
  handle(element, stream) {
    const events = stream.server.hosts.get(stream.host)!.events;
    if (stream.state === 'connected') {
      const event: UnauthenticatedIqEvent = { iq: element, stream, reply: (stanza) => stream.send(stanza) };
      if (events.fire('c2s/unauthenticated-iq', event) === undefined) stream.close('not-authorized', 'Authenticate first');
      return;
    }
    if (events.fire('c2s/nonza', { element, stream } satisfies NonzaEvent) === undefined) {
      stream.close('unsupported-stanza-type', `<${element.name}/> is not understood here`);
    }
  },
};
