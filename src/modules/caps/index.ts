// XEP-0115 Entity Capabilities: what a client can do, learned from the <c/> in its presence.
// The server asks the client's disco#info once per verification string, checks the hash
// (§5.4) and keeps the answer by ver, so a thousand Conversations users cost one query. PEP
// reads the features for +notify (XEP-0163 §4). The server's own <c/> stream feature is the
// disco module's (it knows the server's features).
import { randomUUID } from 'node:crypto';
import Element from 'ltx/lib/Element.js';
import { defineModule } from '../../core/module.js';
import type { StanzaEvent } from '../../core/router.js';
import { capsHash } from './hash.js';

export const NS_CAPS = 'http://jabber.org/protocol/caps';
const NS_DISCO_INFO = 'http://jabber.org/protocol/disco#info';
/** How long a client has to answer the disco#info query. */
const QUERY_TIMEOUT_MS = 30_000;
/** Verified results kept in memory (each a few features); the oldest go first. */
const MAX_CACHED = 10_000;

declare module '../../core/module.js' {
  interface Services {
    caps: CapsService;
  }
}

export interface CapsService {
  /**
   * The features of the entity that sent `presence` (full JID `from`) per its <c/>: from the
   * cache, or by asking it (as `askAs`, a local bare JID its client will answer). Undefined when
   * the presence has no <c/> or the client did not answer usefully.
   */
  features(presence: Element, from: string, askAs: string): Promise<ReadonlySet<string> | undefined>;
}

export default defineModule({
  name: 'caps',
  description: 'Entity capabilities: what each client supports, learned from its presence',
  implements: [{ spec: 'XEP-0115', version: '1.6.0', status: 'complete', note: 'hashes verified; results cached by verification string' }],
  setup(m) {
    const verified = new Map<string, ReadonlySet<string>>();
    /** Queries under way, by ver (one per ver however many clients share it). */
    const inFlight = new Map<string, Promise<ReadonlySet<string> | undefined>>();
    const pending = new Map<string, { resolve(result: Element | undefined): void; timer: NodeJS.Timeout }>();

    m.onStop(() => {
      for (const { resolve, timer } of pending.values()) {
        clearTimeout(timer);
        resolve(undefined);
      }
      pending.clear();
    });

    function ask(to: string, from: string, node: string): Promise<Element | undefined> {
      const id = `caps-${randomUUID()}`;
      return new Promise((resolve) => {
        const timer = setTimeout(() => {
          pending.delete(id);
          resolve(undefined);
        }, QUERY_TIMEOUT_MS);
        timer.unref();
        pending.set(id, { resolve, timer });
        m.route(new Element('iq', { type: 'get', id, to, from }).c('query', { xmlns: NS_DISCO_INFO, node }).up());
      });
    }

    // the answers come back to the local account we asked as
    const answer = (e: StanzaEvent) => {
      const id = e.stanza.attrs.id;
      const type = e.stanza.attrs.type;
      if ((type !== 'result' && type !== 'error') || id === undefined) return undefined;
      const waiting = pending.get(id);
      if (waiting === undefined) return undefined;
      pending.delete(id);
      clearTimeout(waiting.timer);
      waiting.resolve(type === 'result' ? e.stanza.getChild('query', NS_DISCO_INFO) : undefined);
      return true;
    };
    m.on('iq/bare', answer, 50);
    m.on('iq/full', answer, 50);

    const featuresOf = (query: Element) => new Set(query.getChildren('feature').map((f) => f.attrs.var ?? ''));

    async function query(from: string, askAs: string, node: string, ver: string, hash: string | undefined): Promise<ReadonlySet<string> | undefined> {
      const result = await ask(from, askAs, `${node}#${ver}`);
      if (result === undefined) return undefined;
      const features = featuresOf(result);
      if (hash === undefined) return features; // legacy caps (§1.2): good for this client only
      if (capsHash(result, hash) !== ver) {
        m.log.info({ from, ver }, 'entity capabilities did not match their hash; not cached');
        return features;
      }
      if (verified.size >= MAX_CACHED) verified.delete(verified.keys().next().value!);
      verified.set(ver, features);
      return features;
    }

    m.provide('caps', {
      async features(presence, from, askAs) {
        const c = presence.getChild('c', NS_CAPS);
        const ver = c?.attrs.ver;
        const node = c?.attrs.node;
        if (c === undefined || ver === undefined || node === undefined) return undefined;
        const hash = c.attrs.hash;
        if (hash !== undefined) {
          const known = verified.get(ver);
          if (known !== undefined) return known;
          let running = inFlight.get(ver);
          if (running === undefined) {
            running = query(from, askAs, node, ver, hash).finally(() => inFlight.delete(ver));
            inFlight.set(ver, running);
          }
          return running;
        }
        return query(from, askAs, node, ver, undefined);
      },
    } satisfies CapsService);
  },
});
