import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { z } from 'zod';
import {
  ConfigError,
  configFromObject,
  formatProblems,
  loadConfig,
  loadConfigFile,
  modulesForHost,
  parseConfigText,
  validateCoreConfig,
  validateModuleOptions,
  validateSection,
  type ConfigProblem,
} from '../../src/config/load.js';
import { STANDARD_MODULES } from '../../src/config/schema.js';
import { byteSize, duration, durationOrNever, parseByteSize, parseDuration } from '../../src/config/units.js';

// Compiled to dist/test/unit/, so the repository root is three levels up.
const root = fileURLToPath(new URL('../../../', import.meta.url));
const shipped = (name: string) => path.join(root, 'config', name);

function problemsOf(fn: () => unknown): ConfigProblem[] {
  const err = (() => {
    try {
      fn();
    } catch (e) {
      return e;
    }
    throw new Error('expected a ConfigError, nothing was thrown');
  })();
  if (!(err instanceof ConfigError)) throw err;
  return err.problems;
}

const check = (yaml: string) => problemsOf(() => validateCoreConfig(parseConfigText(yaml, 'xmppd.yml')));

test('the shipped dev config validates: localhost, loopback listeners, standard modules', (t) => {
  const { config } = loadConfig(shipped('xmppd.yml'));
  t.deepEqual(config.hosts.map((h) => [h.domain, h.registration, h.tls]), [['localhost', 'open', undefined]]);
  t.deepEqual(config.c2s.listen, [
    { host: '127.0.0.1', port: 5222, tls: 'starttls' },
    { host: '127.0.0.1', port: 5223, tls: 'direct' },
  ]);
  t.is(config.storage.driver, 'sqlite');
  t.is(config.storage.sqlite_file, path.resolve('data', 'xmppd.sqlite'));
  t.deepEqual(Object.keys(config.modules).sort(), [...STANDARD_MODULES].sort());
});

test('the shipped example config validates and shows exactly the defaults', (t) => {
  const { config } = loadConfig(shipped('xmppd.example.yml'));
  t.deepEqual(config, validateCoreConfig(parseConfigText('', 'empty.yml')));
});

test('an empty file is a working single-host configuration', (t) => {
  const config = validateCoreConfig(parseConfigText('# nothing but a comment\n', 'xmppd.yml'));
  t.is(config.hosts[0]?.domain, 'localhost');
  t.is(config.hosts[0]?.registration, 'open');
  t.is(config.c2s.max_stanza_size, 256 * 1024);
  t.is(config.c2s.ping_interval, 300);
  t.is(config.c2s.whitespace_keepalive, null);
  t.deepEqual(config.c2s.auth_throttle, {
    per_ip: { attempts: 10, window: 60 },
    per_account_and_ip: { attempts: 5, window: 60 },
    per_account: { attempts: 5, window: 60 },
    max_backoff: 3600,
  });
  t.is(config.log.format, 'json');
});

test('registration defaults to invitations on a real domain, open on localhost', (t) => {
  const config = validateCoreConfig(parseConfigText('hosts:\n  - domain: Example.ORG\n  - domain: localhost\n', 'xmppd.yml'));
  t.is(config.hosts[0]?.domain, 'example.org');
  t.is(config.hosts[0]?.registration, 'invite');
  t.is(config.hosts[1]?.registration, 'open');
});

test('an unknown key is reported at the key, with a suggestion for a typo', (t) => {
  const problems = check('c2s:\n  require_encryption: true\n  max_stanza_sise: 1MiB\n');
  t.deepEqual(problems, [
    {
      file: 'xmppd.yml',
      line: 3,
      column: 3,
      path: 'c2s.max_stanza_sise',
      message: 'unknown option (did you mean max_stanza_size?)',
    },
  ]);
});

test('a wrong type is reported with its line, column and path', (t) => {
  const problems = check('hosts:\n  - domain: localhost\n    tls:\n      cert: 42\n      key: k.pem\n');
  t.is(problems.length, 1);
  t.like(problems[0], { line: 4, column: 13, path: 'hosts[0].tls.cert', message: 'expected a string, got 42' });
});

test('a bad size reads like a compiler error', (t) => {
  const problems = check('c2s:\n  max_stanza_size: huge\n');
  t.is(formatProblems(problems), 'xmppd.yml:2:20: c2s.max_stanza_size: expected a size like 256KiB, 10MiB, 1GB, got "huge"');
});

test('a missing key is reported at its parent', (t) => {
  const problems = check('hosts:\n  - domain: example.org\n    tls:\n      cert: c.pem\n');
  t.deepEqual(problems.map((p) => [p.line, p.path, p.message]), [[3, 'hosts[0].tls.key', 'missing required option']]);
});

test('postgres without a URL is reported', (t) => {
  const problems = check('storage:\n  driver: postgres\n');
  t.is(problems.length, 1);
  t.like(problems[0], { line: 1, path: 'storage.postgres_url' });
});

test('every problem in a file is reported at once, in file order', (t) => {
  const err = t.throws(
    () =>
      validateCoreConfig(
        parseConfigText(
          [
            'log:',
            '  level: loud', // 2
            'hosts:',
            '  - domain: example.org',
            '    admins: [bob]', // 5
            'c2s:',
            '  listen:',
            '    - { port: 99999, tls: direct }', // 8
            '  ping_interval: soon', // 9
            '  auth_timeout: true', // 10
            'modules:',
            '  roster: yes', // 12
            'colour: blue', // 13
          ].join('\n'),
          'xmppd.yml',
        ),
      ),
    { instanceOf: ConfigError },
  );
  t.deepEqual(
    err.problems.map((p) => `${p.line} ${p.path}`),
    [
      '2 log.level',
      '5 hosts[0].admins[0]',
      '8 c2s.listen[0].port',
      '9 c2s.ping_interval',
      '10 c2s.auth_timeout',
      '12 modules.roster',
      '13 colour',
    ],
  );
  t.is(err.message.split('\n').length, 7);
  t.regex(err.message, /^xmppd\.yml:2:10: log\.level: expected one of trace, debug, info/);
});

test('a YAML syntax error has a line', (t) => {
  const problems = problemsOf(() => parseConfigText('c2s:\n  listen: [\n    { port: 5222 }\nmodules: {}\n', 'xmppd.yml'));
  t.true(problems.length >= 1);
  t.truthy(problems[0]?.line);
  t.regex(problems[0]!.message, /^YAML syntax error: /);
});

test('a duplicate key is a YAML error at the second occurrence', (t) => {
  const problems = problemsOf(() => parseConfigText('data_dir: a\nlog: {}\ndata_dir: b\n', 'xmppd.yml'));
  t.deepEqual(problems.map((p) => [p.line, p.column]), [[3, 1]]);
  t.regex(problems[0]!.message, /unique/);
});

test('a missing file is a ConfigError that names the path', (t) => {
  const problems = problemsOf(() => loadConfigFile(path.join(root, 'config', 'no-such-file.yml')));
  t.is(problems.length, 1);
  t.regex(problems[0]!.message, /not found.*no-such-file\.yml/);
});

test('a configuration given as an object reports paths without lines', (t) => {
  const problems = problemsOf(() => validateCoreConfig(configFromObject({ c2s: { ping_timeout: 'later' } }, 'embedded')));
  t.deepEqual(problems, [
    { file: 'embedded', line: undefined, column: undefined, path: 'c2s.ping_timeout', message: 'expected a duration like 30s, 5m, 1d, got "later"' },
  ]);
  t.is(formatProblems(problems), 'embedded: c2s.ping_timeout: expected a duration like 30s, 5m, 1d, got "later"');
});

test('relative paths resolve against the working directory, :memory: stays', (t) => {
  const config = validateCoreConfig(
    configFromObject({
      data_dir: 'state',
      storage: { sqlite_file: ':memory:' },
      hosts: [{ domain: 'example.org', tls: { cert: 'certs/a.crt', key: '/etc/a.key' } }],
    }),
  );
  t.is(config.data_dir, path.resolve('state'));
  t.is(config.storage.sqlite_file, ':memory:');
  t.deepEqual(config.hosts[0]?.tls, { cert: path.resolve('certs/a.crt'), key: '/etc/a.key' });
});

test('durations parse from seconds and from units', (t) => {
  t.is(parseDuration(90), 90);
  t.is(parseDuration('30s'), 30);
  t.is(parseDuration('5m'), 300);
  t.is(parseDuration('2h'), 7200);
  t.is(parseDuration('7d'), 604_800);
  t.is(parseDuration('1w'), 604_800);
  t.is(parseDuration('1y'), 365 * 86_400);
  t.is(parseDuration('1h30m'), 5400);
  t.is(parseDuration('2 days'), 172_800);
  t.is(parseDuration('500ms'), 0.5);
  t.is(parseDuration('soon'), undefined);
  t.is(parseDuration('5x'), undefined);
  t.is(parseDuration(-1), undefined);
  t.is(duration().parse('1m'), 60);
  t.is(durationOrNever().parse('never'), null);
  t.is(durationOrNever().parse('Infinity'), null);
  t.is(durationOrNever().parse('10s'), 10);
  t.false(duration().safeParse('never').success);
});

test('sizes parse from bytes and from units', (t) => {
  t.is(parseByteSize(1024), 1024);
  t.is(parseByteSize('256KiB'), 262_144);
  t.is(parseByteSize('10MiB'), 10_485_760);
  t.is(parseByteSize('1GiB'), 1_073_741_824);
  t.is(parseByteSize('500kB'), 500_000);
  t.is(parseByteSize('1MB'), 1_000_000);
  t.is(parseByteSize('1.5 KiB'), 1536);
  t.is(parseByteSize('12'), 12);
  t.is(parseByteSize('10 parsecs'), undefined);
  t.is(parseByteSize(1.5), undefined);
  t.is(byteSize().parse('2KiB'), 2048);
});

test("validateSection reports a line inside a module's own section", (t) => {
  const yaml = ['hosts:', '  - domain: localhost', 'modules:', '  mam:', '    default_policy: roster', '    max_age: forever', '    extra: 1', ''].join('\n');
  const source = parseConfigText(yaml, 'xmppd.yml');
  validateCoreConfig(source);
  const mamOptions = z.strictObject({
    default_policy: z.enum(['always', 'never', 'roster']).default('roster'),
    max_age: duration().prefault('1y'),
  });
  const problems = problemsOf(() => validateSection(source, ['modules', 'mam'], mamOptions));
  t.deepEqual(
    problems.map((p) => [p.line, p.column, p.path]),
    [
      [6, 14, 'modules.mam.max_age'],
      [7, 5, 'modules.mam.extra'],
    ],
  );
  t.deepEqual(validateSection(configFromObject({ modules: { mam: {} } }), ['modules', 'mam'], mamOptions), {
    default_policy: 'roster',
    max_age: 365 * 86_400,
  });
});

test("a module option overridden on a host is reported at the host's line", (t) => {
  const yaml = [
    'hosts:',
    '  - domain: localhost',
    '  - domain: example.org',
    '    modules:',
    '      upload: { max_size: lots }', // 5
    'modules:',
    '  upload:',
    '    max_size: 10MiB',
    '    expires: tomorrow', // 9
    '  ping: true',
    '',
  ].join('\n');
  const source = parseConfigText(yaml, 'xmppd.yml');
  const config = validateCoreConfig(source);
  const uploadOptions = z.strictObject({ max_size: byteSize().prefault('10MiB'), expires: duration().prefault('1w') });
  const problems = problemsOf(() => validateModuleOptions(source, config, 1, 'upload', uploadOptions));
  t.deepEqual(
    problems.map((p) => `${p.line} ${p.path}`),
    ['5 hosts[1].modules.upload.max_size', '9 modules.upload.expires'],
  );
});

test('modules for a host: top-level list with the host overrides laid over it', (t) => {
  const config = validateCoreConfig(
    configFromObject({
      hosts: [{ domain: 'localhost' }, { domain: 'example.org', modules: { register: false, upload: { max_size: '1MiB' }, ping: { x: 2 } } }],
      modules: { register: null, ping: { x: 1, y: 1 }, version: false },
    }),
  );
  t.deepEqual([...modulesForHost(config, config.hosts[0]!)], [
    ['register', {}],
    ['ping', { x: 1, y: 1 }],
  ]);
  t.deepEqual([...modulesForHost(config, config.hosts[1]!)], [
    ['ping', { x: 2, y: 1 }],
    ['upload', { max_size: '1MiB' }],
  ]);
});

test('a host listed twice is reported', (t) => {
  const problems = check('hosts:\n  - domain: example.org\n  - domain: EXAMPLE.org\n');
  t.deepEqual(problems.map((p) => [p.line, p.path, p.message]), [[3, 'hosts[1].domain', 'host example.org is listed twice']]);
});

test('a section with every option commented out keeps its defaults', (t) => {
  const config = validateCoreConfig(parseConfigText('storage:\n  # driver: postgres\nc2s:\n  auth_throttle:\n    per_ip:\n', 'xmppd.yml'));
  t.is(config.storage.driver, 'sqlite');
  t.deepEqual(config.c2s.auth_throttle.per_ip, { attempts: 10, window: 60 });
});

test('an empty module entry enables the module with default options', (t) => {
  const config = validateCoreConfig(parseConfigText('modules:\n  roster:\n  ping: true\n  time: false\n', 'xmppd.yml'));
  t.deepEqual(config.modules, { roster: {}, ping: {}, time: false });
});

test('s2s: off by default; static routes as host:port or a map; a bad route is reported at its line', (t) => {
  const defaults = validateCoreConfig(parseConfigText('', 'xmppd.yml'));
  t.false(defaults.s2s.enabled);
  t.deepEqual(defaults.s2s.listen, [{ host: '0.0.0.0', port: 5269, tls: 'starttls' }]);
  const config = validateCoreConfig(parseConfigText(
    's2s:\n  enabled: true\n  listen: [{ host: 127.0.0.1, tls: direct }]\n  routes:\n    b.localhost: "127.0.0.1:6269"\n    c.example: { host: "::1", port: 5270, tls: direct }\n',
    'xmppd.yml',
  ));
  t.deepEqual(config.s2s.listen, [{ host: '127.0.0.1', port: 5270, tls: 'direct' }]);
  t.deepEqual(config.s2s.routes, {
    'b.localhost': { host: '127.0.0.1', port: 6269, tls: 'starttls' },
    'c.example': { host: '::1', port: 5270, tls: 'direct' },
  });
  const problems = check('s2s:\n  routes:\n    b.localhost: 6269\n');
  t.is(problems.length, 1);
  t.is(problems[0]?.line, 3);
  t.is(problems[0]?.path, 's2s.routes["b.localhost"]');
  t.regex(problems[0]?.message ?? '', /host:port/);
});
