// The failed-login throttle on its own, with the clock passed in (src/c2s/sasl/throttle.ts).
import test from 'ava';
import { AuthThrottle, addressKey } from '../../src/c2s/sasl/throttle.js';

const settings = {
  perIp: { attempts: 10, window: 60 },
  perAccountAndIp: { attempts: 3, window: 60 },
  perAccount: { attempts: 5, window: 60 },
  maxBackoff: 3600,
};

test('an address that keeps guessing one account is refused twice as long at each offence, up to max_backoff', (t) => {
  const throttle = new AuthThrottle(settings);
  let now = 1_000_000;
  const offence = () => {
    for (let i = 0; i < 3; i++) throttle.failed('192.0.2.1', 'alice@example.org', now);
    return throttle.blockedFor('192.0.2.1', 'alice@example.org', now);
  };
  t.is(offence(), 60);
  now += 60_000;
  t.is(throttle.blockedFor('192.0.2.1', 'alice@example.org', now), 0, 'the block ends');
  t.is(offence(), 120, 'the next offence doubles it');
  now += 120_000;
  t.is(offence(), 240);
  for (let i = 0; i < 6; i++) {
    now += 3_600_000;
    offence();
  }
  t.is(throttle.blockedFor('192.0.2.1', 'alice@example.org', now), 3600, 'capped at max_backoff');
  t.is(throttle.blockedFor('198.51.100.9', 'alice@example.org', now), 0, 'the owner elsewhere is not refused');
});

test("past the account's soft limit, failures are delayed, doubling to 30 s, and nobody is refused for it", (t) => {
  const throttle = new AuthThrottle(settings);
  const now = 1_000_000;
  const delays = Array.from({ length: 12 }, (_, i) => throttle.failed(`203.0.113.${i}`, 'alice@example.org', now));
  t.deepEqual(delays, [0, 0, 0, 0, 0, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
  t.is(throttle.blockedFor('198.51.100.9', 'alice@example.org', now), 0);
});

test("a success forgets the address's failures for that account, not its failures elsewhere", (t) => {
  const throttle = new AuthThrottle({ ...settings, perIp: { attempts: 4, window: 60 } });
  const now = 1_000_000;
  throttle.failed('192.0.2.1', 'alice@example.org', now);
  throttle.failed('192.0.2.1', 'alice@example.org', now);
  throttle.succeeded('192.0.2.1', 'alice@example.org');
  throttle.failed('192.0.2.1', 'alice@example.org', now);
  throttle.failed('192.0.2.1', 'alice@example.org', now);
  t.is(throttle.blockedFor('192.0.2.1', 'alice@example.org', now), 60, 'four failures from the address: it is refused');
});

test('quiet entries are swept', (t) => {
  const throttle = new AuthThrottle(settings);
  throttle.failed('192.0.2.1', 'alice@example.org', 0);
  t.true(throttle.size > 0);
  throttle.sweep(60_000);
  t.is(throttle.size, 0);
});

test('IPv6 addresses are counted per /64, IPv4-mapped ones as IPv4', (t) => {
  t.is(addressKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
  t.is(addressKey('2001:db8:1:2:bbbb:cccc:dddd:eeee'), '2001:db8:1:2::/64');
  t.is(addressKey('2001:0db8::7'), '2001:db8:0:0::/64');
  t.is(addressKey('::1'), '0:0:0:0::/64');
  t.is(addressKey('::ffff:192.0.2.7'), '192.0.2.7');
  t.is(addressKey('192.0.2.7'), '192.0.2.7');

  const throttle = new AuthThrottle({ ...settings, perIp: { attempts: 3, window: 60 } });
  for (let i = 1; i <= 3; i++) throttle.failed(`2001:db8:1:2::${i}`, `user${i}@example.org`, 0);
  t.is(throttle.blockedFor('2001:db8:1:2::99', undefined, 0), 60, 'a new address in the same /64 is refused too');
  t.is(throttle.blockedFor('2001:db8:1:3::1', undefined, 0), 0);
});
