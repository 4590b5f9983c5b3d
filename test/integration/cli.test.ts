// The `xmppd` command as an admin uses it: the real CLI in a child process, against a
// configuration and data directory of the test's own.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { client } from '@xmpp/client';
import { onPostgres, startServer, testStorageConfig, type TestServer } from '../helpers/server.js';
import knex from 'knex';
import { MIGRATION_LOCK } from '../../src/storage/db.js';
import { connect, watchWire } from '../helpers/clients.js';
import { httpRequest } from '../helpers/http.js';
import { main, root, running, spawnServer, xmppd, type Run } from '../helpers/cli.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // the test server's certificate is self-signed

/** A data directory and a configuration file for one test; both removed afterwards. */
function workspace(t: ExecutionContext, yaml = ''): { dir: string; config: string; cli(...args: string[]): Promise<Run> } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-cli-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const config = path.join(dir, 'xmppd.yml');
  // on the PostgreSQL pass, the database the test server on this data directory uses too
  const storage = testStorageConfig(dir);
  fs.writeFileSync(config, yaml || `data_dir: ${JSON.stringify(dir)}\nlog: { level: silent }\nhosts:\n  - domain: localhost\n${storage ? `storage: ${JSON.stringify(storage)}` : 'storage: {}'}\n`);
  return { dir, config, cli: (...args) => xmppd(['--config', config, ...args]) };
}

/** Starts a server on the workspace's data directory (and so its SQLite file). */
async function serverOn(t: ExecutionContext, dir: string): Promise<TestServer> {
  const server = await startServer({ dataDir: dir });
  t.teardown(() => server.stop());
  return server;
}

/** Whether a login with this password is refused (SASL not-authorized). */
async function loginRefused(server: TestServer, username: string, password: string): Promise<boolean> {
  const xmpp = client({ service: `xmpp://127.0.0.1:${server.port}`, domain: server.domain, username, password, resource: 'cli-test' });
  watchWire(xmpp, `${username}'s login attempt`, 'stream');
  xmpp.on('error', () => undefined);
  try {
    await xmpp.start();
    return false;
  } catch (err) {
    return (err as { condition?: string }).condition === 'not-authorized';
  } finally {
    (xmpp as unknown as { reconnect?: { stop(): void } }).reconnect?.stop();
    await xmpp.stop().catch(() => undefined);
  }
}

test('an admin adds users; user list shows them', async (t) => {
  const { cli } = workspace(t);

  const added = await cli('user', 'add', 'alice@localhost', '--password', 'x');
  t.is(added.code, 0, added.stderr);
  t.is(added.stdout, 'created alice@localhost\n');
  t.is((await cli('user', 'add', 'bob@localhost', '--password', 'y')).code, 0);

  const list = await cli('user', 'list');
  t.is(list.code, 0, list.stderr);
  t.deepEqual(list.stdout.trim().split('\n'), ['alice@localhost', 'bob@localhost']);
});

test('user add reads the password from standard input when none is given', async (t) => {
  const { dir, config } = workspace(t);

  const added = await xmppd(['--config', config, 'user', 'add', 'carol@localhost'], 'from-stdin\n');
  t.is(added.code, 0, added.stderr);

  const server = await serverOn(t, dir);
  const carol = await connect(server, 'carol', { password: 'from-stdin' });
  t.is(carol.jid.split('/')[0], 'carol@localhost');
  await carol.stop();
});

test('a user created with the CLI can log in', async (t) => {
  const { dir, cli } = workspace(t);
  t.is((await cli('user', 'add', 'alice@localhost', '--password', 'x')).code, 0);

  const server = await serverOn(t, dir);

  const alice = await connect(server, 'alice', { password: 'x' });
  t.regex(alice.jid, /^alice@localhost\//);
  await alice.stop();
  t.true(await loginRefused(server, 'alice', 'not the password'));
});

test('user passwd changes the password: the old one stops working, the new one works', async (t) => {
  const { dir, cli } = workspace(t);
  t.is((await cli('user', 'add', 'alice@localhost', '--password', 'old secret')).code, 0);
  const server = await serverOn(t, dir); // the server keeps running while the admin works

  const changed = await cli('user', 'passwd', 'alice@localhost', '--password', 'new secret');
  t.is(changed.code, 0, changed.stderr);
  t.is(changed.stdout, 'password changed for alice@localhost\n');

  t.true(await loginRefused(server, 'alice', 'old secret'));
  const alice = await connect(server, 'alice', { password: 'new secret' });
  await alice.stop();
});

test('user del removes the account: it is no longer listed and cannot log in', async (t) => {
  const { dir, cli } = workspace(t);
  t.is((await cli('user', 'add', 'alice@localhost', '--password', 'x')).code, 0);
  t.is((await cli('user', 'add', 'bob@localhost', '--password', 'x')).code, 0);

  const deleted = await cli('user', 'del', 'alice@localhost');
  t.is(deleted.code, 0, deleted.stderr);
  t.is(deleted.stdout, 'deleted alice@localhost\n');
  t.is((await cli('user', 'list')).stdout, 'bob@localhost\n');

  const server = await serverOn(t, dir);
  t.true(await loginRefused(server, 'alice', 'x'));
});

test('the user commands refuse what they cannot do, with a message and a non-zero exit', async (t) => {
  const { cli } = workspace(t);
  t.is((await cli('user', 'add', 'alice@localhost', '--password', 'x')).code, 0);

  const again = await cli('user', 'add', 'alice@localhost', '--password', 'x');
  t.is(again.code, 1);
  t.regex(again.stderr, /alice@localhost already exists/);

  const otherHost = await cli('user', 'add', 'alice@example.org', '--password', 'x');
  t.is(otherHost.code, 1);
  t.regex(otherHost.stderr, /example\.org is not a host in this configuration/);

  const notAnAccount = await cli('user', 'add', 'alice@localhost/phone', '--password', 'x');
  t.is(notAnAccount.code, 1);
  t.regex(notAnAccount.stderr, /is not an account address/);

  const nobody = await cli('user', 'del', 'nobody@localhost');
  t.is(nobody.code, 1);
  t.regex(nobody.stderr, /no account nobody@localhost/);

  const nobodyPasswd = await cli('user', 'passwd', 'nobody@localhost', '--password', 'x');
  t.is(nobodyPasswd.code, 1);
  t.regex(nobodyPasswd.stderr, /no account nobody@localhost/);
});

test('check reports an unknown option and a wrong type, each with file:line, and fails', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-cli-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const config = path.join(dir, 'broken.yml');
  fs.writeFileSync(config, [
    `data_dir: ${JSON.stringify(dir)}`, // 1
    'hosts:', //                           2
    '  - domain: localhost', //            3
    '    registraton: open', //            4: a typo
    'c2s:', //                             5
    '  max_stanza_size: big', //           6: not a size
  ].join('\n') + '\n');

  const result = await xmppd(['--config', config, 'check']);

  t.not(result.code, 0);
  t.is(result.stdout, '');
  const lines = result.stderr.trim().split('\n');
  t.is(lines.length, 2, result.stderr);
  t.true(lines[0]!.startsWith(`${config}:4:`), lines[0]);
  t.regex(lines[0]!, /hosts\[0\]\.registraton: unknown option \(did you mean registration\?\)/);
  t.true(lines[1]!.startsWith(`${config}:6:`), lines[1]);
  t.regex(lines[1]!, /c2s\.max_stanza_size: .*"big"/);
});

test('check reports bad module options with file:line', async (t) => {
  const { config } = workspace(t);
  fs.appendFileSync(config, ['modules:', '  roster: {}', '  presence: {}', '  register:', '    min_password_length: six'].join('\n') + '\n');

  const result = await xmppd(['--config', config, 'check']);

  t.not(result.code, 0);
  t.regex(result.stderr, new RegExp(`^${escape(config)}:10:\\d+: modules\\.register\\.min_password_length: expected a number`, 'm'));
});

test('check reports module problems in the same run as core problems', async (t) => {
  const { config } = workspace(t);
  fs.appendFileSync(config, ['c2s:', '  max_stanza_size: big', 'modules:', '  register:', '    min_password_length: six'].join('\n') + '\n');

  const result = await xmppd(['--config', config, 'check']);

  t.regex(result.stderr, /c2s\.max_stanza_size/);
  t.regex(result.stderr, /modules\.register\.min_password_length/);
});

test('check gives the line of an unknown module', async (t) => {
  const { config } = workspace(t);
  fs.appendFileSync(config, ['modules:', '  roster: {}', '  avatars: {}'].join('\n') + '\n');

  const result = await xmppd(['--config', config, 'check']);

  t.not(result.code, 0);
  t.regex(result.stderr, new RegExp(`^${escape(config)}:8:\\d+: modules\\.avatars: unknown module`, 'm'));
});

test('check says OK for the example configuration', async (t) => {
  const result = await xmppd(['--config', 'config/xmppd.example.yml', 'check']);

  t.is(result.code, 0, result.stderr);
  t.is(result.stdout, 'config/xmppd.example.yml: OK\n');
});

test('check says OK for the development configuration', async (t) => {
  const result = await xmppd(['--config', 'config/xmppd.yml', 'check']);

  t.is(result.code, 0, result.stderr);
  t.regex(result.stdout, /OK/);
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

test("an admin sets an account's retention period, which the server then applies", async (t) => {
  const { dir, cli } = workspace(t);
  t.is((await cli('user', 'add', 'alice@localhost', '--password', 'x')).code, 0);
  t.is((await cli('user', 'retention', 'alice@localhost')).stdout, "alice@localhost: messages kept for the server's default period\n");
  const set = await cli('user', 'retention', 'alice@localhost', '30d');
  t.is(set.code, 0, set.stderr);
  t.is(set.stdout, 'alice@localhost: messages kept for 30d\n');
  t.is((await cli('user', 'retention', 'alice@localhost')).stdout, 'alice@localhost: messages kept for 30d\n');
  const bad = await cli('user', 'retention', 'alice@localhost', 'soon');
  t.is(bad.code, 1);
  t.regex(bad.stderr, /not a duration/);
  t.is((await cli('user', 'retention', 'nobody@localhost', 'never')).code, 1);

  const server = await serverOn(t, dir);
  const mam = server.server.hosts.get('localhost')!.services.get('mam') as { expiryCutoff(username: string, now?: number): number | null };
  t.is(mam.expiryCutoff('alice', 1_000_000_000_000), 1_000_000_000_000 - 30 * 86_400_000);
  t.is(mam.expiryCutoff('bob', 1_000_000_000_000), 1_000_000_000_000 - 365 * 86_400_000, 'the default: a year');
  await server.stop();
  t.is((await cli('user', 'retention', 'alice@localhost', 'never')).stdout, 'alice@localhost: messages kept forever\n');
  t.is((await cli('user', 'retention', 'alice@localhost', 'default')).stdout, "alice@localhost: messages kept for the server's default period\n");
});

/** A configuration for `start` on ephemeral loopback ports, logging at info level to stdout. */
function startConfig(t: ExecutionContext, extra = ''): { dir: string; config: string } {
  const { dir, config } = workspace(t);
  fs.writeFileSync(config, [
    `data_dir: ${JSON.stringify(dir)}`,
    'log:',
    '  level: info',
    'hosts:',
    '  - domain: localhost',
    '    modules: { proxy65: { port: 0 } }',
    'http:',
    '  enabled: false',
    's2s:',
    '  enabled: false',
    extra || 'c2s:\n  listen:\n    - { host: 127.0.0.1, port: 0, tls: starttls }',
  ].join('\n') + '\n');
  return { dir, config };
}

test('SIGHUP reloads the configuration: the server keeps running, and SIGTERM still stops it cleanly', async (t) => {
  const { child, server } = spawnServer(t, startConfig(t).config);
  await server.waitFor('xmppd started');

  child.kill('SIGHUP');
  await server.waitFor('SIGHUP: configuration reloaded');
  t.is(child.exitCode, null, 'still running');
  child.kill('SIGTERM');
  const end = await server.exit;

  t.deepEqual(end, { code: 0, signal: null }, server.output());
  t.regex(server.output(), /"signal":"SIGTERM"/);
});

test('a SIGHUP or SIGTERM that arrives while the server is starting waits for the start, instead of ending the process', async (t) => {
  const { child, server } = spawnServer(t, startConfig(t).config);
  // the first line of the start-up (the storage's migrations), long before 'xmppd started'
  await server.waitFor('database migrations applied');
  child.kill('SIGHUP');
  await server.waitFor('xmppd started');
  await server.waitFor('SIGHUP: configuration reloaded');
  t.is(child.exitCode, null, 'still running');

  const { child: second, server: stopping } = spawnServer(t, startConfig(t).config);
  await stopping.waitFor('database migrations applied');
  second.kill('SIGTERM');
  t.deepEqual(await stopping.exit, { code: 0, signal: null }, stopping.output());
  t.regex(stopping.output(), /xmppd started[\s\S]*"signal":"SIGTERM"/);
  child.kill('SIGTERM');
  t.deepEqual(await server.exit, { code: 0, signal: null });
});

test('start refuses a missing certificate exactly as check reports it, without a stack trace', async (t) => {
  const { dir, config } = startConfig(t);
  const missing = path.join(dir, 'missing.crt');
  fs.writeFileSync(config, fs.readFileSync(config, 'utf8').replace('  - domain: localhost\n', `  - domain: localhost\n    tls:\n      cert: ${missing}\n      key: ${missing}.key\n`));

  const checked = await xmppd(['--config', config, 'check']);
  const started = await xmppd(['--config', config, 'start']);

  t.not(started.code, 0);
  t.regex(checked.stderr, new RegExp(`^${escape(config)}:\\d+:\\d+: hosts\\[0\\]\\.tls: certificate file .*missing\\.crt does not exist`, 'm'));
  t.is(started.stderr, checked.stderr);
  t.is(started.stdout, '');
});

test('start on a port that is taken names the address at its line in the configuration, without a stack trace', async (t) => {
  const squatter = net.createServer();
  await new Promise<void>((resolve) => squatter.listen({ host: '127.0.0.1', port: 0 }, resolve));
  t.teardown(() => new Promise<void>((resolve) => squatter.close(() => resolve())));
  const taken = (squatter.address() as net.AddressInfo).port;
  const { config } = startConfig(t, `c2s:\n  listen:\n    - { host: 127.0.0.1, port: 0, tls: starttls }\n    - { host: 127.0.0.1, port: ${taken}, tls: direct }`);

  const started = await xmppd(['--config', config, 'start']);

  t.not(started.code, 0);
  t.is(started.stderr, `${config}:14:7: c2s.listen[1]: cannot listen for clients (direct TLS) on 127.0.0.1:${taken}: address already in use\n`);
  t.notRegex(started.stdout + started.stderr, /\n\s+at /, 'no stack trace');
});

test('an empty password is refused, given as an option or piped', async (t) => {
  const { cli, config } = workspace(t);

  const option = await cli('user', 'add', 'alice@localhost', '--password', '');
  const piped = await xmppd(['--config', config, 'user', 'add', 'alice@localhost'], '\n');
  const nothing = await xmppd(['--config', config, 'user', 'add', 'alice@localhost'], '');

  for (const refused of [option, piped]) {
    t.is(refused.code, 1);
    t.regex(refused.stderr, /the password must not be empty/);
  }
  t.is(nothing.code, 1);
  t.regex(nothing.stderr, /no password given/);
  t.is((await cli('user', 'list')).stdout, '', 'no account was created');
});

/** `xmppd <args>` on a pseudo-terminal (script(1)), so that it sees a person typing. */
function onTerminal(args: string[]) {
  const command = [process.execPath, main, ...args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ');
  const child = spawn('script', ['-qec', command, '/dev/null'], { cwd: root, stdio: ['pipe', 'pipe', 'pipe'] });
  return { child, run: running(child) };
}

test('on a terminal the password is typed without echo and asked twice', async (t) => {
  const { dir, config } = workspace(t);
  const { child, run } = onTerminal(['--config', config, 'user', 'add', 'dave@localhost']);

  await run.waitFor('Password: ');
  child.stdin.write('typed secret\r');
  await run.waitFor('Password (again): ');
  child.stdin.write('typed secret\r');
  const end = await run.exit;

  t.is(end.code, 0, run.output());
  t.regex(run.output(), /created dave@localhost/);
  t.false(run.output().includes('typed secret'), 'the password was not echoed');
  const server = await serverOn(t, dir);
  // PLAIN (over TLS): the server checks the password natively; @xmpp/client's SCRAM derives the
  // key in JavaScript, which on a loaded machine outlasted the server's authentication timeout
  const dave = await connect(server, 'dave', { password: 'typed secret', mechanism: 'PLAIN' });
  await dave.stop();
});

test('on a terminal two different entries are refused', async (t) => {
  const { cli, config } = workspace(t);
  const { child, run } = onTerminal(['--config', config, 'user', 'add', 'dave@localhost']);

  await run.waitFor('Password: ');
  child.stdin.write('one\r');
  await run.waitFor('Password (again): ');
  child.stdin.write('another\r');
  const end = await run.exit;

  t.is(end.code, 1, run.output());
  t.regex(run.output(), /the passwords do not match/);
  t.is((await cli('user', 'list')).stdout, '');
});

test('invitations from the registry: made on the database while stopped, then listed and revoked through the running server', async (t) => {
  const { dir, cli } = workspace(t);
  t.is((await cli('user', 'add', 'bob@localhost', '--password', 'b')).code, 0);

  const made = await cli('invite', 'create', '--contact', 'bob@localhost', '--ttl', '2d', '--username', 'Carol');
  t.is(made.code, 0, made.stderr);
  const [url, uri, until] = made.stdout.split('\n');
  const token = new URL(url!).pathname.split('/').pop()!;
  t.regex(url!, /^https?:\/\/localhost:\d+\/invite\/[A-Za-z0-9_-]+$/);
  t.is(uri, `xmpp:bob@localhost?roster;preauth=${token};ibr=y`);
  const validFor = Date.parse(until!.replace('valid until ', '')) - Date.now();
  t.true(validFor > 47 * 3600_000 && validFor <= 48 * 3600_000, until);

  for (const [args, refusal] of [
    [['--ttl', 'soon'], /"soon" is not a duration/],
    [['--email', 'not-an-address'], /is not an email address/],
    [['--email', 'carol@example.org'], /no mail without modules\.mail\.smtp_url/],
    [['--contact', 'nobody@localhost'], /no account nobody@localhost/],
    [['example.net'], /example\.net is not a host in this configuration/],
  ] as const) {
    const refused = await cli('invite', 'create', ...args);
    t.is(refused.code, 1, args.join(' '));
    t.regex(refused.stderr, refusal);
  }
  t.regex((await cli('invite', 'list')).stdout, new RegExp(`^${token}  localhost  contact  from bob@localhost  for carol  until `), 'stopped: read from the database');

  const server = await serverOn(t, dir);
  t.is((await httpRequest(server, 'GET', `/invite/${token}`)).status, 200, 'the server knows the invitation made while it was stopped');
  const listed = await cli('--json', 'invite', 'list');
  t.deepEqual((JSON.parse(listed.stdout) as Array<{ token: string; inviter: string }>).map((i) => [i.token, i.inviter]), [[token, 'bob@localhost']]);
  const revoked = await cli('invite', 'revoke', token);
  t.is(revoked.stdout, `revoked ${token}\n`, revoked.stderr);
  t.is((await httpRequest(server, 'GET', `/invite/${token}`)).status, 404);
  const again = await cli('invite', 'revoke', token);
  t.is(again.code, 1);
  t.regex(again.stderr, /no invitation .* \(used, revoked or expired already\)/);
});

test('check validates the cluster section and refuses a cluster on SQLite, with file:line', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-cli-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const config = path.join(dir, 'cluster.yml');
  fs.writeFileSync(config, [
    `data_dir: ${JSON.stringify(dir)}`, //                 1
    'cluster:', //                                          2
    '  redis_url: 127.0.0.1:6379', //                       3: no scheme
    '  node_id: "node one"', //                             4: a space
  ].join('\n') + '\n');
  const result = await xmppd(['--config', config, 'check']);
  t.not(result.code, 0);
  t.regex(result.stderr, new RegExp(`^${escape(config)}:3:\\d*:? ?cluster\\.redis_url: redis_url must look like redis://`, 'm'));
  t.regex(result.stderr, new RegExp(`^${escape(config)}:4:\\d*:? ?cluster\\.node_id: `, 'm'));

  fs.writeFileSync(config, [`data_dir: ${JSON.stringify(dir)}`, 'cluster:', '  redis_url: redis://127.0.0.1:6379'].join('\n') + '\n');
  const onSqlite = await xmppd(['--config', config, 'check']);
  t.not(onSqlite.code, 0);
  t.regex(onSqlite.stderr, /cluster: cluster mode needs storage\.driver: postgres/);
});

// A cluster node's first start and an admin's command on the same fresh PostgreSQL database both
// create tables: the CLI takes the same migration lock as the server (src/storage/db.ts).
const postgresTest = onPostgres ? test : (title: string) => test.skip(`${title} (PostgreSQL pass only)`, () => {});
postgresTest('a CLI command waits for the migration lock another process holds before creating tables', async (t) => {
  const w = workspace(t);
  // one connection: a session's advisory lock is released by the session that took it
  const holder = knex({ client: 'pg', connection: testStorageConfig(w.dir)!.postgres_url, pool: { min: 1, max: 1 } });
  t.teardown(() => holder.destroy());
  // the lock a migrating node holds
  await holder.raw('select pg_advisory_lock(?)', [MIGRATION_LOCK]);
  let finished = false;
  const adding = w.cli('user', 'add', 'waiter@localhost', '-p', 'patience123').then((run) => ((finished = true), run));
  await new Promise((resolve) => setTimeout(resolve, 1500));
  t.false(finished, 'the command went on while another process was migrating');
  t.false(await holder.schema.hasTable('accounts'));
  await holder.raw('select pg_advisory_unlock(?)', [MIGRATION_LOCK]);
  const run = await adding;
  t.is(run.code, 0, run.stderr);
  t.regex((await w.cli('user', 'list')).stdout, /waiter@localhost/);
});
