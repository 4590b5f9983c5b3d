// Live reload (`xmppd reload`, SIGHUP): the configuration file is read and checked like `xmppd
// check`; an invalid one is refused with its file:line problems and the running configuration
// kept. A valid one is applied where that is safe without dropping anyone — log level,
// certificates (the next TLS handshake uses them; secured connections keep theirs), registration,
// admins, client limits for new streams, modules enabled, disabled or reconfigured — and the
// reply names what only a restart applies.
import fs from 'node:fs';
import type { Server, ServerSettings } from '../app/server.js';
import { ConfigError, formatProblems, loadConfig, type ConfigSource } from '../config/load.js';
import type { CoreConfig } from '../config/schema.js';
import { check } from '../cli/check.js';
import { moduleRegistry } from '../modules/index.js';
import { CommandError, type ReloadReport } from './registry.js';

/** How the composition root turns a validated configuration into settings (app.ts serverSettings). */
export type SettingsFor = (config: CoreConfig, source: ConfigSource) => ServerSettings;

/** Client limits a new stream reads from the settings when it opens: safe to change live. */
const LIVE_C2S_SETTINGS = ['maxStanzaSize', 'maxReceiveRate', 'maxSessionsPerAccount', 'authTimeout', 'streamOpenTimeout'] as const;

function json(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (v instanceof Map ? Object.fromEntries(v) : v));
}

/** Serialises reloads: SIGHUP twice in a row applies the file once after the other. */
let reloading: Promise<unknown> = Promise.resolve();

export function reloadConfiguration(server: Server, file: string | undefined, settingsFor: SettingsFor): Promise<ReloadReport> {
  const next = reloading.catch(() => undefined).then(() => reloadNow(server, file, settingsFor));
  reloading = next;
  return next;
}

async function reloadNow(server: Server, file: string | undefined, settingsFor: SettingsFor): Promise<ReloadReport> {
  if (file === undefined || !fs.existsSync(file)) throw new CommandError(`cannot reload: the configuration file ${file ?? ''} is not there (the running configuration is kept)`);
  const problems = check(file);
  if (problems.length > 0) {
    server.log.warn({ file, problems: problems.length }, 'configuration not reloaded: it has problems; the running one is kept');
    throw new CommandError(`${file} was not reloaded; the running configuration is kept:\n${formatProblems(problems)}`);
  }
  let loaded: { config: CoreConfig; source: ConfigSource };
  try {
    loaded = loadConfig(file);
  } catch (err) {
    if (err instanceof ConfigError) throw new CommandError(`${file} was not reloaded; the running configuration is kept:\n${formatProblems(err.problems)}`);
    throw err;
  }
  const { config, source } = loaded;
  const current = server.settings;
  const next = settingsFor(config, source);
  const applied: string[] = [];
  const needsRestart: string[] = [];
  const moduleChanges: Array<{ domain: string; wanted: string[]; changed: ReadonlySet<string> }> = [];

  // everything that cannot fail comes after what can (the certificates), so a failure applies nothing
  const currentDomains = current.hosts.map((h) => h.domain);
  const nextDomains = next.hosts.map((h) => h.domain);
  try {
    await server.tls.reload(current.hosts.map((h) => next.hosts.find((n) => n.domain === h.domain) ?? h), current.dataDir, server.log);
  } catch (err) {
    throw new CommandError(`${file} was not reloaded; the running configuration is kept: certificates: ${(err as Error).message}`);
  }
  applied.push(`certificates of ${currentDomains.join(', ')} read again (new TLS connections use them)`);

  if (server.log.level !== config.log.level) {
    applied.push(`log.level ${server.log.level} → ${config.log.level}`);
    server.log.level = config.log.level;
  }
  if (json(currentDomains) !== json(nextDomains)) needsRestart.push(`hosts (${currentDomains.join(', ')} → ${nextDomains.join(', ')})`);
  for (const host of current.hosts) {
    const wanted = next.hosts.find((h) => h.domain === host.domain);
    if (wanted === undefined) continue;
    if (host.registration !== wanted.registration) {
      applied.push(`${host.domain}: registration ${host.registration} → ${wanted.registration}`);
      host.registration = wanted.registration;
    }
    if (json(host.admins) !== json(wanted.admins)) {
      applied.push(`${host.domain}: admins ${wanted.admins.join(', ') || '(none)'}`);
      host.admins.splice(0, host.admins.length, ...wanted.admins);
    }
    if (json(host.tls) !== json(wanted.tls)) host.tls = wanted.tls;
    // modules enabled, disabled or with other options: set up or stopped now (Kernel.reloadModules)
    const changed = new Set(host.modules.filter((name) => {
      const schema = moduleRegistry.get(name)?.options;
      return wanted.modules.includes(name) && schema !== undefined && json(current.moduleOptions(host.domain, name, schema)) !== json(next.moduleOptions(host.domain, name, schema));
    }));
    if (json([...host.modules].sort()) !== json([...wanted.modules].sort()) || changed.size > 0) moduleChanges.push({ domain: host.domain, wanted: wanted.modules, changed });
  }
  // the modules last: what can be refused has been, and a module's new options are the file's
  if (moduleChanges.length > 0) current.moduleOptions = next.moduleOptions;
  for (const { domain, wanted, changed } of moduleChanges) {
    const done = await server.kernel.reloadModules(domain, wanted, changed, next.moduleOptions);
    if (done.started.length > 0) applied.push(`${domain}: modules started: ${done.started.join(', ')}`);
    if (done.stopped.length > 0) applied.push(`${domain}: modules stopped: ${done.stopped.join(', ')}`);
    if (done.restarted.length > 0) applied.push(`${domain}: modules set up again with their new options: ${done.restarted.join(', ')}`);
    for (const failure of done.failed) needsRestart.push(`${domain}: module ${failure} (it is not running; fix the file and reload)`);
  }
  for (const key of LIVE_C2S_SETTINGS) {
    if (json(current.c2s[key]) === json(next.c2s[key])) continue;
    applied.push(`c2s.${key} ${json(current.c2s[key])} → ${json(next.c2s[key])} (new connections)`);
    (current.c2s as unknown as Record<string, unknown>)[key] = next.c2s[key];
  }
  for (const key of Object.keys(next.c2s) as Array<keyof typeof next.c2s>) {
    if (!(LIVE_C2S_SETTINGS as readonly string[]).includes(key) && json(current.c2s[key]) !== json(next.c2s[key])) needsRestart.push(`c2s.${key}`);
  }
  for (const section of ['http', 's2s', 'storage', 'dataDir'] as const) {
    const changed = section === 'http' || section === 's2s'
      ? Object.keys({ ...(current[section] ?? {}), ...(next[section] ?? {}) }).filter((k) => json((current[section] as Record<string, unknown> | undefined)?.[k]) !== json((next[section] as Record<string, unknown> | undefined)?.[k]))
      : json(current[section]) !== json(next[section]) ? [''] : [];
    for (const key of changed) needsRestart.push(key === '' ? section : `${section}.${key}`);
  }
  server.log.info({ file, applied, needsRestart }, 'configuration reloaded');
  return { file, applied, needsRestart };
}
