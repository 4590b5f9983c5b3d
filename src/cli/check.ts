// `xmppd check` (and the same checks before `start` and on `reload`): everything wrong with a
// configuration file, each problem with its file and line.
import fs from 'node:fs';
import {
  ConfigError, loadConfigFile, modulesForHost, problemAt, sectionAt, validateCoreConfig, validateModuleOptions, validateSection,
  type ConfigPath, type ConfigProblem, type ConfigSource,
} from '../config/load.js';
import type { CoreConfig } from '../config/schema.js';
import { moduleRegistry } from '../modules/index.js';
import { certificateCoversHost, loadCertificateInfo } from '../tls/certs.js';

/** Everything `check` finds wrong, with file and line where the config says it. */
export function check(file: string): ConfigProblem[] {
  let source: ConfigSource;
  try {
    source = loadConfigFile(file);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  let config: CoreConfig;
  try {
    config = validateCoreConfig(source);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    // the core is broken, but the module sections can still be checked on their own
    return [...err.problems, ...checkModuleSections(source)];
  }
  const problems: ConfigProblem[] = [];
  config.hosts.forEach((host, index) => {
    const modules = [...modulesForHost(config, host).keys()];
    const where = (name: string): ConfigPath => (name in host.modules ? ['hosts', index, 'modules', name] : ['modules', name]);
    for (const name of modules) {
      const definition = moduleRegistry.get(name);
      if (definition === undefined) {
        problems.push(problemAt(source, where(name), `unknown module (known: ${[...moduleRegistry.keys()].join(', ')})`, 'key'));
        continue;
      }
      for (const dependency of definition.dependencies ?? []) {
        if (!modules.includes(dependency)) problems.push(problemAt(source, where(name), `needs module ${dependency}, which is not enabled on ${host.domain}`, 'key'));
      }
      if (definition.options) {
        try {
          validateModuleOptions(source, config, index, name, definition.options);
        } catch (err) {
          if (err instanceof ConfigError) problems.push(...err.problems);
          else throw err;
        }
      }
    }
    if (host.tls) {
      const info = loadCertificateInfo(host.tls.cert, host.tls.key);
      for (const problem of info.problems) problems.push(problemAt(source, ['hosts', index, 'tls'], problem, 'key'));
      if (info.problems.length === 0 && !certificateCoversHost(info.subjectNames, host.domain)) {
        problems.push(problemAt(source, ['hosts', index, 'tls', 'cert'], `certificate names ${info.subjectNames.join(', ')}, not ${host.domain}`, 'value'));
      }
    }
  });
  if (config.s2s.ca_file !== undefined) {
    try {
      fs.accessSync(config.s2s.ca_file, fs.constants.R_OK);
    } catch (err) {
      problems.push(problemAt(source, ['s2s', 'ca_file'], `cannot read ${config.s2s.ca_file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, 'value'));
    }
  }
  // one problem per place, even when several hosts share the section it comes from
  const seen = new Set<string>();
  return problems.filter((p) => {
    const key = `${p.line}:${p.column}:${p.path}:${p.message}`;
    return seen.has(key) ? false : (seen.add(key), true);
  });
}

/** The top-level `modules:` entries checked without a valid core config. */
function checkModuleSections(source: ConfigSource): ConfigProblem[] {
  const section = sectionAt(source, ['modules']);
  if (section === null || typeof section !== 'object' || Array.isArray(section)) return [];
  const problems: ConfigProblem[] = [];
  for (const [name, value] of Object.entries(section)) {
    const definition = moduleRegistry.get(name);
    if (definition === undefined) {
      problems.push(problemAt(source, ['modules', name], `unknown module (known: ${[...moduleRegistry.keys()].join(', ')})`, 'key'));
    } else if (definition.options && value !== null && typeof value === 'object') {
      try {
        validateSection(source, ['modules', name], definition.options);
      } catch (err) {
        if (err instanceof ConfigError) problems.push(...err.problems);
        else throw err;
      }
    }
  }
  return problems;
}

