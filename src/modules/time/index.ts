// XEP-0202: Entity Time. The server's clock in UTC; we always report UTC (+00:00) as our zone.
import Element from 'ltx/lib/Element.js';
import { defineModule } from '../../core/module.js';

const NS_TIME = 'urn:xmpp:time';

export default defineModule({
  name: 'time',
  description: "Tells clients the server's time",
  implements: [{ spec: 'XEP-0202', version: '2.0', status: 'complete' }],
  setup(m) {
    m.feature(NS_TIME);
    m.iq('get', NS_TIME, () => {
      const time = new Element('time', { xmlns: NS_TIME });
      time.c('tzo').t('+00:00');
      // XEP-0082 DateTime profile, whole seconds in UTC
      time.c('utc').t(new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'));
      return time;
    });
  },
});
