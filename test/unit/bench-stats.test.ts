import test from 'ava';
import { ErrorTally, LatencyRecorder, percentile, ratio, round } from '../../src/bench/stats.js';

test('percentile of an empty sample is null', (t) => {
  t.is(percentile([], 50), null);
});

test('percentile uses the nearest rank', (t) => {
  const sorted = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  t.is(percentile(sorted, 0), 1);
  t.is(percentile(sorted, 10), 1);
  t.is(percentile(sorted, 11), 2);
  t.is(percentile(sorted, 50), 5);
  t.is(percentile(sorted, 90), 9);
  t.is(percentile(sorted, 99), 10);
  t.is(percentile(sorted, 100), 10);
});

test('percentile of one sample is that sample', (t) => {
  t.is(percentile([42], 1), 42);
  t.is(percentile([42], 99), 42);
});

test('percentile rejects p outside 0..100', (t) => {
  t.throws(() => percentile([1, 2], 101), { instanceOf: RangeError });
  t.throws(() => percentile([1, 2], Number.NaN), { instanceOf: RangeError });
});

test('the recorder sorts unordered samples and reports p50, p99, max and mean', (t) => {
  const rec = new LatencyRecorder();
  for (const v of [9, 1, 8, 2, 7, 3, 6, 4, 5, 10]) rec.add(v);
  t.is(rec.count, 10);
  t.deepEqual(rec.summary(), { count: 10, p50_ms: 5, p99_ms: 10, max_ms: 10, mean_ms: 5.5 });
});

test('adding after a percentile query is taken into account', (t) => {
  const rec = new LatencyRecorder();
  rec.add(1);
  t.is(rec.percentile(100), 1);
  rec.add(100);
  t.is(rec.percentile(100), 100);
});

test('an empty recorder reports nulls, not NaN', (t) => {
  t.deepEqual(new LatencyRecorder().summary(), { count: 0, p50_ms: null, p99_ms: null, max_ms: null, mean_ms: null });
});

test('the recorder grows past its initial buffer without losing samples', (t) => {
  const rec = new LatencyRecorder(1 << 16);
  for (let i = 1; i <= 10_000; i++) rec.add(i);
  t.is(rec.percentile(50), 5000);
  t.is(rec.percentile(99), 9900);
  t.is(rec.percentile(100), 10_000);
});

test('beyond capacity it samples a reservoir, keeping count, mean and max exact', (t) => {
  let seed = 1;
  const random = () => ((seed = (seed * 16807) % 2147483647) / 2147483647); // deterministic
  const rec = new LatencyRecorder(1000, random);
  const n = 100_000;
  for (let i = 1; i <= n; i++) rec.add(i);
  const s = rec.summary();
  t.is(s.count, n);
  t.is(s.max_ms, n);
  t.is(s.mean_ms, (n + 1) / 2);
  // a uniform reservoir of 1000 estimates the median of 1..100000 within a few percent
  t.true(Math.abs(s.p50_ms! - n / 2) < n * 0.05, `p50 ${s.p50_ms}`);
});

test('errors are tallied by message, most frequent first, with an optional prefix', (t) => {
  const tally = new ErrorTally();
  tally.add(new Error('stream error: conflict'));
  tally.add('timeout waiting for bind');
  tally.add(new Error('stream error: conflict'));
  tally.add('not attempted', 5);
  t.is(tally.total, 8);
  t.deepEqual(Object.entries(tally.toJSON()), [['not attempted', 5], ['stream error: conflict', 2], ['timeout waiting for bind', 1]]);
  t.deepEqual(tally.toJSON(1, 'login: '), { 'login: not attempted': 5 });
});

test('round and ratio return null for unknown or impossible values', (t) => {
  t.is(round(1.23456, 2), 1.23);
  t.is(round(null), null);
  t.is(round(Number.NaN), null);
  t.is(ratio(1000, 7, 1), 142.9);
  t.is(ratio(null, 7), null);
  t.is(ratio(5, 0), null);
});
