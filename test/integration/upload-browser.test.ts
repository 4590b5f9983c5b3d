// Uploads in a real browser (Debian's Chromium, headless, driven by Playwright). The web chat
// (Converse.js) shares a picture through HTTP File Upload with a TCP user. HTML and SVG someone
// uploaded open as downloads, never as pages; a text file full of markup is shown as text; a
// "picture" that is really HTML stays a (broken) picture. In none of them does the uploader's
// script run: no dialog, no changed title, no request to the beacon it calls.
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import test from 'ava';
import type { BrowserContext, Page } from 'playwright-core';
import { chromiumRequirement, converseLogin, converseOpenChat, launchChromium, type TestBrowser } from '../helpers/browser.js';
import { serialTestNeeding } from '../helpers/requirements.js';
import { PASSWORD, startServer, type TestServer } from '../helpers/server.js';
import { connect, xml, type TestClient } from '../helpers/clients.js';
import { login, makeFriends, online } from '../helpers/conversation.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // the test server's certificate is self-signed

const browserTest = serialTestNeeding(chromiumRequirement);

let server: TestServer;
let chromium: TestBrowser | undefined;
let browser: BrowserContext;
let userDataDir: string;
let uploader: TestClient;
/** Requests the uploaded scripts make, if they ever run. */
const beaconHits: string[] = [];
let beacon: http.Server;
let beaconUrl: string;

test.before(async () => {
  if (!chromiumRequirement.available) return;
  server = await startServer();
  await server.createAccount('mallory');
  uploader = await connect(server, 'mallory', { resource: 'laptop' });
  beacon = http.createServer((req, res) => {
    beaconHits.push(req.url ?? '');
    res.writeHead(204).end();
  });
  await new Promise<void>((resolve) => beacon.listen(0, '127.0.0.1', resolve));
  beaconUrl = `http://127.0.0.1:${(beacon.address() as AddressInfo).port}`;
  chromium = await launchChromium({ ignoreHTTPSErrors: true, acceptDownloads: true });
  browser = chromium.context;
  userDataDir = chromium.userDataDir;
});
test.after.always(async () => {
  await chromium?.close();
  await uploader?.stop();
  await server?.stop();
  beacon?.close();
});

/** Mallory uploads `text` as `filename` of `contentType`; returns the GET URL. */
async function upload(filename: string, contentType: string, text: string): Promise<string> {
  const bytes = Buffer.from(text);
  const result = await uploader.request(
    xml('iq', { type: 'get', to: 'upload.localhost' }, xml('request', { xmlns: 'urn:xmpp:http:upload:0', filename, size: String(bytes.length), 'content-type': contentType })),
  );
  const slot = result.getChild('slot')!;
  const put = slot.getChild('put')!;
  const response = await fetch(put.attrs.url as string, {
    method: 'PUT',
    body: bytes,
    headers: { 'Content-Type': contentType, Authorization: put.getChild('header')!.getText() },
  });
  if (response.status !== 201) throw new Error(`upload of ${filename} failed: ${response.status}`);
  return slot.getChild('get')!.attrs.url as string;
}

browserTest('in the web chat (Converse.js), Alice shares a picture and Bob on a TCP client downloads the identical bytes', async (t) => {
  await server.createAccount('alice');
  await server.createAccount('bob');
  await makeFriends(server, 'alice', 'bob');
  const bob = await login(server, 'bob', 'desktop');
  t.teardown(() => bob.stop());
  await online(bob);

  const { page } = await openPage();
  // localhost: the origin upload URLs use on a dev box, so the page's CSP ('self') allows the PUT
  await converseLogin(page, `http://localhost:${server.httpPort}/chat/`, 'alice', PASSWORD);
  await converseOpenChat(page, 'bob@localhost');

  // Converse finds upload.localhost, asks for a slot, PUTs the file and sends the link
  const picture = Buffer.concat([Buffer.from('89504e470d0a1a0a', 'hex'), Buffer.from(`a picture from the web chat ${Date.now()}`)]);
  const file = path.join(userDataDir, 'beach.png');
  fs.writeFileSync(file, picture);
  await page.locator('input.fileupload').setInputFiles(file);
  const shared = await bob.next((s) => s.is('message') && /\/upload\/.+\/beach\.png$/.test(s.getChildText('body') ?? ''), 20_000);
  const url = shared.getChildText('body')!;
  t.is(shared.getChild('x', 'jabber:x:oob')?.getChildText('url'), url);
  const got = await fetch(url);
  t.is(got.headers.get('content-type'), 'image/png');
  t.deepEqual(Buffer.from(await got.arrayBuffer()), picture);
  await page.close();
});

browserTest('a real picture opened directly is displayed, CSP and all', async (t) => {
  const png = Buffer.from('89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082', 'hex');
  const result = await uploader.request(
    xml('iq', { type: 'get', to: 'upload.localhost' }, xml('request', { xmlns: 'urn:xmpp:http:upload:0', filename: 'dot.png', size: String(png.length), 'content-type': 'image/png' })),
  );
  const put = result.getChild('slot')!.getChild('put')!;
  const url = put.attrs.url as string;
  t.is((await fetch(url, { method: 'PUT', body: png, headers: { 'Content-Type': 'image/png', Authorization: put.getChild('header')!.getText() } })).status, 201);
  const { page } = await openPage();
  await page.goto(url);
  // Chromium shows an image document: one <img> of the picture, decoded (1x1)
  t.is(await page.locator('img').evaluate((img) => (img as unknown as { naturalWidth: number }).naturalWidth), 1);
  await page.close();
});

/** A script that, if it ever runs, changes the title, opens a dialog and calls the beacon. */
function payload(name: string): string {
  return `document.title='pwned-${name}';alert('${name}');fetch('${beaconUrl}/fetch-${name}');new Image().src='${beaconUrl}/img-${name}';`;
}

async function openPage(): Promise<{ page: Page; dialogs: string[] }> {
  const page = await browser.newPage();
  const dialogs: string[] = [];
  page.on('dialog', (dialog) => {
    dialogs.push(dialog.message());
    void dialog.dismiss();
  });
  return { page, dialogs };
}

browserTest('an uploaded HTML page opened in the browser is a download, not a page: its script never runs', async (t) => {
  const url = await upload('invitation.html', 'text/html', `<!doctype html><html><body><h1>Hi</h1><script>${payload('html')}</script></body></html>`);
  const { page, dialogs } = await openPage();
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: 15_000 }), page.goto(url).catch(() => undefined)]);
  t.is(download.suggestedFilename(), 'invitation.html');
  t.deepEqual(dialogs, []);
  t.false((await page.title()).startsWith('pwned'));
  await page.close();
  t.deepEqual(beaconHits.filter((hit) => hit.endsWith('-html')), []);
});

browserTest('an uploaded SVG with script is a download too', async (t) => {
  const url = await upload('logo.svg', 'image/svg+xml', `<svg xmlns="http://www.w3.org/2000/svg" onload="${payload('svg-onload')}"><script>${payload('svg')}</script><circle r="5"/></svg>`);
  const { page, dialogs } = await openPage();
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: 15_000 }), page.goto(url).catch(() => undefined)]);
  t.is(download.suggestedFilename(), 'logo.svg');
  t.deepEqual(dialogs, []);
  await page.close();
  t.deepEqual(beaconHits.filter((hit) => hit.includes('-svg')), []);
});

browserTest('markup uploaded as text/plain is shown as text, not sniffed into HTML', async (t) => {
  const url = await upload('notes.txt', 'text/plain', `<html><body><script>${payload('text')}</script></body></html>`);
  const { page, dialogs } = await openPage();
  const response = await page.goto(url);
  t.is(response?.status(), 200);
  t.regex((await page.textContent('body')) ?? '', /<script>document\.title='pwned-text'/);
  t.deepEqual(dialogs, []);
  t.false((await page.title()).startsWith('pwned'));
  await page.close();
  t.deepEqual(beaconHits.filter((hit) => hit.endsWith('-text')), []);
});

browserTest('HTML uploaded as image/png stays an image: nosniff and the sandbox keep its script dead', async (t) => {
  const url = await upload('cat.png', 'image/png', `<html><body><script>${payload('fakepng')}</script></body></html>`);
  const { page, dialogs } = await openPage();
  const response = await page.goto(url);
  t.is(response?.status(), 200);
  t.is(response?.headers()['content-type'], 'image/png');
  t.is(await page.locator('script').count(), 0);
  t.deepEqual(dialogs, []);
  t.false((await page.title()).startsWith('pwned'));
  await page.close();
  t.deepEqual(beaconHits.filter((hit) => hit.endsWith('-fakepng')), []);
});
