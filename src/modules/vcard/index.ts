// XEP-0054 vcard-temp: a user's business card (name, nickname, photo...), kept by the server.
// The user reads and replaces their own; anyone may read it (vCards are public). XEP-0153: the
// SHA-1 of the vCard's photo is stamped into the user's available presence, so contacts know
// when the avatar changed without fetching the vCard each time.
import { createHash } from 'node:crypto';
import Element from 'ltx/lib/Element.js';
import { z } from 'zod';
import { byteSize } from '../../config/units.js';
import { defineModule } from '../../core/module.js';
import type { StanzaEvent } from '../../core/router.js';
import { LOCAL_NODE, type SessionRef } from '../../core/ports.js';
import { StanzaError } from '../../core/stanza.js';
import { parseElement } from '../../xml/parse.js';
import { serialize } from '../../xml/serialize.js';
import { VcardStore, vcardMigrations } from './store.js';

export const NS_VCARD = 'vcard-temp';
export const NS_VCARD_UPDATE = 'vcard-temp:x:update';

/** XEP-0153 §2: the hex SHA-1 of the decoded BINVAL of the vCard's PHOTO, or '' without one. */
export function photoHash(vcard: Element): string {
  const binval = vcard.getChild('PHOTO')?.getChildText('BINVAL')?.replace(/\s+/g, '') ?? '';
  if (binval === '') return '';
  return createHash('sha1').update(Buffer.from(binval, 'base64')).digest('hex');
}

function updateElement(hash: string): Element {
  const x = new Element('x', { xmlns: NS_VCARD_UPDATE });
  const photo = new Element('photo');
  if (hash !== '') photo.t(hash);
  x.append(photo);
  return x;
}

/** What the vcard module offers other modules (avatar conversion, XEP-0398). */
declare module '../../core/module.js' {
  interface Services {
    vcard: VcardService;
  }
}

declare module '../../core/event-map.js' {
  interface EventMap {
    'vcard/updated': VcardUpdatedEvent;
  }
}

export interface VcardService {
  /** The account's vCard, or undefined for none. */
  get(username: string): Promise<Element | undefined>;
  /** Replaces the account's vCard as its owner would (the photo hash in presence follows); fires `vcard/updated`. */
  set(username: string, vcard: Element, origin: 'client' | 'server'): Promise<void>;
}

/** The payload of `vcard/updated`. */
export interface VcardUpdatedEvent {
  username: string;
  vcard: Element;
  origin: 'client' | 'server';
  /** Work the vCard's setter waits for (e.g. publishing the photo on PEP, XEP-0398). */
  pending: Array<Promise<unknown>>;
}

/** Photo hashes kept for accounts seen lately (a few hundred kB at most). */
const HASH_CACHE_LIMIT = 20_000;

export default defineModule({
  name: 'vcard',
  description: 'User profiles (vCards) and avatar hashes in presence',
  implements: [
    { spec: 'XEP-0054', version: '1.2', status: 'complete' },
    { spec: 'XEP-0153', version: '1.1', status: 'complete', note: 'the server stamps the photo hash into the user\'s available presence' },
  ],
  options: z.strictObject({
    /** The largest vCard accepted, serialised; photos make them big. */
    max_size: byteSize().prefault('64KiB'),
  }),
  migrations: vcardMigrations,
  removeAccountData: async ({ db, host, username }) => void (await db('vcard').where({ host, username }).delete()),
  setup(m) {
    const domain = m.host.domain;
    const store = new VcardStore(m.db, domain);
    /**
     * Photo hashes ('' for none) of accounts seen lately, most recent last: a client that
     * reconnects finds its hash here instead of a query. Bounded; another node's change evicts.
     */
    const hashes = new Map<string, string>();
    /** Bumped by every change, so that a read that raced one does not keep what it read. */
    let changes = 0;
    const remember = (username: string, hash: string) => {
      hashes.delete(username);
      if (hashes.size >= HASH_CACHE_LIMIT) hashes.delete(hashes.keys().next().value!);
      hashes.set(username, hash);
    };
    const changedHere = m.sharedCache('photo-hash', (username) => {
      changes++;
      hashes.delete(username);
    });

    m.feature(NS_VCARD);

    const loadHash = (username: string): Promise<string> => {
      const before = changes;
      return store.photoHash(username).then((hash) => {
        // a vCard set meanwhile already put the newer hash there
        if (!hashes.has(username) && changes === before) remember(username, hash);
        return hashes.get(username) ?? hash;
      });
    };

    m.on('session/bound', ({ session }: { session: SessionRef }) => {
      const known = hashes.get(session.jid.local);
      if (known !== undefined) {
        remember(session.jid.local, known);
        return;
      }
      // read now, so that the initial presence does not wait for it
      loadHash(session.jid.local).catch((err: unknown) => m.log.error({ err, account: session.jid.bare }, 'reading a photo hash failed'));
    });
    m.on('account/deleted', ({ username }: { username: string }) => {
      changes++;
      hashes.delete(username);
    });

    // XEP-0153 §4.1: the server stamps the hash of the photo it has into available presence,
    // replacing whatever the client put there, before the presence module broadcasts it; and
    // into directed presence, a group chat join above all: a client that sees the server
    // converts avatars (XEP-0398) leaves the hash to it, and the room shows what it was sent.
    const stampAvailable = (e: StanzaEvent): unknown => {
      const session = e.session;
      if (session === undefined || e.stanza.attrs.type !== undefined) return undefined;
      const hash = hashes.get(session.jid.local);
      if (hash !== undefined) return void stamp(e.stanza, hash);
      // the hash is still being read: stamp once it is there (the client's later stanzas wait
      // behind this presence), then the chain goes on
      return m.wait(loadHash(session.jid.local).then(
        (loaded) => void stamp(e.stanza, loaded),
        (err: unknown) => void m.log.error({ err, account: session.jid.bare }, 'reading a photo hash failed; presence goes out unstamped'),
      ));
    };
    m.on('pre-presence/none', stampAvailable, 100);
    m.on('pre-presence/bare', stampAvailable, 100);
    m.on('pre-presence/full', stampAvailable, 100);

    /**
     * XEP-0153 §4.3 has the client send presence again after a new photo; Gajim does not, so
     * its contacts and rooms kept the old hash. As ejabberd does (mod_vcard_xupdate), each
     * available session of this node sends its presence again, as if from the client (stamped
     * with the new hash above): broadcast, then to each directed-presence target.
     */
    function presenceAgain(username: string): void {
      for (const session of m.sessions.resources(`${username}@${domain}`)?.values() ?? []) {
        const presence = session.presence;
        if (session.node !== LOCAL_NODE || !session.available || presence === null) continue;
        const again = (to?: string): Element => {
          const copy = new Element('presence', to === undefined ? {} : { to });
          // priority belongs to the broadcast (RFC 6121 §4.7.2.3)
          copy.children = presence.children.filter((child) => typeof child === 'string' || child.name !== 'priority' || to === undefined);
          return copy;
        };
        m.sendAs(session, again());
        for (const target of session.directedPresence ?? []) m.sendAs(session, again(target));
      }
    }

    function stamp(presence: Element, hash: string): void {
      presence.children = presence.children.filter((child) => typeof child === 'string' || !(child.name === 'x' && child.attrs.xmlns === NS_VCARD_UPDATE));
      presence.append(updateElement(hash));
    }

    // XEP-0054 §3.1 / §3.3: the user's own vCard, or another user's, answered by the server
    m.iq('get', NS_VCARD, async ({ from, to }) => {
      if (from.bare !== to.bare && !(await m.server.accounts.exists(domain, to.local))) {
        throw new StanzaError('service-unavailable'); // RFC 6121 §8.5.1: no such account
      }
      const stored = await store.get(to.local);
      // §3.3: an account without a vCard has an empty one
      return stored === undefined ? new Element('vCard', { xmlns: NS_VCARD }) : parseElement(stored.vcard);
    }, 'account');

    async function save(username: string, payload: Element, vcard: string, origin: 'client' | 'server'): Promise<void> {
      const hash = photoHash(payload);
      const before = hashes.get(username);
      await store.set(username, { vcard, photoHash: hash });
      // the next presence carries the new hash
      changes++;
      remember(username, hash);
      changedHere(username);
      if (before !== undefined && before !== hash) presenceAgain(username);
      const pending: Array<Promise<unknown>> = [];
      m.host.events.fire('vcard/updated', { username, vcard: payload, origin, pending });
      await Promise.all(pending);
    }
    m.provide('vcard', {
      get: async (username) => {
        const stored = await store.get(username);
        return stored === undefined ? undefined : parseElement(stored.vcard);
      },
      set: (username, vcard, origin) => save(username, vcard, serialize(vcard), origin),
    } satisfies VcardService);

    // XEP-0054 §3.2: the user replaces their vCard as a whole
    m.iq('set', NS_VCARD, async ({ from, to, payload }) => {
      if (from.bare !== to.bare) throw new StanzaError('forbidden', 'Only the owner of a vCard may change it');
      if (payload.name !== 'vCard') throw new StanzaError('bad-request', 'Expected a <vCard/> element');
      const vcard = serialize(payload);
      if (Buffer.byteLength(vcard) > m.options.max_size) {
        throw new StanzaError('not-acceptable', `The vCard is larger than ${m.options.max_size} bytes`);
      }
      await save(to.local, payload, vcard, 'client');
    }, 'account');
  },
});
