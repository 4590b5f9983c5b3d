// The web admin dashboard as an admin uses it: Debian's Chromium (headless, driven by Playwright)
// logs in at /admin/ with an admin's XMPP account, kicks a connected client, adds a user who then
// logs in over XMPP, and sees the charts of the last hour. And what it refuses: a user who is not
// an admin, a POST without the login's token or from another site, a password guesser, a
// request relayed from elsewhere. Screenshots go to XMPPD_ARTIFACTS_DIR (else a temp dir).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { client } from '@xmpp/client';
import type { Page } from 'playwright-core';
import { chromiumRequirement, launchChromium, type TestBrowser } from '../helpers/browser.js';
import { serialTestNeeding } from '../helpers/requirements.js';
import { startServer, PASSWORD, type TestServer } from '../helpers/server.js';
import { chat, login, online } from '../helpers/conversation.js';
import { enter, freshRoom, NS_MUC_USER } from '../helpers/muc.js';
import { watchWire, xml, type TestClient } from '../helpers/clients.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // the test server's certificate is self-signed

const browserTest = serialTestNeeding(chromiumRequirement);
const ADMIN = 'boss';

let server: TestServer;
let chromium: TestBrowser | undefined;
let origin: string;
test.before(async () => {
  server = await startServer({
    config: {
      hosts: [{ domain: 'localhost', registration: 'open', admins: [`${ADMIN}@localhost`] }],
      http: { dashboard: { sample_interval: '1s' } },
    },
  });
  origin = `http://127.0.0.1:${server.httpPort}`;
  await server.createAccount(ADMIN);
  if (chromiumRequirement.available) chromium = await launchChromium();
});
test.after.always(async () => {
  await chromium?.close();
  await server?.stop();
});

let artifacts: string | undefined;
function artifactPath(name: string): string {
  artifacts ??= process.env.XMPPD_ARTIFACTS_DIR ?? fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-artifacts-'));
  fs.mkdirSync(artifacts, { recursive: true });
  return path.join(artifacts, name);
}

async function screenshot(t: ExecutionContext, page: Page, name: string): Promise<void> {
  const file = artifactPath(name);
  await page.screenshot({ path: file, fullPage: true });
  t.log(`screenshot: ${file}`);
}

/** A fresh page that records script errors and CSP violations, and accepts the confirmation dialogs. */
async function openPage(): Promise<{ page: Page; problems: string[] }> {
  await chromium!.context.clearCookies(); // each test logs in anew
  const page = await chromium!.context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (err) => problems.push(err.message));
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(message.text());
  });
  page.on('dialog', (dialog) => void dialog.accept());
  return { page, problems };
}

/** Logs in with the dashboard's form; resolves on the page it lands on. */
async function dashboardLogin(page: Page, jid: string, password: string): Promise<void> {
  await page.goto(`${origin}/admin/`);
  await page.fill('input[name=jid]', jid);
  await page.fill('input[name=password]', password);
  await Promise.all([page.waitForLoadState('load'), page.click('button[type=submit]')]);
}

/** The stream error that ends a client's session (its reconnection stopped first). */
function streamErrorOf(c: TestClient): Promise<{ condition?: string; text?: string }> {
  (c.xmpp as unknown as { reconnect?: { stop(): void } }).reconnect?.stop();
  return new Promise((resolve) => c.xmpp.on('error', (err: unknown) => resolve(err as { condition?: string; text?: string })));
}

/** The outcome of an XMPP login: 'ok' or the SASL failure condition. */
async function xmppLogin(username: string, password: string): Promise<string> {
  const xmpp = client({ service: `xmpp://127.0.0.1:${server.port}`, domain: server.domain, username, password, resource: 'probe', timeout: 20_000 });
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

/** A login over plain HTTP as a script would do it (the login form's token, then the POST): the session cookie and the page's token. */
async function httpLogin(jid: string, password: string, headers: Record<string, string> = {}, at = origin): Promise<{ status: number; body: string; cookie?: string; csrf?: string }> {
  const form = await fetch(`${at}/admin/login`, { headers });
  const loginToken = /xmppd_dashboard_login=([^;]+)/.exec(form.headers.get('set-cookie') ?? '')![1]!;
  const reply = await fetch(`${at}/admin/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { Cookie: `xmppd_dashboard_login=${loginToken}`, Origin: at, 'Content-Type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams({ csrf: loginToken, jid, password }).toString(),
  });
  const session = /xmppd_dashboard=([^;]+)/.exec(reply.headers.getSetCookie().join('\n'))?.[1];
  if (session === undefined || session === '') return { status: reply.status, body: await reply.text() };
  const page = await (await fetch(`${at}/admin/users`, { headers: { ...headers, Cookie: `xmppd_dashboard=${session}` } })).text();
  return { status: reply.status, body: '', cookie: `xmppd_dashboard=${session}`, csrf: /name="csrf" value="([^"]+)"/.exec(page)![1]! };
}

browserTest('an admin logs in, sees a connected client in the sessions and kicks it: the client is disconnected', async (t) => {
  await server.createAccount('alice');
  const alice = await login(server, 'alice', 'phone');
  await online(alice);

  const { page, problems } = await openPage();
  await dashboardLogin(page, `${ADMIN}@localhost`, PASSWORD);
  // the overview: version, connections, the hosts
  t.is(new URL(page.url()).pathname, '/admin/');
  await page.locator('h1', { hasText: 'Overview' }).waitFor();
  t.regex(await page.locator('#connections-c2s .value').innerText(), /^[1-9]\d*$/);
  const cookies = await chromium!.context.cookies(`${origin}/admin/`);
  const session = cookies.find((c) => c.name === 'xmppd_dashboard')!;
  t.true(session.httpOnly);
  t.is(session.sameSite, 'Strict');

  await page.click('nav a:has-text("Sessions")');
  const row = page.locator('#sessions tr', { hasText: 'alice@localhost/phone' });
  await row.waitFor();
  t.regex(await row.innerText(), /127\.0\.0\.1/);
  await screenshot(t, page, 'dashboard-sessions.png');

  const ended = streamErrorOf(alice);
  await Promise.all([page.waitForLoadState('load'), row.locator('button', { hasText: 'Kick' }).click()]);
  await page.locator('.flash.ok', { hasText: 'ended 1 session of alice@localhost/phone' }).waitFor();
  // Alice's client really is disconnected, told why
  t.deepEqual(await ended.then((e) => [e.condition, e.text]), ['policy-violation', 'Disconnected by an administrator']);
  t.is(server.server.sessions.localSessions('alice@localhost').length, 0);
  t.is(await page.locator('#sessions tr', { hasText: 'alice@localhost/phone' }).count(), 0);

  // logging out ends the login: the pages send back to the login form
  await Promise.all([page.waitForLoadState('load'), page.click('header button:has-text("Log out")')]);
  await page.goto(`${origin}/admin/sessions`);
  t.is(new URL(page.url()).pathname, '/admin/login');
  await screenshot(t, page, 'dashboard-login.png');
  t.deepEqual(problems, [], 'no script errors or CSP violations');
  await page.close();
});

browserTest('an admin adds a user who then logs in over XMPP, resets their password, disables and enables them', async (t) => {
  const { page, problems } = await openPage();
  await dashboardLogin(page, `${ADMIN}@localhost`, PASSWORD);
  await page.click('nav a:has-text("Users")');
  await page.fill('#add-user input[name=jid]', 'carol@localhost');
  await page.fill('#add-user input[name=password]', 'carol first secret');
  await Promise.all([page.waitForLoadState('load'), page.click('#add-user button')]);
  await page.locator('.flash.ok', { hasText: 'created carol@localhost' }).waitFor();
  await screenshot(t, page, 'dashboard-users.png');

  // Carol logs in with her XMPP client, with the password the admin gave
  const carol = await login(server, 'carol', 'laptop', { password: 'carol first secret' });
  await online(carol);

  // a new password: the old one no longer works, the new one does
  const row = page.locator('#users tr', { hasText: 'carol@localhost' });
  await row.locator('input[name=password]').fill('carol second secret');
  await Promise.all([page.waitForLoadState('load'), row.locator('button', { hasText: 'Reset password' }).click()]);
  await page.locator('.flash.ok', { hasText: 'password changed for carol@localhost' }).waitFor();
  t.is(await xmppLogin('carol', 'carol second secret'), 'ok');

  // disabled: her session ends and she cannot log in; enabled: she can again
  const ended = streamErrorOf(carol);
  const disabledRow = page.locator('#users tr', { hasText: 'carol@localhost' });
  await disabledRow.locator('input[name=reason]').fill('<b>spam</b> & abuse');
  await Promise.all([page.waitForLoadState('load'), disabledRow.locator('button', { hasText: 'Disable' }).click()]);
  await page.locator('.flash.ok', { hasText: 'disabled carol@localhost' }).waitFor();
  t.is((await ended).condition, 'not-authorized');
  // the reason is shown as text, not markup
  t.is(await page.locator('#users tr', { hasText: 'carol@localhost' }).locator('.muted').innerText(), '<b>spam</b> & abuse');
  t.is(await xmppLogin('carol', 'carol second secret'), 'account-disabled');
  await Promise.all([page.waitForLoadState('load'), page.locator('#users tr', { hasText: 'carol@localhost' }).locator('button', { hasText: 'Enable' }).click()]);
  t.is(await xmppLogin('carol', 'carol second secret'), 'ok');

  // a refusal from the registry is shown, nothing else happens
  await page.fill('#add-user input[name=jid]', 'carol@localhost');
  await page.fill('#add-user input[name=password]', 'whatever');
  await Promise.all([page.waitForLoadState('load'), page.click('#add-user button')]);
  await page.locator('.flash.error', { hasText: 'carol@localhost already exists' }).waitFor();
  t.deepEqual(problems, []);
  await page.close();
});

browserTest('the overview draws messages per second, delivery latency and connections from the samples of the counters', async (t) => {
  await server.createAccount('dora');
  await server.createAccount('ed');
  const dora = await login(server, 'dora', 'desk');
  const ed = await login(server, 'ed', 'desk');
  t.teardown(async () => {
    await dora.stop();
    await ed.stop();
  });
  // messages flow for a few sampling intervals
  for (let i = 0; i < 3; i++) {
    for (let n = 0; n < 5; n++) await dora.send(chat(`ed@localhost/desk`, `hello ${i}.${n}`));
    await ed.next((s) => s.is('message') && s.getChildText('body') === `hello ${i}.4`);
    await new Promise((resolve) => setTimeout(resolve, 1100));
  }

  const { page, problems } = await openPage();
  await dashboardLogin(page, `${ADMIN}@localhost`, PASSWORD);
  for (const id of ['chart-messages', 'chart-latency', 'chart-connections']) {
    const chart = page.locator(`#${id}`);
    await chart.waitFor();
    t.true(Number(await chart.getAttribute('data-points')) >= 2, `${id} has points`);
    t.true((await chart.locator('svg polyline').count()) >= 1, `${id} has a line`);
  }
  // the messages sent show as a rate above zero somewhere in the hour
  const messages = await page.locator('#chart-messages polyline').first().getAttribute('points');
  const ys = (messages ?? '').split(' ').map((p) => Number(p.split(',')[1]));
  t.true(new Set(ys).size > 1, 'the message line is not flat');
  // the script refreshes the charts from the samples taken since
  const before = Number(await page.locator('#chart-connections').getAttribute('data-points'));
  // (polled from here: the page's CSP forbids the eval that page.waitForFunction would use)
  for (let tries = 0; Number(await page.locator('#chart-connections').getAttribute('data-points')) <= before; tries++) {
    if (tries === 30) t.fail('the charts were not refreshed');
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  await screenshot(t, page, 'dashboard-overview.png');

  // Dora shares a file (XEP-0363): the storage page counts it for her host
  const slot = (await dora.request(xml('iq', { type: 'get', to: 'upload.localhost' }, xml('request', { xmlns: 'urn:xmpp:http:upload:0', filename: 'notes.txt', size: '3000' })))).getChild('slot')!;
  const put = slot.getChild('put')!;
  const headers = Object.fromEntries(put.getChildren('header').map((h) => [h.attrs.name as string, h.getText()]));
  t.is((await fetch(put.attrs.url as string, { method: 'PUT', headers: { ...headers, 'Content-Type': 'text/plain' }, body: Buffer.alloc(3000, 'x') })).status, 201);

  for (const [name, selector] of [['storage', '#disk'], ['certificates', '#certificates']] as const) {
    await page.goto(`${origin}/admin/${name}`);
    await page.locator(selector).first().waitFor();
    await screenshot(t, page, `dashboard-${name}.png`);
  }
  t.regex(await page.locator('#certificates tr', { hasText: 'localhost' }).innerText(), /\d+ days left/);
  await page.goto(`${origin}/admin/storage`);
  t.regex(await page.locator('#uploads tr', { hasText: 'localhost' }).innerText(), /localhost\s+1\s+2\.9 KiB/);
  t.regex(await page.locator('#uploads-since-start').innerText(), /1 files/);
  t.deepEqual(problems, []);
  await page.close();
});

browserTest('an admin sees the rooms and destroys one: its occupants are told why', async (t) => {
  await server.createAccount('hana');
  const hana = await login(server, 'hana', 'desk');
  t.teardown(() => hana.stop());
  const room = freshRoom('lobby');
  await enter(hana, room, 'Hana');

  const { page, problems } = await openPage();
  await dashboardLogin(page, `${ADMIN}@localhost`, PASSWORD);
  await page.click('nav a:has-text("Rooms")');
  const row = page.locator('#rooms tr', { hasText: room });
  await row.waitFor();
  t.regex(await row.innerText(), /\b1\b/); // one occupant
  await screenshot(t, page, 'dashboard-rooms.png');
  await row.locator('input[name=reason]').fill('Moved to #general');
  await Promise.all([page.waitForLoadState('load'), row.locator('button', { hasText: 'Destroy' }).click()]);
  await page.locator('.flash.ok', { hasText: `destroyed ${room}` }).waitFor();
  // XEP-0045 §10.9: the occupant gets unavailable presence with <destroy/> and the reason
  const gone = await hana.next((s) => s.is('presence') && s.attrs.from === `${room}/Hana` && s.attrs.type === 'unavailable');
  t.is(gone.getChild('x', NS_MUC_USER)?.getChild('destroy')?.getChildText('reason'), 'Moved to #general');
  t.is(await page.locator('#rooms tr', { hasText: room }).count(), 0);
  t.deepEqual(problems, []);
  await page.close();
});

test('a user who is not an admin cannot log in, even with the right password', async (t) => {
  await server.createAccount('frank');
  const refused = await httpLogin('frank@localhost', PASSWORD);
  t.is(refused.status, 403);
  t.is(refused.cookie, undefined);
  t.regex(refused.body, /frank@localhost is not an administrator of this server/);
  // and no page of the dashboard is shown without a login
  const overview = await fetch(`${origin}/admin/`, { redirect: 'manual' });
  t.is(overview.status, 303);
  t.is(overview.headers.get('location'), '/admin/login');
});

test('a POST without the login token, or from another site, is refused and changes nothing', async (t) => {
  const admin = await httpLogin(`${ADMIN}@localhost`, PASSWORD);
  t.is(admin.status, 303);
  const add = (fields: Record<string, string>, from = origin) =>
    fetch(`${origin}/admin/users/add`, {
      method: 'POST',
      redirect: 'manual',
      headers: { Cookie: admin.cookie!, Origin: from, 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(fields).toString(),
    });
  t.is((await add({ jid: 'mallory@localhost', password: 'planted' })).status, 403);
  t.is((await add({ jid: 'mallory@localhost', password: 'planted', csrf: 'guessed' })).status, 403);
  t.is((await add({ jid: 'mallory@localhost', password: 'planted', csrf: admin.csrf! }, 'https://evil.example')).status, 403);
  t.false(await server.server.accounts.exists('localhost', 'mallory'));
  // nothing changes on GET either
  t.is((await fetch(`${origin}/admin/users/add?jid=mallory@localhost&password=planted&csrf=${admin.csrf!}`, { headers: { Cookie: admin.cookie! } })).status, 404);
  t.false(await server.server.accounts.exists('localhost', 'mallory'));
  // with the token, from the dashboard's own origin: done
  t.is((await add({ jid: 'mallory@localhost', password: 'planted', csrf: admin.csrf! })).status, 303);
  t.true(await server.server.accounts.exists('localhost', 'mallory'));
});

test('wrong passwords are throttled like SASL: then even the right one is refused, on the dashboard and over XMPP', async (t) => {
  await server.createAccount('gina');
  // the default limit: 5 failures for one account from one address
  for (let i = 0; i < 5; i++) t.is((await httpLogin('gina@localhost', `guess ${i}`)).status, 401);
  const blocked = await httpLogin('gina@localhost', PASSWORD);
  t.is(blocked.status, 429);
  t.regex(blocked.body, /Too many failed attempts; try again in \d+ s/);
  t.is(blocked.cookie, undefined);
  // the same counters as SASL: the guesser's address is refused over XMPP too
  t.is(await xmppLogin('gina', PASSWORD), 'temporary-auth-failure');
});

test('the dashboard is for this machine only: a request relayed for someone elsewhere is refused', async (t) => {
  for (const headers of [{ 'X-Forwarded-For': '203.0.113.7' }, { Forwarded: 'for=198.51.100.1' }]) {
    const reply = await fetch(`${origin}/admin/login`, { headers });
    t.is(reply.status, 403);
    t.regex(await reply.text(), /for this machine only/);
  }
  // even a login with the right password
  t.is((await fetch(`${origin}/admin/login`, { method: 'POST', headers: { 'X-Forwarded-For': '203.0.113.7', Origin: origin } })).status, 403);
  t.is((await fetch(`${origin}/admin/login`)).status, 200);
});

test('on HTTPS the login cookies are Secure; every page has a strict Content-Security-Policy', async (t) => {
  const form = await fetch(`https://127.0.0.1:${server.httpsPort}/admin/login`);
  t.is(form.status, 200);
  t.regex(form.headers.get('set-cookie') ?? '', /^xmppd_dashboard_login=[\w-]+; Path=\/admin\/; HttpOnly; SameSite=Strict; Secure$/);
  const csp = form.headers.get('content-security-policy') ?? '';
  t.regex(csp, /default-src 'none'/);
  t.regex(csp, /script-src 'self';/);
  t.notRegex(csp, /unsafe-inline|unsafe-eval/);
  // over plain HTTP on this machine the cookie cannot be Secure (the browser would not send it back)
  t.notRegex((await fetch(`${origin}/admin/login`)).headers.get('set-cookie') ?? '', /Secure/);
});

test('with listeners: all, a request relayed by a local proxy is served, and its wrong passwords count for the client the proxy names', async (t) => {
  const open = await startServer({ config: { hosts: [{ domain: 'localhost', admins: ['boss@localhost'] }], http: { dashboard: { listeners: 'all' } } } });
  t.teardown(() => open.stop());
  await open.createAccount('boss');
  const at = `http://127.0.0.1:${open.httpPort}`;
  const guesser = { 'X-Forwarded-For': '203.0.113.9' };
  for (let i = 0; i < 5; i++) t.is((await httpLogin('boss@localhost', `guess ${i}`, guesser, at)).status, 401);
  t.is((await httpLogin('boss@localhost', PASSWORD, guesser, at)).status, 429);
  // the admin, elsewhere, is not locked out by the guesser
  const admin = await httpLogin('boss@localhost', PASSWORD, { 'X-Forwarded-For': '198.51.100.20' }, at);
  t.is(admin.status, 303);
  t.truthy(admin.csrf);
});
