// Shared pieces of the scenarios: the run context, account creation by in-band
// registration, logging many clients in, and closing them all.
import { XmppConnection, type ConnectionConfig } from './connection.js';
import type { BenchOptions } from './options.js';
import { FailureBreaker, runPool } from './pool.js';
import { ErrorTally } from './stats.js';

export interface BenchContext {
  readonly options: BenchOptions;
  readonly connection: ConnectionConfig;
  /** human progress line on stderr */
  log(message: string): void;
}

export function contextFrom(options: BenchOptions, log: (message: string) => void): BenchContext {
  return {
    options,
    log,
    connection: {
      host: options.host,
      port: options.port,
      domain: options.domain,
      tls: options.tls,
      sasl: options.sasl,
      session: options.session,
      timeoutMs: options.timeout * 1000,
    },
  };
}

/** Account names carry the per-run prefix, so a server with persistent storage can be reused. */
export function accountNames(options: BenchOptions, kind: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${options.prefix}${kind}${i}`);
}

/** Consecutive failures after which a phase stops starting new work. */
export function breakerFor(concurrency: number): FailureBreaker {
  return new FailureBreaker(Math.max(20, 2 * concurrency));
}

export interface Registration {
  /** accounts that exist now (created, or already there) */
  readonly ready: Set<string>;
  readonly existed: number;
  readonly failed: ErrorTally;
  readonly seconds: number;
}

/**
 * Create accounts with XEP-0077 in-band registration, untimed: `regbatch` registrations per
 * stream (saves TLS handshakes), `regconc` streams in parallel. A server that refuses a second
 * registration on one stream is served one stream per account from then on. With
 * `prewarmScram`, each new account's SCRAM SaltedPassword is derived and cached right away
 * (see XmppConnection.prewarmScram), so the timed logins cost the generator less CPU.
 */
export async function registerAccounts(
  ctx: BenchContext,
  users: readonly string[],
  { prewarmScram = false }: { prewarmScram?: boolean } = {},
): Promise<Registration> {
  const { options } = ctx;
  const t0 = performance.now();
  const ready = new Set<string>();
  const failed = new ErrorTally();
  const breaker = breakerFor(options.regconc);
  let perStream = options.regbatch;
  let existed = 0;
  let prewarm = prewarmScram;
  let prewarmed = 0;
  let prewarmFailures = 0;

  const chunks: string[][] = [];
  for (let i = 0; i < users.length; i += options.regbatch) chunks.push(users.slice(i, i + options.regbatch));

  await runPool(chunks.length, options.regconc, async (c) => {
    let conn: XmppConnection | null = null;
    let onStream = 0;
    try {
      for (const user of chunks[c]!) {
        if (breaker.tripped) break;
        for (let attempt = 0; ; attempt++) {
          try {
            if (!conn || conn.closed || conn.failure || onStream >= perStream) {
              void conn?.close(200);
              conn = new XmppConnection(ctx.connection);
              onStream = 0;
              await conn.open();
            }
            if (await conn.register(user, options.password) === 'exists') existed++;
            onStream++;
            ready.add(user);
            breaker.record(true);
            if (prewarm) {
              try {
                if (await conn.prewarmScram(user, options.password)) prewarmed++;
                else prewarm = false; // not a SCRAM login: nothing to cache
              } catch (err) {
                // harmless: the timed login will derive the key itself; give up after a few
                if (++prewarmFailures === 3) {
                  prewarm = false;
                  ctx.log(`SCRAM prewarm disabled: ${(err as Error).message}`);
                }
                conn.destroy();
              }
            }
            break;
          } catch (err) {
            if (attempt === 0 && onStream > 0) {
              // maybe only one registration per stream is allowed: retry on a fresh stream
              if (perStream > 1) ctx.log(`registration on a reused stream failed (${(err as Error).message}); one stream per account from now on`);
              perStream = 1;
              conn?.destroy();
              conn = null;
              continue;
            }
            failed.add(err);
            breaker.record(false);
            break;
          }
        }
      }
    } finally {
      await conn?.close(500);
    }
  });

  const notTried = users.length - ready.size - failed.total;
  if (notTried > 0) failed.add(breaker.reason, notTried);
  const seconds = (performance.now() - t0) / 1000;
  ctx.log(`registered ${ready.size}/${users.length} accounts (XEP-0077) in ${seconds.toFixed(1)} s`
    + (existed ? ` (${existed} existed already)` : '')
    + (prewarmScram ? `, SCRAM keys cached for ${prewarmed}` : '')
    + (failed.total ? `; failures: ${JSON.stringify(failed.toJSON())}` : ''));
  return { ready, existed, failed, seconds };
}

export interface LoggedIn {
  /** index-aligned with the users given; null where the login failed */
  readonly connections: (XmppConnection | null)[];
  readonly failed: ErrorTally;
}

/** Log users in (untimed setup), at most `concurrency` at once; `prepare` runs before login. */
export async function loginAll(
  ctx: BenchContext,
  users: readonly string[],
  concurrency: number,
  prepare?: (conn: XmppConnection, index: number) => void,
  /** the port (cluster node) user `index` connects to; default the one --port */
  portOf?: (index: number) => number,
): Promise<LoggedIn> {
  const connections: (XmppConnection | null)[] = users.map(() => null);
  const failed = new ErrorTally();
  const breaker = breakerFor(concurrency);
  const started = await runPool(users.length, concurrency, async (i) => {
    const conn = new XmppConnection(portOf === undefined ? ctx.connection : { ...ctx.connection, port: portOf(i) });
    prepare?.(conn, i);
    try {
      await conn.login(users[i]!, ctx.options.password);
      connections[i] = conn;
      breaker.record(true);
    } catch (err) {
      failed.add(err);
      breaker.record(false);
      conn.destroy();
    }
  }, () => breaker.tripped);
  if (started < users.length) failed.add(breaker.reason, users.length - started);
  return { connections, failed };
}

/** Close every stream politely in parallel; anything still open after `graceMs` is destroyed. */
export async function closeAll(connections: readonly (XmppConnection | null)[], graceMs = 2000): Promise<void> {
  await Promise.all(connections.map((c) => c?.close(graceMs)));
}
