#!/usr/bin/env node
// Runs the ava suite twice — on SQLite, then on a real PostgreSQL started for the run — and ends
// with the plain summary line CI reads: "N passed, M failed" (both passes summed).
// PostgreSQL: Debian's server binaries (/usr/lib/postgresql/<version>/bin), a throwaway cluster
// in a temp dir listening on 127.0.0.1 on a free port (its Unix socket in the temp dir), run as
// the `postgres` user when we are root (PostgreSQL refuses to run as root), stopped by PID.
// Missing binaries skip that pass with a line saying so, unless CI is set: then it fails.
// XMPPD_TEST_DATABASES=sqlite (or postgres) runs one pass only.
// The PostgreSQL pass runs the test files whose outcome can depend on the database: those that
// import, directly or through helpers, test/helpers/postgres (the one place that reads the pass's
// database). The rest (parser, SCRAM, config... unit tests) would run the same code twice.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const avaArgs = ['ava', '--verbose', ...process.argv.slice(2)];
const wanted = (process.env.XMPPD_TEST_DATABASES ?? 'sqlite,postgres').split(',').map((s) => s.trim());

/** Runs ava once (on `files` if given, else ava's configured set); resolves with its counts. */
function runAva(label, env, files = []) {
  return new Promise((resolve) => {
    const started = Date.now();
    console.log(`\n=== ${label} ===\n`);
    const child = spawn('npx', [...avaArgs, ...files], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FORCE_COLOR: '0', ...env } });
    let output = '';
    for (const stream of [child.stdout, child.stderr]) {
      stream.on('data', (chunk) => {
        output += chunk.toString();
        (stream === child.stdout ? process.stdout : process.stderr).write(chunk);
      });
    }
    child.on('close', (code) => {
      const count = (re) => { const m = output.match(re); return m ? Number(m[1]) : 0; };
      // ava prints "N tests passed" only when nothing failed; otherwise count the verbose ✔ lines
      const passed = count(/(\d+) tests? passed/) || (output.match(/^\s*✔/gm) ?? []).length;
      let failed = count(/(\d+) tests? failed/) + count(/(\d+) uncaught exceptions?/) + count(/(\d+) unhandled rejections?/);
      failed += count(/(\d+) tests? timed out/);
      if (code !== 0 && failed === 0) failed = 1; // a crash or a runner error still counts as a failure
      const seconds = Math.round((Date.now() - started) / 1000);
      console.log(`\n${label}: ${passed} passed, ${failed} failed in ${seconds}s`);
      // the failing tests' names again, so that the tail of a long log says which ones
      const failures = (output.match(/^\s*✘.*$/gm) ?? []).map((line) => `${label}: ${line.trim()}`);
      resolve({ passed, failed, code: code ?? 1, failures });
    });
  });
}

/** The newest PostgreSQL server binaries Debian installed, or null. */
function postgresBinaries() {
  const root = '/usr/lib/postgresql';
  const versions = fs.existsSync(root) ? fs.readdirSync(root).filter((v) => fs.existsSync(path.join(root, v, 'bin', 'postgres'))) : [];
  versions.sort((a, b) => Number(b) - Number(a));
  return versions.length > 0 ? path.join(root, versions[0], 'bin') : null;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function startPostgres(bin) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-pg-'));
  const asRoot = process.getuid?.() === 0;
  const ids = asRoot
    ? { uid: Number(execFileSync('id', ['-u', 'postgres']).toString()), gid: Number(execFileSync('id', ['-g', 'postgres']).toString()) }
    : {};
  if (asRoot) fs.chownSync(dir, ids.uid, ids.gid);
  const data = path.join(dir, 'data');
  execFileSync(path.join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C'], { ...ids, stdio: ['ignore', 'ignore', 'inherit'] });
  const port = await freePort();
  const log = fs.openSync(path.join(dir, 'postgres.log'), 'a');
  if (asRoot) fs.fchownSync(log, ids.uid, ids.gid);
  // durability off: a test cluster is thrown away after the run
  const child = spawn(path.join(bin, 'postgres'), [
    '-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1',
    '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off', '-c', 'max_connections=400',
  ], { ...ids, stdio: ['ignore', log, log] });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const stop = async () => {
    child.kill('SIGINT'); // fast shutdown
    await exited;
    fs.rmSync(dir, { recursive: true, force: true });
  };
  for (let i = 0; ; i++) {
    try {
      execFileSync(path.join(bin, 'pg_isready'), ['-q', '-h', '127.0.0.1', '-p', String(port)]);
      break;
    } catch {
      if (child.exitCode !== null || i > 100) {
        const tail = fs.readFileSync(path.join(dir, 'postgres.log'), 'utf8').slice(-2000);
        await stop();
        throw new Error(`PostgreSQL did not start:\n${tail}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  return { url: `postgres://postgres@127.0.0.1:${port}/postgres`, stop, pid: child.pid };
}

/**
 * The compiled test files that reach dist/test/helpers/postgres.js through relative imports
 * (src/ never imports test/, so the graph of dist/test is enough): a walk back from that file.
 */
function databaseDependentTests() {
  const target = path.resolve('dist/test/helpers/postgres.js');
  const importers = new Map(); // file -> the files that import it
  const all = [];
  const walk = (dir) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.resolve(dir, entry.name);
      if (entry.isDirectory()) walk(p);
      else if (p.endsWith('.js')) all.push(p);
    }
  };
  walk('dist/test');
  for (const file of all) {
    const source = fs.readFileSync(file, 'utf8');
    for (const m of source.matchAll(/(?:\bfrom|\bimport)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g)) {
      const imported = path.resolve(path.dirname(file), m[1]);
      if (!importers.has(imported)) importers.set(imported, []);
      importers.get(imported).push(file);
    }
  }
  const reached = new Set([target]);
  const queue = [target];
  while (queue.length > 0) {
    for (const importer of importers.get(queue.pop()) ?? []) {
      if (!reached.has(importer)) { reached.add(importer); queue.push(importer); }
    }
  }
  return all.filter((f) => f.endsWith('.test.js') && reached.has(f)).map((f) => path.relative('.', f)).sort();
}

const totals = { passed: 0, failed: 0, failures: [] };
let exitCode = 0;
const add = (result) => {
  totals.passed += result.passed;
  totals.failed += result.failed;
  totals.failures.push(...(result.failures ?? []));
  if (result.code !== 0) exitCode = result.code;
};

if (wanted.includes('sqlite')) add(await runAva('SQLite pass', {}));
if (wanted.includes('postgres')) {
  const bin = postgresBinaries();
  if (bin === null) {
    if (process.env.CI) {
      console.log('\nPostgreSQL pass: FAILED: no PostgreSQL server binaries (install the Debian package postgresql)');
      add({ passed: 0, failed: 1, code: 1 });
    } else {
      console.log('\nPostgreSQL pass: skipped, no PostgreSQL server binaries (Debian package postgresql)');
    }
  } else {
    const postgres = await startPostgres(bin);
    console.log(`\nPostgreSQL ${path.basename(path.dirname(bin))} started on ${postgres.url} (pid ${postgres.pid})`);
    try {
      // with arguments other than flags (files, or a value such as --match's) ava's own choice stands
      const chosen = process.argv.slice(2).some((arg) => !arg.startsWith('-')) ? [] : databaseDependentTests();
      if (chosen.length > 0) console.log(`PostgreSQL pass: the ${chosen.length} test files that use the database`);
      add(await runAva('PostgreSQL pass', { XMPPD_TEST_POSTGRES_URL: postgres.url, XMPPD_TEST_POSTGRES_BIN: bin }, chosen));
    } finally {
      await postgres.stop();
    }
  }
}
if (totals.failures.length > 0) console.log(`\nFailed:\n${totals.failures.join('\n')}`);
console.log(`\n${totals.passed} passed, ${totals.failed} failed`);
process.exit(exitCode);
