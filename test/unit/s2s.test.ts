// Pure parts of federation: where to connect for a domain (static routes, SRV, fallback), the
// per-domain authentication policy, and dialback keys.
import test from 'ava';
import { resolveTargets } from '../../src/s2s/resolve.js';
import { authPolicy, type S2SSettings } from '../../src/s2s/settings.js';
import { dialbackKey, dialbackKeyMatches } from '../../src/s2s/dialback.js';

function settings(overrides: Partial<S2SSettings> = {}): S2SSettings {
  return {
    enabled: true, listen: [], routes: new Map(), dnsServers: [], caFile: undefined, requireEncryption: true, requireValidCertificates: false,
    dialback: true, secureDomains: [], insecureDomains: [], dialbackSecret: undefined, connectTimeout: 10, idleTimeout: 300,
    maxQueuedStanzas: 1000, maxStanzaSize: 512 * 1024, ...overrides,
  };
}

type Srv = { name: string; port: number; priority: number; weight: number };
function resolver(records: Record<string, Srv[]>) {
  const asked: string[] = [];
  return {
    asked,
    resolveSrv: async (name: string) => {
      asked.push(name);
      const found = records[name];
      if (found === undefined) throw Object.assign(new Error('ENOTFOUND'), { code: 'ENOTFOUND' });
      return found;
    },
  };
}

test('a static route wins over DNS, for the domain and its subdomains', async (t) => {
  const dns = resolver({});
  const s = settings({ routes: new Map([['b.example', { host: '10.0.0.7', port: 5299, tls: 'starttls' as const }]]) });
  t.deepEqual(await resolveTargets('b.example', s, dns), [{ host: '10.0.0.7', port: 5299, tls: 'starttls' }]);
  t.deepEqual(await resolveTargets('conference.b.example', s, dns), [{ host: '10.0.0.7', port: 5299, tls: 'starttls' }]);
  t.deepEqual(dns.asked, [], 'DNS was not asked');
});

test('SRV records: direct TLS and STARTTLS merged by priority, direct TLS first on a tie (XEP-0368)', async (t) => {
  const dns = resolver({
    '_xmpps-server._tcp.example.net': [{ name: 'tls.example.net', port: 5270, priority: 10, weight: 0 }],
    '_xmpp-server._tcp.example.net': [
      { name: 'backup.example.net', port: 5269, priority: 20, weight: 0 },
      { name: 'main.example.net', port: 5269, priority: 10, weight: 0 },
    ],
  });
  t.deepEqual(await resolveTargets('example.net', settings(), dns), [
    { host: 'tls.example.net', port: 5270, tls: 'direct' },
    { host: 'main.example.net', port: 5269, tls: 'starttls' },
    { host: 'backup.example.net', port: 5269, tls: 'starttls' },
  ]);
});

test('no SRV records: the domain itself on port 5269 (RFC 6120 §3.2.2)', async (t) => {
  t.deepEqual(await resolveTargets('plain.example', settings(), resolver({})), [{ host: 'plain.example', port: 5269, tls: 'starttls' }]);
});

test('an SRV target of "." means the domain offers no federation (RFC 2782)', async (t) => {
  const dns = resolver({ '_xmpp-server._tcp.nope.example': [{ name: '.', port: 0, priority: 0, weight: 0 }] });
  await t.throwsAsync(resolveTargets('nope.example', settings(), dns), { message: 'service-unavailable' });
});

test('policy: dialback by default; certificates only when required, with per-domain exceptions', (t) => {
  t.deepEqual(authPolicy(settings(), 'x.example'), { certificateRequired: false, dialbackAllowed: true });
  const strict = settings({ requireValidCertificates: true, insecureDomains: ['old.example'] });
  t.deepEqual(authPolicy(strict, 'x.example'), { certificateRequired: true, dialbackAllowed: false });
  t.deepEqual(authPolicy(strict, 'old.example'), { certificateRequired: false, dialbackAllowed: true });
  t.deepEqual(authPolicy(settings({ secureDomains: ['bank.example'] }), 'bank.example'), { certificateRequired: true, dialbackAllowed: false });
  t.false(authPolicy(settings({ dialback: false }), 'x.example').dialbackAllowed);
});

test('dialback keys depend on both domains, the stream id and the secret (XEP-0185)', (t) => {
  const key = dialbackKey('secret', 'receiving.example', 'originating.example', 'stream-1');
  t.regex(key, /^[0-9a-f]{64}$/);
  t.true(dialbackKeyMatches('secret', 'receiving.example', 'originating.example', 'stream-1', key));
  t.false(dialbackKeyMatches('secret', 'receiving.example', 'originating.example', 'stream-2', key));
  t.false(dialbackKeyMatches('secret', 'other.example', 'originating.example', 'stream-1', key));
  t.false(dialbackKeyMatches('another secret', 'receiving.example', 'originating.example', 'stream-1', key));
  t.false(dialbackKeyMatches('secret', 'receiving.example', 'originating.example', 'stream-1', 'short'));
});
