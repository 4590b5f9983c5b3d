// Starts xmppd for ../shared/bench (its "external server contract"): configuration from the
// BENCH_* environment (port, domain, fresh data dir), JSON logs at warn level. Our default
// self-signed ECDSA certificate is used unless XMPPD_BENCH_HARNESS_CERT=1 (the harness's RSA one).
// Usage: ../shared/bench/compare.sh --external-cmd 'node dist/scripts/bench-server.js' ...
// A cluster node: XMPPD_BENCH_POSTGRES_URL (shared database), XMPPD_BENCH_REDIS_URL and
// XMPPD_BENCH_NODE_ID (docs/benchmarks-log.md "Cluster"); the PostgreSQL URL alone runs one node on it.
import pino from 'pino';
import { configFromObject, validateCoreConfig } from '../src/config/load.js';
import { createServer } from '../src/app.js';
import { STANDARD_MODULES } from '../src/config/schema.js';

const env = process.env;
const domain = env.BENCH_DOMAIN ?? 'localhost';
// XMPPD_BENCH_MODULES: the modules to run, comma-separated, or `-name,...` for all standard
// modules but these (e.g. `-mam`: like for like with Prosody and ejabberd, which run without MAM)
const moduleList = env.XMPPD_BENCH_MODULES?.trim();
const modules = moduleList === undefined || moduleList === ''
  ? STANDARD_MODULES
  : moduleList.startsWith('-')
    ? STANDARD_MODULES.filter((name) => !moduleList.slice(1).split(',').map((s) => s.trim()).includes(name))
    : moduleList.split(',').map((s) => s.trim()).filter((s) => s !== '');
const raw = {
  data_dir: env.BENCH_DATA_DIR ?? './data-bench',
  log: { level: 'warn' },
  hosts: [{ domain, registration: 'open', ...(env.BENCH_CERT && env.BENCH_KEY && env.XMPPD_BENCH_HARNESS_CERT === '1' ? { tls: { cert: env.BENCH_CERT, key: env.BENCH_KEY } } : {}) }],
  // XMPPD_BENCH_DIRECT_PORT: also a direct TLS listener (XEP-0368), for `npm run bench -- --tls direct`
  c2s: {
    listen: [
      { host: '127.0.0.1', port: Number(env.BENCH_PORT ?? 5222), tls: 'starttls' },
      ...(env.XMPPD_BENCH_DIRECT_PORT ? [{ host: '127.0.0.1', port: Number(env.XMPPD_BENCH_DIRECT_PORT), tls: 'direct' }] : []),
    ],
  },
  // plain loopback HTTP only (metrics stay on, as in production); BENCH_HTTP_PORT=0 picks a free port
  http: { listen: [{ host: '127.0.0.1', port: Number(env.BENCH_HTTP_PORT ?? 0), tls: 'none' }] },
  ...(env.XMPPD_BENCH_POSTGRES_URL ? { storage: { driver: 'postgres', postgres_url: env.XMPPD_BENCH_POSTGRES_URL } } : {}),
  ...(env.XMPPD_BENCH_REDIS_URL ? { cluster: { redis_url: env.XMPPD_BENCH_REDIS_URL, node_id: env.XMPPD_BENCH_NODE_ID ?? `bench-${process.pid}` } } : {}),
  // the load generator registers its accounts in-band from loopback, thousands of them; the file
  // transfer proxy on a port of the system's choosing (two cluster nodes on one machine)
  modules: Object.fromEntries(modules.map((name) => [name, name === 'register' ? { exempt_loopback: true } : name === 'proxy65' ? { port: 0 } : {}])),
};
const source = configFromObject(raw, 'bench environment');
const config = validateCoreConfig(source);
const server = createServer(config, source, pino({ level: 'warn' }));
await server.start();
const stop = () => void server.stop().then(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);

// XMPPD_BENCH_PROFILE=<dir>: SIGUSR2 starts a CPU profile of this process, the next SIGUSR2 writes
// it there (open it in Chrome's DevTools), so that one phase of a benchmark is profiled alone.
// With XMPPD_BENCH_PROFILE_HEAP=1 it is a sampling profile of allocations instead (.heapprofile).
const profileDir = env.XMPPD_BENCH_PROFILE;
const heap = env.XMPPD_BENCH_PROFILE_HEAP === '1';
if (profileDir !== undefined && profileDir !== '') {
  const { Session } = await import('node:inspector/promises');
  const fs = await import('node:fs');
  const session = new Session();
  session.connect();
  await session.post(heap ? 'HeapProfiler.enable' : 'Profiler.enable');
  let profiling = false;
  process.on('SIGUSR2', () => {
    void (async () => {
      if (!profiling) {
        profiling = true;
        await (heap ? session.post('HeapProfiler.startSampling', { samplingInterval: 32768, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true }) : session.post('Profiler.start'));
        return;
      }
      profiling = false;
      const { profile } = heap ? await session.post('HeapProfiler.stopSampling') : await session.post('Profiler.stop');
      const file = `${profileDir}/xmppd-${Date.now()}.${heap ? 'heapprofile' : 'cpuprofile'}`;
      fs.mkdirSync(profileDir, { recursive: true });
      fs.writeFileSync(file, JSON.stringify(profile));
      process.stderr.write(`profile written to ${file}\n`);
    })();
  });
}
