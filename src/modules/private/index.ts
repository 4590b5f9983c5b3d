// XEP-0049 Private XML Storage (jabber:iq:private): a client keeps small pieces of XML on the
// server, only for the same account's clients to read back — older clients keep their
// bookmarks (XEP-0048) and preferences there. One element per name and namespace per account.
import Element from 'ltx/lib/Element.js';
import { defineModule } from '../../core/module.js';
import { StanzaError } from '../../core/stanza.js';
import { parseElement } from '../../xml/parse.js';
import { serialize } from '../../xml/serialize.js';
import { PrivateStore, privateMigrations } from './store.js';

export const NS_PRIVATE = 'jabber:iq:private';

/**
 * `private/get` and `private/set`: another module may keep one kind of private XML elsewhere
 * (bookmarks on PEP, XEP-0411) by answering for it with a promise; otherwise the store does.
 */
declare module '../../core/event-map.js' {
  interface EventMap {
    'private/get': PrivateGetEvent;
    'private/set': PrivateSetEvent;
  }
}

export interface PrivateGetEvent {
  username: string;
  namespace: string;
  name: string;
}
export interface PrivateSetEvent {
  username: string;
  element: Element;
}
/** Namespaces that cannot hold private data: a stored element must be in a namespace of its own. */
const RESERVED = new Set(['', 'jabber:client', 'jabber:server', NS_PRIVATE]);

/** The elements a query carries, each checked to be in a namespace of its own (XEP-0049 §2.3). */
function storedElements(query: Element): Element[] {
  const elements = query.getChildElements();
  for (const element of elements) {
    const namespace = element.attrs.xmlns ?? '';
    if (RESERVED.has(namespace)) {
      throw new StanzaError('not-acceptable', namespace === '' ? 'The element needs a namespace of its own' : `${namespace} is reserved`);
    }
  }
  return elements;
}

export default defineModule({
  name: 'private',
  description: 'Private XML storage for a user\'s own clients (bookmarks of older clients)',
  implements: [{ spec: 'XEP-0049', version: '1.2', status: 'complete' }],
  migrations: privateMigrations,
  removeAccountData: async ({ db, host, username }) => void (await db('private_storage').where({ host, username }).delete()),
  setup(m) {
    const store = new PrivateStore(m.db, m.host.domain);

    // XEP-0049 §2.3: only the account's own clients, addressing their own account (or no one)
    const ownerOnly = (from: { bare: string }, to: { bare: string }) => {
      if (from.bare !== to.bare) throw new StanzaError('forbidden', 'Private XML belongs to its account alone');
    };

    m.iq('get', NS_PRIVATE, async ({ from, to, payload }) => {
      ownerOnly(from, to);
      const elements = storedElements(payload);
      // §2.3: a get names exactly one element ("Bad Format" without one)
      if (elements.length !== 1) throw new StanzaError('bad-request', 'Ask for exactly one element');
      const asked = elements[0]!;
      const elsewhere = m.host.events.fire('private/get', { username: to.local, namespace: asked.attrs.xmlns!, name: asked.name });
      const kept = elsewhere instanceof Promise ? ((await elsewhere) as Element | undefined) : undefined;
      const query = new Element('query', { xmlns: NS_PRIVATE });
      if (kept !== undefined) {
        query.append(kept);
        return query;
      }
      const data = await store.get(to.local, asked.attrs.xmlns!, asked.name);
      // nothing stored yet: the empty element
      query.append(data === undefined ? new Element(asked.name, { xmlns: asked.attrs.xmlns }) : parseElement(data));
      return query;
    }, 'account');

    m.iq('set', NS_PRIVATE, async ({ from, to, payload }) => {
      ownerOnly(from, to);
      const elements = storedElements(payload);
      // §2.3: at least one element in a namespace of its own, else not-acceptable
      if (elements.length === 0) throw new StanzaError('not-acceptable', 'Nothing to store');
      const here: Element[] = [];
      for (const element of elements) {
        const elsewhere = m.host.events.fire('private/set', { username: to.local, element });
        if (elsewhere instanceof Promise) await elsewhere;
        else here.push(element);
      }
      if (here.length === 0) return;
      await store.set(to.local, here.map((element) => ({ namespace: element.attrs.xmlns!, name: element.name, data: serialize(element) })));
    }, 'account');
  },
});
