// Deleting an account deletes everything it had (issue 11, issue 16 item 7): `xmppd user del`
// then `xmppd user add` of the same name gives a new person an empty account, not the last
// owner's roster, archive, private XML, block list, vCard, offline messages and files; and a
// session still connected is ended with a stream error. Through a running server (the CLI uses
// its control socket) and with the server stopped (the CLI works on the database).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test, { type ExecutionContext } from 'ava';
import type Element from 'ltx/lib/Element.js';
import { PASSWORD, startServer, testStorageConfig, type TestServer } from '../helpers/server.js';
import { xml, type TestClient } from '../helpers/clients.js';
import { chat, getRoster, login, loginForTest, makeFriends, messages, online, rosterItems, setRosterItem, settle } from '../helpers/conversation.js';
import { mamQuery } from '../helpers/mam.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // the test server's certificate is self-signed

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const main = path.join(root, 'dist', 'src', 'main.js');
const NS_UPLOAD = 'urn:xmpp:http:upload:0';
const NS_BLOCKING = 'urn:xmpp:blocking';
const OLD_PASSWORD = PASSWORD;
const NEW_PASSWORD = 'the second alice';

/** A data directory with a configuration file the CLI and the test server share. */
function workspace(t: ExecutionContext): { dir: string; cli(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-del-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const config = path.join(dir, 'xmppd.yml');
  const storage = testStorageConfig(dir);
  fs.writeFileSync(config, `data_dir: ${JSON.stringify(dir)}\nlog:\n  level: silent\nhosts:\n  - domain: localhost\n${storage ? `storage: ${JSON.stringify(storage)}\n` : ''}`);
  const cli = (...args: string[]) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [main, '--config', config, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
      child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
  return { dir, cli };
}

/**
 * Gives alice a life: a contact with a mutual subscription (bob) and one she only added (carol),
 * messages in her archive, messages waiting offline, private XML, a vCard, a block list and an
 * uploaded file. Returns the file's download path and alice's client, still connected.
 */
async function aliceLivesHere(server: TestServer): Promise<{ alice: TestClient; filePath: string }> {
  await makeFriends(server, 'alice', 'bob');
  // bob writes while alice is away: offline storage, and both archives
  const bob = await login(server, 'bob', 'desk');
  await online(bob);
  await bob.send(chat('alice@localhost', 'are you there, alice?'));
  await bob.send(chat('alice@localhost', 'call me'));
  await settle(bob);
  await bob.stop();

  // connected without presence: the offline messages stay stored
  const alice = await login(server, 'alice', 'phone', { password: OLD_PASSWORD });
  await setRosterItem(alice, { jid: 'carol@localhost', name: 'Carol' });
  await alice.request(xml('iq', { type: 'set' }, xml('query', { xmlns: 'jabber:iq:private' }, xml('notes', { xmlns: 'example:notes' }, 'the safe code is 1234'))));
  await alice.request(xml('iq', { type: 'set' }, xml('vCard', { xmlns: 'vcard-temp' }, xml('FN', {}, 'Alice the First'))));
  await alice.request(xml('iq', { type: 'set' }, xml('block', { xmlns: NS_BLOCKING }, xml('item', { jid: 'mallory@localhost' }))));
  const slotResult = await alice.request(xml('iq', { type: 'get', to: 'upload.localhost' }, xml('request', { xmlns: NS_UPLOAD, filename: 'diary.txt', size: '13', 'content-type': 'text/plain' })));
  const slot = slotResult.getChild('slot', NS_UPLOAD)!;
  const put = slot.getChild('put')!;
  const headers: Record<string, string> = { 'Content-Type': 'text/plain' };
  for (const header of put.getChildren('header')) headers[header.attrs.name as string] = header.getText();
  const uploaded = await fetch(put.attrs.url as string, { method: 'PUT', headers, body: 'dear diary...' });
  if (uploaded.status !== 201) throw new Error(`upload failed: ${uploaded.status}`);
  const getUrl = new URL(slot.getChild('get')!.attrs.url as string);
  const download = await fetch(`https://127.0.0.1:${server.httpsPort}${getUrl.pathname}`);
  if (download.status !== 200) throw new Error(`download failed: ${download.status}`);

  // what the test later checks is gone really was there
  const roster = rosterItems((await getRoster(alice)).getChild('query', 'jabber:iq:roster'));
  if (roster.length !== 2) throw new Error(`expected 2 roster items, got ${JSON.stringify(roster)}`);
  if ((await mamQuery(alice)).results.length !== 2) throw new Error('expected 2 archived messages');
  return { alice, filePath: getUrl.pathname };
}

/** Everything the new alice can see of her account: nothing of the old one's. */
async function assertNothingInherited(t: ExecutionContext, server: TestServer, filePath: string): Promise<void> {
  const alice = await loginForTest(t, server, 'alice', 'laptop', { password: NEW_PASSWORD });
  t.deepEqual(rosterItems((await getRoster(alice)).getChild('query', 'jabber:iq:roster')), [], 'roster');
  const notes = (await alice.request(xml('iq', { type: 'get' }, xml('query', { xmlns: 'jabber:iq:private' }, xml('notes', { xmlns: 'example:notes' })))))
    .getChild('query', 'jabber:iq:private')!.getChild('notes', 'example:notes')!;
  t.is(notes.getText(), '', 'private XML');
  const vcard = (await alice.request(xml('iq', { type: 'get' }, xml('vCard', { xmlns: 'vcard-temp' })))).getChild('vCard', 'vcard-temp')!;
  t.is(vcard.getChildElements().length, 0, 'vCard');
  const blocklist = (await alice.request(xml('iq', { type: 'get' }, xml('blocklist', { xmlns: NS_BLOCKING })))).getChild('blocklist', NS_BLOCKING)!;
  t.is(blocklist.getChildren('item').length, 0, 'block list');
  t.is((await mamQuery(alice)).results.length, 0, 'archive');
  await online(alice); // offline messages would be delivered now
  await settle(alice);
  t.deepEqual(messages(alice).map((m: Element) => m.getChildText('body')).filter((b) => b !== null), [], 'offline messages');
  const file = await fetch(`https://127.0.0.1:${server.httpsPort}${filePath}`);
  t.is(file.status, 404, 'uploaded file');
}

test('user del on a running server ends her session, and the next alice inherits nothing', async (t) => {
  const { dir, cli } = workspace(t);
  const server = await startServer({ dataDir: dir });
  t.teardown(() => server.stop());
  await server.createAccount('alice', OLD_PASSWORD);
  await server.createAccount('bob');
  const { alice, filePath } = await aliceLivesHere(server);
  const streamError = new Promise<string | undefined>((resolve) => {
    alice.xmpp.on('error', (err: unknown) => resolve((err as { condition?: string }).condition));
  });
  const bob = await loginForTest(t, server, 'bob', 'desk');
  await getRoster(bob);

  const deleted = await cli('user', 'del', 'alice@localhost');
  t.is(deleted.code, 0, deleted.stderr);
  t.is(deleted.stdout, 'deleted alice@localhost\n');
  t.is(await streamError, 'not-authorized');
  await alice.stop();
  // bob is told alice no longer shares her presence, nor wants his (RFC 6121 §3.2-3.3)
  const push = await bob.next((s) => s.is('iq') && s.attrs.type === 'set' && rosterItems(s.getChild('query', 'jabber:iq:roster'))[0]?.subscription === 'none');
  t.is(rosterItems(push.getChild('query', 'jabber:iq:roster'))[0]!.jid, 'alice@localhost');

  const added = await cli('user', 'add', 'alice@localhost', '--password', NEW_PASSWORD);
  t.is(added.code, 0, added.stderr);
  await assertNothingInherited(t, server, filePath);
});

test('user del with the server stopped deletes her data too, and the next alice inherits nothing', async (t) => {
  const { dir, cli } = workspace(t);
  const first = await startServer({ dataDir: dir });
  await first.createAccount('alice', OLD_PASSWORD);
  await first.createAccount('bob');
  const { alice, filePath } = await aliceLivesHere(first);
  await alice.stop();
  await first.stop();

  const deleted = await cli('user', 'del', 'alice@localhost');
  t.is(deleted.code, 0, deleted.stderr);
  t.is(deleted.stdout, 'deleted alice@localhost\n');
  t.is((await cli('user', 'add', 'alice@localhost', '--password', NEW_PASSWORD)).code, 0);

  const server = await startServer({ dataDir: dir });
  t.teardown(() => server.stop());
  await assertNothingInherited(t, server, filePath);
  // and bob's roster no longer says alice shares her presence with him
  const bob = await loginForTest(t, server, 'bob', 'desk');
  t.deepEqual(rosterItems((await getRoster(bob)).getChild('query', 'jabber:iq:roster')).map((i) => [i.jid, i.subscription]), [['alice@localhost', 'none']]);
});

test('the control socket is the data directory\'s, for the server\'s user alone, and gone after stop', async (t) => {
  const { dir, cli } = workspace(t);
  const server = await startServer({ dataDir: dir });
  const socket = path.join(dir, 'control.sock');
  t.true(fs.statSync(socket).isSocket());
  t.is(fs.statSync(socket).mode & 0o777, 0o600);
  const unknown = await cli('user', 'del', 'alice@example.org');
  t.is(unknown.code, 1);
  t.regex(unknown.stderr, /example\.org is not a host/);
  const nobody = await cli('user', 'del', 'nobody@localhost');
  t.is(nobody.code, 1);
  t.regex(nobody.stderr, /no account nobody@localhost/);
  await server.stop();
  t.false(fs.existsSync(socket));
});
