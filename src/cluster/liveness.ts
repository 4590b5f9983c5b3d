// Node liveness. Each node renews a key that expires after node_timeout (heartbeat every
// heartbeat interval) and checks the others twice per interval: a node whose key has expired
// is dead (killed, frozen, cut off). One survivor, under a lock, cleans up after it: its
// sessions leave the directory, their contacts and rooms get `unavailable` on their behalf, and
// from then on messages for those users go to offline storage. Every survivor forgets the dead
// node's sessions at once, lock or not, so nobody routes to it in the meantime.
import type { Logger } from 'pino';
import type { Kernel } from '../core/kernel.js';
import { keys, scripts } from './keys.js';
import type { ClusterDirectory } from './directory.js';
import { RemoteSession, type SessionRecord } from './remote-session.js';
import type { RedisClient } from './redis.js';

export interface LivenessSettings {
  heartbeatMs: number;
  nodeTimeoutMs: number;
}

export class Liveness {
  private timer: NodeJS.Timeout | undefined;
  private ticks = 0;
  private checking = false;
  /** No node is declared dead before this (epoch ms): after Redis came back empty, every node needs a beat to re-register. */
  private quietUntil = 0;
  /** Runs with each heartbeat (room leases are renewed with it). */
  onBeat: () => Promise<void> = async () => {};
  /** Nodes reaped by this one, for /metrics and tests. */
  reaped = 0;
  /** Members at the last check, and the last heartbeat's round trip (for /metrics). */
  nodeCount = 1;
  lastBeatSeconds = 0;

  constructor(
    private readonly kernel: Kernel,
    private readonly node: string,
    private readonly redis: RedisClient,
    private readonly directory: ClusterDirectory,
    private readonly settings: LivenessSettings,
    private readonly log: Logger,
  ) {}

  /** Joins: the first heartbeat, and this node in the set of nodes. */
  async join(): Promise<void> {
    await this.beat();
  }

  /** Redis was (re)connected: the others' heartbeats may be missing until they beat again. */
  holdOff(): void {
    this.quietUntil = Date.now() + this.settings.nodeTimeoutMs;
  }

  /** Leaves: no heartbeat, not a member. */
  async leave(): Promise<void> {
    await this.redis.del(keys.alive(this.node));
    await this.redis.sRem(keys.nodes, this.node);
  }

  start(): void {
    this.timer = setInterval(() => {
      this.ticks++;
      if (this.ticks % 2 === 0) this.beat().catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'cluster heartbeat failed (Redis unreachable)'));
      void this.check();
    }, this.settings.heartbeatMs / 2);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Renews the heartbeat; also re-joins the set of nodes, should this node have been reaped while frozen. */
  private async beat(): Promise<void> {
    const started = performance.now();
    await this.redis.set(keys.alive(this.node), String(Date.now()), { expiresMs: this.settings.nodeTimeoutMs });
    this.lastBeatSeconds = (performance.now() - started) / 1000;
    await this.redis.sAdd(keys.nodes, this.node);
    await this.onBeat();
  }

  /** The node ids in the cluster (joined, not left, not reaped). */
  async members(): Promise<string[]> {
    return this.redis.sMembers(keys.nodes);
  }

  /** Looks for dead nodes among the members and the nodes the directory still has sessions of. */
  private async check(): Promise<void> {
    if (this.checking || Date.now() < this.quietUntil) return;
    this.checking = true;
    try {
      const members = await this.members();
      this.nodeCount = members.length;
      const candidates = new Set([...members, ...this.directory.knownNodes()]);
      candidates.delete(this.node);
      for (const node of candidates) {
        if ((await this.redis.exists(keys.alive(node))) === 0) await this.dead(node);
      }
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'cluster liveness check skipped (Redis unreachable)');
    } finally {
      this.checking = false;
    }
  }

  private async dead(node: string): Promise<void> {
    const forgotten = this.directory.forgetNode(node);
    const locked = await this.redis.set(keys.reaper(node), this.node, { condition: 'NX', expiresMs: 60_000 });
    if (locked === null) {
      if (forgotten > 0) this.log.info({ node, sessions: forgotten }, 'cluster node is dead; another node cleans up after it');
      return;
    }
    const records = await this.redis.hGetAll(keys.sessions(node));
    const jids = Object.keys(records);
    this.log.warn({ node, sessions: jids.length }, 'cluster node is dead (no heartbeat); its sessions end now');
    // every node forgets them first, so the unavailable presence below finds no one routing to them
    await this.directory.announceGone(node);
    for (const text of Object.values(records)) {
      let record: SessionRecord;
      try {
        record = JSON.parse(text) as SessionRecord;
      } catch {
        continue;
      }
      const ref = RemoteSession.fromRecord(record);
      if (ref === undefined) continue;
      await this.redis.eval(scripts.releaseField, [keys.resources(ref.jid.bare)], [ref.jid.resource, node]);
      // as if the session had ended here: presence tells contacts and rooms it is unavailable
      this.kernel.hosts.get(ref.jid.domain)?.events.fire('session/closed', { session: ref, reason: `node ${node} died` });
    }
    await this.redis.del(keys.sessions(node));
    await this.redis.sRem(keys.nodes, node);
    // its sessions that were waiting to be resumed: what they had queued goes to offline storage
    await this.kernel.resumable?.recoverNode(node).catch((err: unknown) => this.log.error({ err, node }, 'handing on the queues of a dead node\'s hibernating sessions failed'));
    this.reaped++;
  }
}
