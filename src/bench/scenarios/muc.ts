// Scenario "muc": group fan-out. --occupants users join one room on the MUC service (the first
// creates it and submits the instant-room form when told 201); --senders of them post groupchat
// messages for --duration seconds with at most --window posts in flight each (the room's
// reflection of a post to its sender frees the window). A delivery is a post received by an
// occupant other than its sender; latency is end-to-end, as in "msg".
import { accountNames, closeAll, loginAll, registerAccounts, type BenchContext } from '../clients.js';
import type { XmppConnection } from '../connection.js';
import { CpuMeter } from '../cpu.js';
import { childText, escapeXml, startTagAttr, type Stanza } from '../framing.js';
import { runPool, sleep, waitUntil } from '../pool.js';
import { ErrorTally, LatencyRecorder, ratio, round } from '../stats.js';
import { messageBody, parseBody } from './msg.js';

const NS_MUC = 'http://jabber.org/protocol/muc';

export async function runMuc(ctx: BenchContext): Promise<Record<string, unknown>> {
  const o = ctx.options;
  const room = `${o.prefix}room@${o.muc}`;
  const users = accountNames(o, 'g', o.occupants);
  const registration = await registerAccounts(ctx, users);
  const errors = new ErrorTally();
  const latency = new LatencyRecorder();
  let connections: (XmppConnection | null)[] = [];
  let running = false;
  let deliveries = 0;
  let deliveriesInWindow = 0;
  let echoes = 0;
  let bounced = 0;
  const sent: number[] = [];
  const inflight: number[] = [];

  const nick = (i: number) => `n${i}`;
  async function join(i: number): Promise<void> {
    const conn = connections[i]!;
    const self = conn.waitForStanza('MUC self-presence', (s) => s.name === 'presence' && startTagAttr(s.xml, 'from') === `${room}/${nick(i)}`);
    conn.send(`<presence to='${escapeXml(`${room}/${nick(i)}`)}'><x xmlns='${NS_MUC}'><history maxstanzas='0'/></x></presence>`);
    const presence = await self;
    if (startTagAttr(presence.xml, 'type') === 'error') throw new Error(`MUC join refused: ${presence.xml.slice(0, 300)}`);
    if (/code=["']201["']/.test(presence.xml)) {
      // XEP-0045 §10.1.2: accept the default configuration (an instant room)
      const id = `cfg${i}`;
      await conn.iq(`<iq type='set' id='${id}' to='${escapeXml(room)}'><query xmlns='${NS_MUC}#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>`, id, 'instant room');
    }
  }

  const post = (i: number): void => {
    const seq = sent[i]!;
    sent[i] = seq + 1;
    inflight[i]!++;
    connections[i]!.send(`<message type='groupchat' to='${escapeXml(room)}' id='g${seq}'><body>${messageBody(i, seq, performance.now())}</body></message>`);
  };
  const pump = (i: number): void => {
    while (running && inflight[i]! < o.window && !connections[i]!.closed) post(i);
  };
  const onStanza = (receiver: number) => (s: Stanza): void => {
    if (s.name !== 'message') return;
    const body = childText(s.xml, 'body');
    const parsed = body === undefined ? null : parseBody(body);
    if (parsed === null || inflight[parsed.sender] === undefined) return;
    if (startTagAttr(s.xml, 'type') === 'error') {
      bounced++;
      inflight[parsed.sender]!--;
      pump(parsed.sender);
      return;
    }
    if (receiver === parsed.sender) {
      echoes++;
      inflight[receiver]!--;
      pump(receiver);
      return;
    }
    deliveries++;
    latency.add(performance.now() - parsed.sentAt);
    if (running) deliveriesInWindow++;
  };

  try {
    ctx.log(`muc: logging in ${users.length} occupants of ${room}`);
    const login = await loginAll(ctx, users, o.setupconc);
    connections = login.connections;
    if (connections.some((c) => c === null)) throw new Error(`not every occupant could log in: ${JSON.stringify(login.failed.toJSON())}`);
    connections.forEach((conn) => conn!.send('<presence/>'));
    await join(0); // the creator first, so that the room exists and is open
    let joinFailures = 0;
    await runPool(users.length - 1, o.setupconc, async (k) => {
      try { await join(k + 1); } catch (err) { joinFailures++; errors.add(err); }
    });
    if (joinFailures > 0) throw new Error(`${joinFailures} occupants could not join: ${JSON.stringify(errors.toJSON())}`);
    connections.forEach((conn, i) => (conn!.onStanza = onStanza(i)));
    await sleep(500);

    const senders = Math.min(o.senders, users.length);
    for (let i = 0; i < senders; i++) {
      sent[i] = 0;
      inflight[i] = 0;
    }
    ctx.log(`muc: ${users.length} occupants, ${senders} senders, window ${o.window}, ${o.duration} s`);
    const meter = new CpuMeter(o.pids);
    running = true;
    for (let i = 0; i < senders; i++) pump(i);
    await sleep(o.duration * 1000);
    running = false;
    const cpu = meter.stop();

    const posted = () => sent.reduce((sum, n) => sum + n, 0);
    const expected = () => (posted() - bounced) * (users.length - 1);
    await waitUntil(() => deliveries >= expected(), o.drain * 1000);
    const lat = latency.summary();
    const wallS = cpu.wall_ms / 1000;
    const result: Record<string, unknown> = {
      scenario: 'muc',
      occupants: users.length,
      senders,
      window: o.window,
      duration_s: o.duration,
      posted: posted(),
      echoes,
      bounced,
      expected_deliveries: expected(),
      deliveries,
      lost: expected() - deliveries,
      posts_per_s: round(posted() / wallS, 1),
      deliveries_per_s: round(deliveriesInWindow / wallS, 1),
      p50_ms: lat.p50_ms,
      p99_ms: lat.p99_ms,
      max_ms: lat.max_ms,
      wall_s: round(wallS, 3),
      server_cpu_ms: round(cpu.server_cpu_ms, 0),
      server_cpu_pct: ratio(cpu.server_cpu_ms === null ? null : 100 * cpu.server_cpu_ms, cpu.wall_ms, 1),
      server_cpu_ms_per_1k_deliveries: ratio(cpu.server_cpu_ms === null ? null : 1000 * cpu.server_cpu_ms, deliveriesInWindow, 2),
      gen_cpu_pct: ratio(100 * cpu.gen_cpu_ms, cpu.wall_ms, 1),
      register_failed: registration.failed.total,
    };
    if (errors.total > 0) result['errors'] = errors.toJSON();
    return result;
  } finally {
    running = false;
    await closeAll(connections);
  }
}
