// XEP-0478: what the server enforces, so a client can avoid being disconnected for it.
import type { StreamFeature } from './feature.js';

const NS_LIMITS = 'urn:xmpp:stream-limits:0';

export const streamLimits: StreamFeature = {
  name: 'limits',
  advertise(stream) {
    if (stream.state !== 'connected' && stream.state !== 'authenticated') return '';
    const { maxStanzaSize, pingInterval, pingTimeout } = stream.settings;
    const idle = pingInterval !== null ? `<idle-seconds>${pingInterval + pingTimeout}</idle-seconds>` : '';
    return `<limits xmlns='${NS_LIMITS}'><max-bytes>${maxStanzaSize}</max-bytes>${idle}</limits>`;
  },
  accepts: () => false,
  handle: () => undefined,
};
