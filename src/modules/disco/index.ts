// XEP-0030: Service Discovery. The host's identities and features come from the modules that
// registered them (m.feature / m.identity), its items from m.discoItem, so what the server
// claims is what is loaded. An account's bare JID answers for the account (XEP-0030 §3.1),
// with what other modules add through the DiscoService (PEP's pubsub/pep identity and nodes).
// The server's own capabilities (XEP-0115 §6.3) are a stream feature.
import Element from 'ltx/lib/Element.js';
import { z } from 'zod';
import type { Jid } from '../../core/jid.js';
import { defineModule } from '../../core/module.js';
import type { DiscoIdentity } from '../../core/host.js';
import { StanzaError } from '../../core/stanza.js';
import { capsHash } from '../caps/hash.js';

const NS_INFO = 'http://jabber.org/protocol/disco#info';
const NS_ITEMS = 'http://jabber.org/protocol/disco#items';
const NS_CAPS = 'http://jabber.org/protocol/caps';
/** XEP-0115 §4: the node names the software. */
const CAPS_NODE = 'https://github.com/xmppd/xmppd';

/** What other modules on the host add to the accounts' discovery (XEP-0030 §3.1). */
declare module '../../core/module.js' {
  interface Services {
    disco: DiscoService;
  }
}

/** A disco#info or disco#items request for a node another module made (XEP-0050 commands). */
export interface DiscoNodeEvent {
  node: string;
  /** The bare JID asking. */
  from: string;
}

declare module '../../core/event-map.js' {
  interface EventMap {
    'disco/info-node': DiscoNodeEvent;
    'disco/items-node': DiscoNodeEvent;
  }
}

export interface DiscoService {
  /** An identity every account's bare JID shows (e.g. pubsub/pep, XEP-0163 §5). */
  accountIdentity(identity: DiscoIdentity): void;
  /** Items an account's bare JID lists to `from` (e.g. its PEP nodes to its owner). */
  accountItems(provider: (account: Jid, from: Jid) => Promise<Element[]>): void;
  /** Data forms added to the server's disco#info (XEP-0128), e.g. contact addresses (XEP-0157). */
  serverForm(form: () => Element): void;
}

/** XEP-0157 §2: the address kinds of the serverinfo form, as `<kind>-addresses` fields. */
const CONTACT_KINDS = ['abuse', 'admin', 'feedback', 'sales', 'security', 'status', 'support'] as const;
const NS_SERVERINFO = 'http://jabber.org/network/serverinfo';
const addresses = z.array(z.string().min(1)).default([]);

export default defineModule({
  name: 'disco',
  description: 'Service discovery: which features and services this server offers',
  implements: [
    { spec: 'XEP-0030', version: '2.5rc3', status: 'complete' },
    { spec: 'XEP-0115', version: '1.6.0', status: 'complete', note: "the server's own capabilities as a stream feature" },
    { spec: 'XEP-0128', version: '1.0', status: 'complete', note: 'data forms in disco#info (XEP-0157)' },
    { spec: 'XEP-0157', version: '1.1.1', status: 'complete', note: 'addresses from modules.disco.contact' },
  ],
  options: z.strictObject({
    /** XEP-0157 contact addresses (mailto:, xmpp:, https: URIs), shown in the server's disco#info. */
    contact: z.strictObject({
      abuse: addresses, admin: addresses, feedback: addresses, sales: addresses, security: addresses, status: addresses, support: addresses,
    }).prefault({}),
  }),
  setup(m) {
    m.feature(NS_INFO);
    m.feature(NS_ITEMS);
    const accountIdentities: DiscoIdentity[] = [{ category: 'account', type: 'registered' }];
    const accountItemProviders: Array<(account: Jid, from: Jid) => Promise<Element[]>> = [];
    const serverForms: Array<() => Element> = [];
    m.provide('disco', {
      accountIdentity: (identity) => void accountIdentities.push(identity),
      accountItems: (provider) => void accountItemProviders.push(provider),
      serverForm: (form) => void serverForms.push(form),
    } satisfies DiscoService);

    const identityElement = (identity: DiscoIdentity) => {
      const attrs: Record<string, string> = { category: identity.category, type: identity.type };
      if (identity.name) attrs.name = identity.name;
      return new Element('identity', attrs);
    };

    function serverInfo(node?: string): Element {
      const query = new Element('query', node === undefined ? { xmlns: NS_INFO } : { xmlns: NS_INFO, node });
      for (const identity of m.host.identities) query.append(identityElement(identity));
      for (const feature of [...m.host.features].sort()) query.c('feature', { var: feature });
      for (const form of serverForms) query.append(form());
      return query;
    }
    // XEP-0157: where to reach the people running the server
    const contact = m.options.contact;
    if (CONTACT_KINDS.some((kind) => contact[kind].length > 0)) {
      serverForms.push(() => {
        const form = new Element('x', { xmlns: 'jabber:x:data', type: 'result' });
        form.c('field', { var: 'FORM_TYPE', type: 'hidden' }).c('value').t(NS_SERVERINFO);
        for (const kind of CONTACT_KINDS) {
          if (contact[kind].length === 0) continue;
          const field = form.c('field', { var: `${kind}-addresses`, type: 'list-multi' });
          for (const address of contact[kind]) field.c('value').t(address);
        }
        return form;
      });
    }
    // computed once per set of features, not per stream (every login offers it two or three times)
    let cachedVer: { featuresVersion: number; ver: string } | undefined;
    const serverVer = () => {
      if (cachedVer?.featuresVersion !== m.host.featuresVersion) cachedVer = { featuresVersion: m.host.featuresVersion, ver: capsHash(serverInfo(), 'sha-1')! };
      return cachedVer.ver;
    };

    // XEP-0115 §6.3: the server's capabilities, so clients can skip asking it
    m.on('c2s/features', (e: { stage: string; features: string[] }) => {
      e.features.push(`<c xmlns='${NS_CAPS}' hash='sha-1' node='${CAPS_NODE}' ver='${serverVer()}'/>`);
    });

    // a node is answered by the module that owns it (e.g. adhoc's command nodes, XEP-0050 §2.3)
    m.iq('get', NS_INFO, ({ payload, from }) => {
      const node = payload.attrs.node;
      if (node === undefined) return serverInfo();
      // XEP-0115 §6.2: the caps node answers like the server itself
      if (node === `${CAPS_NODE}#${serverVer()}`) return serverInfo(node);
      // other nodes belong to the modules that made them (XEP-0050 commands)
      const answer = m.host.events.fire('disco/info-node', { node, from: from.bare });
      if (answer instanceof Element) return answer;
      throw new StanzaError('item-not-found', `No node ${node}`);
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
    m.iq('get', NS_INFO, async ({ to, from, payload }) => {
      if (!(await m.server.accounts.exists(to.domain, to.local))) throw new StanzaError('service-unavailable');
      if (payload.attrs.node !== undefined) throw new StanzaError('item-not-found', `No node ${payload.attrs.node}`);
      const query = new Element('query', { xmlns: NS_INFO });
      for (const identity of accountIdentities) query.append(identityElement(identity));
      query.c('feature', { var: NS_INFO });
      if (from.bare === to.bare) {
        query.c('feature', { var: NS_ITEMS });
        for (const feature of [...m.host.accountFeatures].sort()) query.c('feature', { var: feature });
      }
      return query;
    }, 'account');
    m.iq('get', NS_ITEMS, async ({ to, from, payload }) => {
      if (from.bare !== to.bare && !(await m.server.accounts.exists(to.domain, to.local))) throw new StanzaError('service-unavailable');
      const query = new Element('query', { xmlns: NS_ITEMS });
      if (payload.attrs.node !== undefined) return query;
      for (const provider of accountItemProviders) for (const item of await provider(to, from)) query.append(item);
      return query;
    }, 'account');
  },
});
