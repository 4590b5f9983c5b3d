// XEP-0092: Software Version. Name and version always; the operating system only if the admin
// opts in, since it helps attackers more than users.
import os from 'node:os';
import Element from 'ltx/lib/Element.js';
import { z } from 'zod';
import { defineModule } from '../../core/module.js';

const NS_VERSION = 'jabber:iq:version';

export default defineModule({
  name: 'version',
  description: 'Tells clients which server software this is',
  implements: [{ spec: 'XEP-0092', version: '1.1', status: 'complete' }],
  options: z.strictObject({
    /** Include the operating system in the answer. */
    show_os: z.boolean().default(false),
  }),
  setup(m) {
    m.feature(NS_VERSION);
    m.iq('get', NS_VERSION, () => {
      const query = new Element('query', { xmlns: NS_VERSION });
      query.c('name').t('xmppd');
      query.c('version').t(m.server.settings.version);
      if (m.options.show_os) query.c('os').t(`${os.type()} ${os.release()}`);
      return query;
    });
  },
});
