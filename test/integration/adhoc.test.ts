// XEP-0050 ad-hoc commands with the XEP-0133 service administration set: an admin (a JID in the
// host's `admins`) runs the server's admin commands from an XMPP client (@xmpp/client here);
// anyone else is refused with <forbidden/>.
import test from 'ava';
import type Element from 'ltx/lib/Element.js';
import { client } from '@xmpp/client';
import { startServer, type TestServer } from '../helpers/server.js';
import { watchWire, xml, type TestClient } from '../helpers/clients.js';
import { iqFailure, login, online, ping } from '../helpers/conversation.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // the test server's certificate is self-signed

const NS_COMMANDS = 'http://jabber.org/protocol/commands';
const NS_ADMIN = 'http://jabber.org/protocol/admin';
const NS_DATA = 'jabber:x:data';

async function adminServer(t: import('ava').ExecutionContext): Promise<TestServer> {
  const server = await startServer({ config: { hosts: [{ domain: 'localhost', registration: 'open', admins: ['admin@localhost'] }] } });
  t.teardown(() => server.stop());
  for (const name of ['admin', 'alice', 'bob']) await server.createAccount(name);
  return server;
}

function execute(node: string, sessionid?: string, fields?: Record<string, string | string[]>): Element {
  const command = xml('command', { xmlns: NS_COMMANDS, node, ...(sessionid ? { sessionid, action: 'complete' } : { action: 'execute' }) });
  if (fields) {
    const form = xml('x', { xmlns: NS_DATA, type: 'submit' }, xml('field', { var: 'FORM_TYPE', type: 'hidden' }, xml('value', {}, NS_ADMIN)));
    for (const [name, value] of Object.entries(fields)) form.append(xml('field', { var: name }, ...(Array.isArray(value) ? value : [value]).map((v) => xml('value', {}, v))));
    command.append(form);
  }
  return xml('iq', { type: 'set', to: 'localhost' }, command);
}

/** Runs a XEP-0133 command as a client would: execute, fill in the form it got, complete. */
async function run(c: TestClient, name: string, fields: Record<string, string | string[]>): Promise<Element> {
  const node = `${NS_ADMIN}#${name}`;
  const first = (await c.request(execute(node))).getChild('command', NS_COMMANDS)!;
  if (first.attrs.status === 'completed') return first;
  const form = first.getChild('x', NS_DATA)!;
  for (const field of Object.keys(fields)) {
    if (!form.getChildren('field').some((f) => f.attrs.var === field)) throw new Error(`the ${name} form has no field ${field}: ${form.toString()}`);
  }
  return (await c.request(execute(node, first.attrs.sessionid as string, fields))).getChild('command', NS_COMMANDS)!;
}

function fieldValues(command: Element, name: string): string[] {
  return command.getChild('x', NS_DATA)?.getChildren('field').find((f) => f.attrs.var === name)?.getChildren('value').map((v) => v.getText()) ?? [];
}

async function loginOutcome(server: TestServer, username: string, password = 'correct horse battery'): Promise<string> {
  const xmpp = client({ service: `xmpp://127.0.0.1:${server.port}`, domain: server.domain, username, password, resource: 'probe', timeout: 20_000 }); // a loaded machine is slow, not wrong
  watchWire(xmpp, `${username}'s login attempt`, 'stream');
  xmpp.on('error', () => undefined);
  try {
    await xmpp.start();
    return 'ok';
  } catch (err) {
    return (err as { condition?: string }).condition ?? String(err);
  } finally {
    (xmpp as unknown as { reconnect?: { stop(): void } }).reconnect?.stop();
    await xmpp.stop().catch(() => undefined);
  }
}

test('an admin finds the admin commands on the commands node; a user finds only the invitation and their login tokens, and is refused the rest', async (t) => {
  const server = await adminServer(t);
  const admin = await login(server, 'admin', 'desk');
  const alice = await login(server, 'alice', 'phone');

  const info = await admin.request(xml('iq', { type: 'get', to: 'localhost' }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' })));
  t.true(info.getChild('query')!.getChildren('feature').some((f) => f.attrs.var === NS_COMMANDS));
  const items = (node: string) => xml('iq', { type: 'get', to: 'localhost' }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#items', node }));
  const listed = (await admin.request(items(NS_COMMANDS))).getChild('query')!.getChildren('item').map((i) => i.attrs.node as string);
  for (const name of ['add-user', 'delete-user', 'disable-user', 'reenable-user', 'end-user-session', 'get-online-users-list', 'announce', 'set-motd']) {
    t.true(listed.includes(`${NS_ADMIN}#${name}`), name);
  }
  t.true(listed.includes('urn:xmppd:admin#status'));
  t.false(listed.some((n) => n.endsWith('#reload')), 'reload is for the machine\'s admin only');
  // a user finds only what users may run: an invitation (XEP-0401, the invites module) and their
  // own login tokens (XEP-0484, the fast module)
  t.deepEqual((await alice.request(items(NS_COMMANDS))).getChild('query')!.getChildren('item').map((i) => i.attrs.node), [
    'urn:xmpp:invite#invite',
    'urn:xmppd:fast#list',
    'urn:xmppd:fast#revoke-all',
  ]);

  t.is(await iqFailure(alice.request(execute(`${NS_ADMIN}#add-user`))), 'forbidden');
  t.is(await iqFailure(alice.request(execute('urn:xmppd:admin#status'))), 'forbidden');
  t.is(await iqFailure(admin.request(execute(`${NS_ADMIN}#no-such-command`))), 'item-not-found');
  await admin.stop();
  await alice.stop();
});

test('add-user: the admin fills in the form; the new user logs in; delete-user removes her', async (t) => {
  const server = await adminServer(t);
  const admin = await login(server, 'admin', 'desk');

  const first = (await admin.request(execute(`${NS_ADMIN}#add-user`))).getChild('command', NS_COMMANDS)!;
  t.is(first.attrs.status, 'executing');
  const form = first.getChild('x', NS_DATA)!;
  t.is(form.attrs.type, 'form');
  t.deepEqual(form.getChildren('field').map((f) => [f.attrs.var, f.attrs.type]), [['FORM_TYPE', 'hidden'], ['accountjid', 'jid-single'], ['password', 'text-private']]);

  const done = (await admin.request(execute(`${NS_ADMIN}#add-user`, first.attrs.sessionid as string, { accountjid: 'carol@localhost', password: 'carol secret' }))).getChild('command', NS_COMMANDS)!;
  t.is(done.attrs.status, 'completed');
  t.is(done.getChildText('note'), 'created carol@localhost');
  t.is(await loginOutcome(server, 'carol', 'carol secret'), 'ok');

  const again = await run(admin, 'add-user', { accountjid: 'carol@localhost', password: 'x' });
  t.is(again.getChild('note')?.attrs.type, 'error');
  t.is(again.getChildText('note'), 'carol@localhost already exists');

  const deleted = await run(admin, 'delete-user', { accountjid: 'carol@localhost' });
  t.is(deleted.getChildText('note'), 'deleted carol@localhost');
  t.is(await loginOutcome(server, 'carol', 'carol secret'), 'not-authorized');
  // an admin of this host acts on this host only
  const elsewhere = await run(admin, 'add-user', { accountjid: 'eve@example.org', password: 'x' });
  t.regex(elsewhere.getChildText('note') ?? '', /example\.org is not a host/);
  await admin.stop();
});

test('get-online-users-list, end-user-session, disable-user, announce and status from an admin client', async (t) => {
  const server = await adminServer(t);
  const admin = await login(server, 'admin', 'desk');
  const alice = await login(server, 'alice', 'phone');
  const bob = await login(server, 'bob', 'desk');
  await online(bob);

  const list = await run(admin, 'get-online-users-list', {});
  t.is(list.attrs.status, 'completed');
  t.deepEqual(fieldValues(list, 'onlineuserjids').sort(), ['admin@localhost/desk', 'alice@localhost/phone', 'bob@localhost/desk']);

  (alice.xmpp as unknown as { reconnect?: { stop(): void } }).reconnect?.stop();
  const ended = new Promise<string | undefined>((resolve) => alice.xmpp.on('error', (err: unknown) => resolve((err as { condition?: string }).condition)));
  const kicked = await run(admin, 'end-user-session', { accountjid: 'alice@localhost/phone' });
  t.is(kicked.getChildText('note'), 'ended 1 session of alice@localhost/phone');
  t.is(await ended, 'policy-violation');

  t.is((await run(admin, 'disable-user', { accountjid: 'alice@localhost' })).getChildText('note'), 'disabled alice@localhost');
  t.is(await loginOutcome(server, 'alice'), 'account-disabled');
  t.is((await run(admin, 'reenable-user', { accountjid: 'alice@localhost' })).getChildText('note'), 'enabled alice@localhost');
  t.is(await loginOutcome(server, 'alice'), 'ok');

  const announced = await run(admin, 'announce', { subject: 'Tonight', body: ['Maintenance at 22:00.', 'Back by 22:30.'] });
  t.is(announced.attrs.status, 'completed');
  const headline = await bob.next((s) => s.name === 'message' && s.attrs.type === 'headline');
  t.is(headline.getChildText('body'), 'Maintenance at 22:00.\nBack by 22:30.');
  t.is(headline.getChildText('subject'), 'Tonight');

  const status = (await admin.request(execute('urn:xmppd:admin#status'))).getChild('command', NS_COMMANDS)!;
  t.is(status.attrs.status, 'completed');
  t.regex(fieldValues(status, 'result').join('\n'), /^connections: c2s \d+, websocket 0, s2s 0$/m);
  await admin.request(ping('localhost'));
  await admin.stop();
  await bob.stop();
});
