// Caches of stored data (rosters, block lists, account existence) kept coherent across the
// nodes of a cluster. A module registers what to drop when an entry changed elsewhere, and says
// when it changed an entry itself; in one process nothing else happens. In a cluster the
// CacheBus (src/cluster) tells the other nodes, on the connection that also carries stanzas,
// after the write committed and before any stanza that follows from it: a contact's node drops
// a roster before it sees the subscription request that changed it.
import type { CacheBus } from './ports.js';

export type Evict = (key: string) => void;

export class SharedCaches {
  private readonly evictors = new Map<string, Evict>();
  /** The other nodes (src/cluster); undefined in one process. */
  bus: CacheBus | undefined;

  /** What to drop when `scope`'s entry `key` changed on another node. Returns the undo. */
  register(scope: string, evict: Evict): () => void {
    if (this.evictors.has(scope)) throw new Error(`cache scope "${scope}" is registered twice`);
    this.evictors.set(scope, evict);
    return () => {
      if (this.evictors.get(scope) === evict) this.evictors.delete(scope);
    };
  }

  /** This node changed `key` in `scope` (its stored form is committed). */
  changed(scope: string, key: string): void {
    this.bus?.changed(scope, key);
  }

  /** Another node changed `key` in `scope`. */
  changedElsewhere(scope: string, key: string): void {
    this.evictors.get(scope)?.(key);
  }
}
