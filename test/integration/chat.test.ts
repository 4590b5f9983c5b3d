// 1:1 chat between real @xmpp/client clients over real sockets.
import test from 'ava';
import { startServer, type TestServer } from '../helpers/server.js';
import { connect, xml } from '../helpers/clients.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // the test server's certificate is self-signed

let server: TestServer;
test.before(async () => {
  server = await startServer();
  await server.createAccount('alice');
  await server.createAccount('bob');
});
test.after.always(async () => server?.stop());

test('Alice and Bob chat in both directions', async (t) => {
  const alice = await connect(server, 'alice', { resource: 'phone' });
  const bob = await connect(server, 'bob', { resource: 'laptop' });
  await alice.send(xml('presence'));
  await bob.send(xml('presence'));

  await alice.send(xml('message', { to: 'bob@localhost', type: 'chat', id: 'm1' }, xml('body', {}, 'Hi Bob')));
  const atBob = await bob.next((s) => s.is('message'));
  t.is(atBob.getChildText('body'), 'Hi Bob');
  t.is(atBob.attrs.from, 'alice@localhost/phone', 'the server stamps the full JID of the sender');

  await bob.send(xml('message', { to: 'alice@localhost/phone', type: 'chat' }, xml('body', {}, 'Hi Alice')));
  const atAlice = await alice.next((s) => s.is('message'));
  t.is(atAlice.getChildText('body'), 'Hi Alice');
  t.is(atAlice.attrs.from, 'bob@localhost/laptop');
  await alice.stop();
  await bob.stop();
});

test('a message to an unknown account bounces with service-unavailable', async (t) => {
  const alice = await connect(server, 'alice');
  await alice.send(xml('message', { to: 'nobody@localhost', type: 'chat', id: 'lost' }, xml('body', {}, 'hello?')));
  const error = await alice.next((s) => s.is('message') && s.attrs.type === 'error');
  t.is(error.attrs.id, 'lost');
  t.truthy(error.getChild('error')?.getChild('service-unavailable'));
  await alice.stop();
});
