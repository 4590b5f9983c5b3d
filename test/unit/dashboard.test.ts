// The dashboard's parts that need no server: samples of the /metrics counters turned into
// rates and mean latencies, SVG charts with gaps where nothing was delivered, and logins.
import test from 'ava';
import { ServerMetrics } from '../../src/core/metrics.js';
import { MetricsSamples } from '../../src/http/dashboard/samples.js';
import { lineChart, niceCeiling } from '../../src/http/dashboard/charts.js';
import { DashboardLogins } from '../../src/http/dashboard/logins.js';

test('two samples ten seconds apart give messages per second and the mean delivery latency between them', async (t) => {
  const metrics = new ServerMetrics(() => ({ c2s_tcp: 3, c2s_websocket: 1 }));
  const samples = new MetricsSamples(metrics.registry, 10, (err) => t.fail(String(err)));
  const start = 1_000_000;
  await samples.take(start);
  for (let i = 0; i < 50; i++) metrics.stanzasIn.count('message');
  for (let i = 0; i < 40; i++) metrics.stanzasOut.count('message');
  metrics.stanzasIn.count('presence'); // not a message
  await samples.take(start + 10_000);
  const [point] = samples.points();
  t.is(point!.at, start + 10_000);
  t.is(point!.messagesInPerSecond, 5);
  t.is(point!.messagesOutPerSecond, 4);
  t.is(point!.latencyMs, null, 'nothing delivered: no latency, not zero');
  t.is(point!.connections, 4);
});

test('an hour of samples is kept, no more', async (t) => {
  const metrics = new ServerMetrics(() => ({}));
  const samples = new MetricsSamples(metrics.registry, 600, (err) => t.fail(String(err)));
  for (let i = 0; i < 20; i++) await samples.take(i * 600_000);
  t.is(samples.capacity, 7);
  t.is(samples.points().length, 6);
  t.is(samples.points()[0]!.at, 14 * 600_000);
});

test('a chart: a polyline per run of known values, a round axis, and the legend escaped', (t) => {
  t.is(niceCeiling(4.2), 6);
  t.is(niceCeiling(0.07), 0.08);
  t.is(niceCeiling(0), 1);
  const now = 10_000_000;
  const points = [1, 2, 3, 5, 6].map((i) => ({ at: now - (6 - i) * 10_000, messagesInPerSecond: i, messagesOutPerSecond: i, latencyMs: i === 3 ? null : i, connections: 1 }));
  const svg = lineChart({ id: 'c', title: 'Latency <ms>', unit: 'ms', points, now, intervalSeconds: 10, series: [{ name: 'a & b', className: 's1', value: (p) => p.latencyMs }] });
  t.is(svg.match(/<polyline /g)?.length, 2, 'a gap where a value is missing');
  t.true(svg.includes('data-points="4"'));
  t.true(svg.includes('Latency &lt;ms&gt;'));
  t.true(svg.includes('a &amp; b'));
  t.false(svg.includes('<ms>'));
});

test('a dashboard login ends after its idle time, at logout, or for every login of a JID', (t) => {
  const logins = new DashboardLogins(1800);
  const { id, login } = logins.create('boss@localhost', 0);
  t.is(logins.find(id, 1000_000), login, 'a request within 30 min keeps it');
  t.is(logins.find(id, 1000_000 + 1800_001), undefined, 'idle for longer: ended');
  const again = logins.create('boss@localhost', 0);
  const other = logins.create('boss@localhost', 0);
  logins.endAllOf('boss@localhost');
  t.is(logins.find(again.id, 1), undefined);
  t.is(logins.find(other.id, 1), undefined);
  const last = logins.create('boss@localhost', 0);
  t.is(logins.find(`${last.id}x`, 1), undefined, 'only the exact cookie value');
  logins.end(last.id);
  t.is(logins.find(last.id, 1), undefined);
  t.not(last.login.csrf, last.id);
});
