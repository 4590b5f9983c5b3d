// XEP-0199: XMPP Ping. The server answers pings addressed to it (or to the sender's own account,
// which is what clients without a 'to' mean); pinging idle clients is done by the c2s layer.
import { defineModule } from '../../core/module.js';

export default defineModule({
  name: 'ping',
  description: 'Answers XMPP pings sent to the server',
  implements: [{ spec: 'XEP-0199', version: '2.0.1', status: 'complete', note: 'server answers; optional server-to-client pings (c2s.ping_interval)' }],
  setup(m) {
    m.feature('urn:xmpp:ping');
    m.iq('get', 'urn:xmpp:ping', () => null, 'both');
  },
});
