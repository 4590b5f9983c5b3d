// The HTTP admin API as a script uses it: real HTTP requests with a bearer token to
// /admin/api/<command>, the commands of the same registry as the CLI, and the OpenAPI
// description generated from it.
import test from 'ava';
import { startServer } from '../helpers/server.js';
import { login } from '../helpers/conversation.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // the test server's certificate is self-signed

const TOKEN = 'a-test-token-0123456789abcdef';

test('every registry command is a POST with a token; the OpenAPI description lists them', async (t) => {
  const server = await startServer({ config: { http: { admin_api: { enabled: true, token: TOKEN } } } });
  t.teardown(() => server.stop());
  const api = (path: string, body?: unknown, token = TOKEN) =>
    fetch(`http://127.0.0.1:${server.httpPort}/admin/api/${path}`, {
      method: body === undefined ? 'GET' : 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });

  const added = await api('user.add', { jid: 'alice@localhost', password: 'api secret' });
  t.is(added.status, 200);
  t.deepEqual(await added.json(), { result: { jid: 'alice@localhost' } });
  const alice = await login(server, 'alice', 'phone', { password: 'api secret' });

  const sessions = (await (await api('sessions.list', {})).json()) as { result: Array<{ jid: string; transport: string }> };
  t.deepEqual(sessions.result.map((s) => [s.jid, s.transport]), [['alice@localhost/phone', 'tcp']]);
  const status = (await (await api('status', {})).json()) as { result: { hosts: Array<{ domain: string }> } };
  t.deepEqual(status.result.hosts.map((h) => h.domain), ['localhost']);

  const again = await api('user.add', { jid: 'alice@localhost', password: 'x' });
  t.is(again.status, 400);
  t.deepEqual(await again.json(), { error: 'alice@localhost already exists' });
  const badArgs = await api('user.add', { jid: 'bob@localhost', color: 'blue' });
  t.is(badArgs.status, 400);
  t.regex(((await badArgs.json()) as { error: string }).error, /user\.add: /);
  t.is((await api('no.such.command', {})).status, 404);

  const wrongToken = await api('status', {}, 'not-the-token-at-all');
  t.is(wrongToken.status, 401);
  t.is(wrongToken.headers.get('www-authenticate'), 'Bearer');
  const noToken = await fetch(`http://127.0.0.1:${server.httpPort}/admin/api/status`, { method: 'POST' });
  t.is(noToken.status, 401);
  // relayed by a reverse proxy for someone elsewhere: refused even with the token
  const relayed = await fetch(`http://127.0.0.1:${server.httpPort}/admin/api/status`, { method: 'POST', headers: { Authorization: `Bearer ${TOKEN}`, 'X-Forwarded-For': '203.0.113.7' } });
  t.is(relayed.status, 403);

  const openapi = (await (await api('openapi.json')).json()) as { openapi: string; paths: Record<string, { post: { requestBody: { content: Record<string, { schema: { required?: string[] } }> } } }> };
  t.is(openapi.openapi, '3.1.0');
  for (const command of ['status', 'sessions.kick', 'user.add', 'user.disable', 'announce', 'room.destroy', 'reload']) t.truthy(openapi.paths[`/admin/api/${command}`], command);
  t.deepEqual(openapi.paths['/admin/api/user.add']!.post.requestBody.content['application/json']!.schema.required, ['jid', 'password']);

  const kicked = await api('sessions.kick', { jid: 'alice@localhost' });
  t.deepEqual(await kicked.json(), { result: { jid: 'alice@localhost', ended: 1 } });
  await alice.stop();
});

test('the admin API is off by default', async (t) => {
  const server = await startServer();
  t.teardown(() => server.stop());
  const reply = await fetch(`http://127.0.0.1:${server.httpPort}/admin/api/status`, { method: 'POST', headers: { Authorization: `Bearer ${TOKEN}` } });
  t.is(reply.status, 404);
});
