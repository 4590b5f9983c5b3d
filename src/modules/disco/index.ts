// XEP-0030: Service Discovery. The host's identities and features come from the modules that
// registered them (m.feature / m.identity), its items from m.discoItem, so what the server
// claims is what is loaded. An account's bare JID answers for the account (XEP-0030 §3.1).
import Element from 'ltx/lib/Element.js';
import { defineModule } from '../../core/module.js';
import { StanzaError } from '../../core/stanza.js';

const NS_INFO = 'http://jabber.org/protocol/disco#info';
const NS_ITEMS = 'http://jabber.org/protocol/disco#items';

export default defineModule({
  name: 'disco',
  description: 'Service discovery: which features and services this server offers',
  implements: [{ spec: 'XEP-0030', version: '2.5rc3', status: 'complete' }],
  setup(m) {
    m.feature(NS_INFO);
    m.feature(NS_ITEMS);

    // a node is answered by the module that owns it (e.g. adhoc's command nodes, XEP-0050 §2.3)
    m.iq('get', NS_INFO, ({ payload, from }) => {
      const node = payload.attrs.node;
      if (node !== undefined) {
        const answer = m.host.events.fire('disco/info-node', { node, from: from.bare });
        if (answer instanceof Element) return answer;
        throw new StanzaError('item-not-found', `No node ${node}`);
      }
      const query = new Element('query', { xmlns: NS_INFO });
      for (const identity of m.host.identities) {
        const attrs: Record<string, string> = { category: identity.category, type: identity.type };
        if (identity.name) attrs.name = identity.name;
        query.c('identity', attrs);
      }
      for (const feature of [...m.host.features].sort()) query.c('feature', { var: feature });
      return query;
    }, 'host');

    m.iq('get', NS_ITEMS, ({ payload, from }) => {
      const node = payload.attrs.node;
      if (node !== undefined) {
        const answer = m.host.events.fire('disco/items-node', { node, from: from.bare });
        if (answer instanceof Element) return answer;
        throw new StanzaError('item-not-found');
      }
      const query = new Element('query', { xmlns: NS_ITEMS });
      for (const item of m.host.items) query.c('item', item.name ? { jid: item.jid, name: item.name } : { jid: item.jid });
      return query;
    }, 'host');

    // XEP-0030 §3.1 / RFC 6121 §8.5.2: the account itself answers with the 'account/registered' identity.
    m.iq('get', NS_INFO, async ({ to, from }) => {
      if (!(await m.server.accounts.exists(to.domain, to.local))) throw new StanzaError('service-unavailable');
      const query = new Element('query', { xmlns: NS_INFO });
      query.c('identity', { category: 'account', type: 'registered' });
      query.c('feature', { var: NS_INFO });
      if (from.bare === to.bare) {
        query.c('feature', { var: NS_ITEMS });
        for (const feature of [...m.host.accountFeatures].sort()) query.c('feature', { var: feature });
      }
      return query;
    }, 'account');
    m.iq('get', NS_ITEMS, async ({ to, from }) => {
      if (from.bare !== to.bare && !(await m.server.accounts.exists(to.domain, to.local))) throw new StanzaError('service-unavailable');
      return new Element('query', { xmlns: NS_ITEMS });
    }, 'account');
  },
});
