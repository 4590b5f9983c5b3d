// The cluster's session directory, the "user → server mapping": every node keeps in memory a
// copy of where each full JID is bound (its own sessions and RemoteSession refs for the others'),
// so routing a stanza costs no Redis round trip. Redis holds the truth for nodes that join or
// reconnect: a hash of session records per node, and per account which node holds each resource.
//
// Changes to this node's sessions are coalesced per event-loop turn and written in one go: the
// record into the node's hash and onto the sessions channel, which the other nodes apply. A bind
// also claims the resource in the account's hash: if another node held it, that node is told to
// end its session with <conflict/> (RFC 6120 §7.7.2.2: the older session goes).
import type { Logger } from 'pino';
import type { Kernel } from '../core/kernel.js';
import type { SessionObserver, SessionRef } from '../core/ports.js';
import { channels, keys, scripts } from './keys.js';
import type { RedisNodeLink } from './link.js';
import type { RedisClient } from './redis.js';
import { RemoteSession, recordOf, type SessionRecord } from './remote-session.js';


type Change = 'bound' | 'changed' | 'unbound';

/** What travels on the sessions channel. */
type DirectoryMessage = { op: 'up'; s: SessionRecord } | { op: 'down'; n: string; j: string; v: number } | { op: 'gone'; n: string };

export class ClusterDirectory implements SessionObserver {
  /** Other nodes' sessions: full JID → node → ref (two only while one replaces the other). */
  private readonly remote = new Map<string, Map<string, RemoteSession>>();
  /** This node's sessions: when bound, and the version of their last record. */
  private readonly own = new Set<SessionRef>();
  private readonly pending = new Map<SessionRef, Change>();
  private flushScheduled = false;
  private version = 0;
  /** Messages that arrived while a snapshot was being read, applied after it. */
  private buffered: DirectoryMessage[] | null = null;

  constructor(
    private readonly kernel: Kernel,
    private readonly node: string,
    private readonly redis: RedisClient,
    private readonly link: RedisNodeLink,
    private readonly log: Logger,
  ) {}

  // --- this node's sessions (SessionObserver) ----------------------------------------------------

  bound(ref: SessionRef): void {
    this.own.add(ref);
    this.note(ref, 'bound');
  }

  unbound(ref: SessionRef): void {
    if (this.pending.get(ref) === 'bound') {
      this.pending.delete(ref); // bound and gone in the same turn: the others never knew
      this.own.delete(ref);
      return;
    }
    this.note(ref, 'unbound');
  }

  changed(ref: SessionRef): void {
    if (!this.pending.has(ref)) this.note(ref, 'changed');
  }

  private note(ref: SessionRef, change: Change): void {
    this.pending.set(ref, change);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    const changes = [...this.pending];
    this.pending.clear();
    for (const [ref, change] of changes) {
      if (change === 'unbound') this.writeUnbound(ref);
      else this.writeRecord(ref, change === 'bound');
    }
  };

  private writeRecord(ref: SessionRef, claim: boolean): void {
    if (!this.own.has(ref)) return;
    const record = recordOf(ref, this.node, ++this.version);
    const jid = record.j;
    const failed = (err: unknown) => this.log.warn({ err: (err as Error).message, jid }, 'session not shared with the cluster (Redis unreachable); it will be when Redis is back');
    if (claim) {
      this.redis
        .eval(scripts.claimField, [keys.resources(ref.jid.bare)], [ref.jid.resource, this.node])
        .then((previous) => {
          if (typeof previous === 'string' && previous !== this.node) {
            this.link.command(previous, { cmd: 'close', jid, condition: 'conflict', text: 'Replaced by a new connection for the same resource' });
          }
        }, failed);
    }
    this.redis.hSet(keys.sessions(this.node), jid, JSON.stringify(record)).catch(failed);
    this.publish({ op: 'up', s: record });
  }

  private writeUnbound(ref: SessionRef): void {
    this.own.delete(ref);
    const jid = ref.jid.toString();
    const failed = (err: unknown) => this.log.warn({ err: (err as Error).message, jid }, 'session end not shared with the cluster (Redis unreachable)');
    this.redis.eval(scripts.releaseField, [keys.resources(ref.jid.bare)], [ref.jid.resource, this.node]).catch(failed);
    this.redis.hDel(keys.sessions(this.node), jid).catch(failed);
    this.publish({ op: 'down', n: this.node, j: jid, v: ++this.version });
  }

  private publish(message: DirectoryMessage): void {
    this.redis.broadcast(channels.sessions, JSON.stringify(message)).catch(() => {});
  }

  /** After Redis came back (or at start): writes every session of this node again. */
  async registerAll(): Promise<void> {
    await this.redis.del(keys.sessions(this.node));
    for (const ref of this.own) this.writeRecord(ref, true);
  }

  // --- the other nodes' sessions -------------------------------------------------------------------

  /** A message from the sessions channel. */
  receive(message: string): void {
    let parsed: DirectoryMessage;
    try {
      parsed = JSON.parse(message) as DirectoryMessage;
    } catch {
      return this.log.error('a session record from another node is not JSON; ignored');
    }
    if (this.buffered !== null) return void this.buffered.push(parsed);
    this.apply(parsed);
  }

  private apply(message: DirectoryMessage): void {
    if (message.op === 'up') {
      if (message.s.n !== this.node) this.upsert(message.s);
    } else if (message.op === 'down') {
      if (message.n !== this.node) this.removeRemote(message.j, message.n, message.v);
    } else if (message.n !== this.node) {
      this.forgetNode(message.n);
    } else if (this.own.size > 0) {
      // reaped while alive (frozen longer than node_timeout): share our sessions again
      void this.registerAll().catch(() => {});
    }
  }

  private upsert(record: SessionRecord): void {
    let byNode = this.remote.get(record.j);
    const existing = byNode?.get(record.n);
    if (existing !== undefined) {
      if (record.v <= existing.version) return; // an older record (a snapshot read before a change)
      existing.update(record);
      return;
    }
    const ref = RemoteSession.fromRecord(record);
    if (ref === undefined) return;
    if (byNode === undefined) this.remote.set(record.j, (byNode = new Map()));
    byNode.set(record.n, ref);
    this.install(record.j, ref.jid.bare, ref.jid.resource);
  }

  private removeRemote(jid: string, node: string, version: number): void {
    const byNode = this.remote.get(jid);
    const ref = byNode?.get(node);
    if (ref === undefined || version < ref.version) return;
    byNode!.delete(node);
    if (byNode!.size === 0) this.remote.delete(jid);
    if (this.kernel.sessions.removeRemote(ref)) this.install(jid, ref.jid.bare, ref.jid.resource);
  }

  /**
   * Puts the newest of the other nodes' sessions with this full JID in the kernel's directory
   * (one replacing another is there for a moment, until the older node ends its session).
   */
  private install(jid: string, bare: string, resource: string): void {
    const byNode = this.remote.get(jid);
    if (byNode === undefined) return;
    let newest: RemoteSession | undefined;
    for (const ref of byNode.values()) if (newest === undefined || ref.boundAt > newest.boundAt) newest = ref;
    const current = this.kernel.sessions.find(bare, resource);
    if (newest === undefined || current === newest) return;
    // a session of ours bound later than the remote one stays (the other node is told to end its own)
    if (current?.local !== undefined && current.describe().since > newest.boundAt) return;
    this.kernel.sessions.addRemote(newest);
  }

  /**
   * This node handed a session to `node`: stanzas for it go there at once, not to offline
   * storage while that node's own record is on its way.
   */
  handedOver(record: SessionRecord): void {
    this.upsert(record);
  }

  /** Every session of a node, for the survivor that cleans up after it. */
  sessionsOf(node: string): RemoteSession[] {
    const refs: RemoteSession[] = [];
    for (const byNode of this.remote.values()) {
      const ref = byNode.get(node);
      if (ref !== undefined) refs.push(ref);
    }
    return refs;
  }

  /** Told when a node left or died (its rooms are looked up again). */
  nodeForgotten: (node: string) => void = () => {};

  /** A node left or died: its sessions are gone (messages for its users go to offline storage). */
  forgetNode(node: string): number {
    this.nodeForgotten(node);
    let forgotten = 0;
    for (const ref of this.sessionsOf(node)) {
      this.removeRemote(ref.jid.toString(), node, Number.MAX_SAFE_INTEGER);
      forgotten++;
    }
    return forgotten;
  }

  /** Nodes this copy holds sessions of. */
  knownNodes(): Set<string> {
    const nodes = new Set<string>();
    for (const byNode of this.remote.values()) for (const node of byNode.keys()) nodes.add(node);
    return nodes;
  }

  get remoteCount(): number {
    let count = 0;
    for (const byNode of this.remote.values()) count += byNode.size;
    return count;
  }

  /**
   * Reads every live node's sessions from Redis (at start, and after Redis came back, when
   * messages on the channel may have been missed); messages arriving meanwhile wait for it.
   */
  async loadSnapshot(liveNodes: readonly string[]): Promise<void> {
    this.buffered = [];
    try {
      const seen = new Set<string>();
      for (const node of liveNodes) {
        if (node === this.node) continue;
        const records = await this.redis.hGetAll(keys.sessions(node));
        for (const text of Object.values(records)) {
          try {
            const record = JSON.parse(text) as SessionRecord;
            seen.add(`${record.n}\n${record.j}`);
            this.upsert(record);
          } catch {
            this.log.warn({ node }, 'a session record in Redis is not JSON; skipped');
          }
        }
      }
      // what we held that Redis no longer has ended while we were not listening
      for (const [jid, byNode] of [...this.remote]) {
        for (const [node, ref] of [...byNode]) if (!seen.has(`${node}\n${jid}`)) this.removeRemote(jid, node, ref.version);
      }
    } finally {
      const buffered = this.buffered ?? [];
      this.buffered = null;
      for (const message of buffered) this.apply(message);
    }
  }

  /** Tells the other nodes a node (this one leaving, or a dead one) has no sessions any more. */
  announceGone(node: string): Promise<unknown> {
    return this.redis.broadcast(channels.sessions, JSON.stringify({ op: 'gone', n: node } satisfies DirectoryMessage));
  }
}
