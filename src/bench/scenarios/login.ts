// Scenario "login": N clients log in, at most --concurrency in flight. Each login is timed
// from TCP connect to a bound resource (and session ready); all connections stay open until
// every login is done, so the server holds N sessions at the end, as it would in real life.
import { accountNames, breakerFor, closeAll, registerAccounts, type BenchContext } from '../clients.js';
import { XmppConnection } from '../connection.js';
import { CpuMeter } from '../cpu.js';
import { runPool, sleep } from '../pool.js';
import { ErrorTally, LatencyRecorder, ratio, round } from '../stats.js';

export async function runLogin(ctx: BenchContext): Promise<Record<string, unknown>> {
  const o = ctx.options;
  const users = accountNames(o, 'l', o.clients);
  const registration = await registerAccounts(ctx, users, { prewarmScram: o.prewarm });
  const ready = users.filter((u) => registration.ready.has(u));
  if (ready.length === 0) throw new Error(`no account could be registered: ${JSON.stringify(registration.failed.toJSON())}`);
  await sleep(500); // let the server settle after the registration burst

  const connections: XmppConnection[] = [];
  const latency = new LatencyRecorder();
  const errors = new ErrorTally();
  const mechanisms = new Set<string>();
  ctx.log(`login: ${ready.length} clients, ${o.concurrency} in flight`);
  try {
    const breaker = breakerFor(o.concurrency);
    const meter = new CpuMeter(o.pids);
    const started = await runPool(ready.length, o.concurrency, async (i) => {
      const conn = new XmppConnection(ctx.connection);
      connections.push(conn);
      const t0 = performance.now();
      try {
        await conn.login(ready[i]!, o.password);
        latency.add(performance.now() - t0);
        mechanisms.add(conn.mechanism);
        breaker.record(true);
      } catch (err) {
        errors.add(err);
        breaker.record(false);
        conn.destroy();
      }
    }, () => breaker.tripped);
    const cpu = meter.stop();
    if (started < ready.length) errors.add(breaker.reason, ready.length - started);
    const ok = latency.count;
    const lat = latency.summary();
    const result: Record<string, unknown> = {
      scenario: 'login',
      clients: o.clients,
      concurrency: o.concurrency,
      tls: o.tls,
      sasl: [...mechanisms].join(',') || null,
      ok,
      failed: errors.total,
      register_failed: registration.failed.total,
      logins_per_s: round(ok / (cpu.wall_ms / 1000), 1),
      p50_ms: lat.p50_ms,
      p99_ms: lat.p99_ms,
      max_ms: lat.max_ms,
      mean_ms: lat.mean_ms,
      wall_s: round(cpu.wall_ms / 1000, 3),
      server_cpu_ms: round(cpu.server_cpu_ms, 0),
      server_cpu_pct: ratio(cpu.server_cpu_ms === null ? null : 100 * cpu.server_cpu_ms, cpu.wall_ms, 1),
      server_cpu_ms_per_login: ratio(cpu.server_cpu_ms, ok, 3),
      gen_cpu_ms: round(cpu.gen_cpu_ms, 0),
      gen_cpu_pct: ratio(100 * cpu.gen_cpu_ms, cpu.wall_ms, 1),
      gen_cpu_ms_per_login: ratio(cpu.gen_cpu_ms, ok, 3),
    };
    const allErrors = { ...registration.failed.toJSON(10, 'register: '), ...errors.toJSON() };
    if (Object.keys(allErrors).length > 0) result['errors'] = allErrors;
    return result;
  } finally {
    await closeAll(connections);
  }
}
