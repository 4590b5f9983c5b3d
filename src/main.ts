#!/usr/bin/env node
// The `xmppd` command: start the server, check a configuration, manage accounts.
import fs from 'node:fs';
import { Command } from 'commander';
import { ConfigError, formatProblems, loadConfig, loadConfigFile, problemAt, sectionAt, type ConfigProblem, type ConfigSource } from './config/load.js';
import type { CoreConfig } from './config/schema.js';
import { createLogger, createServer, packageVersion } from './app.js';
import { AccountExistsError, AccountStore, accountMigrations } from './accounts/store.js';
import { parseJid } from './core/jid.js';
import { moduleRegistry } from './modules/index.js';
import { migrateLocked, openDatabase, type Database } from './storage/db.js';
import { DEFAULT_SCRAM_ITERATIONS } from './accounts/credentials.js';
import { parseDuration } from './config/units.js';
import { archiveMigrations } from './modules/mam/store.js';
import { RetentionStore } from './modules/mam/settings.js';
import { PasswordRefused, readNewPassword } from './cli/password.js';
import { ListenError } from './core/listen.js';
import { check } from './cli/check.js';
import { importCertificates } from './cli/cert-import.js';
import { checkCertificates } from './cli/check-certs.js';
import { checkDns } from './cli/check-dns.js';
import { checkFeatures } from './cli/check-features.js';
import { checkPorts } from './cli/check-ports.js';
import { formatFindings, type Finding } from './cli/findings.js';
import { callControl } from './control/socket.js';
import { addRegistryCommands, registryHelp } from './cli/registry.js';
import { databaseContext } from './control/context.js';
import { describeImport, exportData, importData, ImportError, type ImportFormat } from './migrate/index.js';

const DEFAULT_CONFIG = 'config/xmppd.yml';
/** The schema's default for data_dir (src/config/schema.ts). */
const DEFAULT_DATA_DIR = './data';

function load(file: string) {
  try {
    return loadConfig(file);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${formatProblems(err.problems)}\n`);
      process.exit(2);
    }
    throw err;
  }
}

async function start(file: string): Promise<void> {
  // what `check` finds stops the start the same way: one line per problem, with file and line
  const problems = check(file);
  if (problems.length > 0) {
    process.stderr.write(`${formatProblems(problems)}\n`);
    process.exit(2);
  }
  const { config, source } = load(file);
  const log = createLogger(config);
  const server = createServer(config, source, log);
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled promise rejection'));
  // The signal handlers come before the start-up: its last line ('xmppd started') may be answered
  // with a signal at once (a supervisor, a test), and a signal with no handler yet would end the
  // process by its default action, SIGHUP included. What arrives while starting is carried out
  // once the server has started (a stop before a reload).
  let started = false;
  let stopSignal: string | null = null;
  let reloadWanted = false;
  const shutdown = (signal: string) => {
    log.info({ signal }, 'signal received');
    server.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'unclean shutdown');
        process.exit(1);
      },
    );
  };
  // SIGHUP: reload the configuration, as `xmppd reload` does; a bad file is logged and the
  // running configuration kept (never the end of the process, SIGHUP's default)
  const reload = () => {
    const admin = server.admin?.();
    if (admin === undefined) return;
    admin.reload().then(
      (report) => log.info({ applied: report.applied, needsRestart: report.needsRestart }, 'SIGHUP: configuration reloaded'),
      (err: unknown) => log.error({ reason: (err as Error).message }, 'SIGHUP: configuration not reloaded; the running one is kept'),
    );
  };
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      if (started) shutdown(signal);
      else stopSignal ??= signal;
    });
  }
  process.on('SIGHUP', () => {
    log.info({ signal: 'SIGHUP' }, 'SIGHUP received: reloading the configuration');
    if (started) reload();
    else reloadWanted = true;
  });
  try {
    await server.start();
  } catch (err) {
    if (err instanceof ConfigError) process.stderr.write(`${formatProblems(err.problems)}\n`);
    else if (err instanceof ListenError) process.stderr.write(`${formatProblems([listenProblem(config, source, err)])}\n`);
    else log.fatal({ err }, `cannot start: ${(err as Error).message}`);
    await server.stop().catch(() => undefined);
    process.exit(1);
  }
  started = true;
  if (stopSignal !== null) shutdown(stopSignal);
  else if (reloadWanted) reload();
}

/** A listener that could not be opened, at the line of its entry in the configuration. */
function listenProblem(config: CoreConfig, source: ConfigSource, err: ListenError): ConfigProblem {
  const sections = { c2s: config.c2s.listen, http: config.http.listen, s2s: config.s2s.listen } as const;
  for (const [section, listen] of Object.entries(sections)) {
    const index = listen.findIndex((l) => l.host === err.host && l.port === err.port);
    if (index !== -1) return problemAt(source, [section, 'listen', index], err.message, 'value');
  }
  return { file: source.file, path: 'listen', message: err.message };
}

/**
 * The data directory (where the control socket is) even from a configuration that does not
 * validate: `xmppd reload` must reach the server to be told what is wrong with the edit.
 */
function dataDirOf(file: string): string {
  try {
    return loadConfig(file).config.data_dir;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    try {
      const raw = sectionAt(loadConfigFile(file), ['data_dir']);
      if (typeof raw === 'string') return raw;
    } catch {
      // unreadable YAML: the default below
    }
    return DEFAULT_DATA_DIR;
  }
}

async function withAccounts<T>(file: string, work: (accounts: AccountStore, config: CoreConfig, db: Database) => Promise<T>): Promise<T> {
  const { config } = load(file);
  const db = await openDatabase({ driver: config.storage.driver, sqliteFile: config.storage.sqlite_file, postgresUrl: config.storage.postgres_url });
  try {
    await migrateLocked(db, [['accounts', accountMigrations]]);
    return await work(new AccountStore(db, DEFAULT_SCRAM_ITERATIONS), config, db);
  } finally {
    await db.destroy();
  }
}

function accountJid(jid: string, config: CoreConfig): { username: string; host: string } {
  const parsed = parseJid(jid);
  if (parsed === null || parsed.local === '' || parsed.resource !== '') fail(`"${jid}" is not an account address like alice@${config.hosts[0]!.domain}`);
  if (!config.hosts.some((h) => h.domain === parsed.domain)) fail(`${parsed.domain} is not a host in this configuration`);
  return { username: parsed.local, host: parsed.domain };
}

/** 2592000 → "30d": the largest unit that divides the period. */
function humanDuration(seconds: number): string {
  for (const [unit, size] of [['y', 31_536_000], ['w', 604_800], ['d', 86_400], ['h', 3600], ['m', 60]] as const) {
    if (seconds >= size && seconds % size === 0) return `${seconds / size}${unit}`;
  }
  return `${seconds}s`;
}

function fail(message: string): never {
  process.stderr.write(`xmppd: ${message}\n`);
  process.exit(1);
}

/** The password from --password, else typed (hidden, twice) on a terminal or piped; never empty. */
async function readPassword(given: string | undefined): Promise<string> {
  if (given === '') fail('the password must not be empty');
  if (given !== undefined) return given;
  try {
    return await readNewPassword(process.stdin, process.stderr);
  } catch (err) {
    if (err instanceof PasswordRefused) fail(err.message);
    throw err;
  }
}

const program = new Command('xmppd').description('A federated XMPP chat server').version(packageVersion());
program.option('-c, --config <file>', 'configuration file', DEFAULT_CONFIG);
const configFile = () => program.opts<{ config: string }>().config;

program.command('start').description('run the server').action(() => start(configFile()));

const CHECK_ASPECTS = ['config', 'certs', 'dns', 'ports', 'features'] as const;
program
  .command('check [aspects...]')
  .description(`validate the configuration and certificates, printing every problem with file and line; then, when asked, ${CHECK_ASPECTS.slice(1).join(', ')} (or all)`)
  .addHelpText('after', `
  certs     each host's certificate: names, expiry, the chain up to a known root
  dns       the SRV and A/AAAA records clients and other servers look up, against our listeners
  ports     with the server stopped, whether each listener's address is free; running, whether it answers
  features  what clients look for (history, push, uploads, calls...) and how to turn on what is missing`)
  .action(async (asked: string[]) => {
    const aspects = asked.includes('all') ? [...CHECK_ASPECTS] : asked.length === 0 ? ['config'] : asked;
    const unknown = aspects.filter((a) => !(CHECK_ASPECTS as readonly string[]).includes(a));
    if (unknown.length > 0) fail(`unknown check ${unknown.join(', ')} (known: ${CHECK_ASPECTS.join(', ')}, all)`);
    const problems = check(configFile());
    if (problems.length > 0) {
      process.stderr.write(`${formatProblems(problems)}\n`);
      process.exit(2);
    }
    process.stdout.write(`${configFile()}: OK\n`);
    const config = loadConfig(configFile()).config;
    let failed = false;
    const report = (title: string, findings: Finding[]) => {
      process.stdout.write(`\n${formatFindings(title, findings)}\n`);
      failed ||= findings.some((f) => !f.ok);
    };
    if (aspects.includes('certs')) report('Certificates', checkCertificates(config));
    if (aspects.includes('dns')) report('DNS', await checkDns(config));
    if (aspects.includes('ports')) report('Ports', await checkPorts(config, await callControl(config.data_dir, 'status', {}, 5000).then((r) => r !== undefined, () => false)));
    if (aspects.includes('features')) report('Features clients look for', checkFeatures(config));
    if (failed) process.exit(2);
  });

program.option('--json', 'print command results as JSON');
const groups = addRegistryCommands(program, {
  dataDir: () => dataDirOf(configFile()),
  withDatabase: (work) => withAccounts(configFile(), (accounts, config, db) => work(databaseContext({
    hosts: config.hosts.map((h) => h.domain), db, accounts, dirs: { dataDir: config.data_dir, uploadsDir: config.storage.uploads_dir }, modules: moduleRegistry.values(), config,
  }))),
  readPassword: () => readPassword(undefined),
  fail,
  json: () => program.opts<{ json?: boolean }>().json === true,
});
program.addHelpText('after', registryHelp());
// the registry's `cert` group (cert list) gets the command-line-only import
groups.get('cert')!.description('TLS certificates: list them, import them from certbot')
  .command('import <dirs...>')
  .description("take each host's certificate from certbot's live/ directory (or <host>.crt and .key files) into <data_dir>/certs, then reload the running server")
  .action(async (dirs: string[]) => {
    const config = load(configFile()).config;
    const results = importCertificates(config, dirs);
    for (const r of results) process.stdout.write(`${r.host}: ${r.message}\n`);
    if (results.some((r) => r.outcome === 'imported')) {
      const reloaded = await callControl(config.data_dir, 'reload', {}).catch((err: unknown) => {
        process.stderr.write(`the running server did not reload: ${(err as Error).message}\n`);
        return null;
      });
      if (reloaded !== undefined && reloaded !== null) process.stdout.write('reloaded: new TLS connections get the imported certificates\n');
      else if (reloaded === undefined) process.stdout.write('the server is not running; it uses them when it starts\n');
    }
    if (results.some((r) => r.outcome === 'not-found')) process.exit(2);
  });

const user = groups.get('user')!.description('manage accounts');
user
  .command('retention <jid> [period]')
  .description('how long the account\'s messages are kept (archive and offline): a duration like 30d, never, or default (the server\'s); without a period, shows it')
  .action(async (jid: string, period: string | undefined) => {
    await withAccounts(configFile(), async (accounts, config, db) => {
      const { username, host } = accountJid(jid, config);
      if (!(await accounts.exists(host, username))) fail(`no account ${username}@${host}`);
      await migrateLocked(db, [['mam', archiveMigrations]]);
      const retention = new RetentionStore(db, host);
      await retention.load();
      const describe = (seconds: number | null | undefined) =>
        seconds === undefined ? "kept for the server's default period" : seconds === null ? 'kept forever' : `kept for ${humanDuration(seconds)}`;
      if (period === undefined) {
        process.stdout.write(`${username}@${host}: messages ${describe(retention.override(username))}\n`);
        return;
      }
      const word = period.trim().toLowerCase();
      const seconds = word === 'default' ? undefined : word === 'never' ? null : parseDuration(word);
      if (seconds === undefined && word !== 'default') fail(`"${period}" is not a duration like 30d, never or default`);
      await retention.set(username, seconds);
      process.stdout.write(`${username}@${host}: messages ${describe(seconds)}\n`);
    });
  });
user
  .command('import <file>')
  .description('create accounts in bulk from a file of "username password" lines (on the first host unless given as user@host)')
  .action(async (file: string) => {
    await withAccounts(configFile(), async (accounts, config) => {
      let created = 0;
      const lines = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '');
      // bounded concurrency: PBKDF2 runs in libuv's pool
      const queue = [...lines];
      await Promise.all(Array.from({ length: 8 }, async () => {
        for (let line = queue.shift(); line !== undefined; line = queue.shift()) {
          const [name, password] = line.trim().split(/\s+/, 2) as [string, string | undefined];
          if (password === undefined) fail(`line without a password: ${line}`);
          const { username, host } = name.includes('@') ? accountJid(name, config) : accountJid(`${name}@${config.hosts[0]!.domain}`, config);
          try {
            await accounts.create(host, username, password);
            created++;
          } catch (err) {
            if (!(err instanceof AccountExistsError)) throw err;
          }
        }
      }));
      process.stdout.write(`created ${created} accounts\n`);
    });
  });

/** Import and export act on the database: refused while a server answers on the control socket. */
async function withStoppedServer<T>(what: string, work: (config: CoreConfig, db: Database) => Promise<T>): Promise<T> {
  const running = await callControl(dataDirOf(configFile()), 'status', {}, 5000).catch(() => ({ result: null }));
  if (running !== undefined) fail(`${what} needs the server stopped (it answers on its control socket): stop it, then run this again`);
  return withAccounts(configFile(), async (_accounts, config, db) => {
    try {
      return await work(config, db);
    } catch (err) {
      if (err instanceof ImportError) fail(err.message);
      throw err;
    }
  });
}

const IMPORT_FORMATS: Record<ImportFormat, string> = {
  xep227: 'a XEP-0227 file (from xmppd export, Prosody\'s mod_migrate/xep227 storage, or another server)',
  prosody: 'a Prosody data directory (internal storage, data_path in prosody.cfg.lua)',
  ejabberd: 'the output of `ejabberdctl export_piefxis <dir>`: that directory, or its main .xml file',
};
program
  .command('export <file> [host]')
  .description('write every account of a host (default: all) with its SCRAM keys, roster, vCard, private XML, offline messages, archive and PEP to a XEP-0227 file; server stopped')
  .action(async (file: string, host: string | undefined) => {
    await withStoppedServer('export', async (config, db) => {
      const hosts = config.hosts.map((h) => h.domain);
      if (host !== undefined && !hosts.includes(host)) fail(`${host} is not a host in this configuration`);
      const counts = await exportData(db, host === undefined ? hosts : [host], file);
      process.stdout.write(`exported ${counts.accounts} accounts and ${counts.messages} messages to ${file}\n`);
    });
  });
program
  .command('import <format> <source>')
  .description(`move accounts and their data in, server stopped; format: ${Object.keys(IMPORT_FORMATS).join(', ')}. All or nothing (one transaction); existing accounts are left as they are`)
  .addHelpText('after', `\nFormats:\n${Object.entries(IMPORT_FORMATS).map(([k, v]) => `  ${k.padEnd(9)} ${v}`).join('\n')}\n`)
  .action(async (format: string, source: string) => {
    if (!(format in IMPORT_FORMATS)) fail(`"${format}" is not a format to import: ${Object.keys(IMPORT_FORMATS).join(', ')}`);
    await withStoppedServer('import', async (config, db) => {
      const report = await importData(db, config.hosts.map((h) => h.domain), format as ImportFormat, source);
      process.stdout.write(`${describeImport(report)}\n`);
    });
  });

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`xmppd: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
