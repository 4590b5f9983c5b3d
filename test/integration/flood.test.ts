// One client flooding the server (within well-formed XML) slows only itself.
import test from 'ava';
import { startServer, type TestServer } from '../helpers/server.js';
import { connect, xml, RawClient } from '../helpers/clients.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';

let server: TestServer;
test.before(async () => {
  server = await startServer({ config: { c2s: { max_receive_rate: '64KiB' } } });
  await server.createAccount('alice');
  await server.createAccount('bob');
});
test.after.always(async () => server?.stop());

test('while Mallory floods the server with keepalive whitespace, Alice and Bob chat normally', async (t) => {
  const mallory = await RawClient.open(server);
  mallory.write(`<stream:stream to='${server.domain}' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`);
  await mallory.waitFor(/<\/stream:features>/);
  const chunk = Buffer.alloc(64 * 1024, 0x20);
  for (let i = 0; i < 64; i++) mallory.write(chunk); // 4 MiB, far beyond a 64 KiB/s allowance

  const alice = await connect(server, 'alice', { resource: 'a' });
  const bob = await connect(server, 'bob', { resource: 'b' });
  await bob.send(xml('presence'));
  await bob.next((s) => s.is('presence'));
  for (let i = 1; i <= 20; i++) await alice.send(xml('message', { to: 'bob@localhost', type: 'chat' }, xml('body', {}, `msg ${i}`)));
  await bob.next((s) => s.is('message') && s.getChildText('body') === 'msg 20');
  t.is(bob.received.filter((s) => s.is('message')).length, 20);
  t.false(mallory.closed, 'the flooder is slowed down, not disconnected');
  mallory.close();
  await alice.stop();
  await bob.stop();
});

test('a long run of whitespace keepalives between stanzas is not taken for an oversized stanza', async (t) => {
  const own = await startServer({ config: { c2s: { max_stanza_size: '4KiB' } } });
  t.teardown(() => own.stop());
  const keepalive = await RawClient.open(own);
  keepalive.write(`<stream:stream to='${own.domain}' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`);
  await keepalive.waitFor(/<\/stream:features>/);
  // 16 KiB of keepalives, four times the stanza limit, in separate packets (not one read that
  // already holds the next '<')
  for (let i = 0; i < 16; i++) {
    keepalive.write(' '.repeat(1024));
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  keepalive.data = '';
  keepalive.write(`<iq type='get' id='after-spaces'><query xmlns='jabber:iq:register'/></iq>`);
  await keepalive.waitFor(/after-spaces/);
  t.false(keepalive.closed);
  keepalive.close();
});
