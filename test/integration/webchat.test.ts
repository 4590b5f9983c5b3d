// End to end: a user with only a browser. Debian's Chromium (headless, driven by Playwright)
// opens the web chat at /chat/, logs in through Converse.js's form over the WebSocket endpoint,
// and chats with a user on a TCP client (@xmpp/client). The page must load nothing from outside
// this server. A screenshot of the conversation is saved (XMPPD_ARTIFACTS_DIR, else a temp dir).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import type { BrowserContext, Page } from 'playwright-core';
import { chromiumRequirement, converseLogin, converseOpenChat, launchChromium, type TestBrowser } from '../helpers/browser.js';
import { testNeeding } from '../helpers/requirements.js';
import { startServer, PASSWORD, type TestServer } from '../helpers/server.js';
import { chat, login, makeFriends, online } from '../helpers/conversation.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // the test server's certificate is self-signed

const browserTest = testNeeding(chromiumRequirement);

let server: TestServer;
let chromium: TestBrowser | undefined;
let browser: BrowserContext;
test.before(async () => {
  if (!chromiumRequirement.available) return;
  server = await startServer();
  chromium = await launchChromium();
  browser = chromium.context;
});
test.after.always(async () => {
  await chromium?.close();
  await server?.stop();
});

/** A fresh page that records requests leaving this server and script errors. */
async function openPage(): Promise<{ page: Page; external: string[]; errors: string[] }> {
  const page = await browser.newPage();
  const external: string[] = [];
  const errors: string[] = [];
  const origin = `http://127.0.0.1:${server.httpPort}`;
  page.on('request', (request) => {
    const url = request.url();
    if (!url.startsWith(origin) && !url.startsWith(`ws://127.0.0.1:${server.httpPort}`) && !url.startsWith('data:') && !url.startsWith('blob:')) external.push(url);
  });
  page.on('pageerror', (err) => errors.push(err.message));
  return { page, external, errors };
}

function artifactPath(name: string): string {
  const dir = process.env.XMPPD_ARTIFACTS_DIR ?? fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-artifacts-'));
  fs.mkdirSync(dir, { recursive: true });
  return path.join(dir, name);
}

browserTest('a browser user logs in to the web chat and chats with a TCP user', async (t) => {
  await server.createAccount('alice');
  await server.createAccount('bob');
  await makeFriends(server, 'alice', 'bob');
  const bob = await login(server, 'bob', 'desktop');
  t.teardown(() => bob.stop());
  await online(bob);

  const { page, external, errors } = await openPage();
  // Converse's login form; the domain is fixed to this host, so the user name is enough
  await converseLogin(page, `http://127.0.0.1:${server.httpPort}/chat/`, 'alice', PASSWORD);

  // logged in: Bob is in Alice's contacts, online; she opens a chat with him
  await converseOpenChat(page, 'bob@localhost', { online: true });
  const textarea = page.locator('textarea.chat-textarea');
  await textarea.fill('Hi Bob, this is Alice in a browser');
  await textarea.press('Enter');

  // Bob's TCP client gets it, from Alice's WebSocket session
  const received = await bob.next((s) => s.is('message') && s.getChildText('body') === 'Hi Bob, this is Alice in a browser', 15_000);
  t.regex(received.attrs.from ?? '', /^alice@localhost\//);
  t.is(server.server.sessions.localSessions('alice@localhost').length, 1);

  // Bob answers; the reply appears in the page
  await bob.send(chat(received.attrs.from!, 'Hello Alice, Bob here on TCP'));
  await page.locator('.chat-msg__text', { hasText: 'Hello Alice, Bob here on TCP' }).waitFor({ timeout: 15_000 });
  const screenshot = artifactPath('webchat.png');
  await page.screenshot({ path: screenshot, fullPage: true });
  t.log(`screenshot: ${screenshot}`);
  t.true(fs.statSync(screenshot).size > 10_000);

  t.deepEqual(external, [], 'nothing is fetched from outside this server');
  t.deepEqual(errors, [], 'no script errors');
  await page.close();
});

browserTest('the page is configured for this server: WebSocket URL, locked domain, CSP, no CDN', async (t) => {
  const { page } = await openPage();
  const response = await page.goto(`http://127.0.0.1:${server.httpPort}/chat/`);
  t.is(response?.status(), 200);
  const csp = response?.headers()['content-security-policy'] ?? '';
  t.regex(csp, /script-src 'self'/);
  const init = await (await page.request.get(`http://127.0.0.1:${server.httpPort}/chat/init.js`)).text();
  t.true(init.includes(`"websocket_url":"ws://127.0.0.1:${server.httpPort}/xmpp-websocket"`));
  t.true(init.includes('"locked_domain":"localhost"'));
  await page.close();
});

browserTest('web chat files are served compressed, cached, and never from outside dist/', async (t) => {
  const base = `http://127.0.0.1:${server.httpPort}/chat`;
  const { page } = await openPage();
  const script = await page.request.get(`${base}/dist/converse.min.js`, { headers: { 'Accept-Encoding': 'gzip' } });
  t.is(script.status(), 200);
  t.is(script.headers()['content-encoding'], 'gzip');
  const etag = script.headers().etag!;
  t.truthy(etag);
  const again = await page.request.get(`${base}/dist/converse.min.js`, { headers: { 'If-None-Match': etag } });
  t.is(again.status(), 304);
  for (const sneaky of ['/dist/..%2F..%2Fpackage.json', '/dist/%2e%2e/%2e%2e/package.json', '/dist/../../package.json']) {
    const reply = await page.request.get(`${base}${sneaky}`, { maxRedirects: 0 });
    t.is(reply.status(), 404, sneaky);
  }
  t.is((await page.request.get(base, { maxRedirects: 0 })).headers().location, 'chat/');
  await page.close();
});
