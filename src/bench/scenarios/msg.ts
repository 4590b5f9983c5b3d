// Scenario "msg": --pairs pairs of users online; both members of a pair send chat messages
// to the partner's bare JID for --duration seconds, either as fast as the server takes them
// (at most --window not yet received per sender) or paced to --rate messages/s in total.
// Latency is end-to-end: the body carries the send time (same clock, same process).
import { accountNames, closeAll, loginAll, registerAccounts, type BenchContext } from '../clients.js';
import type { XmppConnection } from '../connection.js';
import { CpuMeter } from '../cpu.js';
import { childText, errorCondition, startTagAttr, type Stanza } from '../framing.js';
import { sleep, waitUntil } from '../pool.js';
import { ErrorTally, LatencyRecorder, ratio, round } from '../stats.js';

export const BODY_BYTES = 100;
const BODY_PREFIX = 'bench:';
const PADDING = 'x'.repeat(BODY_BYTES);

/** "bench:<sender>:<seq>:<send time ms>:" padded with x to BODY_BYTES characters. */
export function messageBody(sender: number, seq: number, sentAt: number): string {
  const head = `${BODY_PREFIX}${sender}:${seq}:${sentAt.toFixed(3)}:`;
  return head.length >= BODY_BYTES ? head : head + PADDING.slice(head.length);
}

export interface ParsedBody { sender: number; seq: number; sentAt: number }

export function parseBody(body: string): ParsedBody | null {
  if (!body.startsWith(BODY_PREFIX)) return null;
  const parts = body.split(':', 4);
  const sender = Number(parts[1]);
  const seq = Number(parts[2]);
  const sentAt = Number(parts[3]);
  if (!Number.isInteger(sender) || !Number.isInteger(seq) || !Number.isFinite(sentAt)) return null;
  return { sender, seq, sentAt };
}

/** Per sender: what it sent, what its partner got (for the window and duplicate detection). */
class Sender {
  sent = 0;
  inflight = 0;
  private seen = new Uint8Array(1024);

  /** Mark seq as received; true if it had been received before (a duplicate). */
  markSeen(seq: number): boolean {
    if (seq >= this.seen.length) {
      let size = this.seen.length;
      while (size <= seq) size *= 2;
      const grown = new Uint8Array(size);
      grown.set(this.seen);
      this.seen = grown;
    }
    if (this.seen[seq] === 1) return true;
    this.seen[seq] = 1;
    return false;
  }
}

export async function runMsg(ctx: BenchContext): Promise<Record<string, unknown>> {
  const o = ctx.options;
  const users = accountNames(o, 'm', 2 * o.pairs);
  const jids = users.map((u) => `${u}@${o.domain}`);
  const partner = (i: number) => i ^ 1; // pairs are (0,1), (2,3), ...
  const registration = await registerAccounts(ctx, users);

  const senders = users.map(() => new Sender());
  const latency = new LatencyRecorder();
  const errors = new ErrorTally();
  let running = false;
  let finished = false;
  let received = 0;
  let receivedInWindow = 0;
  let duplicates = 0;
  let bounced = 0;
  let misrouted = 0;
  let disconnected = 0;
  let connections: (XmppConnection | null)[] = [];

  const sendOne = (i: number): void => {
    const s = senders[i]!;
    const seq = s.sent++;
    s.inflight++;
    connections[i]!.send(`<message type='chat' to='${jids[partner(i)]}' id='m${seq}'>`
      + `<body>${messageBody(i, seq, performance.now())}</body></message>`);
  };
  const hasRoom = (i: number): boolean => senders[i]!.inflight < o.window && !connections[i]!.closed;
  const paced = o.rate > 0;
  const pump = (i: number): void => {
    if (paced || !running) return;
    while (hasRoom(i)) sendOne(i);
  };

  /** Every chat message a client receives: its partner's, or a bounce of its own. */
  const onStanza = (receiver: number) => (s: Stanza): void => {
    if (s.name !== 'message') return;
    const body = childText(s.xml, 'body');
    const parsed = body === undefined ? null : parseBody(body);
    if (!parsed) return;
    const sender = senders[parsed.sender];
    if (!sender) return;
    if (startTagAttr(s.xml, 'type') === 'error') { // bounced back to the sender: lost, but frees the window
      bounced++;
      errors.add(`message bounced: ${errorCondition(s.xml)}`);
      sender.inflight--;
      pump(parsed.sender);
      return;
    }
    if (receiver !== partner(parsed.sender)) { misrouted++; return; }
    if (sender.markSeen(parsed.seq)) { duplicates++; return; }
    received++;
    sender.inflight--;
    latency.add(performance.now() - parsed.sentAt);
    if (running) {
      receivedInWindow++;
      pump(parsed.sender);
    }
  };

  try {
    ctx.log(`msg: logging in ${users.length} clients (${o.pairs} pairs)`);
    const ready = users.map((u) => registration.ready.has(u));
    // several nodes: pair p starts on node p mod N; a crossing pair's second user is on the next node
    const readyIndexes = users.map((_, i) => i).filter((i) => ready[i]);
    const nodeOf = (i: number): number => {
      const pair = i >> 1;
      const crossing = (pair % 100) < Math.round(o.cross * 100);
      return (pair + ((i & 1) === 1 && crossing ? 1 : 0)) % o.ports.length;
    };
    const login = await loginAll(ctx, users.filter((_, i) => ready[i]), o.setupconc, undefined, (k) => o.ports[nodeOf(readyIndexes[k]!)]!);
    // map the logged-in subset back to user indexes
    let k = 0;
    connections = users.map((_, i) => (ready[i] ? login.connections[k++] ?? null : null));
    connections.forEach((conn, i) => {
      if (!conn) return;
      conn.onStanza = onStanza(i);
      conn.onClose = () => {
        if (finished) return;
        disconnected++;
        errors.add(conn.failure ?? new Error('connection closed'));
      };
      conn.send('<presence/>'); // RFC 6121 §4.2: initial presence makes the session available
    });
    const active = users.map((_, i) => i).filter((i) => connections[i] && connections[i ^ 1]);
    if (active.length === 0) {
      throw new Error(`no pair could log in: ${JSON.stringify({ ...registration.failed.toJSON(10, 'register: '), ...login.failed.toJSON() })}`);
    }
    // a ping round trip per client (all at once, so one timeout bounds it): by then its
    // initial presence has been processed
    await Promise.all(active.map(async (i) => {
      try { await connections[i]!.ping(); } catch (err) { errors.add(err); }
    }));
    await sleep(500);

    ctx.log(`msg: ${active.length / 2} pairs, ${paced ? `${o.rate} msgs/s` : 'max rate'}, window ${o.window}, ${o.duration} s`);
    const meter = new CpuMeter(o.pids);
    running = true;
    let skipped = 0;
    let pacer: NodeJS.Timeout | null = null;
    if (paced) {
      // hand out rate × elapsed sends round-robin to senders with room in their window;
      // credit that finds no room at all is "skipped": the server does not keep up
      let credit = 0;
      let last = performance.now();
      let next = 0;
      pacer = setInterval(() => {
        const t = performance.now();
        credit += (o.rate * (t - last)) / 1000;
        last = t;
        while (credit >= 1) {
          let tried = 0;
          while (tried < active.length && !hasRoom(active[next]!)) { next = (next + 1) % active.length; tried++; }
          if (tried === active.length) { skipped += Math.floor(credit); credit -= Math.floor(credit); break; }
          sendOne(active[next]!);
          next = (next + 1) % active.length;
          credit -= 1;
        }
      }, 5);
    } else {
      for (const i of active) pump(i);
    }
    await sleep(o.duration * 1000);
    running = false;
    if (pacer) clearInterval(pacer);
    const cpu = meter.stop();

    const totalSent = () => senders.reduce((sum, s) => sum + s.sent, 0);
    await waitUntil(() => received + bounced >= totalSent() || active.every((i) => connections[i]!.closed), o.drain * 1000);
    finished = true;
    const sent = totalSent();
    const lat = latency.summary();
    const wallS = cpu.wall_ms / 1000;
    const result: Record<string, unknown> = {
      scenario: 'msg',
      pairs: o.pairs,
      active_pairs: active.length / 2,
      window: o.window,
      rate: o.rate,
      mode: paced ? 'paced' : 'max',
      duration_s: o.duration,
      body_bytes: BODY_BYTES,
      sent,
      received,
      lost: sent - received,
      duplicates,
      bounced,
      misrouted,
      disconnected,
      ...(paced ? { skipped_for_window: skipped } : {}),
      msgs_per_s: round(receivedInWindow / wallS, 1),
      p50_ms: lat.p50_ms,
      p99_ms: lat.p99_ms,
      max_ms: lat.max_ms,
      mean_ms: lat.mean_ms,
      wall_s: round(wallS, 3),
      server_cpu_ms: round(cpu.server_cpu_ms, 0),
      server_cpu_pct: ratio(cpu.server_cpu_ms === null ? null : 100 * cpu.server_cpu_ms, cpu.wall_ms, 1),
      server_cpu_ms_per_1k_msgs: ratio(cpu.server_cpu_ms === null ? null : 1000 * cpu.server_cpu_ms, receivedInWindow, 2),
      gen_cpu_ms: round(cpu.gen_cpu_ms, 0),
      gen_cpu_pct: ratio(100 * cpu.gen_cpu_ms, cpu.wall_ms, 1),
      gen_cpu_ms_per_1k_msgs: ratio(1000 * cpu.gen_cpu_ms, receivedInWindow, 2),
      login_failed: login.failed.total,
      register_failed: registration.failed.total,
    };
    const allErrors = { ...registration.failed.toJSON(10, 'register: '), ...login.failed.toJSON(10, 'login: '), ...errors.toJSON() };
    if (Object.keys(allErrors).length > 0) result['errors'] = allErrors;
    return result;
  } finally {
    running = false;
    finished = true;
    await closeAll(connections);
  }
}
