// Scenario "fast": what a reconnecting client costs the server, by way of logging in, on the
// same accounts one after the other:
//   scram         SCRAM-SHA-256, legacy SASL, stream restart, resource binding (RFC 6120)
//   scram_plus    SCRAM-SHA-256-PLUS (tls-exporter) through SASL2 with Bind2 (XEP-0388/0386)
//   fast          a FAST token (XEP-0484, HT-SHA-256-NONE) through SASL2 with Bind2, one round trip
//   fast_resumed  the same, over a resumed TLS session (a TLS 1.3 ticket from the token login)
// Each phase is timed (server CPU per login, latency) with all its connections open until it
// ends; the tokens are fetched in an untimed setup, as a client that logged in once has them.
// The closing of each phase's connections is measured apart (server CPU per logout).
import { randomUUID } from 'node:crypto';
import { accountNames, breakerFor, closeAll, registerAccounts, type BenchContext } from '../clients.js';
import { XmppConnection } from '../connection.js';
import { startTagAttr } from '../framing.js';
import { CpuMeter, serverQuiet } from '../cpu.js';
import { runPool, sleep } from '../pool.js';
import { ErrorTally, LatencyRecorder, ratio, round } from '../stats.js';

const NS_BIND2 = 'urn:xmpp:bind:0';
const NS_FAST = 'urn:xmpp:fast:0';

interface Device {
  user: string;
  agent: string;
  token: string;
  tls: Buffer | null;
}

const userAgent = (id: string) => `<user-agent id='${id}'><software>xmppd bench</software></user-agent>`;
const BIND = `<bind xmlns='${NS_BIND2}'><tag>bench</tag></bind>`;

type Phase = 'scram' | 'scram_plus' | 'fast' | 'fast_resumed';

export async function runFast(ctx: BenchContext): Promise<Record<string, unknown>> {
  const o = ctx.options;
  const users = accountNames(o, 'f', o.clients);
  const registration = await registerAccounts(ctx, users, { prewarmScram: o.prewarm });
  const ready = users.filter((u) => registration.ready.has(u));
  if (ready.length === 0) throw new Error(`no account could be registered: ${JSON.stringify(registration.failed.toJSON())}`);

  // untimed: each device logs in once with its password and gets a token (and a TLS ticket)
  const devices: Device[] = [];
  const setupErrors = new ErrorTally();
  await runPool(ready.length, o.concurrency, async (i) => {
    const conn = new XmppConnection(ctx.connection);
    const agent = randomUUID();
    try {
      await conn.open();
      const success = await conn.authenticateSasl2Scram(ready[i]!, o.password, 'sha256', false,
        userAgent(agent) + BIND + `<request-token xmlns='${NS_FAST}' mechanism='HT-SHA-256-NONE'/>`);
      const tokenTag = /<token\b[^>]*>/.exec(success.xml)?.[0];
      const token = tokenTag === undefined ? undefined : startTagAttr(tokenTag, 'token');
      if (token === undefined) throw new Error('no FAST token issued (is the fast module enabled, and is the TLS ours?)');
      devices.push({ user: ready[i]!, agent, token, tls: null });
    } catch (err) {
      setupErrors.add(err);
    } finally {
      await conn.close();
    }
  });
  if (devices.length === 0) throw new Error(`no device got a token: ${JSON.stringify(setupErrors.toJSON())}`);
  await sleep(500);

  const result: Record<string, unknown> = { scenario: 'fast', clients: o.clients, concurrency: o.concurrency, tls: o.tls, devices: devices.length };
  const perLogin: Partial<Record<Phase, number | null>> = {};
  // two rounds of the four phases: the first warms the server up (JIT, caches) and shows the
  // order's bias; the ratios are taken from the second
  const rounds: Array<Record<string, unknown>> = [];
  for (let pass = 1; pass <= 2; pass++) {
    const roundResult: Record<string, unknown> = {};
    rounds.push(roundResult);
    for (const phase of ['scram', 'scram_plus', 'fast', 'fast_resumed'] as const) {
      const connections: XmppConnection[] = [];
      const latency = new LatencyRecorder();
      const errors = new ErrorTally();
      let resumed = 0;
      ctx.log(`fast: round ${pass}, phase ${phase}, ${devices.length} logins, ${o.concurrency} in flight`);
      const breaker = breakerFor(o.concurrency);
      // the last phase's connections are closed: their teardown is not this phase's cost
      await serverQuiet(o.pid);
      const meter = new CpuMeter(o.pid);
      await runPool(devices.length, o.concurrency, async (i) => {
        const device = devices[i]!;
        const conn = new XmppConnection(ctx.connection);
        connections.push(conn);
        if (phase === 'fast_resumed') conn.resumeTlsSession = device.tls;
        const t0 = performance.now();
        try {
          await conn.open();
          if (phase === 'scram') {
            await conn.authenticate(device.user, o.password, 'SCRAM-SHA-256');
            await conn.bind('bench');
          } else if (phase === 'scram_plus') {
            await conn.authenticateSasl2Scram(device.user, o.password, 'sha256', true, userAgent(device.agent) + BIND);
          } else {
            await conn.authenticateFast(device.user, device.token, userAgent(device.agent) + BIND);
          }
          latency.add(performance.now() - t0);
          if (conn.tlsResumed) resumed++;
          breaker.record(true);
        } catch (err) {
          errors.add(err);
          breaker.record(false);
          conn.destroy();
        }
      }, () => breaker.tripped);
      const cpu = meter.stop();
      // a TLS 1.3 ticket arrives after the handshake: keep the last one for the resumed phase
      for (let i = 0; i < connections.length; i++) if (phase === 'fast') devices[i]!.tls = connections[i]!.tlsSession;
      // what the server does when a device goes away: the session ended, presence, last activity
      const closing = new CpuMeter(o.pid);
      await closeAll(connections);
      await serverQuiet(o.pid);
      const closeCpu = closing.stop();
      const ok = latency.count;
      const lat = latency.summary();
      perLogin[phase] = ratio(cpu.server_cpu_ms, ok, 3);
      roundResult[phase] = {
        ok,
        failed: errors.total,
        ...(phase === 'fast_resumed' ? { tls_resumed: resumed } : {}),
        p50_ms: lat.p50_ms,
        p99_ms: lat.p99_ms,
        logins_per_s: round(ok / (cpu.wall_ms / 1000), 1),
        server_cpu_ms_per_login: perLogin[phase],
        server_cpu_ms_per_logout: ratio(closeCpu.server_cpu_ms, ok, 3),
        gen_cpu_ms_per_login: ratio(cpu.gen_cpu_ms, ok, 3),
        ...(Object.keys(errors.toJSON()).length > 0 ? { errors: errors.toJSON() } : {}),
      };
      await sleep(300);
    }
  }
  result['round1'] = rounds[0];
  Object.assign(result, rounds[1]);
  // the target: a FAST login at most half the server CPU of a SCRAM-SHA-256 one
  const scram = perLogin.scram ?? null;
  result['fast_vs_scram'] = scram === null || perLogin.fast == null ? null : round(perLogin.fast / scram, 3);
  result['fast_resumed_vs_scram'] = scram === null || perLogin.fast_resumed == null ? null : round(perLogin.fast_resumed / scram, 3);
  result['scram_plus_vs_scram'] = scram === null || perLogin.scram_plus == null ? null : round(perLogin.scram_plus / scram, 3);
  if (setupErrors.total > 0) result['setup_errors'] = setupErrors.toJSON();
  return result;
}
