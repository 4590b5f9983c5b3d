// Invitations (XEP-0401) on a host whose registration is by invitation: nobody registers
// in-band without one; a token presented first (XEP-0445) lets one registration through and is
// then spent; a contact invitation makes the new account and its inviter mutual contacts, and a
// subscription request carrying it (XEP-0379) is approved on the inviter's behalf. The landing
// page registers in the browser; the CLI makes, lists and revokes invitations.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import test from 'ava';
import type Element from 'ltx/lib/Element.js';
import { RawClient } from '../helpers/clients.js';
import { PASSWORD, startServer, testStorageConfig, type TestServer } from '../helpers/server.js';
import { httpRequest } from '../helpers/http.js';
import { chromiumRequirement, launchChromium } from '../helpers/browser.js';
import { serialTestNeeding } from '../helpers/requirements.js';
import { getRoster, isPresence, loginForTest, nextPush, online, presence, rosterItems } from '../helpers/conversation.js';
import { openStream, readElement, authenticatePlain } from '../helpers/wire.js';
import { xml } from '../helpers/clients.js';
import type { InviteService } from '../../src/modules/invites/index.js';
import type { Invite } from '../../src/modules/invites/store.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // the test server's certificate is self-signed

const NS_REGISTER = 'jabber:iq:register';
const NS_PARS = 'urn:xmpp:pars:0';
const NS_STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const main = path.join(root, 'dist', 'src', 'main.js');

let server: TestServer;
let invites: InviteService;

test.before(async () => {
  server = await startServer({ config: { hosts: [{ domain: 'localhost', registration: 'invite', admins: ['root@localhost'] }] } });
  invites = server.server.hosts.get('localhost')!.services.get('invites') as InviteService;
  await server.createAccount('alice');
  await server.createAccount('bob');
  await server.createAccount('root');
});
test.after.always(async () => server?.stop());

/** An unauthenticated stream after STARTTLS, its features read. */
async function newcomer(): Promise<{ wire: RawClient; features: Element }> {
  const wire = await RawClient.open(server);
  const features = await openStream(wire, server.domain);
  return { wire, features };
}

async function iq(wire: RawClient, id: string, payload: string): Promise<Element> {
  wire.write(`<iq type='set' id='${id}'>${payload}</iq>`);
  return readElement(wire, 'iq', id);
}

const preauth = (token: string) => `<preauth xmlns='${NS_PARS}' token='${token}'/>`;
const registration = (username: string, password = PASSWORD) =>
  `<query xmlns='${NS_REGISTER}'><username>${username}</username><password>${password}</password></query>`;
const condition = (stanza: Element) => stanza.getChild('error')?.getChildElements().find((c) => c.attrs.xmlns === NS_STANZAS)?.name;

async function canLogIn(username: string, password = PASSWORD): Promise<boolean> {
  const { wire } = await newcomer();
  const result = await authenticatePlain(wire, username, password);
  wire.close();
  return result.outcome === 'success';
}

test('without an invitation nobody registers in-band; the features say invitations are understood', async (t) => {
  const { wire, features } = await newcomer();
  t.teardown(() => wire.close());
  t.truthy(features.getChild('register', 'urn:xmpp:invite'), 'XEP-0445 announced');
  t.truthy(features.getChild('register', 'http://jabber.org/features/iq-register'));
  const refused = await iq(wire, 'r1', registration('mallory'));
  t.is(condition(refused), 'not-allowed');
  const bogus = await iq(wire, 'p1', preauth('not-a-real-token'));
  t.is(condition(bogus), 'item-not-found');
  t.is(condition(await iq(wire, 'r2', registration('mallory'))), 'not-allowed', 'a refused token opens nothing');
});

test('an admin invitation registers one account, once', async (t) => {
  const invite = await invites.create({ kind: 'account' });
  const first = await newcomer();
  t.teardown(() => first.wire.close());
  t.is((await iq(first.wire, 'p1', preauth(invite.token))).attrs.type, 'result');
  t.is((await iq(first.wire, 'r1', registration('carol'))).attrs.type, 'result');
  t.true(await canLogIn('carol'));

  const second = await newcomer();
  t.teardown(() => second.wire.close());
  t.is(condition(await iq(second.wire, 'p2', preauth(invite.token))), 'item-not-found', 'spent by the first registration');
});

test('a name already taken does not spend the invitation; one reserved for a username registers only that name', async (t) => {
  const invite = await invites.create({ kind: 'account', username: 'dave' });
  const { wire } = await newcomer();
  t.teardown(() => wire.close());
  t.is((await iq(wire, 'p1', preauth(invite.token))).attrs.type, 'result');
  t.is(condition(await iq(wire, 'r1', registration('someoneelse'))), 'not-acceptable');
  t.is(condition(await iq(wire, 'r2', registration('alice'))), 'not-acceptable', 'not even a taken one');
  t.is((await iq(wire, 'r3', registration('dave'))).attrs.type, 'result');
  t.true(await canLogIn('dave'));

  const taken = await invites.create({ kind: 'account' });
  const again = await newcomer();
  t.teardown(() => again.wire.close());
  await iq(again.wire, 'p2', preauth(taken.token));
  t.is(condition(await iq(again.wire, 'r4', registration('alice'))), 'conflict');
  t.not(await invites.store.find('localhost', taken.token), null, 'still valid for another try');
});

test("a contact invitation: the new account and Alice are each other's contacts, and Alice's client hears of it", async (t) => {
  const alice = await loginForTest(t, server, 'alice', 'desk');
  await getRoster(alice); // an interested resource gets roster pushes
  const invite = await invites.create({ kind: 'contact', inviter: 'alice' });
  t.regex(invites.uri(invite), new RegExp(`^xmpp:alice@localhost\\?roster;preauth=${invite.token};ibr=y$`));
  const { wire } = await newcomer();
  t.teardown(() => wire.close());
  await iq(wire, 'p1', preauth(invite.token));
  const pushed = nextPush(alice, 'erin@localhost');
  t.is((await iq(wire, 'r1', registration('erin'))).attrs.type, 'result');
  t.like(await pushed, { jid: 'erin@localhost', subscription: 'both' });

  const erin = await loginForTest(t, server, 'erin', 'phone');
  t.deepEqual(rosterItems((await getRoster(erin)).getChild('query')).map((i) => [i.jid, i.subscription]), [['alice@localhost', 'both']]);
});

test('XEP-0379: a subscription request with Alice\'s token is approved for her and answered with one back', async (t) => {
  const alice = await loginForTest(t, server, 'alice', 'tablet');
  await getRoster(alice);
  await online(alice);
  const bob = await loginForTest(t, server, 'bob', 'laptop');
  await online(bob);
  const invite = await invites.create({ kind: 'contact', inviter: 'alice' });
  const approved = bob.next(isPresence('alice@localhost', 'subscribed'));
  const askedBack = bob.next(isPresence('alice@localhost', 'subscribe'));
  const pushed = nextPush(alice, 'bob@localhost', (item) => item.attrs.subscription === 'from');
  await bob.send(presence('subscribe', 'alice@localhost', xml('preauth', { xmlns: NS_PARS, token: invite.token })));
  await approved;
  await askedBack;
  t.like(await pushed, { subscription: 'from', ask: 'subscribe' });
  t.is(await invites.store.find('localhost', invite.token), null, 'spent');

  // with a token that is not hers, the request is an ordinary one, without the token, for Alice to decide
  const plain = alice.next((s) => s.is('presence') && s.attrs.type === 'subscribe' && s.attrs.from === 'bob@localhost');
  await bob.send(presence('unsubscribe', 'alice@localhost'));
  await bob.send(presence('subscribe', 'alice@localhost', xml('preauth', { xmlns: NS_PARS, token: 'made-up' })));
  const request = await plain;
  t.falsy(request.getChild('preauth', NS_PARS));
});

test('the landing page shows the invitation and registers in the browser form; a used link says it is not valid', async (t) => {
  const invite: Invite = await invites.create({ kind: 'contact', inviter: 'alice' });
  const page = await httpRequest(server, 'GET', `/invite/${invite.token}`);
  t.is(page.status, 200);
  t.regex(page.headers['content-security-policy'] as string, /default-src 'none'/);
  t.true(page.body.includes('alice@localhost invites you to chat'));
  t.true(page.body.includes(`href="xmpp:alice@localhost?roster;preauth=${invite.token};ibr=y"`));

  const mismatch = await httpRequest(server, 'POST', `/invite/${invite.token}`, {
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ username: 'frank', password: PASSWORD, confirm: 'other' }).toString(),
  });
  t.is(mismatch.status, 400);
  t.true(mismatch.body.includes('The two passwords are not the same.'));

  const done = await httpRequest(server, 'POST', `/invite/${invite.token}`, {
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ username: 'frank', password: PASSWORD, confirm: PASSWORD }).toString(),
  });
  t.is(done.status, 200, done.body);
  t.true(done.body.includes('Welcome, frank@localhost'));
  t.true(await canLogIn('frank'));
  t.is((await httpRequest(server, 'GET', `/invite/${invite.token}`)).status, 404);
  t.is((await httpRequest(server, 'GET', '/invite/%3Cscript%3E')).status, 404);
});

serialTestNeeding(chromiumRequirement)('a person opens the link in Chromium, registers, and is welcomed', async (t) => {
  const invite = await invites.create({ kind: 'account' });
  const chromium = await launchChromium();
  t.teardown(() => chromium.close());
  const page = await chromium.context.newPage();
  await page.goto(`http://localhost:${server.httpPort}/invite/${invite.token}`);
  t.is(await page.locator('h1').textContent(), 'You are invited to localhost');
  await page.fill('#username', 'grace');
  await page.fill('#password', PASSWORD);
  await page.fill('#confirm', PASSWORD);
  await page.click('button[type=submit]');
  await page.waitForSelector('text=Welcome, grace@localhost');
  const shot = path.join(server.dataDir, 'invite-welcome.png');
  await page.screenshot({ path: shot });
  t.true(fs.statSync(shot).size > 1000);
  t.true(await canLogIn('grace'));
});

test('the CLI makes, lists and revokes invitations on the database of a configuration', async (t) => {
  const config = path.join(server.dataDir, 'cli.yml');
  const storage = testStorageConfig(server.dataDir);
  fs.writeFileSync(config, `data_dir: ${JSON.stringify(server.dataDir)}\nhosts: [{ domain: localhost, registration: invite }]\n` +
    `http: { listen: [{ host: 127.0.0.1, port: ${server.httpPort}, tls: none }] }\n` + (storage === undefined ? '' : `storage: ${JSON.stringify(storage)}\n`));
  const run = (...args: string[]) => promisify(execFile)(process.execPath, [main, '--config', config, 'invite', ...args]);
  const created = await run('create', '--contact', 'bob@localhost', '--ttl', '1d');
  const [url, uri] = created.stdout.split('\n');
  const token = url!.split('/').pop()!;
  // made by the running server (the CLI found its control socket): its own landing page address
  t.is(new URL(url!).pathname, `/invite/${token}`);
  t.is(new URL(url!).hostname, 'localhost');
  t.is(uri, `xmpp:bob@localhost?roster;preauth=${token};ibr=y`);
  t.is((await httpRequest(server, 'GET', `/invite/${token}`)).status, 200, 'the running server knows it at once');
  t.regex((await run('list')).stdout, new RegExp(`${token}  localhost  contact  from bob@localhost`));
  t.is((await run('revoke', token)).stdout, `revoked ${token}\n`);
  t.is((await httpRequest(server, 'GET', `/invite/${token}`)).status, 404);
  const missing = await t.throwsAsync(run('create', '--contact', 'nobody@localhost'));
  t.regex(String((missing as unknown as { stderr: string }).stderr), /no account nobody@localhost/);
});

test('XEP-0401: a user makes an invitation from their client (ad-hoc command); only an admin may invite to create an account', async (t) => {
  const NS_COMMANDS = 'http://jabber.org/protocol/commands';
  const alice = await loginForTest(t, server, 'alice', 'phone');
  const list = await alice.request(xml('iq', { type: 'get', to: 'localhost' }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#items', node: NS_COMMANDS })));
  const nodes = list.getChild('query')!.getChildren('item').map((i) => i.attrs.node);
  t.true(nodes.includes('urn:xmpp:invite#invite'));
  t.false(nodes.includes('urn:xmpp:invite#create-account'), 'not for a user');

  const done = await alice.request(xml('iq', { type: 'set', to: 'localhost' }, xml('command', { xmlns: NS_COMMANDS, node: 'urn:xmpp:invite#invite', action: 'execute' })));
  const command = done.getChild('command', NS_COMMANDS)!;
  t.is(command.attrs.status, 'completed');
  const field = (name: string) => command.getChild('x', 'jabber:x:data')!.getChildren('field').find((f) => f.attrs.var === name)?.getChildText('value');
  t.regex(field('uri')!, /^xmpp:alice@localhost\?roster;preauth=[A-Za-z0-9_-]+;ibr=y$/);
  const landing = new URL(field('landing-url')!);
  t.is((await httpRequest(server, 'GET', landing.pathname)).status, 200);
  t.true(Date.parse(field('expire')!) > Date.now());

  const refused = await alice.request(xml('iq', { type: 'set', to: 'localhost' }, xml('command', { xmlns: NS_COMMANDS, node: 'urn:xmpp:invite#create-account', action: 'execute' }))).catch((err: { condition?: string }) => err);
  t.not((refused as { condition?: string }).condition, undefined, 'a user cannot run the admin invitation');

  const root = await loginForTest(t, server, 'root', 'desk');
  const account = await root.request(xml('iq', { type: 'set', to: 'localhost' }, xml('command', { xmlns: NS_COMMANDS, node: 'urn:xmpp:invite#create-account', action: 'execute' })));
  const uri = account.getChild('command', NS_COMMANDS)!.getChild('x', 'jabber:x:data')!.getChildren('field').find((f) => f.attrs.var === 'uri')!.getChildText('value')!;
  t.regex(uri, /^xmpp:localhost\?register;preauth=[A-Za-z0-9_-]+$/);
});
