// HTTP File Upload (XEP-0363): users ask upload.localhost for a slot over XMPP, PUT the bytes
// over HTTPS and their contacts GET them back; identical bytes are stored once on disk; every
// refusal (size, type, authorisation, quota) comes with the XEP's or HTTP's answer; files that
// could run script in a browser are served so that they cannot.
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import type Element from 'ltx/lib/Element.js';
import { STANDARD_MODULES } from '../../src/config/schema.js';
import { uploadServiceOf } from '../../src/modules/upload/index.js';
import type { BlobStore, ByteRange, StagedBlob } from '../../src/modules/upload/blobs.js';
import { Transform, type Readable } from 'node:stream';
import { PASSWORD, startServer, type TestServer } from '../helpers/server.js';
import { connect, xml, type TestClient } from '../helpers/clients.js';
import { bareOf, freshAccounts, loginForTest, online } from '../helpers/conversation.js';
import { serialTestNeeding } from '../helpers/requirements.js';
import { runSlixmpp, slixmppUploadRequirement } from '../helpers/slixmpp.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // the test server's self-signed certificate

const NS_UPLOAD = 'urn:xmpp:http:upload:0';
const NS_DISCO_INFO = 'http://jabber.org/protocol/disco#info';
const NS_DISCO_ITEMS = 'http://jabber.org/protocol/disco#items';
const MAX_FILE_SIZE = 1024 * 1024;

const standardModules = Object.fromEntries(STANDARD_MODULES.map((name) => [name, {}]));

let server: TestServer;
test.before(async () => {
  server = await startServer({
    config: {
      hosts: [{ domain: 'localhost', registration: 'open' }, { domain: 'chat.example' }],
      modules: { ...standardModules, upload: { max_file_size: MAX_FILE_SIZE, quota_per_account: '4MiB' } },
    },
  });
});
test.after.always(async () => server?.stop());

interface Slot {
  put: string;
  get: string;
  headers: Record<string, string>;
}

function slotRequest(filename: string, size: number | string, contentType?: string): Element {
  const attrs: Record<string, string> = { filename, size: String(size) };
  if (contentType !== undefined) attrs['content-type'] = contentType;
  return xml('iq', { type: 'get', to: 'upload.localhost' }, xml('request', { xmlns: NS_UPLOAD, ...attrs }));
}

async function requestSlot(client: TestClient, filename: string, size: number, contentType?: string): Promise<Slot> {
  const result = await client.request(slotRequest(filename, size, contentType));
  const slot = result.getChild('slot', NS_UPLOAD)!;
  const put = slot.getChild('put')!;
  const headers: Record<string, string> = {};
  for (const header of put.getChildren('header')) headers[header.attrs.name as string] = header.getText();
  return { put: put.attrs.url as string, get: slot.getChild('get')!.attrs.url as string, headers };
}

/** The error a slot request is answered with (@xmpp/client rejects with the <error/> element). */
async function slotError(client: TestClient, request: Element): Promise<{ condition: string; type: string; error: Element }> {
  try {
    await client.request(request);
  } catch (err) {
    const { condition, type, element } = err as { condition: string; type: string; element: Element };
    return { condition, type, error: element };
  }
  throw new Error('the slot request succeeded');
}

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** A raw HTTP(S) request, for what fetch will not send (a wrong Content-Length, no Content-Type). */
function httpRequest(url: string, method: string, headers: Record<string, string | number> = {}, body?: Buffer, connectTo?: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const secure = url.startsWith('https:');
    const target = new URL(url);
    const options: https.RequestOptions = {
      // connectTo: reach a name that does not resolve (chat.example) at this address instead
      host: connectTo ?? target.hostname,
      port: target.port,
      path: target.pathname + target.search,
      method,
      headers: { Host: target.host, ...headers },
      servername: target.hostname,
      rejectUnauthorized: false,
      agent: false,
    };
    const req = (secure ? https : http).request(options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** PUT with fetch, as a web client would. */
async function putFile(slot: Slot, bytes: Buffer, contentType?: string): Promise<Response> {
  const headers: Record<string, string> = { ...slot.headers };
  if (contentType !== undefined) headers['Content-Type'] = contentType;
  return fetch(slot.put, { method: 'PUT', headers, body: bytes });
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** Every file under <data_dir>/uploads (not the staging area) named `digest`. */
function storedCopies(dataDir: string, digest: string): string[] {
  const root = path.join(dataDir, 'uploads');
  const found: string[] = [];
  for (const entry of fs.readdirSync(root, { recursive: true, withFileTypes: true })) {
    if (entry.isFile() && entry.name === digest && !entry.parentPath.endsWith(`${path.sep}tmp`)) found.push(path.join(entry.parentPath, entry.name));
  }
  return found;
}

// A tiny valid PNG (1x1), plus random bytes so that each test's file is its own content.
function picture(): Buffer {
  const png = Buffer.from('89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082', 'hex');
  return Buffer.concat([png, randomBytes(2000)]);
}

test('the upload service is listed in disco#items and announces its identity, feature and max-file-size', async (t) => {
  const { alice } = await freshAccounts(server, 'alice');
  const client = await loginForTest(t, server, alice, 'phone');
  const items = await client.request(xml('iq', { type: 'get', to: 'localhost' }, xml('query', { xmlns: NS_DISCO_ITEMS })));
  t.true(items.getChild('query')!.getChildren('item').some((item) => item.attrs.jid === 'upload.localhost'));
  const info = (await client.request(xml('iq', { type: 'get', to: 'upload.localhost' }, xml('query', { xmlns: NS_DISCO_INFO })))).getChild('query')!;
  t.like(info.getChild('identity')!.attrs, { category: 'store', type: 'file' });
  t.true(info.getChildren('feature').some((f) => f.attrs.var === NS_UPLOAD));
  const form = info.getChild('x', 'jabber:x:data')!;
  const field = (name: string) => form.getChildren('field').find((f) => f.attrs.var === name)?.getChildText('value');
  t.is(field('FORM_TYPE'), NS_UPLOAD);
  t.is(field('max-file-size'), String(MAX_FILE_SIZE));
});

test('Alice uploads a picture with fetch and Bob downloads the identical bytes, shown inline', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const aliceClient = await loginForTest(t, server, alice, 'phone');
  const bytes = picture();
  const slot = await requestSlot(aliceClient, 'Urlaub am Strand 🏖.png', bytes.length, 'image/png');
  // on localhost, the plain listener: clients would refuse the self-signed certificate
  t.true(slot.put.startsWith(`http://localhost:${server.httpPort}/upload/`));
  t.is(slot.get, slot.put);
  t.regex(slot.headers.Authorization!, /^Bearer \S{20,}$/);
  t.regex(slot.get, /\/Urlaub%20am%20Strand%20%F0%9F%8F%96\.png$/);

  const put = await putFile(slot, bytes, 'image/png');
  t.is(put.status, 201);

  // Bob got the URL in a message; he needs no credentials to fetch it
  await loginForTest(t, server, bob, 'laptop');
  const got = await fetch(slot.get);
  t.is(got.status, 200);
  t.deepEqual(Buffer.from(await got.arrayBuffer()), bytes);
  t.is(got.headers.get('content-type'), 'image/png');
  t.is(got.headers.get('content-length'), String(bytes.length));
  t.is(got.headers.get('content-disposition'), `inline; filename="Urlaub am Strand _.png"; filename*=UTF-8''Urlaub%20am%20Strand%20%F0%9F%8F%96.png`);
  t.is(got.headers.get('etag'), `"${sha256(bytes)}"`);
  t.is(got.headers.get('accept-ranges'), 'bytes');
  t.regex(got.headers.get('cache-control')!, /immutable/);
  t.is(got.headers.get('x-content-type-options'), 'nosniff');
  t.regex(got.headers.get('content-security-policy')!, /default-src 'none'.*sandbox/);
  t.is(got.headers.get('access-control-allow-origin'), '*');

  // a cached copy is revalidated by its ETag
  const again = await fetch(slot.get, { headers: { 'If-None-Match': `"${sha256(bytes)}"` } });
  t.is(again.status, 304);
});

test('the same bytes uploaded twice are one file on disk, and each upload has its own URL', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const aliceClient = await loginForTest(t, server, alice, 'phone');
  const bobClient = await loginForTest(t, server, bob, 'phone');
  const bytes = picture();
  const first = await requestSlot(aliceClient, 'cat.png', bytes.length, 'image/png');
  t.is((await putFile(first, bytes, 'image/png')).status, 201);
  // Bob forwards it: his client uploads the same bytes under another name
  const second = await requestSlot(bobClient, 'forwarded.png', bytes.length, 'image/png');
  t.is((await putFile(second, bytes, 'image/png')).status, 201);
  t.not(first.get, second.get);

  const digest = sha256(bytes);
  t.is(storedCopies(server.dataDir, digest).length, 1);
  const blob = await server.server.db('upload_blobs').where({ sha256: digest }).first();
  t.is(Number(blob.refcount), 2);
  for (const url of [first.get, second.get]) {
    const got = await fetch(url);
    t.deepEqual(Buffer.from(await got.arrayBuffer()), bytes);
  }
  t.regex((await fetch(second.get)).headers.get('content-disposition')!, /filename="forwarded\.png"/);
});

test('a PUT whose Content-Length is not the announced size is refused, and the slot stays usable', async (t) => {
  const { alice } = await freshAccounts(server, 'alice');
  const client = await loginForTest(t, server, alice, 'phone');
  const bytes = randomBytes(1000);
  const slot = await requestSlot(client, 'notes.bin', bytes.length, 'application/octet-stream');
  const headers = { ...slot.headers, 'Content-Type': 'application/octet-stream' };
  const longer = Buffer.concat([bytes, randomBytes(10)]);
  t.is((await httpRequest(slot.put, 'PUT', { ...headers, 'Content-Length': longer.length }, longer)).status, 413);
  const shorter = bytes.subarray(0, 500);
  t.is((await httpRequest(slot.put, 'PUT', { ...headers, 'Content-Length': shorter.length }, shorter)).status, 400);
  t.is((await fetch(slot.get)).status, 404); // nothing was stored
  t.is((await httpRequest(slot.put, 'PUT', { ...headers, 'Content-Length': bytes.length }, bytes)).status, 201);
  t.deepEqual(Buffer.from(await (await fetch(slot.get)).arrayBuffer()), bytes);
});

test.serial('an upload cut off half way keeps nothing, and the slot can be used again', async (t) => {
  const { alice } = await freshAccounts(server, 'alice');
  const client = await loginForTest(t, server, alice, 'phone');
  const bytes = randomBytes(100_000);
  const slot = await requestSlot(client, 'big.bin', bytes.length);
  const url = new URL(slot.put);
  // a client whose connection drops after a third of the file
  const socket = net.connect(Number(url.port), '127.0.0.1');
  await new Promise((resolve) => socket.once('connect', resolve));
  socket.write(`PUT ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nAuthorization: ${slot.headers.Authorization}\r\nContent-Length: ${bytes.length}\r\n\r\n`);
  socket.write(bytes.subarray(0, 33_000));
  const staging = path.join(server.dataDir, 'uploads', 'tmp');
  for (let i = 0; i < 100 && fs.readdirSync(staging).length === 0; i++) await new Promise((r) => setTimeout(r, 20));
  socket.destroy();
  // the partial copy goes, the slot is free again, nothing is served meanwhile
  for (let i = 0; i < 100; i++) {
    const put = await fetch(slot.put, { method: 'PUT', body: bytes, headers: slot.headers });
    if (put.status === 201) break;
    t.is(put.status, 409); // the server has not noticed the drop yet
    await new Promise((r) => setTimeout(r, 20));
  }
  t.deepEqual(Buffer.from(await (await fetch(slot.get)).arrayBuffer()), bytes);
  t.deepEqual(fs.readdirSync(staging).filter((name) => !name.startsWith('.')), []);
});

test('a file larger than max-file-size gets no slot: not-acceptable with <file-too-large/>', async (t) => {
  const { alice } = await freshAccounts(server, 'alice');
  const client = await loginForTest(t, server, alice, 'phone');
  const { condition, type, error } = await slotError(client, slotRequest('movie.mp4', MAX_FILE_SIZE + 1, 'video/mp4'));
  t.is(condition, 'not-acceptable');
  t.is(type, 'modify');
  t.is(error.getChild('file-too-large', NS_UPLOAD)?.getChildText('max-file-size'), String(MAX_FILE_SIZE));
});

test('bad filenames and sizes are bad requests', async (t) => {
  const { alice } = await freshAccounts(server, 'alice');
  const client = await loginForTest(t, server, alice, 'phone');
  for (const request of [
    slotRequest('../../etc/passwd', 10),
    slotRequest('', 10),
    slotRequest('a.txt', 'ten'),
    slotRequest('a.txt', -5),
    slotRequest('empty.txt', 0),
    slotRequest('a.txt', 10, 'text/html\r\nX-Evil: 1'),
  ]) {
    t.is((await slotError(client, request)).condition, 'bad-request');
  }
});

test('a user of another domain may not upload here: not-allowed', async (t) => {
  await server.server.accounts.create('chat.example', 'carol', 'carols password');
  const carol = await connect({ ...server, domain: 'chat.example' }, 'carol', { resource: 'c', password: 'carols password' });
  t.teardown(() => carol.stop());
  t.is((await slotError(carol, slotRequest('a.png', 10, 'image/png'))).condition, 'not-allowed');
});

test('on a real domain, slots point at the TLS listener, with the host\'s certificate', async (t) => {
  await server.server.accounts.create('chat.example', 'jon', 'jons password');
  const jon = await connect({ ...server, domain: 'chat.example' }, 'jon', { resource: 'j', password: 'jons password' });
  t.teardown(() => jon.stop());
  const bytes = picture();
  const result = await jon.request(xml('iq', { type: 'get', to: 'upload.chat.example' }, xml('request', { xmlns: NS_UPLOAD, filename: 'a.png', size: String(bytes.length), 'content-type': 'image/png' })));
  const put = result.getChild('slot', NS_UPLOAD)!.getChild('put')!;
  const url = put.attrs.url as string;
  t.true(url.startsWith(`https://chat.example:${server.httpsPort}/upload/`));
  const headers = { Authorization: put.getChild('header')!.getText(), 'Content-Type': 'image/png', 'Content-Length': bytes.length };
  t.is((await httpRequest(url, 'PUT', headers, bytes, '127.0.0.1')).status, 201);
  const got = await httpRequest(url, 'GET', {}, undefined, '127.0.0.1');
  t.deepEqual(got.body, bytes);
});

test('a PUT with another Content-Type than announced is refused with 415', async (t) => {
  const { alice } = await freshAccounts(server, 'alice');
  const client = await loginForTest(t, server, alice, 'phone');
  const bytes = picture();
  const slot = await requestSlot(client, 'a.png', bytes.length, 'image/png');
  t.is((await putFile(slot, bytes, 'text/html')).status, 415);
  // announced, so it must be sent
  t.is((await httpRequest(slot.put, 'PUT', { ...slot.headers, 'Content-Length': bytes.length }, bytes)).status, 415);
  t.is((await putFile(slot, bytes, 'image/png')).status, 201);
});

test('with no content-type announced, the one the PUT gives is kept (or none: a download)', async (t) => {
  const { alice } = await freshAccounts(server, 'alice');
  const client = await loginForTest(t, server, alice, 'phone');
  const bytes = picture();
  const typed = await requestSlot(client, 'snap.png', bytes.length);
  t.is((await putFile(typed, bytes, 'image/png')).status, 201);
  const got = await fetch(typed.get);
  t.is(got.headers.get('content-type'), 'image/png');
  t.regex(got.headers.get('content-disposition')!, /^inline;/);

  const untyped = await requestSlot(client, 'blob', 10);
  t.is((await httpRequest(untyped.put, 'PUT', { ...untyped.headers, 'Content-Length': 10 }, randomBytes(10))).status, 201);
  const plain = await fetch(untyped.get);
  t.is(plain.headers.get('content-type'), 'application/octet-stream');
  t.regex(plain.headers.get('content-disposition')!, /^attachment;/);
});

test('a PUT without, with a wrong or with an expired authorisation is refused', async (t) => {
  const { alice } = await freshAccounts(server, 'alice');
  const client = await loginForTest(t, server, alice, 'phone');
  const bytes = randomBytes(100);
  const slot = await requestSlot(client, 'a.bin', bytes.length);
  t.is((await fetch(slot.put, { method: 'PUT', body: bytes })).status, 401);
  t.is((await fetch(slot.put, { method: 'PUT', body: bytes, headers: { Authorization: 'Bearer not-the-token' } })).status, 403);
  // another slot's token does not open this one
  const other = await requestSlot(client, 'b.bin', bytes.length);
  t.is((await fetch(slot.put, { method: 'PUT', body: bytes, headers: other.headers })).status, 403);
  // the authorisation has run out (the database says when, as slot_lifetime would have set it)
  const id = new URL(slot.put).pathname.split('/')[2]!;
  await server.server.db('upload_slots').where({ id }).update({ expires_at: Date.now() - 1 });
  t.is((await fetch(slot.put, { method: 'PUT', body: bytes, headers: slot.headers })).status, 403);
  t.is((await fetch(slot.get)).status, 404);
});

test('a slot can be uploaded to once: a second PUT is a conflict and the first file stays', async (t) => {
  const { alice } = await freshAccounts(server, 'alice');
  const client = await loginForTest(t, server, alice, 'phone');
  const bytes = randomBytes(300);
  const slot = await requestSlot(client, 'a.bin', bytes.length);
  t.is((await fetch(slot.put, { method: 'PUT', body: bytes, headers: slot.headers })).status, 201);
  t.is((await fetch(slot.put, { method: 'PUT', body: randomBytes(300), headers: slot.headers })).status, 409);
  t.deepEqual(Buffer.from(await (await fetch(slot.get)).arrayBuffer()), bytes);
});

test('a removed account takes its files with it (bytes someone else also uploaded stay for them)', async (t) => {
  const { hal, ida } = await freshAccounts(server, 'hal', 'ida');
  const halClient = await connect(server, hal, { resource: 'phone' });
  const idaClient = await loginForTest(t, server, ida, 'phone');
  const own = randomBytes(700);
  const shared = randomBytes(800);
  const ownSlot = await requestSlot(halClient, 'own.bin', own.length);
  t.is((await fetch(ownSlot.put, { method: 'PUT', body: own, headers: ownSlot.headers })).status, 201);
  const sharedSlot = await requestSlot(halClient, 'shared.bin', shared.length);
  t.is((await fetch(sharedSlot.put, { method: 'PUT', body: shared, headers: sharedSlot.headers })).status, 201);
  const idasCopy = await requestSlot(idaClient, 'shared.bin', shared.length);
  t.is((await fetch(idasCopy.put, { method: 'PUT', body: shared, headers: idasCopy.headers })).status, 201);

  await halClient.request(xml('iq', { type: 'set' }, xml('query', { xmlns: 'jabber:iq:register' }, xml('remove'))));
  await halClient.stop();
  // the files go in the background: wait (bounded) for the last of them
  const gone = async () => (await fetch(ownSlot.get)).status === 404 && (await fetch(sharedSlot.get)).status === 404 && storedCopies(server.dataDir, sha256(own)).length === 0;
  for (let i = 0; i < 100 && !(await gone()); i++) await new Promise((r) => setTimeout(r, 50));
  t.is((await fetch(ownSlot.get)).status, 404);
  t.is((await fetch(sharedSlot.get)).status, 404);
  t.is(storedCopies(server.dataDir, sha256(own)).length, 0);
  t.is(storedCopies(server.dataDir, sha256(shared)).length, 1);
  t.deepEqual(Buffer.from(await (await fetch(idasCopy.get)).arrayBuffer()), shared);
});

test('HTML and SVG are served as attachments in a script-free sandbox, never inline', async (t) => {
  const { alice } = await freshAccounts(server, 'alice');
  const client = await loginForTest(t, server, alice, 'phone');
  const files: Array<[string, string, string]> = [
    ['page.html', 'text/html', `<html><script>alert(document.cookie)</script>${randomBytes(4).toString('hex')}</html>`],
    ['logo.svg', 'image/svg+xml', `<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script><!--${randomBytes(4).toString('hex')}--></svg>`],
  ];
  for (const [filename, type, text] of files) {
    const bytes = Buffer.from(text);
    const slot = await requestSlot(client, filename, bytes.length, type);
    t.is((await putFile(slot, bytes, type)).status, 201);
    const got = await fetch(slot.get);
    t.is(got.status, 200);
    t.regex(got.headers.get('content-disposition')!, new RegExp(`^attachment; filename="${filename.replace('.', '\\.')}"`));
    t.is(got.headers.get('content-security-policy'), "default-src 'none'; frame-ancestors 'none'; sandbox");
    t.is(got.headers.get('x-content-type-options'), 'nosniff');
    t.deepEqual(Buffer.from(await got.arrayBuffer()), bytes);
  }
});

test('byte ranges: a slice is 206 with Content-Range, a range past the end is 416, HEAD has no body', async (t) => {
  const { alice } = await freshAccounts(server, 'alice');
  const client = await loginForTest(t, server, alice, 'phone');
  const bytes = randomBytes(1000);
  const slot = await requestSlot(client, 'video.mp4', bytes.length, 'video/mp4');
  t.is((await putFile(slot, bytes, 'video/mp4')).status, 201);

  const middle = await fetch(slot.get, { headers: { Range: 'bytes=100-199' } });
  t.is(middle.status, 206);
  t.is(middle.headers.get('content-range'), 'bytes 100-199/1000');
  t.is(middle.headers.get('content-length'), '100');
  t.deepEqual(Buffer.from(await middle.arrayBuffer()), bytes.subarray(100, 200));

  const open = await fetch(slot.get, { headers: { Range: 'bytes=990-' } });
  t.is(open.status, 206);
  t.deepEqual(Buffer.from(await open.arrayBuffer()), bytes.subarray(990));

  const suffix = await fetch(slot.get, { headers: { Range: 'bytes=-5' } });
  t.is(suffix.headers.get('content-range'), 'bytes 995-999/1000');
  t.deepEqual(Buffer.from(await suffix.arrayBuffer()), bytes.subarray(995));

  const past = await fetch(slot.get, { headers: { Range: 'bytes=1000-' } });
  t.is(past.status, 416);
  t.is(past.headers.get('content-range'), 'bytes */1000');

  const head = await httpRequest(slot.get, 'HEAD');
  t.is(head.status, 200);
  t.is(head.headers['content-length'], '1000');
  t.is(head.body.length, 0);
});

test('a browser preflight (CORS) for a PUT from a web client is allowed', async (t) => {
  const reply = await httpRequest(`http://localhost:${server.httpPort}/upload/AAAAAAAAAAAAAAAAAAAAAAAA/x.png`, 'OPTIONS', {
    Origin: 'https://webchat.example',
    'Access-Control-Request-Method': 'PUT',
    'Access-Control-Request-Headers': 'authorization,content-type',
  });
  t.is(reply.status, 204);
  t.is(reply.headers['access-control-allow-origin'], '*');
  t.regex(String(reply.headers['access-control-allow-methods']), /PUT/);
  t.regex(String(reply.headers['access-control-allow-headers']), /Authorization/);
});

test('unknown slots and paths are 404', async (t) => {
  const base = `http://localhost:${server.httpPort}/upload`;
  t.is((await fetch(`${base}/AAAAAAAAAAAAAAAAAAAAAAAA/x.png`)).status, 404);
  t.is((await fetch(`${base}/../../etc/passwd`)).status, 404);
  t.is((await fetch(`${base}/`)).status, 404);
});

test.serial('a quota per account: past it the request is refused with resource-constraint and a retry time', async (t) => {
  const quota = await startServer({ config: { modules: { ...standardModules, upload: { quota_per_account: '3000', expire_after: '1h' } } } });
  t.teardown(() => quota.stop());
  await quota.createAccount('dora');
  const dora = await connect(quota, 'dora', { resource: 'phone' });
  const slot = await requestSlot(dora, 'a.bin', 2000);
  t.is((await fetch(slot.put, { method: 'PUT', body: randomBytes(2000), headers: slot.headers })).status, 201);
  const { condition, type, error } = await slotError(dora, slotRequest('b.bin', 1001));
  t.is(condition, 'resource-constraint');
  t.is(type, 'wait');
  const retry = error.getChild('retry', NS_UPLOAD)!;
  t.true(Date.parse(retry.attrs.stamp as string) > Date.now() + 3_500_000);
  // what is left fits
  await requestSlot(dora, 'c.bin', 1000);
  // what /metrics can count
  t.deepEqual((await uploadServiceOf(quota.server.kernel))!.counters, { files: 1, bytesReceived: 2000, bytesStored: 2000 });
  const metrics = await (await fetch(`http://127.0.0.1:${quota.httpPort}/metrics`)).text();
  t.regex(metrics, /^xmppd_upload_bytes_total 2000$/m);
  t.regex(metrics, /^xmppd_upload_files\{host="localhost"\} 1$/m);
});

/**
 * The server's blob store on a disk with `free` bytes left: the upload's bytes go through the
 * real local store, and the write fails with ENOSPC once the disk is full.
 */
class DiskFullBlobStore implements BlobStore {
  constructor(
    private readonly disk: BlobStore,
    private readonly free: number,
  ) {}
  stage(source: Readable, maxBytes: number): Promise<StagedBlob> {
    let written = 0;
    const free = this.free;
    const device = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        written += chunk.length;
        if (written <= free) return callback(null, chunk);
        callback(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write' }));
      },
    });
    source.pipe(device);
    return this.disk.stage(device, maxBytes);
  }
  open(sha256: string, range?: ByteRange): Readable {
    return this.disk.open(sha256, range);
  }
  has(sha256: string): Promise<boolean> {
    return this.disk.has(sha256);
  }
  delete(sha256: string): Promise<void> {
    return this.disk.delete(sha256);
  }
  list(): AsyncIterable<string> {
    return this.disk.list();
  }
}

// Issue 16.11: an upload on a full disk was answered 400, as if the client had sent too little.
test.serial('an upload to a full disk is answered 507 Insufficient Storage and leaves no partial file', async (t) => {
  const logFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-upload-log-')), 'xmppd.log');
  const cramped = await startServer({ logFile, config: { modules: standardModules } });
  t.teardown(() => cramped.stop());
  const store = (await uploadServiceOf(cramped.server.kernel)!).store as unknown as { blobs: BlobStore };
  store.blobs = new DiskFullBlobStore(store.blobs, 64 * 1024);
  await cramped.createAccount('hal');
  const hal = await connect(cramped, 'hal', { resource: 'phone' });
  t.teardown(() => hal.stop());

  const slot = await requestSlot(hal, 'holiday.jpg', 256 * 1024);
  const reply = await fetch(slot.put, { method: 'PUT', body: randomBytes(256 * 1024), headers: slot.headers });
  t.is(reply.status, 507);
  t.deepEqual(fs.readdirSync(path.join(cramped.dataDir, 'uploads', 'tmp')), [], 'the partial file is removed');
  t.is((await fetch(slot.get)).status, 404, 'nothing is served for the slot');
  t.regex(fs.readFileSync(logFile, 'utf8'), /upload refused: no space left for [^"]*uploads\/tmp\/[0-9a-f]+"/, 'the log names the file');

  // once there is room again, the same slot takes the upload
  store.blobs = (store.blobs as unknown as { disk: BlobStore }).disk;
  t.is((await fetch(slot.put, { method: 'PUT', body: randomBytes(256 * 1024), headers: slot.headers })).status, 201);
});

test.serial('a full server storage refuses new slots with resource-constraint', async (t) => {
  const full = await startServer({ config: { modules: { ...standardModules, upload: { max_storage: '1000' } } } });
  t.teardown(() => full.stop());
  await full.createAccount('gus');
  const gus = await connect(full, 'gus', { resource: 'phone' });
  const slot = await requestSlot(gus, 'a.bin', 800);
  t.is((await fetch(slot.put, { method: 'PUT', body: randomBytes(800), headers: slot.headers })).status, 201);
  const { condition, type } = await slotError(gus, slotRequest('b.bin', 201));
  t.is(condition, 'resource-constraint');
  t.is(type, 'wait');
  await requestSlot(gus, 'c.bin', 200);
});

test.serial('files expire: after expire_after the URL is gone and so is the file on disk', async (t) => {
  const short = await startServer({ config: { modules: { ...standardModules, upload: { expire_after: '1s' } } } });
  t.teardown(() => short.stop());
  await short.createAccount('erin');
  const erin = await connect(short, 'erin', { resource: 'phone' });
  const bytes = randomBytes(500);
  const slot = await requestSlot(erin, 'story.bin', bytes.length);
  t.is((await fetch(slot.put, { method: 'PUT', body: bytes, headers: slot.headers })).status, 201);
  t.is(storedCopies(short.dataDir, sha256(bytes)).length, 1);
  // the cleaner runs every second here; wait for it (bounded) rather than for a fixed time
  for (let i = 0; i < 100 && storedCopies(short.dataDir, sha256(bytes)).length > 0; i++) await new Promise((r) => setTimeout(r, 100));
  t.is(storedCopies(short.dataDir, sha256(bytes)).length, 0);
  t.is((await fetch(slot.get)).status, 404);
  t.is(await short.server.db('upload_slots').count({ n: '*' }).first().then((r) => Number(r?.n)), 0);
});

// Interoperability: slixmpp (Debian's python3-slixmpp, with python3-aiohttp for its HTTP side)
// uses its own XEP-0363 plugin against this server.
const interop = serialTestNeeding(slixmppUploadRequirement);

interop('slixmpp uploads a picture with its XEP-0363 plugin, Alice downloads the identical bytes, and slixmpp downloads hers', async (t) => {
  const { alice, frank } = await freshAccounts(server, 'alice', 'frank');
  const aliceClient = await loginForTest(t, server, alice, 'desk');
  await online(aliceClient);
  // Alice has shared a picture of her own, for slixmpp to download
  const alicesPicture = picture();
  const alicesSlot = await requestSlot(aliceClient, 'from-alice.png', alicesPicture.length, 'image/png');
  t.is((await putFile(alicesSlot, alicesPicture, 'image/png')).status, 201);

  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-upload-'));
  t.teardown(() => fs.rmSync(directory, { recursive: true, force: true }));
  const franksPicture = picture();
  fs.writeFileSync(path.join(directory, 'holiday.png'), franksPicture);
  const shared = aliceClient.next((s) => s.is('message') && s.getChild('x', 'jabber:x:oob') !== undefined, 30_000);
  const result = await runSlixmpp('slixmpp_upload.py',
    ['--jid', `${frank}@localhost/slix`, '--password', PASSWORD, '--port', String(server.port), '--peer', bareOf(aliceClient), '--file', path.join(directory, 'holiday.png'), '--download', alicesSlot.get],
    {},
  );
  t.is(result.code, 0, result.stderr.slice(-2000) + JSON.stringify(result.events));
  const uploaded = result.events.find((e) => e.event === 'uploaded')!;
  t.is(uploaded.service, 'upload.localhost');
  t.is(uploaded.max_file_size, MAX_FILE_SIZE);
  const url = uploaded.url as string;
  t.true(url.startsWith(`http://localhost:${server.httpPort}/upload/`) && url.endsWith('/holiday.png'));

  // Alice gets the link as Conversations would show it, and downloads exactly Frank's bytes
  const message = await shared;
  t.is(message.getChildText('body'), url);
  t.is(message.getChild('x', 'jabber:x:oob')!.getChildText('url'), url);
  const got = await fetch(url);
  t.is(got.headers.get('content-type'), 'image/png');
  t.deepEqual(Buffer.from(await got.arrayBuffer()), franksPicture);

  // slixmpp downloaded Alice's picture intact
  t.like(result.events.find((e) => e.event === 'downloaded'), { status: 200, size: alicesPicture.length, sha256: sha256(alicesPicture), content_type: 'image/png' });

  // Alice forwards Frank's picture to another chat: her client uploads the same bytes again
  const forwarded = await requestSlot(aliceClient, 'holiday.png', franksPicture.length, 'image/png');
  t.is((await putFile(forwarded, franksPicture, 'image/png')).status, 201);
  t.is(storedCopies(server.dataDir, sha256(franksPicture)).length, 1);
});

test("the web chat page of a real domain lets Converse PUT to the upload service's origin (CSP connect-src)", async (t) => {
  await server.server.accounts.create('chat.example', 'webchat-user', PASSWORD);
  const webUser = await connect({ ...server, domain: 'chat.example' }, 'webchat-user', { resource: 'web' });
  t.teardown(() => webUser.stop());
  const result = await webUser.request(xml('iq', { type: 'get', to: 'upload.chat.example' }, xml('request', { xmlns: NS_UPLOAD, filename: 'a.txt', size: '3' })));
  const putUrl = new URL(result.getChild('slot', NS_UPLOAD)!.getChild('put')!.attrs.url as string);
  // no http.public_url: slots point at the TLS listener, while the chat page is on the plain one
  t.is(putUrl.origin, `https://chat.example:${server.httpsPort}`);

  const page = await httpRequest(`http://chat.example:${server.httpPort}/chat/`, 'GET', {}, undefined, '127.0.0.1');
  t.is(page.status, 200);
  const csp = String(page.headers['content-security-policy']);
  const directive = (name: string) => csp.split(';').map((d) => d.trim().split(/\s+/)).find((d) => d[0] === name)?.slice(1) ?? [];
  t.true(directive('connect-src').includes(putUrl.origin), csp);
  t.true(directive('img-src').includes(putUrl.origin), csp);
  t.true(directive('connect-src').includes("'self'"), csp);
});
