// XEP-0398 User Avatar to vCard-Based Avatars Conversion: one avatar, whichever way a client sets
// it. A PEP avatar (XEP-0084: data, then metadata) becomes the vCard's PHOTO, so the XEP-0153
// hash the server stamps into presence follows it; a vCard with a PHOTO set by an older client
// is published as a PEP avatar, so modern contacts are notified.
import { createHash } from 'node:crypto';
import Element from 'ltx/lib/Element.js';
import { defineModule } from '../../core/module.js';
import { parseElement } from '../../xml/parse.js';
import type { PepPublishedEvent } from '../pubsub/index.js';
import { photoHash, type VcardUpdatedEvent } from '../vcard/index.js';

const NS_DATA = 'urn:xmpp:avatar:data';
const NS_METADATA = 'urn:xmpp:avatar:metadata';
const NS_PUBSUB = 'http://jabber.org/protocol/pubsub';

export default defineModule({
  name: 'avatar_conversion',
  description: 'One avatar for PEP (XEP-0084) and vCard (XEP-0153) clients',
  implements: [{ spec: 'XEP-0398', version: '0.2.1', status: 'complete' }],
  dependencies: ['pubsub', 'vcard'],
  setup(m) {
    const { engine, pep } = m.use('pubsub');
    const vcards = m.use('vcard');
    const domain = m.host.domain;
    m.accountFeature('urn:xmpp:pep-vcard-conversion:0');

    // the publisher's (or vCard setter's) result waits for the conversion; a failure is logged, not theirs
    const converting = (work: Promise<unknown>, what: string, account: string) => work.catch((err: unknown) => m.log.error({ err, account }, what));

    function itemsRequest(node: string, attrs: Record<string, string>, id?: string): Element {
      const request = new Element('pubsub', { xmlns: NS_PUBSUB });
      const items = request.c('items', { node, ...attrs });
      if (id !== undefined) items.c('item', { id });
      return request;
    }

    function withPhoto(vcard: Element, type: string | undefined, binval: string | undefined): Element {
      vcard.children = vcard.children.filter((child) => typeof child === 'string' || child.name !== 'PHOTO');
      if (binval !== undefined) {
        const photo = vcard.c('PHOTO');
        if (type) photo.c('TYPE').t(type);
        photo.c('BINVAL').t(binval);
      }
      return vcard;
    }

    // PEP → vCard (XEP-0398 §3.1)
    async function pepToVcard(owner: string, payload: string): Promise<void> {
      if (payload === '') return;
      const metadata = parseElement(payload);
      const username = owner.slice(0, owner.lastIndexOf('@'));
      const vcard = (await vcards.get(username)) ?? new Element('vCard', { xmlns: 'vcard-temp' });
      const current = photoHash(vcard);
      // the avatar stored on PEP: the info without a url (XEP-0084 §4.2.1)
      const info = metadata.getChildren('info').find((i) => i.attrs.url === undefined && i.attrs.id !== undefined);
      if (info === undefined) {
        // §3.1: the avatar was switched off
        if (current !== '') await vcards.set(username, withPhoto(vcard, undefined, undefined), 'server');
        return;
      }
      if (info.attrs.id === current) return; // already there (e.g. it came from the vCard)
      const result = await engine.handle(pep(owner), 'get', itemsRequest(NS_DATA, {}, info.attrs.id), owner);
      const data = result?.getChild('items')?.getChild('item')?.getChildText('data');
      if (!data) return;
      await vcards.set(username, withPhoto(vcard, info.attrs.type, data.replace(/\s+/g, '')), 'server');
    }

    // vCard → PEP (XEP-0398 §3.2)
    async function vcardToPep(username: string, vcard: Element): Promise<void> {
      const owner = `${username}@${domain}`;
      const service = pep(owner);
      const binval = vcard.getChild('PHOTO')?.getChildText('BINVAL')?.replace(/\s+/g, '') ?? '';
      const existing = await engine.node(service, NS_METADATA);
      const last = existing === undefined ? undefined
        : (await engine.handle(service, 'get', itemsRequest(NS_METADATA, { max_items: '1' }), owner))?.getChild('items')?.getChild('item');
      if (binval === '') {
        if (last?.getChild('metadata', NS_METADATA)?.getChild('info') !== undefined) await publish(service.jid, NS_METADATA, 'current', new Element('metadata', { xmlns: NS_METADATA }));
        return;
      }
      const bytes = Buffer.from(binval, 'base64');
      const id = createHash('sha1').update(bytes).digest('hex');
      if (last?.attrs.id === id) return;
      await publish(owner, NS_DATA, id, new Element('data', { xmlns: NS_DATA }).t(binval));
      const metadata = new Element('metadata', { xmlns: NS_METADATA });
      metadata.c('info', { bytes: String(bytes.length), id, type: vcard.getChild('PHOTO')?.getChildText('TYPE') || 'image/png' });
      await publish(owner, NS_METADATA, id, metadata);
    }

    async function publish(owner: string, node: string, id: string, payload: Element): Promise<void> {
      const request = new Element('pubsub', { xmlns: NS_PUBSUB });
      request.c('publish', { node }).c('item', { id }).append(payload);
      await engine.handle(pep(owner), 'set', request, owner);
    }

    m.on('pep/published', (e: PepPublishedEvent) => {
      if (e.node === NS_METADATA) e.pending.push(converting(pepToVcard(e.owner, e.item.payload), 'avatar to vCard failed', e.owner));
      return undefined;
    });
    m.on('vcard/updated', (e: VcardUpdatedEvent) => {
      if (e.origin === 'client') e.pending.push(converting(vcardToPep(e.username, e.vcard), 'vCard to avatar failed', e.username));
      return undefined;
    });
  },
});
