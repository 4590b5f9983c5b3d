// Scenario "trickle": what slow senders cost everyone else. Bystanders chat (the msg scenario,
// paced, so latency measures the server rather than saturation) on a quiet server, then again
// while --attackers connections, without logging in, each send one stanza of --stanza-bytes
// (just under the server's limit) in --segment-byte TCP writes. An attacker whose connection is
// closed (or whose stanza is all sent) starts over on a new one. The result is both p99
// latencies and their ratio: a parser that re-scans a stanza's unfinished bytes on every
// segment does O(n²) work per attacker, and every client on the event loop waits for it.
import net from 'node:net';
import tls from 'node:tls';
import type { BenchContext } from '../clients.js';
import { sleep } from '../pool.js';
import { ratio } from '../stats.js';
import { runMsg } from './msg.js';

interface AttackStats {
  connections: number;
  closedByServer: number;
  bytes: number;
}

/** Starts the attackers; the returned function stops them. */
function startAttackers(ctx: BenchContext, stats: AttackStats): () => void {
  const o = ctx.options;
  let stopped = false;
  const sockets = new Set<net.Socket>();
  const perTick = Math.max(1, Math.round(o.segmentsPerSecond / 1000));
  const segment = 'x'.repeat(o.segment);
  const header = `<?xml version='1.0'?><stream:stream to='${o.domain}' xmlns='jabber:client' `
    + `xmlns:stream='http://etherx.jabber.org/streams' version='1.0'><message to='nobody@${o.domain}'><body>`;

  const attack = (): void => {
    if (stopped) return;
    stats.connections++;
    const socket = o.tls === 'direct'
      ? tls.connect({ host: o.host, port: o.port, rejectUnauthorized: false, servername: o.domain })
      : net.connect(o.port, o.host);
    socket.setNoDelay(true); // one write, one segment
    sockets.add(socket);
    let sent = 0;
    let timer: NodeJS.Timeout | null = null;
    socket.once(o.tls === 'direct' ? 'secureConnect' : 'connect', () => {
      socket.write(header);
      sent = header.length;
      timer = setInterval(() => {
        for (let i = 0; i < perTick; i++) {
          if (sent + o.segment > o.stanzaBytes) {
            socket.destroy(); // all of it sent: start over
            return;
          }
          socket.write(segment);
          sent += o.segment;
          stats.bytes += o.segment;
        }
      }, 1);
    });
    socket.on('data', () => undefined);
    socket.on('error', () => undefined);
    socket.on('close', () => {
      if (timer !== null) clearInterval(timer);
      sockets.delete(socket);
      if (sent + o.segment <= o.stanzaBytes) stats.closedByServer++;
      setTimeout(attack, 10);
    });
  };
  for (let i = 0; i < o.attackers; i++) attack();
  return () => {
    stopped = true;
    for (const socket of sockets) socket.destroy();
  };
}

export async function runTrickle(ctx: BenchContext): Promise<Record<string, unknown>> {
  const o = ctx.options;
  const phase = (suffix: string): BenchContext => ({ ...ctx, options: { ...o, rate: o.rate > 0 ? o.rate : 200, prefix: `${o.prefix}${suffix}` } });

  ctx.log('trickle: bystanders on a quiet server');
  const quiet = await runMsg(phase('q'));
  ctx.log(`trickle: ${o.attackers} attackers sending ${o.stanzaBytes} bytes in ${o.segment}-byte writes`);
  const stats: AttackStats = { connections: 0, closedByServer: 0, bytes: 0 };
  const stop = startAttackers(ctx, stats);
  let loud: Record<string, unknown>;
  try {
    await sleep(2000); // the attackers' stanzas are well under way
    loud = await runMsg(phase('a'));
  } finally {
    stop();
  }
  const p99 = (r: Record<string, unknown>) => (typeof r['p99_ms'] === 'number' ? r['p99_ms'] : null);
  return {
    scenario: 'trickle',
    attackers: o.attackers,
    stanza_bytes: o.stanzaBytes,
    segment_bytes: o.segment,
    segments_per_s: o.segmentsPerSecond,
    quiet_p50_ms: quiet['p50_ms'] ?? null,
    quiet_p99_ms: p99(quiet),
    attack_p50_ms: loud['p50_ms'] ?? null,
    attack_p99_ms: p99(loud),
    p99_ratio: ratio(p99(loud), p99(quiet)),
    quiet_lost: quiet['lost'] ?? null,
    attack_lost: loud['lost'] ?? null,
    attack_disconnected: loud['disconnected'] ?? null,
    attacker_connections: stats.connections,
    attacker_closed_by_server: stats.closedByServer,
    attacker_bytes: stats.bytes,
    quiet,
    attack: loud,
  };
}
