// Accounts without the keys of every SCRAM hash (imported with SHA-1 keys only, as Prosody and
// ejabberd keep them): the host offers only the mechanisms every account can answer and says so
// in its log; a PLAIN login, or a XEP-0480 upgrade task in SASL2, gives an account the keys it
// lacks, and once the last one has them the host offers the mechanisms again. Over real sockets,
// with raw clients that compute SCRAM and the SaltedPassword themselves (node:crypto).
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import type Element from 'ltx/lib/Element.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { RawClient } from '../helpers/clients.js';
import { NS_SASL, authenticatePlain, authenticateScram, bind, openStream, readElement, readStreamError, saltedPassword, scramClient, type ScramHash, type Wire } from '../helpers/wire.js';
import { NS_BIND2, NS_SASL2, sasl2Scram, secured, tlsExporter, userAgent } from '../helpers/sasl2.js';
import { computeScramCredentials } from '../../src/accounts/credentials.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // the test server's certificate is self-signed

const NS_UPGRADE = 'urn:xmpp:sasl:upgrade:0';
const NS_SCRAM_UPGRADE = 'urn:xmpp:scram-upgrade:0';
const ALL = ['SCRAM-SHA-512-PLUS', 'SCRAM-SHA-256-PLUS', 'SCRAM-SHA-1-PLUS', 'SCRAM-SHA-512', 'SCRAM-SHA-256', 'SCRAM-SHA-1', 'PLAIN'];
const SHA1_ONLY = ['SCRAM-SHA-1-PLUS', 'SCRAM-SHA-1', 'PLAIN'];

const password = (username: string) => `${username}-old-pw`;

interface Moved {
  server: TestServer;
  log(): string;
}

/**
 * A host with `alice` (made here: every key) and accounts imported with the keys of `imported`
 * hashes only (the store call `xmppd import` makes), then started again: as after an import,
 * the server counts at start what its accounts lack.
 */
async function hostWithImported(imported: Record<string, ScramHash[]>): Promise<Moved> {
  const first = await startServer({ config: { c2s: { auth_throttle: { per_ip: { attempts: 1000 } } } } });
  await first.createAccount('alice');
  for (const [username, hashes] of Object.entries(imported)) {
    const salt = Buffer.from(`${username}-salt-16-bytes`.slice(0, 16));
    const credentials = Object.fromEntries(await Promise.all(hashes.map(async (hash) => [hash, await computeScramCredentials(password(username), hash, salt, 4096)])));
    await first.server.accounts.createImported('localhost', username, credentials);
  }
  await first.stop();
  const logFile = path.join(first.dataDir, 'test.log');
  const server = await startServer({ dataDir: first.dataDir, logFile, config: { c2s: { auth_throttle: { per_ip: { attempts: 1000 } } } } });
  return { server, log: () => fs.readFileSync(logFile, 'utf8') };
}

function mechanismsOf(element: Element | undefined): string[] {
  return (element?.getChildren('mechanism') ?? []).map((m) => m.getText());
}

/** What a TLS 1.3 connection is offered: legacy SASL's and SASL2's mechanisms, and the XEP-0480 upgrades. */
async function offered(server: TestServer): Promise<{ legacy: string[]; sasl2: string[]; upgrades: string[] }> {
  const { wire, features } = await secured(server);
  wire.close();
  const authentication = features.getChild('authentication', NS_SASL2);
  return {
    legacy: mechanismsOf(features.getChild('mechanisms', NS_SASL)),
    sasl2: mechanismsOf(authentication),
    upgrades: (authentication?.getChildren('upgrade', NS_UPGRADE) ?? []).map((u) => u.getText()),
  };
}

async function plainLogin(server: TestServer, username: string, secret = password(username)): Promise<string> {
  const wire = await RawClient.open(server);
  await openStream(wire, server.domain);
  const result = await authenticatePlain(wire, username, secret);
  wire.close();
  return result.outcome === 'success' ? 'success' : result.condition;
}

async function scramLogin(server: TestServer, hash: ScramHash, username: string, secret = password(username)) {
  const wire = await RawClient.open(server);
  await openStream(wire, server.domain);
  const result = await authenticateScram(wire, hash, username, secret);
  if (result.outcome === 'success') await bind(wire, `after-${hash}`, server.domain);
  wire.close();
  return result;
}

/** The next <continue/>, <task-data/>, <success/> or <failure/> of the SASL2 exchange. */
async function nextOf(wire: Wire): Promise<Element> {
  const match = await wire.waitFor(/<(continue|task-data|success|failure|challenge)[\s/>]/);
  return readElement(wire, match[1]!);
}

/** XEP-0480 §3 from the client's side: <next/>, the salt, and the SaltedPassword back. */
async function performTask(wire: Wire, task: string, username: string): Promise<{ salt: string; iterations: number }> {
  const hash = ({ 'UPGR-SCRAM-SHA-256': 'sha256', 'UPGR-SCRAM-SHA-512': 'sha512' } as const)[task as 'UPGR-SCRAM-SHA-256'];
  wire.write(`<next xmlns='${NS_SASL2}' task='${task}'/>`);
  const data = await nextOf(wire);
  if (data.name !== 'task-data') throw new Error(`expected <task-data/>, got ${data.toString()}`);
  const salt = data.getChild('salt', NS_SCRAM_UPGRADE)!;
  const iterations = Number(salt.attrs.iterations);
  const salted = saltedPassword(hash, password(username), Buffer.from(salt.getText().trim(), 'base64'), iterations);
  wire.write(`<task-data xmlns='${NS_SASL2}'><hash xmlns='${NS_SCRAM_UPGRADE}'>${salted.toString('base64')}</hash></task-data>`);
  return { salt: salt.getText().trim(), iterations };
}

/** SASL2 SCRAM-*-PLUS (tls-exporter) asking for `upgrades`, up to the server's answer after the exchange. */
async function authenticateAsking(server: TestServer, hash: ScramHash, username: string, upgrades: string[], inline = '') {
  const { wire, socket } = await secured(server);
  const scram = scramClient(hash, username, password(username), { binding: { type: 'tls-exporter', data: tlsExporter(socket) } });
  const asked = upgrades.map((u) => `<upgrade xmlns='${NS_UPGRADE}'>${u}</upgrade>`).join('');
  wire.write(`<authenticate xmlns='${NS_SASL2}' mechanism='${scram.mechanism}'><initial-response>${Buffer.from(scram.clientFirst).toString('base64')}</initial-response>${asked}${inline}</authenticate>`);
  const challenge = await nextOf(wire);
  if (challenge.name !== 'challenge') throw new Error(`expected a challenge, got ${challenge.toString()}`);
  const { clientFinal, serverFinal } = scram.answer(Buffer.from(challenge.getText(), 'base64').toString('utf8'));
  wire.write(`<response xmlns='${NS_SASL2}'>${Buffer.from(clientFinal).toString('base64')}</response>`);
  return { wire, outcome: await nextOf(wire), serverFinal };
}

const tasksOf = (element: Element) => (element.getChild('tasks')?.getChildren('task') ?? []).map((t) => t.getText());

test('SHA-1-only accounts: the host offers SCRAM-SHA-1 only and says why; PLAIN logins give them SHA-256 and SHA-512 keys, and after the last one everything is offered again', async (t) => {
  const { server, log } = await hostWithImported({ olga: ['sha1'], oscar: ['sha1'] });
  t.teardown(() => server.stop());
  t.regex(log(), /2 accounts of localhost have no SCRAM-SHA-256 keys .*not offered on this host until each has logged in once with PLAIN, done a SASL2 upgrade task \(XEP-0480\) or had its password set/);
  t.regex(log(), /2 accounts of localhost have no SCRAM-SHA-512 keys/);
  t.deepEqual(await offered(server), { legacy: SHA1_ONLY, sasl2: SHA1_ONLY, upgrades: ['UPGR-SCRAM-SHA-256', 'UPGR-SCRAM-SHA-512'] });

  // the imported keys work as they are; what is not offered is refused
  t.like(await scramLogin(server, 'sha1', 'olga'), { outcome: 'success', serverSignatureVerified: true });
  t.like(await scramLogin(server, 'sha512', 'olga'), { outcome: 'failure', condition: 'invalid-mechanism' });
  t.like(await scramLogin(server, 'sha512', 'alice', 'correct horse battery'), { outcome: 'failure', condition: 'invalid-mechanism' }, 'not even for an account that has the keys');

  // a wrong password adds nothing
  t.is(await plainLogin(server, 'olga', 'not-olgas'), 'not-authorized');
  t.is(await server.server.accounts.credentials('localhost', 'olga', 'sha512'), null);

  const sha1Before = await server.server.accounts.credentials('localhost', 'olga', 'sha1');
  t.is(await plainLogin(server, 'olga'), 'success');
  t.not(await server.server.accounts.credentials('localhost', 'olga', 'sha256'), null);
  t.not(await server.server.accounts.credentials('localhost', 'olga', 'sha512'), null);
  t.deepEqual(await server.server.accounts.credentials('localhost', 'olga', 'sha1'), sha1Before, 'the keys she had are kept');
  t.deepEqual((await offered(server)).legacy, SHA1_ONLY, 'oscar still lacks them');

  t.is(await plainLogin(server, 'oscar'), 'success');
  t.deepEqual(await offered(server), { legacy: ALL, sasl2: ALL, upgrades: [] });
  t.regex(log(), /every account of localhost has SCRAM-SHA-512 keys now: it is offered again/);

  // and the imported accounts log in with SCRAM-SHA-512, with and without channel binding
  t.like(await scramLogin(server, 'sha512', 'olga'), { outcome: 'success', serverSignatureVerified: true });
  const { wire, socket } = await secured(server);
  t.teardown(() => wire.close());
  const bound = await sasl2Scram(wire, 'sha512', 'oscar', { password: password('oscar'), binding: { type: 'tls-exporter', data: tlsExporter(socket) } });
  t.like(bound, { outcome: 'success', serverVerified: true });
});

test('XEP-0480: a SHA-1-only account logs in with SCRAM-SHA-1-PLUS asking for both upgrades, does the two tasks, and then logs in with SCRAM-SHA-512', async (t) => {
  const { server } = await hostWithImported({ uma: ['sha1'] });
  t.teardown(() => server.stop());
  t.deepEqual((await offered(server)).upgrades, ['UPGR-SCRAM-SHA-256', 'UPGR-SCRAM-SHA-512']);

  const bindInline = `<bind xmlns='${NS_BIND2}'><tag>upgrader</tag></bind>`;
  const { wire, outcome, serverFinal } = await authenticateAsking(server, 'sha1', 'uma', ['UPGR-SCRAM-SHA-256', 'UPGR-SCRAM-SHA-512'], userAgent('9c1c6c1e-0000-4000-8000-000000000480') + bindInline);
  t.teardown(() => wire.close());
  // XEP-0480 §2.2: <continue/> with the mechanism's additional data and a single task, the first asked for
  t.is(outcome.name, 'continue', outcome.toString());
  t.is(Buffer.from(outcome.getChildText('additional-data') ?? '', 'base64').toString('utf8'), serverFinal, 'the server proved itself');
  t.deepEqual(tasksOf(outcome), ['UPGR-SCRAM-SHA-256']);

  const first = await performTask(wire, 'UPGR-SCRAM-SHA-256', 'uma');
  t.is(first.iterations, 4096, "the account's own count");
  const second = await nextOf(wire);
  t.is(second.name, 'continue', second.toString());
  t.deepEqual(tasksOf(second), ['UPGR-SCRAM-SHA-512']);
  t.is(second.getChild('additional-data'), undefined, 'sent once, with the first');

  const last = await performTask(wire, 'UPGR-SCRAM-SHA-512', 'uma');
  t.not(last.salt, first.salt, 'a fresh salt per hash');
  const success = await nextOf(wire);
  t.is(success.name, 'success', success.toString());
  t.regex(success.getChildText('authorization-identifier') ?? '', /^uma@localhost\//, 'Bind2 inline, after the tasks');
  await readElement(wire, 'stream:features');

  // the keys stored are the ones of the salt the task sent
  t.is((await server.server.accounts.credentials('localhost', 'uma', 'sha512'))?.salt, last.salt);
  t.deepEqual(await offered(server), { legacy: ALL, sasl2: ALL, upgrades: [] }, 'uma was the last account without them');
  t.like(await scramLogin(server, 'sha512', 'uma'), { outcome: 'success', serverSignatureVerified: true });
  t.like(await scramLogin(server, 'sha256', 'uma'), { outcome: 'success', serverSignatureVerified: true });
  t.like(await scramLogin(server, 'sha512', 'uma', 'not-umas-pw'), { outcome: 'failure', condition: 'not-authorized' });
  const again = await secured(server);
  t.teardown(() => again.wire.close());
  t.like(await sasl2Scram(again.wire, 'sha512', 'uma', { password: password('uma'), binding: { type: 'tls-exporter', data: tlsExporter(again.socket) } }), { outcome: 'success', serverVerified: true });
});

test('XEP-0480: only the upgrades the account needs are done; an account with every key that asks gets <success/> at once', async (t) => {
  // imported from a server that kept SHA-1 and SHA-256 keys (ejabberd with SCRAM-SHA-256)
  const { server } = await hostWithImported({ wes: ['sha1', 'sha256'] });
  t.teardown(() => server.stop());
  const before = await offered(server);
  t.deepEqual(before.legacy, ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-1-PLUS', 'SCRAM-SHA-256', 'SCRAM-SHA-1', 'PLAIN']);
  t.deepEqual(before.upgrades, ['UPGR-SCRAM-SHA-512']);

  const { wire, outcome } = await authenticateAsking(server, 'sha256', 'wes', ['UPGR-SCRAM-SHA-256', 'UPGR-SCRAM-SHA-512']);
  t.teardown(() => wire.close());
  t.deepEqual(tasksOf(outcome), ['UPGR-SCRAM-SHA-512'], 'SHA-256 keys it has');
  await performTask(wire, 'UPGR-SCRAM-SHA-512', 'wes');
  t.is((await nextOf(wire)).name, 'success');

  // now every account has every key: asking changes nothing
  const repeat = await authenticateAsking(server, 'sha512', 'wes', ['UPGR-SCRAM-SHA-256', 'UPGR-SCRAM-SHA-512']);
  t.teardown(() => repeat.wire.close());
  t.is(repeat.outcome.name, 'success', repeat.outcome.toString());
  t.is(Buffer.from(repeat.outcome.getChildText('additional-data') ?? '', 'base64').toString('utf8'), repeat.serverFinal);
});

test('XEP-0480: a task other than the one offered, or a hash of the wrong length, is a <failure/>; nothing is stored, and no <authenticate/> may follow', async (t) => {
  const { server } = await hostWithImported({ vic: ['sha1'] });
  t.teardown(() => server.stop());

  const wrongTask = await authenticateAsking(server, 'sha1', 'vic', ['UPGR-SCRAM-SHA-512']);
  t.teardown(() => wrongTask.wire.close());
  t.deepEqual(tasksOf(wrongTask.outcome), ['UPGR-SCRAM-SHA-512']);
  wrongTask.wire.write(`<next xmlns='${NS_SASL2}' task='UPGR-SCRAM-SHA-256'/>`);
  const refused = await nextOf(wrongTask.wire);
  t.is(refused.name, 'failure');
  t.truthy(refused.getChild('invalid-mechanism', NS_SASL));
  // XEP-0388 §3.8: after <continue/>, another <authenticate/> is a stream error
  wrongTask.wire.write(`<authenticate xmlns='${NS_SASL2}' mechanism='PLAIN'><initial-response>${Buffer.from(`\0vic\0${password('vic')}`).toString('base64')}</initial-response></authenticate>`);
  t.is(await readStreamError(wrongTask.wire), 'policy-violation');

  const shortHash = await authenticateAsking(server, 'sha1', 'vic', ['UPGR-SCRAM-SHA-512']);
  t.teardown(() => shortHash.wire.close());
  shortHash.wire.write(`<next xmlns='${NS_SASL2}' task='UPGR-SCRAM-SHA-512'/>`);
  t.is((await nextOf(shortHash.wire)).name, 'task-data');
  shortHash.wire.write(`<task-data xmlns='${NS_SASL2}'><hash xmlns='${NS_SCRAM_UPGRADE}'>${Buffer.alloc(32, 7).toString('base64')}</hash></task-data>`);
  const malformed = await nextOf(shortHash.wire);
  t.is(malformed.name, 'failure');
  t.truthy(malformed.getChild('malformed-request', NS_SASL));

  t.is(await server.server.accounts.credentials('localhost', 'vic', 'sha512'), null);
  t.deepEqual((await offered(server)).legacy, SHA1_ONLY);
});
