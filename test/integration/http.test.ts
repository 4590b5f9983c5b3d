// The HTTP listener and its handler API (src/http): routes added by a module with m.http, the
// virtual host from the Host header, 404/405/411/413, HEAD, security headers, HTTPS with the
// host's certificate, and a failing handler answered with 500 instead of crashing the server.
import test from 'ava';
import pino from 'pino';
import { startServer, type TestServer } from '../helpers/server.js';
import { httpRequest, type Reply, type RequestOptions } from '../helpers/http.js';
import { ModuleContext } from '../../src/core/module.js';
import { HttpError } from '../../src/http/service.js';

let server: TestServer;
test.before(async () => {
  server = await startServer({ config: { hosts: [{ domain: 'localhost', registration: 'open' }, { domain: 'example.org' }] } });
  // a module on example.org serving files, as the upload module does
  const exampleOrg = new ModuleContext('files', server.server.kernel, server.server.hosts.get('example.org')!, {}, pino({ level: 'silent' }));
  exampleOrg.http({ prefix: '/files', methods: ['GET', 'PUT'], maxBodySize: 16 }, async (request) => {
    if (request.req.method === 'PUT') {
      const body = await request.body();
      request.res.writeHead(201, { 'Content-Type': 'text/plain' }).end(`stored ${body.length} bytes as ${request.subpath}`);
      return;
    }
    if (request.subpath === 'broken') throw new Error('a bug in a handler');
    if (request.subpath === 'forbidden') throw new HttpError(403, 'Not yours');
    request.res.writeHead(200, { 'Content-Type': 'text/plain' }).end(`${request.host.domain}:${request.subpath}:${request.baseUrl}:${exampleOrg.httpUrl('/files')}`);
  });
});
test.after.always(async () => {
  await server?.stop();
});

function request(method: string, path: string, options: RequestOptions = {}): Promise<Reply> {
  return httpRequest(server, method, path, options);
}

test('a module route answers on its own host, found by the Host header', async (t) => {
  const reply = await request('GET', '/files/a/b.txt?x=1', { host: 'example.org:5280' });
  t.is(reply.status, 200);
  t.is(reply.body, `example.org:a/b.txt:http://example.org:5280:https://example.org:${server.httpsPort}/files`);
});

test("a module route is not served on another host's name", async (t) => {
  const reply = await request('GET', '/files/a', { host: 'localhost' });
  t.is(reply.status, 404);
});

test('a subdomain of a host is served as that host (upload.example.org)', async (t) => {
  const reply = await request('GET', '/files/x', { host: 'upload.example.org' });
  t.is(reply.status, 200);
  t.true(reply.body.startsWith('example.org:x:'));
});

test('a prefix matches whole path segments only', async (t) => {
  t.is((await request('GET', '/filesystem', { host: 'example.org' })).status, 404);
});

test('an unknown path gets 404 with the security headers', async (t) => {
  const reply = await request('GET', '/nothing-here');
  t.is(reply.status, 404);
  t.is(reply.headers['x-content-type-options'], 'nosniff');
  t.is(reply.headers['referrer-policy'], 'no-referrer');
});

test('a method the route does not take gets 405 with Allow', async (t) => {
  const reply = await request('DELETE', '/files/a', { host: 'example.org' });
  t.is(reply.status, 405);
  t.is(reply.headers.allow, 'GET, PUT, HEAD');
});

test('HEAD runs the GET handler and sends no body', async (t) => {
  const reply = await request('HEAD', '/files/a', { host: 'example.org' });
  t.is(reply.status, 200);
  t.is(reply.body, '');
});

test('a body within the route limit reaches the handler', async (t) => {
  const reply = await request('PUT', '/files/new', { host: 'example.org', body: 'hello' });
  t.is(reply.status, 201);
  t.is(reply.body, 'stored 5 bytes as new');
});

test('a body over the route limit is refused with 413 before the handler runs', async (t) => {
  const reply = await request('PUT', '/files/big', { host: 'example.org', body: 'x'.repeat(17) });
  t.is(reply.status, 413);
});

test('a body without Content-Length is refused with 411', async (t) => {
  const reply = await request('PUT', '/files/chunked', { host: 'example.org', body: 'abc', headers: { 'Transfer-Encoding': 'chunked' } });
  t.is(reply.status, 411);
});

test('a handler that throws gets 500 and the server keeps serving', async (t) => {
  t.is((await request('GET', '/files/broken', { host: 'example.org' })).status, 500);
  t.is((await request('GET', '/files/ok', { host: 'example.org' })).status, 200);
});

test('a handler that throws an HttpError gets its status', async (t) => {
  const reply = await request('GET', '/files/forbidden', { host: 'example.org' });
  t.is(reply.status, 403);
  t.is(reply.body, 'Not yours\n');
});

test('HTTPS serves the same routes with the host certificate chosen by SNI', async (t) => {
  const reply = await request('GET', '/files/s', { host: 'example.org', secure: true });
  t.is(reply.status, 200);
  t.true(reply.body.startsWith(`example.org:s:https://example.org:`));
  t.truthy(reply.headers['strict-transport-security']);
});

test('a malformed request gets 400, not a crash', async (t) => {
  const net = await import('node:net');
  const answer = await new Promise<string>((resolve, reject) => {
    const socket = net.connect(server.httpPort, '127.0.0.1', () => socket.write('NOT HTTP AT ALL\r\n\r\n'));
    let data = '';
    socket.on('data', (c) => (data += c.toString()));
    socket.on('close', () => resolve(data));
    socket.on('error', reject);
  });
  t.regex(answer, /^HTTP\/1\.1 400/);
  t.is((await request('GET', '/files/still-up', { host: 'example.org' })).status, 200);
});

test('http.enabled: false opens no HTTP listener', async (t) => {
  const quiet = await startServer({ config: { http: { enabled: false } } });
  t.teardown(() => quiet.stop());
  t.is(quiet.httpPort, 0);
  t.deepEqual(quiet.server.httpAddresses(), []);
});

test('an http.default_host that is not one of the hosts stops the server at start', async (t) => {
  await t.throwsAsync(startServer({ config: { http: { default_host: 'nowhere.example' } } }), { message: /http\.default_host nowhere\.example is not one of the hosts/ });
});

test('http.default_host serves requests that name no host of ours', async (t) => {
  const twoHosts = await startServer({ config: { hosts: [{ domain: 'localhost', registration: 'open' }, { domain: 'example.net' }], http: { default_host: 'example.net' } } });
  t.teardown(() => twoHosts.stop());
  const { body } = await httpRequest(twoHosts, 'GET', '/chat/init.js', { host: '127.0.0.1' });
  t.true(body.includes('"locked_domain":"example.net"'));
});
