// Rooms in a cluster: each runs on one node, under a lease in Redis (renewed with the node's
// heartbeat, so it lapses when the node dies). The first stanza for a room takes the lease if
// it is free — the component then reads the room's stored state (configuration, affiliations,
// history) — or learns which node holds it and hands the stanza there. Occupants may be on any
// node: the room reaches them through the session directory like any sender. If the room's
// node dies, the next stanza for the room takes it over on a live node.
import type Element from 'ltx/lib/Element.js';
import type { Logger } from 'pino';
import type { Jid } from '../core/jid.js';
import type { PlacedComponent, Placement } from '../core/ports.js';
import { StanzaError } from '../core/stanza.js';
import type { Kernel } from '../core/kernel.js';
import { keys, scripts } from './keys.js';
import type { RedisNodeLink } from './link.js';
import type { RedisClient } from './redis.js';


/** A stanza waiting for its room's node to be known. */
interface Queued {
  component: PlacedComponent;
  stanza: Element;
  from: Jid;
  to: Jid;
}

export class RoomPlacement implements Placement {
  /** Room address (room@service) → the node running it, as last learnt. */
  private readonly owners = new Map<string, string>();
  /** Rooms whose node is being looked up, with the stanzas waiting for it (in order). */
  private readonly resolving = new Map<string, Queued[]>();
  /** Leases this node holds, renewed with each heartbeat. */
  readonly held = new Set<string>();

  constructor(
    private readonly kernel: Kernel,
    private readonly node: string,
    private readonly redis: RedisClient,
    private readonly link: RedisNodeLink,
    private readonly leaseMs: number,
    private readonly log: Logger,
  ) {}

  receive(component: PlacedComponent, stanza: Element, from: Jid, to: Jid): unknown {
    const room = to.bare; // room@service, kept by the Jid once made
    const owner = this.owners.get(room);
    if (owner === this.node) return component.receive(stanza, from, to);
    if (owner !== undefined) {
      this.link.routeOn(owner, stanza, room);
      return true;
    }
    let waiting = this.resolving.get(room);
    if (waiting === undefined) {
      this.resolving.set(room, (waiting = []));
      void this.resolve(room, component, to.local);
    }
    waiting.push({ component, stanza, from, to });
    return true;
  }

  private async resolve(room: string, component: PlacedComponent, local: string): Promise<void> {
    try {
      let owner: string | null = null;
      for (let attempt = 0; attempt < 3 && owner === null; attempt++) {
        const taken = await this.redis.set(keys.room(room), this.node, { condition: 'NX', expiresMs: this.leaseMs });
        if (taken !== null) {
          this.held.add(room);
          await component.entityPlaced?.(local);
          this.log.info({ room }, 'this node runs the room now');
          owner = this.node;
          break;
        }
        const holder = await this.redis.get(keys.room(room));
        if (holder !== null && (holder === this.node || (await this.redis.exists(keys.alive(holder))) === 1)) owner = holder;
        else if (holder !== null) await this.redis.eval(scripts.deleteIfValue, [keys.room(room)], [holder]); // its node died
      }
      if (owner === null) throw new Error('the room lease could not be taken nor found');
      this.owners.set(room, owner);
    } catch (err) {
      this.log.warn({ err: (err as Error).message, room }, 'which node runs the room is unknown (Redis unreachable); its stanzas get an error');
    }
    const waiting = this.resolving.get(room) ?? [];
    this.resolving.delete(room);
    for (const w of waiting) {
      if (this.owners.has(room)) this.receive(w.component, w.stanza, w.from, w.to);
      else this.kernel.router.bounce(w.stanza, new StanzaError('recipient-unavailable', 'The room cannot be reached right now; try again'));
    }
  }

  /** Renews the leases this node holds (with each heartbeat). */
  async renew(): Promise<void> {
    for (const room of this.held) {
      const kept = await this.redis.set(keys.room(room), this.node, { condition: 'XX', expiresMs: this.leaseMs });
      if (kept === null) {
        // lapsed (this node was cut off longer than a lease): whoever takes it next runs it
        this.held.delete(room);
        this.owners.delete(room);
        this.log.warn({ room }, 'the room lease lapsed; this node no longer runs the room');
      }
    }
  }

  /** A node left or died: its rooms are looked up again at their next stanza. */
  forgetNode(node: string): void {
    for (const [room, owner] of this.owners) if (owner === node) this.owners.delete(room);
  }

  /** Leaving: the leases are given up so that the rooms move at once. */
  async release(): Promise<void> {
    for (const room of this.held) await this.redis.eval(scripts.deleteIfValue, [keys.room(room)], [this.node]);
    this.held.clear();
  }
}
