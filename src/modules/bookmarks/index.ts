// One set of bookmarks, whichever way a client keeps them. Modern clients use PEP (XEP-0402,
// `urn:xmpp:bookmarks:1`, one item per room); older ones keep XEP-0048's single <storage/>
// element in private XML storage (XEP-0049) or on the PEP node `storage:bookmarks` (Gajim,
// unless it sees #compat-pep). XEP-0402 is the truth:
// - a private XML read is made from its items (XEP-0402 §5.3 #compat), and a private XML write
//   or a publish to `storage:bookmarks` (XEP-0411, #compat-pep) becomes its publishes and
//   retractions, so the user's modern devices are notified as if one of them had done it;
// - when it changes, `storage:bookmarks` on PEP is published again, if an old client keeps it.
// The server's own publishes are made from the account's bare JID, a client's from its full JID:
// that is how a change that came from here is told from one to carry over.
import Element from 'ltx/lib/Element.js';
import { defineModule } from '../../core/module.js';
import type { PrivateGetEvent, PrivateSetEvent } from '../private/index.js';
import type { PepPublishedEvent, PepRetractedEvent } from '../pubsub/index.js';
import { SerialQueue } from '../../core/serial.js';
import { parseElement } from '../../xml/parse.js';

const NS_BOOKMARKS = 'urn:xmpp:bookmarks:1';
const NS_LEGACY = 'storage:bookmarks';
const NS_PUBSUB = 'http://jabber.org/protocol/pubsub';
/** XEP-0048 on PEP (XEP-0223): the one item holding the whole <storage/>. */
const LEGACY_ITEM = 'current';
/** XEP-0402 §3: how a bookmarks node is configured. */
const NODE_OPTIONS: Record<string, string> = {
  'pubsub#persist_items': 'true', 'pubsub#max_items': 'max', 'pubsub#send_last_published_item': 'never', 'pubsub#access_model': 'whitelist',
};

const truthy = (value: string | undefined) => value === 'true' || value === '1';
/** The account part of a PEP owner (a bare JID of this host). */
const usernameOf = (owner: string) => owner.slice(0, owner.lastIndexOf('@'));

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
  implements: [{ spec: 'XEP-0411', version: '1.1.0', status: 'complete', note: 'through XEP-0402 (#compat and #compat-pep); <url/> bookmarks are not carried over (XEP-0402 has none)' }],
  dependencies: ['pubsub', 'private'],
  setup(m) {
    const { engine, pep } = m.use('pubsub');
    const domain = m.host.domain;
    // XEP-0402 §6 / XEP-0411 §3: tell clients the server converts
    m.accountFeature(`${NS_BOOKMARKS}#compat`);
    m.accountFeature(`${NS_BOOKMARKS}#compat-pep`);
    m.accountFeature('urn:xmpp:bookmarks-conversion:0');
    /** Conversions of one account, one at a time, in the order the changes came. */
    const conversions = new SerialQueue();

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

    /** Publishes XEP-0402's bookmarks again as XEP-0048's <storage/> on PEP, if an old client keeps them there. */
    async function mirrorToLegacyPep(username: string): Promise<void> {
      const service = pep(`${username}@${domain}`);
      if ((await engine.node(service, NS_LEGACY)) === undefined) return; // no client keeps them there
      const storage = (await read(username)) ?? new Element('storage', { xmlns: NS_LEGACY });
      const current = (await engine.handle(service, 'get', new Element('pubsub', { xmlns: NS_PUBSUB }).c('items', { node: NS_LEGACY }).up(), service.jid))
        ?.getChild('items')?.getChildren('item').find((item) => item.attrs.id === LEGACY_ITEM)?.getChild('storage', NS_LEGACY);
      if (current !== undefined && current.toString() === parseElement(storage.toString()).toString()) return; // unchanged: no notification
      const request = new Element('pubsub', { xmlns: NS_PUBSUB });
      request.c('publish', { node: NS_LEGACY }).c('item', { id: LEGACY_ITEM }).append(storage);
      await engine.handle(service, 'set', request, service.jid);
    }

    const convert = (username: string, job: () => Promise<void>, what: string): void => {
      void conversions.run(username, job).catch((err: unknown) => m.log.error({ err, account: `${username}@${domain}` }, `converting bookmarks failed: ${what}`));
    };

    m.on('private/get', (e: PrivateGetEvent) => (e.namespace === NS_LEGACY && e.name === 'storage' ? read(e.username) : undefined));
    m.on('private/set', (e: PrivateSetEvent) => {
      if (!e.element.is('storage', NS_LEGACY)) return undefined;
      return conversions.run(e.username, async () => {
        await write(e.username, e.element);
        await mirrorToLegacyPep(e.username);
      });
    });
    m.on('pep/published', (e: PepPublishedEvent) => {
      if (e.item.publisher === e.owner || (e.node !== NS_LEGACY && e.node !== NS_BOOKMARKS)) return; // ours, or not bookmarks
      const username = usernameOf(e.owner);
      if (e.node === NS_BOOKMARKS) return convert(username, () => mirrorToLegacyPep(username), 'XEP-0402 to storage:bookmarks on PEP');
      if (e.item.id !== LEGACY_ITEM || e.item.payload === '') return;
      const storage = parseElement(e.item.payload); // stored by the pubsub module: well-formed
      if (storage.is('storage', NS_LEGACY)) convert(username, () => write(username, storage), 'storage:bookmarks on PEP to XEP-0402');
    });
    m.on('pep/retracted', (e: PepRetractedEvent) => {
      if (e.by === e.owner || e.node !== NS_BOOKMARKS) return;
      const username = usernameOf(e.owner);
      convert(username, () => mirrorToLegacyPep(username), 'XEP-0402 retraction to storage:bookmarks on PEP');
    });
  },
});
