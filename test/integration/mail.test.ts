// Mail against a real SMTP server (aiosmtpd): a user sets their address with XEP-0077's
// <email/>, a forgotten password is reset from the mailed single-use link (the request page says
// the same whether or not the account exists), and the CLI mails an invitation.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import test from 'ava';
import type Element from 'ltx/lib/Element.js';
import { PASSWORD, startServer, testStorageConfig, type TestServer } from '../helpers/server.js';
import { STANDARD_MODULES } from '../../src/config/schema.js';
import { httpRequest } from '../helpers/http.js';
import { RawClient, xml } from '../helpers/clients.js';
import { iqFailure, loginForTest } from '../helpers/conversation.js';
import { authenticatePlain, openStream } from '../helpers/wire.js';
import { serialTestNeeding } from '../helpers/requirements.js';
import { smtpRequirement, startSmtp, type TestSmtp } from '../helpers/smtp.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // the test server's certificate is self-signed

const NS_REGISTER = 'jabber:iq:register';
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const main = path.join(root, 'dist', 'src', 'main.js');
const mailTest = serialTestNeeding(smtpRequirement);

let smtp: TestSmtp | undefined;
let server: TestServer;

test.before(async () => {
  if (!smtpRequirement.available) return;
  smtp = await startSmtp();
  const modules = Object.fromEntries(STANDARD_MODULES.map((name) => [name, name === 'mail' ? { smtp_url: smtp!.url, from: 'Chat <noreply@localhost>' } : {}]));
  server = await startServer({ config: { modules } });
  await server.createAccount('alice');
  await server.createAccount('bob');
});
test.after.always(async () => {
  await server?.stop();
  smtp?.stop();
});

async function canLogIn(username: string, password: string): Promise<boolean> {
  const wire = await RawClient.open(server);
  await openStream(wire, server.domain);
  const result = await authenticatePlain(wire, username, password);
  wire.close();
  return result.outcome === 'success';
}

const form = (fields: Record<string, string>) => ({
  headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams(fields).toString(),
});

mailTest('a user sets their address with XEP-0077 <email/>, sees it, and a bad one is refused', async (t) => {
  const alice = await loginForTest(t, server, 'alice', 'desk');
  await alice.request(xml('iq', { type: 'set' }, xml('query', { xmlns: NS_REGISTER }, xml('email', {}, 'alice@example.org'))));
  const info = await alice.request(xml('iq', { type: 'get' }, xml('query', { xmlns: NS_REGISTER })));
  t.is(info.getChild('query')?.getChildText('email'), 'alice@example.org');
  t.is(await iqFailure(alice.request(xml('iq', { type: 'set' }, xml('query', { xmlns: NS_REGISTER }, xml('email', {}, 'not an address'))))), 'not-acceptable');
  t.true(await canLogIn('alice', PASSWORD), 'setting the address left the password alone');
});

mailTest('a forgotten password is reset from the mailed link, once; the request page never says who exists', async (t) => {
  const bob = await loginForTest(t, server, 'bob', 'phone');
  await bob.request(xml('iq', { type: 'set' }, xml('query', { xmlns: NS_REGISTER }, xml('email', {}, 'bob@example.org'))));
  await bob.stop();

  const page = await httpRequest(server, 'GET', '/reset');
  t.is(page.status, 200);
  t.regex(page.headers['content-security-policy'] as string, /default-src 'none'/);
  const known = await httpRequest(server, 'POST', '/reset', form({ account: 'bob@localhost' }));
  const unknown = await httpRequest(server, 'POST', '/reset', form({ account: 'nobody@localhost' }));
  t.is(known.status, 200);
  t.is(unknown.body, known.body, 'the same answer for an account that does not exist');

  const mail = await smtp!.next('bob@example.org');
  t.is(mail.subject, 'Reset your password on localhost');
  const link = mail.body.match(/http:\/\/\S+\/reset\/([A-Za-z0-9_-]+)/);
  t.truthy(link, mail.body);
  const resetPath = new URL(link![0]).pathname;

  t.is((await httpRequest(server, 'GET', resetPath)).status, 200);
  const mismatch = await httpRequest(server, 'POST', resetPath, form({ password: 'new secret 1', confirm: 'new secret 2' }));
  t.is(mismatch.status, 400);
  t.true(mismatch.body.includes('The two passwords are not the same.'));
  const done = await httpRequest(server, 'POST', resetPath, form({ password: 'new secret 1', confirm: 'new secret 1' }));
  t.is(done.status, 200);
  t.true(await canLogIn('bob', 'new secret 1'));
  t.false(await canLogIn('bob', PASSWORD));
  t.is((await httpRequest(server, 'GET', resetPath)).status, 404, 'the link works once');
  t.false(smtp!.mails.some((m) => m.to.includes('nobody')), 'nothing mailed for an unknown account');
});

mailTest('the CLI mails an invitation, whose link is the landing page', async (t) => {
  const config = path.join(server.dataDir, 'cli.yml');
  const storage = testStorageConfig(server.dataDir);
  fs.writeFileSync(
    config,
    `data_dir: ${JSON.stringify(server.dataDir)}\nhosts: [{ domain: localhost }]\nhttp: { listen: [{ host: 127.0.0.1, port: ${server.httpPort}, tls: none }] }\n` +
      `modules: { mail: { smtp_url: ${JSON.stringify(smtp!.url)} } }\n` +
      (storage === undefined ? '' : `storage: ${JSON.stringify(storage)}\n`),
  );
  const { stdout } = await promisify(execFile)(process.execPath, [main, '--config', config, 'invite', 'create', '--contact', 'alice@localhost', '--email', 'carol@example.org']);
  t.regex(stdout, /mailed to carol@example\.org/);
  const mail = await smtp!.next('carol@example.org');
  t.is(mail.subject, 'alice@localhost invites you to chat');
  const url = mail.body.match(/https?:\/\/\S+\/invite\/[A-Za-z0-9_-]+/)![0];
  t.true(stdout.startsWith(url));
  const landing = await httpRequest(server, 'GET', new URL(url).pathname);
  t.is(landing.status, 200);
  t.true(landing.body.includes('alice@localhost invites you to chat'));
});

mailTest('an admin sets an account\'s address with `xmppd user email`; the reset link goes there', async (t) => {
  await server.createAccount('erin');
  const config = path.join(server.dataDir, 'admin.yml');
  const storage = testStorageConfig(server.dataDir);
  fs.writeFileSync(config, `data_dir: ${JSON.stringify(server.dataDir)}\nhosts: [{ domain: localhost }]\n` + (storage === undefined ? '' : `storage: ${JSON.stringify(storage)}\n`));
  const run = (...args: string[]) => promisify(execFile)(process.execPath, [main, '--config', config, 'user', 'email', ...args]);
  t.is((await run('erin@localhost')).stdout, 'erin@localhost: no email address\n');
  t.is((await run('erin@localhost', 'erin@example.org')).stdout, 'erin@localhost: erin@example.org\n');
  const bad = await t.throwsAsync(run('erin@localhost', 'not-an-address'));
  t.regex(String((bad as unknown as { stderr: string }).stderr), /is not an email address/);
  await httpRequest(server, 'POST', '/reset', form({ account: 'erin' }));
  t.regex((await smtp!.next('erin@example.org')).body, /\/reset\/[A-Za-z0-9_-]+/);
  t.is((await run('erin@localhost', 'none')).stdout, 'erin@localhost: no email address\n');
});

test('without smtp_url nothing is mailed: the reset pages say the feature is not available', async (t) => {
  const plain = await startServer();
  t.teardown(() => plain.stop());
  await plain.createAccount('dora');
  t.is((await httpRequest(plain, 'GET', '/reset')).status, 404);
  const dora = await loginForTest(t, plain, 'dora', 'desk');
  // the module is loaded (a standard one) but sends nothing: the address may still be kept for later
  await dora.request(xml('iq', { type: 'set' }, xml('query', { xmlns: NS_REGISTER }, xml('email', {}, 'dora@example.org'))));
  const posted = await httpRequest(plain, 'POST', '/reset', form({ account: 'dora@localhost' }));
  t.is(posted.status, 404);
});

const NS_COMMANDS = 'http://jabber.org/protocol/commands';
const digestCommand = () => xml('iq', { type: 'set', to: 'localhost' }, xml('command', { xmlns: NS_COMMANDS, node: 'urn:xmppd:mail#digest', action: 'execute' }));
const statusOf = (reply: Element) => reply.getChild('command', NS_COMMANDS)?.getChild('x', 'jabber:x:data')?.getChild('field')?.getChildText('value') ?? '';

mailTest('a user who asked for digests is mailed who wrote while they were away, never what; once per batch; off when asked', async (t) => {
  // digests after one second, looked for every second (the defaults are hours and minutes)
  const modules = Object.fromEntries(STANDARD_MODULES.map((name) => [name, name === 'mail' ? { smtp_url: smtp!.url, digest_after: '1s', digest_check_interval: '1s' } : {}]));
  const digesting = await startServer({ config: { modules } });
  t.teardown(() => digesting.stop());
  await digesting.createAccount('carol');
  await digesting.createAccount('dave');

  const carol = await loginForTest(t, digesting, 'carol', 'phone');
  const withoutAddress = await carol.request(digestCommand());
  t.regex(statusOf(withoutAddress), /Set your email address first/);
  await carol.request(xml('iq', { type: 'set' }, xml('query', { xmlns: NS_REGISTER }, xml('email', {}, 'digest-reader@example.org'))));
  const on = await carol.request(digestCommand());
  t.regex(statusOf(on), /^On: when messages have waited 1 second while you are away, digest-reader@example.org gets a mail/);
  await carol.stop();

  const dave = await loginForTest(t, digesting, 'dave', 'desk');
  await dave.send(xml('message', { to: 'carol@localhost', type: 'chat' }, xml('body', {}, 'the secret plan')));
  await dave.send(xml('message', { to: 'carol@localhost', type: 'chat' }, xml('body', {}, 'second part of the plan')));
  await dave.send(xml('message', { to: 'carol@localhost', type: 'chat' }, xml('received', { xmlns: 'urn:xmpp:receipts', id: 'x' })));

  const mail = await smtp!.next('digest-reader@example.org', 15_000);
  t.is(mail.subject, '2 messages wait for you on localhost');
  t.regex(mail.body, /dave@localhost: 2 messages/);
  t.notRegex(mail.body, /plan/, 'what they say stays on the server');
  // the same messages are not told twice
  await new Promise((resolve) => setTimeout(resolve, 3000));
  t.is(smtp!.mails.filter((m) => m.to === 'digest-reader@example.org').length, 1);

  // turned off: a new message gets no mail
  const back = await loginForTest(t, digesting, 'carol', 'laptop');
  t.regex(statusOf(await back.request(digestCommand())), /^Off:/);

  // a user whose phone is woken by push notifications (XEP-0357) gets no digest: the phone tells her
  await digesting.createAccount('erin');
  const erin = await loginForTest(t, digesting, 'erin', 'phone');
  await erin.request(xml('iq', { type: 'set' }, xml('query', { xmlns: NS_REGISTER }, xml('email', {}, 'digest-pushed@example.org'))));
  t.regex(statusOf(await erin.request(digestCommand())), /^On:/);
  await erin.request(xml('iq', { type: 'set' }, xml('enable', { xmlns: 'urn:xmpp:push:0', jid: 'push.example.net', node: 'erin-phone' })));
  await erin.stop();
  await dave.send(xml('message', { to: 'erin@localhost', type: 'chat' }, xml('body', {}, 'wake up')));
  await back.stop();
  await dave.send(xml('message', { to: 'carol@localhost', type: 'chat' }, xml('body', {}, 'are you there?')));
  await new Promise((resolve) => setTimeout(resolve, 3000));
  t.is(smtp!.mails.filter((m) => m.to === 'digest-reader@example.org').length, 1);
  t.is(smtp!.mails.filter((m) => m.to === 'digest-pushed@example.org').length, 0);
});
