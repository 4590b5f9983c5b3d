// RFC 6120 §5: STARTTLS, offered on plain TCP before anything else.
import type { StreamFeature } from './feature.js';

const NS_TLS = 'urn:ietf:params:xml:ns:xmpp-tls';

export const starttls: StreamFeature = {
  name: 'starttls',
  beforeTls: true,
  advertise(stream) {
    if (stream.state !== 'connected' || stream.secure || stream.transport.startTls === undefined) return '';
    return `<starttls xmlns='${NS_TLS}'>${stream.settings.requireEncryption ? '<required/>' : ''}</starttls>`;
  },
  accepts: (element, stream) => stream.state !== 'bound' && element.name === 'starttls' && element.attrs.xmlns === NS_TLS,
  handle(_element, stream) {
    if (stream.transport.startTls === undefined) return stream.close('unsupported-feature', 'No STARTTLS over WebSocket: connect with wss://');
    if (stream.secure || stream.state !== 'connected') return stream.close('policy-violation', 'TLS is already negotiated');
    stream.upgradeToTls();
  },
};
