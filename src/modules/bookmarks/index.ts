// XEP-0411 Bookmarks Conversion: one set of bookmarks, whichever way a client keeps them. Modern
// clients use PEP (XEP-0402, `urn:xmpp:bookmarks:1`, one item per room); older ones private XML
// storage (XEP-0048 in XEP-0049, `storage:bookmarks`). PEP is the truth: an old client's
// private XML read is made from the PEP items, and its write becomes PEP publishes and
// retractions, so the user's modern devices are notified as if one of them had done it.
import Element from 'ltx/lib/Element.js';
import { defineModule } from '../../core/module.js';
import type { PrivateGetEvent, PrivateSetEvent } from '../private/index.js';
import { parseElement } from '../../xml/parse.js';

const NS_BOOKMARKS = 'urn:xmpp:bookmarks:1';
const NS_LEGACY = 'storage:bookmarks';
const NS_PUBSUB = 'http://jabber.org/protocol/pubsub';
/** XEP-0402 §3: how a bookmarks node is configured. */
const NODE_OPTIONS: Record<string, string> = {
  'pubsub#persist_items': 'true', 'pubsub#max_items': 'max', 'pubsub#send_last_published_item': 'never', 'pubsub#access_model': 'whitelist',
};

const truthy = (value: string | undefined) => value === 'true' || value === '1';

/** A XEP-0048 <conference/> from a XEP-0402 item. */
function legacyConference(jid: string, conference: Element): Element {
  const attrs: Record<string, string> = { jid, autojoin: truthy(conference.attrs.autojoin) ? 'true' : 'false' };
  if (conference.attrs.name) attrs.name = conference.attrs.name;
  const legacy = new Element('conference', attrs);
  const nick = conference.getChildText('nick');
  if (nick) legacy.c('nick').t(nick);
  const password = conference.getChildText('password');
  if (password) legacy.c('password').t(password);
  return legacy;
}

/** A XEP-0402 <conference/> payload from a XEP-0048 one. */
function modernConference(legacy: Element): Element {
  const attrs: Record<string, string> = { xmlns: NS_BOOKMARKS, autojoin: truthy(legacy.attrs.autojoin) ? 'true' : 'false' };
  if (legacy.attrs.name) attrs.name = legacy.attrs.name;
  const conference = new Element('conference', attrs);
  const nick = legacy.getChildText('nick');
  if (nick) conference.c('nick').t(nick);
  const password = legacy.getChildText('password');
  if (password) conference.c('password').t(password);
  return conference;
}

export default defineModule({
  name: 'bookmarks',
  description: 'Bookmarks kept in sync between PEP (XEP-0402) and private XML storage (XEP-0048)',
  implements: [{ spec: 'XEP-0411', version: '1.0.0', status: 'complete', note: '<url/> bookmarks of private XML are not carried over (XEP-0402 has none)' }],
  dependencies: ['pubsub', 'private'],
  setup(m) {
    const { engine, pep } = m.use('pubsub');
    const domain = m.host.domain;
    // XEP-0402 §6 / XEP-0411 §3: tell clients the server converts
    m.accountFeature(`${NS_BOOKMARKS}#compat`);
    m.accountFeature('urn:xmpp:bookmarks-conversion:0');

    async function read(username: string): Promise<Element | undefined> {
      const service = pep(`${username}@${domain}`);
      const node = await engine.node(service, NS_BOOKMARKS);
      if (node === undefined) return undefined; // nothing on PEP yet: what private XML has, if anything
      const result = await engine.handle(service, 'get', new Element('pubsub', { xmlns: NS_PUBSUB }).c('items', { node: NS_BOOKMARKS }).up(), service.jid);
      const storage = new Element('storage', { xmlns: NS_LEGACY });
      for (const item of result?.getChild('items')?.getChildren('item') ?? []) {
        const conference = item.getChild('conference', NS_BOOKMARKS);
        if (item.attrs.id !== undefined && conference !== undefined) storage.append(legacyConference(item.attrs.id, conference));
      }
      return storage;
    }

    async function write(username: string, storage: Element): Promise<void> {
      const service = pep(`${username}@${domain}`);
      const wanted = new Map<string, Element>();
      for (const conference of storage.getChildren('conference')) if (conference.attrs.jid) wanted.set(conference.attrs.jid, conference);
      const existing = await engine.node(service, NS_BOOKMARKS);
      const current = existing === undefined ? [] : (await engine.handle(service, 'get', new Element('pubsub', { xmlns: NS_PUBSUB }).c('items', { node: NS_BOOKMARKS }).up(), service.jid))
        ?.getChild('items')?.getChildren('item') ?? [];
      const currentById = new Map(current.map((item) => [item.attrs.id ?? '', item]));
      for (const [jid, legacy] of wanted) {
        const payload = modernConference(legacy);
        const before = currentById.get(jid)?.getChild('conference', NS_BOOKMARKS);
        if (before !== undefined && before.toString() === parseElement(payload.toString()).toString()) continue; // unchanged: no notification
        const request = new Element('pubsub', { xmlns: NS_PUBSUB });
        request.c('publish', { node: NS_BOOKMARKS }).c('item', { id: jid }).append(payload);
        if (existing === undefined) {
          const form = request.c('publish-options').c('x', { xmlns: 'jabber:x:data', type: 'submit' });
          form.c('field', { var: 'FORM_TYPE', type: 'hidden' }).c('value').t('http://jabber.org/protocol/pubsub#publish-options');
          for (const [name, value] of Object.entries(NODE_OPTIONS)) form.c('field', { var: name }).c('value').t(value);
        }
        await engine.handle(service, 'set', request, service.jid);
      }
      for (const id of currentById.keys()) {
        if (wanted.has(id)) continue;
        const request = new Element('pubsub', { xmlns: NS_PUBSUB });
        request.c('retract', { node: NS_BOOKMARKS, notify: 'true' }).c('item', { id });
        await engine.handle(service, 'set', request, service.jid);
      }
    }

    m.on('private/get', (e: PrivateGetEvent) => (e.namespace === NS_LEGACY && e.name === 'storage' ? read(e.username) : undefined));
    m.on('private/set', (e: PrivateSetEvent) => (e.element.is('storage', NS_LEGACY) ? write(e.username, e.element) : undefined));
  },
});
