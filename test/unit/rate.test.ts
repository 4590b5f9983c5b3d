import test from 'ava';
import { RateLimiter } from '../../src/c2s/rate.js';

test('a client within its burst is never paused', (t) => {
  const limiter = new RateLimiter(1000, 4000, 0);
  t.is(limiter.consume(4000, 0), 0);
});

test('beyond the burst, the pause is the time to earn the deficit back', (t) => {
  const limiter = new RateLimiter(1000, 4000, 0);
  t.is(limiter.consume(6000, 0), 2000); // 2000 bytes over at 1000 B/s
});

test('the allowance refills with time, up to the burst', (t) => {
  const limiter = new RateLimiter(1000, 4000, 0);
  limiter.consume(4000, 0);
  t.is(limiter.consume(1000, 1000), 0); // one second earned 1000 bytes
  t.is(limiter.consume(4000, 100_000), 0); // a long quiet time refills only to the burst
  t.true(limiter.consume(1, 100_000) > 0);
});
