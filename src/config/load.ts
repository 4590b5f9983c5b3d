// Loading xmppd.yml: YAML parsing that keeps line numbers, validation of the core schema and of
// each module's section, and errors an admin can act on: every problem at once, each as
// `file:line:column: path: message`, the way a compiler reports.

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import { z } from 'zod';
import { coreConfigSchema, type CoreConfig, type HostConfig } from './schema.js';
import { describeValue } from './units.js';

export interface ConfigProblem {
  file: string;
  line?: number;
  column?: number;
  /** Where in the configuration, e.g. `hosts[0].tls.cert`; empty for the file as a whole. */
  path: string;
  message: string;
}

export class ConfigError extends Error {
  readonly problems: ConfigProblem[];

  constructor(problems: ConfigProblem[]) {
    super(formatProblems(problems));
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** Parsed configuration text, kept with its YAML document so that problems can point at lines. */
export interface ConfigSource {
  readonly file: string;
  /** The plain data (maps, lists, scalars) the schemas validate. */
  readonly data: unknown;
  readonly doc?: Document.Parsed;
  readonly lineCounter?: LineCounter;
}

export type ConfigPath = readonly (string | number)[];

/** `['hosts', 0, 'tls', 'cert']` → `hosts[0].tls.cert`. */
export function formatPath(configPath: ConfigPath): string {
  let out = '';
  for (const segment of configPath) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (/^[A-Za-z_][\w-]*$/.test(segment)) out += out === '' ? segment : `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out;
}

/** One line per problem: `config/xmppd.yml:12:5: c2s.max_stanza_size: expected a size like 256KiB`. */
export function formatProblems(problems: readonly ConfigProblem[]): string {
  return problems
    .map((p) => {
      const where = p.line === undefined ? p.file : `${p.file}:${p.line}:${p.column ?? 1}`;
      return p.path === '' ? `${where}: ${p.message}` : `${where}: ${p.path}: ${p.message}`;
    })
    .join('\n');
}

/** Parses YAML text; syntax errors and duplicate keys become a ConfigError with lines. */
export function parseConfigText(text: string, file: string): ConfigSource {
  const lineCounter = new LineCounter();
  // `merge: true` allows `<<: *defaults`, handy for hosts sharing settings.
  const doc = parseDocument(text, { lineCounter, merge: true, prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((e) => ({
        file,
        line: e.linePos?.[0].line,
        column: e.linePos?.[0].col,
        path: '',
        // prettyErrors appends " at line L, column C:" and a source excerpt; the line is already in front.
        message: `YAML syntax error: ${e.message.replace(/ at line \d+, column \d+:[\s\S]*$/, '')}`,
      })),
    );
  }
  // A file that is empty or holds only comments is the all-defaults configuration.
  const data: unknown = doc.contents === null ? {} : doc.toJS({ maxAliasCount: 1000 });
  return { file, data, doc, lineCounter };
}

/** Reads and parses a configuration file; a missing or unreadable file is a ConfigError. */
export function loadConfigFile(file: string): ConfigSource {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const message =
      code === 'ENOENT'
        ? `configuration file not found (looked in ${path.resolve(file)}); copy config/xmppd.example.yml to start one`
        : `cannot read the configuration file: ${(err as Error).message}`;
    throw new ConfigError([{ file, path: '', message }]);
  }
  return parseConfigText(text, file);
}

/** A configuration given as a plain object (tests, embedding); problems carry no line numbers. */
export function configFromObject(obj: unknown, fileLabel = '<inline configuration>'): ConfigSource {
  return { file: fileLabel, data: obj ?? {} };
}

/** The raw value at a path in the configuration data, or undefined when any step is missing. */
export function sectionAt(source: ConfigSource, configPath: ConfigPath): unknown {
  let value: unknown = source.data;
  for (const segment of configPath) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<string | number, unknown>)[segment];
  }
  return value;
}

/**
 * Validates the sub-tree at `configPath` with `schema` and returns the parsed value.
 * Each problem's path is the full path from the file's root, and its line points at the
 * offending value (for an unknown key: the key; for a missing key: its parent).
 * Throws a ConfigError listing every problem.
 */
export function validateSection<T>(source: ConfigSource, configPath: ConfigPath, schema: z.ZodType<T>): T {
  return validateMapped(source, sectionAt(source, configPath), schema, (issuePath) => [...configPath, ...issuePath]);
}

/**
 * Validates the core schema and resolves relative paths (data_dir, storage.sqlite_file, storage.uploads_dir, hosts[].tls, s2s.ca_file)
 * against the process's working directory, so `npm start` from the checkout finds ./data.
 */
export function validateCoreConfig(source: ConfigSource): CoreConfig {
  const config = validateSection(source, [], coreConfigSchema);
  const resolve = (p: string) => path.resolve(p);
  return {
    ...config,
    data_dir: resolve(config.data_dir),
    storage: {
      ...config.storage,
      // SQLite's special names stay as they are.
      sqlite_file:
        config.storage.sqlite_file === ':memory:' || config.storage.sqlite_file.startsWith('file:')
          ? config.storage.sqlite_file
          : resolve(config.storage.sqlite_file),
      uploads_dir: resolve(config.storage.uploads_dir),
    },
    hosts: config.hosts.map((host) => ({
      ...host,
      tls: host.tls && { cert: resolve(host.tls.cert), key: resolve(host.tls.key) },
    })),
    s2s: { ...config.s2s, ca_file: config.s2s.ca_file && resolve(config.s2s.ca_file) },
  };
}

/** Reads, parses and validates a configuration file. Relative paths are resolved against the cwd. */
export function loadConfig(file: string): { config: CoreConfig; source: ConfigSource } {
  const source = loadConfigFile(file);
  return { config: validateCoreConfig(source), source };
}

/**
 * The modules enabled on one host, with their raw options: the top-level `modules:` map with the
 * host's own `modules:` laid over it. A host entry `false` disables a module there; a host entry
 * with options enables it there and its keys override the top-level keys (a shallow merge).
 */
export function modulesForHost(config: CoreConfig, host: HostConfig): Map<string, Record<string, unknown>> {
  const enabled = new Map<string, Record<string, unknown>>();
  for (const name of new Set([...Object.keys(config.modules), ...Object.keys(host.modules)])) {
    const top = config.modules[name];
    const own = host.modules[name];
    if (own === false || (own === undefined && (top === undefined || top === false))) continue;
    enabled.set(name, { ...(top || {}), ...(own || {}) });
  }
  return enabled;
}

/**
 * Validates one module's effective options on one host (see modulesForHost) with the module's own
 * schema. A problem points at the host's `modules.<name>` entry when the key came from there,
 * otherwise at the top-level `modules.<name>` entry.
 */
export function validateModuleOptions<T>(
  source: ConfigSource,
  config: CoreConfig,
  hostIndex: number,
  name: string,
  schema: z.ZodType<T>,
): T {
  const host = config.hosts[hostIndex];
  if (host === undefined) throw new RangeError(`no host at index ${hostIndex}`);
  const top = config.modules[name];
  const own = host.modules[name];
  const topPath: ConfigPath = ['modules', name];
  const ownPath: ConfigPath = ['hosts', hostIndex, 'modules', name];
  const options = { ...(top || {}), ...(own || {}) };
  return validateMapped(source, options, schema, (issuePath) => {
    const key = issuePath[0];
    const fromHost = own !== undefined && own !== false && (key === undefined || key in own || top === undefined || top === false);
    return [...(fromHost ? ownPath : topPath), ...issuePath];
  });
}

function validateMapped<T>(
  source: ConfigSource,
  value: unknown,
  schema: z.ZodType<T>,
  toConfigPath: (issuePath: (string | number)[]) => ConfigPath,
): T {
  const knownKeys = new Map<string, string[]>();
  const result = schema.safeParse(value, { error: (issue) => describeIssue(issue, knownKeys) });
  if (result.success) return result.data;
  const problems: ConfigProblem[] = [];
  for (const issue of result.error.issues) {
    const issuePath = issue.path.map((s) => (typeof s === 'number' ? s : String(s)));
    if (issue.code === 'unrecognized_keys') {
      const known = knownKeys.get(JSON.stringify(issuePath)) ?? [];
      for (const key of issue.keys) {
        const configPath = toConfigPath([...issuePath, key]);
        const hint = closest(key, known);
        const message = hint === undefined ? 'unknown option' : `unknown option (did you mean ${hint}?)`;
        problems.push(problemAt(source, configPath, message, 'key'));
      }
    } else {
      problems.push(problemAt(source, toConfigPath(issuePath), issue.message, 'value'));
    }
  }
  // In file order, as a compiler reports; problems without a line (inline configs) keep schema order.
  problems.sort((a, b) => (a.line ?? Infinity) - (b.line ?? Infinity) || (a.column ?? 0) - (b.column ?? 0));
  throw new ConfigError(problems);
}

export function problemAt(source: ConfigSource, configPath: ConfigPath, message: string, point: 'key' | 'value'): ConfigProblem {
  const offset = locate(source, configPath, point);
  const pos = offset === undefined ? undefined : source.lineCounter?.linePos(offset);
  return { file: source.file, line: pos?.line, column: pos?.col, path: formatPath(configPath), message };
}

/**
 * The source offset for a path: the value when it is a scalar, otherwise its key (a map value
 * starts on the next line, which reads as the wrong place). A path that stops early (a missing
 * key) points at the deepest entry that exists.
 */
function locate(source: ConfigSource, configPath: ConfigPath, point: 'key' | 'value'): number | undefined {
  const doc = source.doc;
  if (doc === undefined) return undefined;
  let node: unknown = doc.contents;
  let offset = (node as Node | null)?.range?.[0] ?? 0;
  for (const [i, segment] of configPath.entries()) {
    if (isAlias(node)) node = node.resolve(doc);
    const last = i === configPath.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(segment));
      if (pair === undefined) break;
      const key = pair.key as Node;
      const value = pair.value as Node | null;
      const useValue = !(last && point === 'key') && isScalar(value) && value.value !== null;
      offset = (useValue ? value.range?.[0] : key.range?.[0]) ?? offset;
      node = value;
    } else if (isSeq(node) && typeof segment === 'number') {
      const item = node.items[segment] as Node | undefined;
      if (item === undefined) break;
      offset = item.range?.[0] ?? offset;
      node = item;
    } else {
      break;
    }
  }
  return offset;
}

// Messages in the admin's words (a YAML file), replacing zod's generic ones. Schemas that set
// their own `error` keep it: zod asks them first.
function describeIssue(issue: z.core.$ZodRawIssue, knownKeys: Map<string, string[]>): string | undefined {
  switch (issue.code) {
    case 'invalid_type':
      if (issue.input === undefined) return 'missing required option';
      return `expected ${noun(issue.expected)}, got ${describeValue(issue.input)}`;
    case 'invalid_value': {
      const values = issue.values.map((v) => String(v));
      const expected = values.length === 1 ? values[0] : `one of ${values.join(', ')}`;
      return `expected ${expected}, got ${describeValue(issue.input)}`;
    }
    case 'too_small':
      if (issue.origin === 'string' && Number(issue.minimum) === 1) return 'must not be empty';
      if (issue.origin === 'array') return `needs at least ${issue.minimum} ${Number(issue.minimum) === 1 ? 'entry' : 'entries'}`;
      if (issue.origin === 'string') return `must be at least ${issue.minimum} characters long`;
      return `must be at least ${issue.minimum}, got ${describeValue(issue.input)}`;
    case 'too_big':
      if (issue.origin === 'array') return `allows at most ${issue.maximum} entries`;
      if (issue.origin === 'string') return `must be at most ${issue.maximum} characters long`;
      return `must be at most ${issue.maximum}, got ${describeValue(issue.input)}`;
    case 'unrecognized_keys': {
      const def = (issue.inst as { _zod?: { def?: { shape?: Record<string, unknown> } } } | undefined)?._zod?.def;
      const issuePath = (issue.path ?? []).map((s) => (typeof s === 'number' ? s : String(s)));
      knownKeys.set(JSON.stringify(issuePath), Object.keys(def?.shape ?? {}));
      return 'unknown option';
    }
    case 'invalid_union':
      return `got ${describeValue(issue.input)}, which is not an accepted form here`;
    default:
      return undefined;
  }
}

function noun(expected: string): string {
  switch (expected) {
    case 'string': return 'a string';
    case 'number': return 'a number';
    case 'int': return 'a whole number';
    case 'boolean': return 'true or false';
    case 'object':
    case 'record':
    case 'map': return 'a map of options';
    case 'array': return 'a list';
    case 'null': return 'an empty value';
    default: return expected;
  }
}


/** The known key nearest to a misspelt one, if it is close enough to be a typo. */
function closest(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(1, Math.floor(key.length / 3)) + 1;
  for (const candidate of known) {
    const d = editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}
