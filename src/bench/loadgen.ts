// xmppd's load generator: `npm run bench -- [options]`.
// Connects to an already running XMPP server (it starts nothing), runs the chosen scenarios
// one after the other and prints ONE JSON line per scenario on stdout; progress and a human
// summary go to stderr. Exit code 1 if a scenario could not run at all, 2 on bad options.
import { contextFrom, type BenchContext } from './clients.js';
import { parseOptions, UsageError, USAGE, type BenchOptions, type ScenarioName } from './options.js';
import { runLogin } from './scenarios/login.js';
import { runFast } from './scenarios/fast.js';
import { runMsg } from './scenarios/msg.js';
import { runMuc } from './scenarios/muc.js';
import { runMam } from './scenarios/mam.js';
import { runOverload } from './scenarios/overload.js';
import { runTrickle } from './scenarios/trickle.js';

const SCENARIO_RUNNERS: Record<ScenarioName, (ctx: BenchContext) => Promise<Record<string, unknown>>> = {
  login: runLogin,
  fast: runFast,
  msg: runMsg,
  muc: runMuc,
  mam: runMam,
  overload: runOverload,
  trickle: runTrickle,
};

const log = (message: string): void => {
  process.stderr.write(`[bench] ${message}\n`);
};

function humanSummary(result: Record<string, unknown>): string {
  const rows = Object.entries(result).filter(([, v]) => v === null || typeof v !== 'object');
  const width = Math.max(...rows.map(([k]) => k.length));
  const lines = [`--- ${String(result['scenario'])} ---`, ...rows.map(([k, v]) => `  ${k.padEnd(width)}  ${String(v)}`)];
  for (const [k, v] of Object.entries(result)) {
    if (v !== null && typeof v === 'object') lines.push(`  ${k.padEnd(width)}  ${JSON.stringify(v)}`);
  }
  return lines.join('\n') + '\n';
}

async function main(options: BenchOptions): Promise<number> {
  const ctx = contextFrom(options, log);
  log(`target ${options.host}:${options.port} domain ${options.domain} tls ${options.tls}, `
    + `scenarios ${options.scenarios.join(',')}, account prefix ${options.prefix}`
    + (options.ports.length > 1 ? `, nodes on ports ${options.ports.join(',')}, cross ${options.cross}` : '')
    + (options.pids.length === 0 ? '' : `, server pid ${options.pids.join('+')}`));
  let exitCode = 0;
  for (const scenario of options.scenarios) {
    const started = new Date().toISOString();
    let result: Record<string, unknown>;
    try {
      result = await SCENARIO_RUNNERS[scenario](ctx);
    } catch (err) {
      // a scenario that cannot run reports why instead of crashing the whole run
      exitCode = 1;
      result = { scenario, error: err instanceof Error ? err.message : String(err) };
    }
    result = {
      ...result,
      host: options.host,
      port: options.port,
      domain: options.domain,
      server_pid: options.pid,
      ...(options.pids.length > 1 ? { server_pids: options.pids } : {}),
      ...(options.ports.length > 1 ? { ports: options.ports, cross: options.cross } : {}),
      prefix: options.prefix,
      date: started,
    };
    process.stderr.write(humanSummary(result));
    process.stdout.write(JSON.stringify(result) + '\n');
  }
  return exitCode;
}

let options: BenchOptions | null;
try {
  options = parseOptions(process.argv.slice(2));
} catch (err) {
  if (!(err instanceof UsageError) && !(err instanceof TypeError)) throw err;
  process.stderr.write(`${err.message}\n\n${USAGE}`);
  process.exit(2);
}
if (options === null) {
  process.stdout.write(USAGE);
  process.exit(0);
}
// the error handlers of every socket report failures; nothing should escape, but if it does,
// say so and stop rather than hang
process.on('unhandledRejection', (reason) => {
  log(`unexpected: ${reason instanceof Error ? reason.stack : String(reason)}`);
  process.exit(1);
});
const code = await main(options);
// stdout is flushed before exit; lingering sockets (servers that never answer our
// </stream:stream>) must not keep the process alive
process.stdout.write('', () => process.exit(code));
