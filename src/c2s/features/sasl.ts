// RFC 6120 §6: SASL, with the channel binding types announced (XEP-0440). The exchange itself
// is ../sasl/negotiation.ts; one per stream, kept between <auth/> and its <response/>s.
import { SaslNegotiation, offeredMechanisms } from '../sasl/negotiation.js';
import type { NegotiatingStream, StreamFeature } from './feature.js';
import { continuedBySasl2 } from './sasl2.js';

const NS_SASL = 'urn:ietf:params:xml:ns:xmpp-sasl';
const NS_SASL_CB = 'urn:xmpp:sasl-cb:0';

const exchanges = new WeakMap<NegotiatingStream, SaslNegotiation>();

export const sasl: StreamFeature = {
  name: 'sasl',
  // answers <encryption-required/> itself, rather than the stream closing
  beforeTls: true,
  advertise(stream) {
    if (stream.state !== 'connected' || (!stream.secure && stream.settings.requireEncryption)) return '';
    const binding = stream.channelBinding();
    let xml = `<mechanisms xmlns='${NS_SASL}'>${offeredMechanisms(stream.secure, binding, stream.server.accounts.offeredHashes(stream.host)).map((m) => `<mechanism>${m}</mechanism>`).join('')}</mechanisms>`;
    // XEP-0440: which channel binding types the -PLUS mechanisms can use here
    if (binding !== null && binding.types.length > 0) {
      xml += `<sasl-channel-binding xmlns='${NS_SASL_CB}'>${binding.types.map((t) => `<channel-binding type='${t}'/>`).join('')}</sasl-channel-binding>`;
    }
    return xml;
  },
  accepts: (element, stream) => stream.state !== 'bound' && element.attrs.xmlns === NS_SASL,
  handle(element, stream) {
    // XEP-0388 §3.8: nor after SASL2's <continue/> (a XEP-0480 task under way or failed)
    if (stream.state !== 'connected' || continuedBySasl2(stream)) return stream.close('policy-violation', 'Already authenticated');
    if (!stream.secure && stream.settings.requireEncryption) {
      // RFC 6120 §6.4.1 / our default: no authentication in the clear
      return stream.write(`<failure xmlns='${NS_SASL}'><encryption-required/></failure>`);
    }
    let exchange = exchanges.get(stream);
    if (exchange === undefined) {
      exchange = new SaslNegotiation(stream.server, stream.authThrottle, stream.host, stream.remoteAddress, stream.secure, stream.channelBinding());
      exchanges.set(stream, exchange);
    }
    exchange.handle(element).then(
      (outcome) => {
        if (stream.state === 'closed') return;
        if (outcome.username === undefined && outcome.done && outcome.reply.startsWith('<failure')) stream.server.metrics.authFailures++;
        stream.write(outcome.reply);
        if (outcome.done) exchanges.delete(stream);
        if (outcome.username !== undefined) stream.authenticated(outcome.username);
      },
      (err: unknown) => {
        stream.server.log.error({ err }, 'SASL negotiation failed unexpectedly');
        stream.write(`<failure xmlns='${NS_SASL}'><temporary-auth-failure/></failure>`);
        exchanges.delete(stream);
      },
    );
  },
};
