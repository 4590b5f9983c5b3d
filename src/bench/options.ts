// Command line of the load generator (node:util parseArgs), validated into BenchOptions.
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';

export type TlsMode = 'starttls' | 'direct';
export type SessionPolicy = 'advertised' | 'required' | 'never';
export type ScenarioName = 'login' | 'fast' | 'msg' | 'muc' | 'mam' | 'overload' | 'trickle';
export const SCENARIOS: readonly ScenarioName[] = ['login', 'fast', 'msg', 'muc', 'mam', 'overload', 'trickle'];

export interface BenchOptions {
  host: string;
  port: number;
  /** several nodes of a cluster (the first is `port`): msg spreads its pairs over them */
  ports: number[];
  /** msg: the fraction of pairs whose two ends are on different nodes (with several --ports) */
  cross: number;
  domain: string;
  tls: TlsMode;
  scenarios: ScenarioName[];
  /** login: accounts that log in, and logins in flight at once */
  clients: number;
  concurrency: number;
  /** msg: pairs online, seconds timed, unacknowledged messages per sender, total msgs/s (0 = max), grace */
  pairs: number;
  duration: number;
  window: number;
  rate: number;
  drain: number;
  /** muc: users in the room, how many of them post (each with --window posts in flight), the MUC service */
  occupants: number;
  senders: number;
  muc: string;
  password: string;
  prefix: string;
  /** server process for CPU readings (its descendants are included) */
  pid: number | null;
  /** every process whose CPU counts (several nodes, Redis): --pid 1,2,3 */
  pids: number[];
  /** seconds one login (or one registration stream) may take before it counts as failed */
  timeout: number;
  /** account creation: parallel streams, registrations per stream */
  regconc: number;
  regbatch: number;
  /** untimed logins before msg */
  setupconc: number;
  session: SessionPolicy;
  /** preferred SASL mechanism; 'auto' = SCRAM-SHA-1, else SCRAM-SHA-256, else PLAIN (TLS only) */
  sasl: string;
  /** login: derive the SCRAM keys while registering (untimed), as returning clients have them cached */
  prewarm: boolean;
  /** mam: the server's SQLite file to generate the archive into ('' = use what is there), its size and shape, queries per shape */
  mamDb: string;
  mamMessages: number;
  mamPeers: number;
  mamDays: number;
  mamQueries: number;
  mamPage: number;
  /** overload: a directed presence change every this many body messages of a sender */
  presenceEvery: number;
  /** trickle: connections sending one slow stanza each, its size, the TCP write size, writes per second per attacker */
  attackers: number;
  stanzaBytes: number;
  segment: number;
  segmentsPerSecond: number;
}

export const USAGE = `usage: npm run bench -- [options]   (node dist/src/bench/loadgen.js [options])

Connects to a running XMPP server, creates accounts by in-band registration (XEP-0077,
untimed), runs the scenarios and prints one JSON line per scenario on stdout
(a human summary goes to stderr).

  --host 127.0.0.1       --port 5222          --domain localhost
  --tls starttls|direct  (self-signed certificates are accepted)
  --scenario login,msg
  login:  --clients 500 --concurrency 50
  fast:   --clients --concurrency as for login; the same accounts log in with SCRAM-SHA-256
          (legacy SASL + bind), SCRAM-SHA-256-PLUS (SASL2 + Bind2), a FAST token (XEP-0484,
          one round trip) and a FAST token over a resumed TLS session; server CPU per login
          of each and the ratios to SCRAM-SHA-256 (needs --pid; TLS must be the server's own)
  msg:    --pairs 100 --duration 10 (s) --window 10 --rate 0 (total msgs/s, 0 = max) --drain 3 (s)
  muc:    --occupants 50 --senders 10 --muc conference.<domain>  (one room; --duration, --window, --drain
          as for msg; a post's reflection to its sender frees its window)
  --password benchpass   --prefix <random>    --pid <server pid> (server CPU per login / per 1k msgs;
          a comma-separated list is summed: the nodes of a cluster and Redis)
  cluster: --ports 5222,5223 (msg: pairs spread over the nodes, round robin) --cross 1.0 (the
          fraction of pairs whose two users are on different nodes)
  --timeout 30 (s per login)  --regconc 10 --regbatch 25  --setupconc 50
  --session advertised|required|never  (legacy RFC 3921 session IQ)
  --sasl auto|SCRAM-SHA-1|SCRAM-SHA-256|PLAIN
  overload: --pairs --rate (body msgs/s in total, open loop: required) --duration --drain as for
          msg; each message follows a <composing/>, asks for a receipt the receiver sends back,
          and every --presence-every 2 messages the sender changes its directed presence
  mam:    --mam-db data/xmppd.sqlite (the running server's file: an archive of --mam-messages
          1000000 is written straight into it for one account, over --mam-days 60 with
          --mam-peers 100 contacts, unless that account already has it; reuse it with a fixed
          --prefix) --mam-queries 200 (per query shape) --mam-page 50 (RSM max)
  trickle: the msg scenario (paced: --rate, 200 if 0) on a quiet server, then again while
          --attackers 4 connections, before logging in, each send a stanza of --stanza-bytes
          250000 in --segment 10 byte TCP writes, --segments-per-second 2000 each; reports
          both p99 latencies and their ratio
  --prewarm yes|no  (login: learn salt+iterations while registering and cache the SCRAM
                     SaltedPassword, then abort the exchange; spares the timed logins the
                     client's PBKDF2, the server's work is unchanged)
`;

export class UsageError extends Error {}

function positiveInt(name: string, value: string, min = 1): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer >= ${min}, got '${value}'`);
  return n;
}

function positiveNumber(name: string, value: string, min = 0): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < min) throw new UsageError(`--${name} must be a number >= ${min}, got '${value}'`);
  return n;
}

function oneOf<T extends string>(name: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value)) {
    throw new UsageError(`--${name} must be one of ${allowed.join(', ')}, got '${value}'`);
  }
  return value as T;
}

/** Parse argv (without node and script). Throws UsageError on bad input; returns null for --help. */
export function parseOptions(argv: string[]): BenchOptions | null {
  const s = (d: string) => ({ type: 'string' as const, default: d });
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      help: { type: 'boolean', short: 'h', default: false },
      host: s('127.0.0.1'),
      port: s('5222'),
      ports: s(''),
      cross: s('0'),
      domain: s('localhost'),
      tls: s('starttls'),
      scenario: s('login,msg'),
      clients: s('500'),
      concurrency: s('50'),
      pairs: s('100'),
      duration: s('10'),
      window: s('10'),
      rate: s('0'),
      drain: s('3'),
      occupants: s('50'),
      senders: s('10'),
      muc: s(''),
      password: s('benchpass'),
      prefix: s(''),
      pid: s(''),
      timeout: s('30'),
      regconc: s('10'),
      regbatch: s('25'),
      setupconc: s('50'),
      session: s('advertised'),
      sasl: s('auto'),
      prewarm: s('yes'),
      'mam-db': s(''),
      'mam-messages': s('1000000'),
      'mam-peers': s('100'),
      'mam-days': s('60'),
      'mam-queries': s('200'),
      'mam-page': s('50'),
      'presence-every': s('2'),
      attackers: s('4'),
      'stanza-bytes': s('250000'),
      segment: s('10'),
      'segments-per-second': s('2000'),
    },
  });
  if (values.help) return null;

  const scenarios = values.scenario.split(',').map((x) => x.trim()).filter(Boolean)
    .map((x) => oneOf('scenario', x, SCENARIOS));
  if (scenarios.length === 0) throw new UsageError('--scenario needs at least one of ' + SCENARIOS.join(', '));
  const prefix = values.prefix || 'b' + Date.now().toString(36) + randomBytes(2).toString('hex');
  if (!/^[a-z0-9_.-]+$/i.test(prefix)) throw new UsageError('--prefix may only contain letters, digits, _ . -');
  const sasl = values.sasl.toUpperCase() === 'AUTO' ? 'auto' : values.sasl.toUpperCase();
  oneOf('sasl', sasl, ['auto', 'SCRAM-SHA-1', 'SCRAM-SHA-256', 'PLAIN']);

  const ports = values.ports === '' ? [positiveInt('port', values.port)] : values.ports.split(',').map((p) => positiveInt('ports', p.trim()));
  const pids = values.pid === '' ? [] : values.pid.split(',').map((p) => positiveInt('pid', p.trim()));
  const cross = positiveNumber('cross', values.cross);
  if (cross > 1) throw new UsageError(`--cross is a fraction from 0 to 1, got '${values.cross}'`);
  return {
    host: values.host,
    port: ports[0]!,
    ports,
    cross,
    domain: values.domain,
    tls: oneOf('tls', values.tls, ['starttls', 'direct'] as const),
    scenarios,
    clients: positiveInt('clients', values.clients),
    concurrency: positiveInt('concurrency', values.concurrency),
    pairs: positiveInt('pairs', values.pairs),
    duration: positiveNumber('duration', values.duration, 0.1),
    window: positiveInt('window', values.window),
    rate: positiveNumber('rate', values.rate),
    drain: positiveNumber('drain', values.drain),
    occupants: positiveInt('occupants', values.occupants),
    senders: positiveInt('senders', values.senders),
    muc: values.muc || `conference.${values.domain}`,
    password: values.password,
    prefix,
    pid: pids[0] ?? null,
    pids,
    timeout: positiveNumber('timeout', values.timeout, 0.1),
    regconc: positiveInt('regconc', values.regconc),
    regbatch: positiveInt('regbatch', values.regbatch),
    setupconc: positiveInt('setupconc', values.setupconc),
    session: oneOf('session', values.session, ['advertised', 'required', 'never'] as const),
    sasl,
    prewarm: oneOf('prewarm', values.prewarm, ['yes', 'no'] as const) === 'yes',
    mamDb: values['mam-db'],
    mamMessages: positiveInt('mam-messages', values['mam-messages']),
    mamPeers: positiveInt('mam-peers', values['mam-peers']),
    mamDays: positiveNumber('mam-days', values['mam-days'], 1),
    mamQueries: positiveInt('mam-queries', values['mam-queries']),
    mamPage: positiveInt('mam-page', values['mam-page']),
    presenceEvery: positiveInt('presence-every', values['presence-every']),
    attackers: positiveInt('attackers', values.attackers, 0),
    stanzaBytes: positiveInt('stanza-bytes', values['stanza-bytes'], 100),
    segment: positiveInt('segment', values.segment),
    segmentsPerSecond: positiveInt('segments-per-second', values['segments-per-second']),
  };
}
