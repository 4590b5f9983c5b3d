// Scenario "overload": the brief's priority rule under load. --pairs pairs of users online; for
// --duration seconds every sender sends, open loop (no window: the load does not slow down when
// the server does), --rate messages with a body per second in total. Each body message is
// preceded by a typing notification (XEP-0085 <composing/>) and asks for a receipt (XEP-0184),
// which the receiving client sends back at once; every --presence-every messages the sender
// changes its (directed) presence, with a sequence number in <status/>. Reported per class:
// sent, delivered, not delivered (shed or lost), and latency; for body messages p99 and how
// many were lost (must be 0); for presence whether each receiver's last one is the latest sent
// (coalescing keeps the latest, it must not leave a stale one).
import { accountNames, closeAll, loginAll, registerAccounts, type BenchContext } from '../clients.js';
import type { XmppConnection } from '../connection.js';
import { CpuMeter } from '../cpu.js';
import { childText, startTagAttr, type Stanza } from '../framing.js';
import { sleep, waitUntil } from '../pool.js';
import { ErrorTally, LatencyRecorder, ratio, round } from '../stats.js';
import { messageBody, parseBody } from './msg.js';

const NS_CHATSTATES = 'http://jabber.org/protocol/chatstates';
const NS_RECEIPTS = 'urn:xmpp:receipts';

class ClassTally {
  sent = 0;
  delivered = 0;
  readonly latency = new LatencyRecorder();

  report(withLatency: boolean): Record<string, number | null> {
    const lat = this.latency.summary();
    return {
      sent: this.sent,
      delivered: this.delivered,
      not_delivered: this.sent - this.delivered,
      ...(withLatency ? { p50_ms: lat.p50_ms, p99_ms: lat.p99_ms, max_ms: lat.max_ms } : {}),
    };
  }
}

export async function runOverload(ctx: BenchContext): Promise<Record<string, unknown>> {
  const o = ctx.options;
  if (o.rate <= 0) throw new Error('overload needs --rate (body messages per second in total, open loop)');
  const users = accountNames(o, 'o', 2 * o.pairs);
  const jids = users.map((u) => `${u}@${o.domain}`);
  const partner = (i: number) => i ^ 1;
  const registration = await registerAccounts(ctx, users);

  const body = new ClassTally();
  const receipt = new ClassTally();
  const chatState = new ClassTally();
  const presence = new ClassTally();
  const errors = new ErrorTally();
  const seq = users.map(() => 0);
  const received = users.map(() => new Set<number>()); // by sender: body seqs its partner got
  const presenceSent = users.map(() => 0); // by sender: the last presence sequence number sent
  const presenceSeen = users.map(() => 0); // by receiver: the last presence sequence number seen
  let duplicates = 0;
  let connections: (XmppConnection | null)[] = [];
  let finished = false;

  const sendOne = (i: number): void => {
    const conn = connections[i]!;
    if (conn.closed) return;
    const to = jids[partner(i)]!;
    const n = seq[i]!++;
    const now = performance.now();
    conn.send(`<message type='chat' to='${to}'><composing xmlns='${NS_CHATSTATES}'/></message>`);
    chatState.sent++;
    conn.send(`<message type='chat' to='${to}' id='o${n}_${now.toFixed(3)}'><body>${messageBody(i, n, now)}</body>`
      + `<request xmlns='${NS_RECEIPTS}'/><active xmlns='${NS_CHATSTATES}'/></message>`);
    body.sent++;
    if (n % o.presenceEvery === 0) {
      const p = ++presenceSent[i]!;
      conn.send(`<presence to='${to}'><show>${p % 2 === 0 ? 'away' : 'chat'}</show><status>${p}:${now.toFixed(3)}</status></presence>`);
      presence.sent++;
    }
  };

  const onStanza = (receiver: number) => (s: Stanza): void => {
    const conn = connections[receiver]!;
    if (s.name === 'presence') {
      const from = startTagAttr(s.xml, 'from');
      if (from === undefined || !from.startsWith(jids[partner(receiver)]!)) return;
      const status = childText(s.xml, 'status');
      if (status === undefined) return;
      const [p, sentAt] = status.split(':').map(Number) as [number, number];
      presence.delivered++;
      presence.latency.add(performance.now() - sentAt);
      presenceSeen[receiver] = Math.max(presenceSeen[receiver]!, p);
      return;
    }
    if (s.name !== 'message') return;
    const text = childText(s.xml, 'body');
    if (text !== undefined) {
      const parsed = parseBody(text);
      if (!parsed || startTagAttr(s.xml, 'type') === 'error') {
        errors.add('body message bounced or unparsable');
        return;
      }
      if (received[parsed.sender]!.has(parsed.seq)) {
        duplicates++;
        return;
      }
      received[parsed.sender]!.add(parsed.seq);
      body.delivered++;
      body.latency.add(performance.now() - parsed.sentAt);
      // XEP-0184 §5: the receiving client acknowledges at once
      const id = startTagAttr(s.xml, 'id');
      const from = startTagAttr(s.xml, 'from');
      if (id !== undefined && from !== undefined && !conn.closed && !finished) {
        conn.send(`<message to='${from}'><received xmlns='${NS_RECEIPTS}' id='${id}'/></message>`);
        receipt.sent++;
      }
      return;
    }
    if (s.xml.includes(`<received xmlns='${NS_RECEIPTS}'`) || s.xml.includes(`<received xmlns="${NS_RECEIPTS}"`)) {
      receipt.delivered++;
      const id = /id=['"]o\d+_([\d.]+)['"]/.exec(s.xml.slice(s.xml.indexOf('<received')));
      if (id) receipt.latency.add(performance.now() - Number(id[1]));
      return;
    }
    if (s.xml.includes(NS_CHATSTATES)) chatState.delivered++;
  };

  try {
    ctx.log(`overload: logging in ${users.length} clients (${o.pairs} pairs)`);
    const ready = users.map((u) => registration.ready.has(u));
    const login = await loginAll(ctx, users.filter((_, i) => ready[i]), o.setupconc);
    let k = 0;
    connections = users.map((_, i) => (ready[i] ? login.connections[k++] ?? null : null));
    connections.forEach((conn, i) => {
      if (!conn) return;
      conn.onStanza = onStanza(i);
      conn.onClose = () => {
        if (!finished) errors.add(conn.failure ?? new Error('connection closed'));
      };
      conn.send('<presence/>');
    });
    const active = users.map((_, i) => i).filter((i) => connections[i] && connections[i ^ 1]);
    if (active.length === 0) throw new Error('no pair could log in');
    await Promise.all(active.map(async (i) => {
      try { await connections[i]!.ping(); } catch (err) { errors.add(err); }
    }));
    await sleep(500);

    ctx.log(`overload: ${active.length / 2} pairs, ${o.rate} body msgs/s open loop, presence every ${o.presenceEvery}, ${o.duration} s`);
    const meter = new CpuMeter(o.pids);
    let credit = 0;
    let last = performance.now();
    let next = 0;
    const pacer = setInterval(() => {
      const t = performance.now();
      credit += (o.rate * (t - last)) / 1000;
      last = t;
      while (credit >= 1) {
        sendOne(active[next]!);
        next = (next + 1) % active.length;
        credit -= 1;
      }
    }, 5);
    await sleep(o.duration * 1000);
    clearInterval(pacer);
    const cpu = meter.stop();
    // drained: every body message in, and nothing else arriving for a second (what was held back
    // goes out once the load falls; what was dropped never comes)
    let lastCount = -1;
    let quietSince = performance.now();
    await waitUntil(() => {
      const count = body.delivered + receipt.delivered + chatState.delivered + presence.delivered;
      if (count !== lastCount) {
        lastCount = count;
        quietSince = performance.now();
      }
      return (body.delivered >= body.sent && performance.now() - quietSince > 1000) || active.every((i) => connections[i]!.closed);
    }, o.drain * 1000);
    finished = true;

    const stalePresence = active.filter((r) => presenceSent[partner(r)]! > 0 && presenceSeen[r] !== presenceSent[partner(r)]).length;
    const wallS = cpu.wall_ms / 1000;
    const result: Record<string, unknown> = {
      scenario: 'overload',
      pairs: o.pairs,
      active_pairs: active.length / 2,
      rate: o.rate,
      presence_every: o.presenceEvery,
      duration_s: o.duration,
      body_sent: body.sent,
      body_delivered: body.delivered,
      body_lost: body.sent - body.delivered,
      body_duplicates: duplicates,
      body_p50_ms: body.latency.summary().p50_ms,
      body_p99_ms: body.latency.summary().p99_ms,
      body_max_ms: body.latency.summary().max_ms,
      receipts: receipt.report(true),
      chat_states: chatState.report(false),
      presence: presence.report(true),
      presence_receivers_stale: stalePresence,
      server_cpu_pct: ratio(cpu.server_cpu_ms === null ? null : 100 * cpu.server_cpu_ms, cpu.wall_ms, 1),
      gen_cpu_pct: ratio(100 * cpu.gen_cpu_ms, cpu.wall_ms, 1),
      wall_s: round(wallS, 3),
    };
    const allErrors = { ...registration.failed.toJSON(10, 'register: '), ...login.failed.toJSON(10, 'login: '), ...errors.toJSON() };
    if (Object.keys(allErrors).length > 0) result['errors'] = allErrors;
    return result;
  } finally {
    finished = true;
    await closeAll(connections);
  }
}
