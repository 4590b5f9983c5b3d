// Moving users in and out, as an admin does it: users of a real Prosody and a real ejabberd are
// given contacts, a vCard, bookmarks and an offline message by real clients; Prosody's data
// directory and ejabberd's `export_piefxis` output are imported with the real `xmppd import`
// command; then xmppd is started and the same users log in with their old passwords and find
// their contacts and the message waiting. Also: xmppd export → import into a fresh xmppd, and
// files that are broken halfway, which change nothing.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { startServer, testStorageConfig, type TestServer } from '../helpers/server.js';
import { RawClient, connect, xml, type ConnectOptions, type TestClient } from '../helpers/clients.js';
import { befriend, getRoster, online, rosterItems, setRosterItem } from '../helpers/conversation.js';
import { publish, items } from '../helpers/pubsub.js';
import { mamQuery } from '../helpers/mam.js';
import { eventually } from '../helpers/federation.js';
import { xmppd, type Run } from '../helpers/cli.js';
import { createTestCa } from '../helpers/test-ca.js';
import { startTestDns } from '../helpers/dns.js';
import { hasProsody, prosodyRequirement, startProsody } from '../helpers/prosody.js';
import { ejabberdRequirement, hasEjabberd, startEjabberd } from '../helpers/ejabberd.js';
import { testNeeding } from '../helpers/requirements.js';
import { openStream } from '../helpers/wire.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // every server here has a test certificate

const PROSODY = 'prosody.example';
const EJABBERD = 'ejabberd.example';
const NS_BOOKMARKS = 'urn:xmpp:bookmarks:1';

const dirs: string[] = [];
function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

/** A data directory and a configuration serving `hosts`: what `xmppd import` and the server both use. */
function xmppdWorkspace(hosts: string[]): { dir: string; config: string; cli(...args: string[]): Promise<Run> } {
  const dir = tempDir('xmppd-migrate-');
  const storage = testStorageConfig(dir);
  const config = path.join(dir, 'xmppd.yml');
  fs.writeFileSync(config, [
    `data_dir: ${JSON.stringify(dir)}`,
    'log: { level: silent }',
    'hosts:',
    ...hosts.map((h) => `  - domain: ${h}`),
    `storage: ${storage ? JSON.stringify(storage) : '{}'}`,
  ].join('\n') + '\n');
  return { dir, config, cli: (...args) => xmppd(['--config', config, ...args]) };
}

function startOn(dir: string, hosts: string[]): Promise<TestServer> {
  return startServer({ dataDir: dir, config: { hosts: hosts.map((domain) => ({ domain })) } });
}

let logins = 0;

/** A login of its own (tests run at once: the same resource twice would replace one session by the other). */
async function logInTo(t: ExecutionContext, server: TestServer, domain: string, username: string, password: string, mechanism: ConnectOptions['mechanism'] = 'SCRAM-SHA-1'): Promise<TestClient> {
  const client = await connect({ ...server, domain }, username, { password, resource: `after-move-${++logins}`, mechanism });
  t.teardown(() => client.stop());
  return client;
}

/**
 * What users do on their old server: alice and bob become contacts (alice files bob under
 * Friends), alice fills her vCard and bookmarks a room, bob goes offline and alice writes him.
 */
async function useOldServer(server: { domain: string; port: number }): Promise<void> {
  const target = server as TestServer;
  const alice = await connect(target, 'alice', { password: 'alice-old-pw', resource: 'old' });
  const bob = await connect(target, 'bob', { password: 'bob-old-pw', resource: 'old' });
  try {
    await Promise.all([getRoster(alice), getRoster(bob)]);
    await Promise.all([online(alice), online(bob)]);
    await befriend(alice, bob);
    await setRosterItem(alice, { jid: `bob@${server.domain}`, name: 'Bob', groups: ['Friends'] });
    await alice.request(xml('iq', { type: 'set' }, xml('vCard', { xmlns: 'vcard-temp' }, xml('FN', {}, 'Alice Liddell'))));
    await publish(alice, NS_BOOKMARKS, xml('conference', { xmlns: NS_BOOKMARKS, name: 'Tea party', autojoin: 'true' }, xml('nick', {}, 'alice')), { id: 'tea@rooms.example' }).catch(() => undefined);
    await bob.stop();
    await alice.send(xml('message', { to: `bob@${server.domain}`, type: 'chat', id: 'while-away' }, xml('body', {}, 'Bob, while you were away')));
    await alice.request(xml('iq', { type: 'get' }, xml('ping', { xmlns: 'urn:xmpp:ping' }))); // the message was handled before this answer
  } finally {
    await Promise.all([alice.stop(), bob.stop()]);
  }
}

let moved: TestServer | undefined;
const imports: { prosody?: Run; ejabberd?: Run } = {};

test.before(async () => {
  if (!hasProsody && !hasEjabberd) return;
  const target = xmppdWorkspace([PROSODY, EJABBERD]);
  const dns = await startTestDns();
  const ca = createTestCa([PROSODY, EJABBERD]);
  try {
    if (hasProsody) {
      const prosody = await startProsody({
        dnsPort: dns.port,
        hosts: [{ domain: PROSODY, ...ca.certs[PROSODY]! }],
        authentication: 'internal_hashed', // Prosody's default: SCRAM-SHA-1 keys, no passwords
        modules: ['offline', 'vcard', 'private', 'pep', 'bookmarks'],
      });
      try {
        prosody.register('alice', PROSODY, 'alice-old-pw');
        prosody.register('bob', PROSODY, 'bob-old-pw');
        await useOldServer({ domain: PROSODY, port: prosody.c2sPort });
      } finally {
        await prosody.stop();
      }
      imports.prosody = await target.cli('import', 'prosody', prosody.dataDir);
    }
    if (hasEjabberd) {
      const ejabberd = await startEjabberd({
        dnsPort: dns.port,
        hosts: [{ domain: EJABBERD, ...ca.certs[EJABBERD]! }],
        scram: true,
        api: true,
        modules: ['mod_offline: {}', 'mod_vcard: {}', 'mod_private: {}'],
      });
      const exported = tempDir('xmppd-piefxis-');
      fs.chmodSync(exported, 0o777); // ejabberd writes it
      try {
        await ejabberd.register('alice', EJABBERD, 'alice-old-pw');
        await ejabberd.register('bob', EJABBERD, 'bob-old-pw');
        await useOldServer({ domain: EJABBERD, port: ejabberd.c2sPort });
        await ejabberd.exportPiefxis(exported);
      } finally {
        await ejabberd.stop();
      }
      imports.ejabberd = await target.cli('import', 'ejabberd', exported);
    }
  } finally {
    await dns.close();
  }
  moved = await startOn(target.dir, [PROSODY, EJABBERD]);
});

test.after.always(async () => {
  await moved?.stop();
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
});

const withProsody = testNeeding(prosodyRequirement);
const withEjabberd = testNeeding(ejabberdRequirement);

for (const [name, domain, needing] of [['Prosody', PROSODY, withProsody], ['ejabberd', EJABBERD, withEjabberd]] as const) {
  const run = () => (name === 'Prosody' ? imports.prosody : imports.ejabberd)!;

  needing(`${name}: the import says what it brought and that the SHA-1 keys are kept as they are`, (t) => {
    t.is(run().code, 0, run().stderr);
    t.regex(run().stdout, /imported 2 accounts, [1-9]\d* roster items, 1 offline messages/);
    t.regex(run().stdout, /2 accounts have SCRAM-SHA-1 keys only/);
  });

  needing(`${name}: alice logs in to xmppd with her old password and finds Bob under Friends`, async (t) => {
    const alice = await logInTo(t, moved!, domain, 'alice', 'alice-old-pw');
    const roster = rosterItems((await getRoster(alice)).getChild('query', 'jabber:iq:roster'));
    t.deepEqual(roster, [{ jid: `bob@${domain}`, name: 'Bob', subscription: 'both', groups: ['Friends'] }]);
    const vcard = await alice.request(xml('iq', { type: 'get' }, xml('vCard', { xmlns: 'vcard-temp' })));
    t.is(vcard.getChild('vCard', 'vcard-temp')?.getChildText('FN'), 'Alice Liddell');
  });

  needing(`${name}: while accounts have SHA-1 keys only, neither SCRAM-SHA-256 nor SCRAM-SHA-512 is offered, so a client taking the best offered mechanism logs in`, async (t) => {
    const wire = await RawClient.open({ ...moved!, domain });
    t.teardown(() => wire.close());
    const features = await openStream(wire, domain);
    const mechanisms = features.getChild('mechanisms')?.getChildren('mechanism').map((m) => m.getText()) ?? [];
    t.true(mechanisms.includes('SCRAM-SHA-1'), mechanisms.join(' '));
    t.false(mechanisms.some((m) => m.startsWith('SCRAM-SHA-256') || m.startsWith('SCRAM-SHA-512')), mechanisms.join(' '));
    // @xmpp/client picks the strongest mechanism offered, as Conversations does
    const alice = await connect({ ...moved!, domain }, 'alice', { password: 'alice-old-pw', resource: 'best-offered' });
    t.teardown(() => alice.stop());
    t.truthy(alice.jid);
  });

  needing(`${name}: a wrong password is still refused after the move`, async (t) => {
    await t.throwsAsync(connect({ ...moved!, domain }, 'alice', { password: 'not-alice-pw', resource: 'guess', mechanism: 'SCRAM-SHA-1' }));
  });

  needing(`${name}: bob logs in (PLAIN, which also gives him SHA-256 and SHA-512 keys) and the message Alice left him is waiting`, async (t) => {
    const bob = await logInTo(t, moved!, domain, 'bob', 'bob-old-pw', 'PLAIN');
    await online(bob);
    const message = await bob.next((s) => s.is('message') && s.getChildText('body') === 'Bob, while you were away');
    t.is(message.attrs.from?.split('/')[0], `alice@${domain}`);
    t.truthy(message.getChild('delay', 'urn:xmpp:delay'), 'marked as delayed (XEP-0203)');
    t.not(await moved!.server.accounts.credentials(domain, 'bob', 'sha256'), null);
    t.not(await moved!.server.accounts.credentials(domain, 'bob', 'sha512'), null);
    await bob.stop();
    // and SCRAM-SHA-1 with the old keys works as before
    const again = await logInTo(t, moved!, domain, 'bob', 'bob-old-pw', 'SCRAM-SHA-1');
    t.truthy(again.jid);
  });
}

withProsody("Prosody: alice's bookmarks (PEP, XEP-0402) came along", async (t) => {
  const alice = await logInTo(t, moved!, PROSODY, 'alice', 'alice-old-pw');
  const found = await items(alice, undefined, NS_BOOKMARKS);
  t.is(found.length, 1);
  t.is(found[0]!.attrs.id, 'tea@rooms.example');
  t.is(found[0]!.getChild('conference', NS_BOOKMARKS)?.attrs.name, 'Tea party');
});

// --- xmppd to xmppd ------------------------------------------------------------------------------

test('round trip: export, import into a fresh xmppd, and everyone finds what they had', async (t) => {
  const first = xmppdWorkspace(['localhost']);
  const old = await startOn(first.dir, ['localhost']);
  await old.createAccount('ann', 'ann-pw');
  await old.createAccount('ben', 'ben-pw');
  await useOldServerXmppd(old);
  await old.stop();

  const file = path.join(first.dir, 'export.xml');
  const exported = await first.cli('export', file);
  t.is(exported.code, 0, exported.stderr);
  t.regex(exported.stdout, /exported 2 accounts/);
  t.is(fs.statSync(file).mode & 0o777, 0o600, 'only its owner may read it (XEP-0227 §6)');

  const second = xmppdWorkspace(['localhost']);
  const imported = await second.cli('import', 'xep227', file);
  if (process.env.MIGRATE_DEBUG) console.log(fs.readFileSync(file, 'utf8'));
  t.is(imported.code, 0, imported.stderr);
  t.regex(imported.stdout, /imported 2 accounts, 1 roster items, [1-9]\d* offline messages, [1-9]\d* archived messages, [1-9]\d* PEP items/);
  t.notRegex(imported.stdout, /SHA-1 keys only/, 'every hash travels');
  t.regex(fs.readFileSync(file, 'utf8'), /<scram-credentials[^>]*mechanism=["']SCRAM-SHA-512["']/);

  const moved2 = await startOn(second.dir, ['localhost']);
  let stopped = false;
  t.teardown(() => (stopped ? undefined : moved2.stop()));
  t.not(await moved2.server.accounts.credentials('localhost', 'ben', 'sha512'), null, 'SHA-512 keys came along: SCRAM-SHA-512 stays offered');
  const ann = await logInTo(t, moved2, 'localhost', 'ann', 'ann-pw', 'PLAIN');
  const roster = rosterItems((await getRoster(ann)).getChild('query', 'jabber:iq:roster'));
  t.deepEqual(roster, [{ jid: 'ben@localhost', name: 'Ben', subscription: 'none', ask: 'subscribe', groups: ['Work', 'Chess'] }]);
  const vcard = await ann.request(xml('iq', { type: 'get' }, xml('vCard', { xmlns: 'vcard-temp' })));
  t.is(vcard.getChild('vCard', 'vcard-temp')?.getChildText('FN'), 'Ann');
  const priv = await ann.request(xml('iq', { type: 'get' }, xml('query', { xmlns: 'jabber:iq:private' }, xml('prefs', { xmlns: 'test:prefs' }))));
  t.is(priv.getChild('query')?.getChild('prefs', 'test:prefs')?.getChildText('color'), 'green');
  const archive = await mamQuery(ann, { with: 'ben@localhost' });
  t.deepEqual(archive.results.map((r) => r.body), ['first, archived', 'are you there?']);
  const bookmarks = await items(ann, undefined, NS_BOOKMARKS);
  t.deepEqual(bookmarks.map((i) => i.attrs.id), ['chess@rooms.example']);

  const ben = await logInTo(t, moved2, 'localhost', 'ben', 'ben-pw', 'SCRAM-SHA-1');
  await getRoster(ben);
  await online(ben);
  await ben.next((s) => s.is('message') && s.getChildText('body') === 'are you there?');
  await eventually(() => ben.received.some((s) => s.is('presence') && s.attrs.type === 'subscribe' && s.attrs.from === 'ann@localhost'), 10000, 'the pending request');

  // a second run (the server stopped again) adds nothing and says why
  stopped = true;
  await moved2.stop();
  const again = await second.cli('import', 'xep227', file);
  t.is(again.code, 0, again.stderr);
  t.regex(again.stdout, /imported 0 accounts/);
  t.regex(again.stdout, /skipped 2 accounts that exist already/);
});

/** Ann asks Ben for a subscription, files him twice, chats, and leaves him a message while he is away. */
async function useOldServerXmppd(server: TestServer): Promise<void> {
  const ann = await connect(server, 'ann', { password: 'ann-pw', resource: 'old' });
  const ben = await connect(server, 'ben', { password: 'ben-pw', resource: 'old' });
  try {
    await Promise.all([getRoster(ann), getRoster(ben)]);
    await Promise.all([online(ann), online(ben)]);
    await setRosterItem(ann, { jid: 'ben@localhost', name: 'Ben', groups: ['Work', 'Chess'] });
    await ann.send(xml('presence', { type: 'subscribe', to: 'ben@localhost' }));
    await ben.next((s) => s.is('presence') && s.attrs.type === 'subscribe');
    await ann.request(xml('iq', { type: 'set' }, xml('vCard', { xmlns: 'vcard-temp' }, xml('FN', {}, 'Ann'))));
    await ann.request(xml('iq', { type: 'set' }, xml('query', { xmlns: 'jabber:iq:private' }, xml('prefs', { xmlns: 'test:prefs' }, xml('color', {}, 'green')))));
    await publish(ann, NS_BOOKMARKS, xml('conference', { xmlns: NS_BOOKMARKS, name: 'Chess' }), { id: 'chess@rooms.example' });
    await ann.send(xml('message', { to: 'ben@localhost', type: 'chat' }, xml('body', {}, 'first, archived')));
    await ben.next((s) => s.is('message') && s.getChildText('body') === 'first, archived');
    await ben.stop();
    await ann.send(xml('message', { to: 'ben@localhost', type: 'chat' }, xml('body', {}, 'are you there?')));
    await mamQuery(ann, { with: 'ben@localhost' }); // both archived before the server stops
  } finally {
    await Promise.all([ann.stop(), ben.stop()]);
  }
}

test('a XEP-0227 file broken halfway is refused with its line, and nothing of it is imported', async (t) => {
  const ws = xmppdWorkspace(['localhost']);
  const file = path.join(ws.dir, 'broken.xml');
  fs.writeFileSync(file, [
    "<?xml version='1.0' encoding='UTF-8'?>",
    "<server-data xmlns='urn:xmpp:pie:0'>",
    "  <host jid='localhost'>",
    "    <user name='carol' password='carol-pw'>",
    "      <query xmlns='jabber:iq:roster'><item jid='dave@localhost' subscription='both'/></query>",
    '    </user>',
    "    <user name='dave' password='dave-pw'>",
    "      <query xmlns='jabber:iq:roster'><item jid='carol@localhost'></query>",
    '    </user>',
    '  </host>',
    '</server-data>',
  ].join('\n'));
  const run = await ws.cli('import', 'xep227', file);
  t.not(run.code, 0);
  t.regex(run.stderr, new RegExp(`${file.replaceAll('.', '\\.')}:8: not well-formed XML: </query> does not close <item>`));
  const users = await ws.cli('user', 'list', 'localhost');
  t.is(users.code, 0, users.stderr);
  t.notRegex(users.stdout, /carol/, 'carol, read before the mistake, was rolled back with the rest');

  // a file cut short is refused too
  fs.writeFileSync(file, "<server-data xmlns='urn:xmpp:pie:0'><host jid='localhost'><user name='carol' password='carol-pw'>\n");
  const cut = await ws.cli('import', 'xep227', file);
  t.not(cut.code, 0);
  t.regex(cut.stderr, /ends before its root element is closed/);
});

test('a Prosody file with code instead of data is refused with its line and column, and never run', async (t) => {
  const ws = xmppdWorkspace(['localhost']);
  const data = tempDir('prosody-data-');
  const marker = path.join(data, 'ran');
  fs.mkdirSync(path.join(data, 'localhost', 'accounts'), { recursive: true });
  fs.writeFileSync(path.join(data, 'localhost', 'accounts', 'erin.dat'), 'return {\n\t["password"] = "erin-pw";\n};\n');
  fs.writeFileSync(path.join(data, 'localhost', 'accounts', 'mallory.dat'), `return {\n\t["password"] = os.execute("touch ${marker}");\n};\n`);
  const run = await ws.cli('import', 'prosody', data);
  t.not(run.code, 0);
  t.regex(run.stderr, /mallory\.dat:2:17: "os" is not a value this reader accepts/);
  t.false(fs.existsSync(marker));
  const users = await ws.cli('user', 'list', 'localhost');
  t.notRegex(users.stdout, /erin/);

  // without it, erin's plain password is hashed and works
  fs.rmSync(path.join(data, 'localhost', 'accounts', 'mallory.dat'));
  const fixed = await ws.cli('import', 'prosody', data);
  t.is(fixed.code, 0, fixed.stderr);
  t.regex(fixed.stdout, /imported 1 accounts/);
  const server = await startOn(ws.dir, ['localhost']);
  t.teardown(() => server.stop());
  const erin = await logInTo(t, server, 'localhost', 'erin', 'erin-pw', 'SCRAM-SHA-1');
  t.truthy(erin.jid);
});

test('import refuses an unknown format and a running server', async (t) => {
  const ws = xmppdWorkspace(['localhost']);
  const unknown = await ws.cli('import', 'openfire', '/nonexistent');
  t.not(unknown.code, 0);
  t.regex(unknown.stderr, /"openfire" is not a format to import: xep227, prosody, ejabberd/);
  const server = await startOn(ws.dir, ['localhost']);
  t.teardown(() => server.stop());
  const running = await ws.cli('import', 'xep227', '/nonexistent');
  t.not(running.code, 0);
  t.regex(running.stderr, /import needs the server stopped/);
});
