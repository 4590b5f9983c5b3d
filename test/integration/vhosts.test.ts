// Several virtual hosts in one server: separate accounts and policies, chat across them.
import test from 'ava';
import { startServer, type TestServer } from '../helpers/server.js';
import { connect, xml, RawClient } from '../helpers/clients.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';

let server: TestServer;
test.before(async () => {
  server = await startServer({
    config: { hosts: [{ domain: 'localhost', registration: 'open' }, { domain: 'chat.example', admins: ['boss@chat.example'] }] },
  });
  await server.createAccount('alice');
  await server.server.accounts.create('chat.example', 'bob', 'bobs password');
});
test.after.always(async () => server?.stop());

test('Alice on localhost and Bob on chat.example chat across the two hosts', async (t) => {
  const alice = await connect(server, 'alice', { resource: 'a' });
  const bob = await connect({ ...server, domain: 'chat.example' }, 'bob', { resource: 'b', password: 'bobs password' });
  t.is(bob.jid, 'bob@chat.example/b');
  await alice.send(xml('presence'));
  await bob.send(xml('presence'));
  await alice.send(xml('message', { to: 'bob@chat.example', type: 'chat' }, xml('body', {}, 'hello from localhost')));
  const got = await bob.next((s) => s.is('message'));
  t.is(got.attrs.from, 'alice@localhost/a');
  await bob.send(xml('message', { to: 'alice@localhost', type: 'chat' }, xml('body', {}, 'hello back')));
  t.is((await alice.next((s) => s.is('message'))).getChildText('body'), 'hello back');
  await alice.stop();
  await bob.stop();
});

test('accounts are per host: alice@localhost cannot log in as alice@chat.example', async (t) => {
  await t.throwsAsync(connect({ ...server, domain: 'chat.example' }, 'alice'));
});

test('registration is by invitation by default on a host that is not localhost: without one, none', async (t) => {
  const raw = await RawClient.open({ ...server, domain: 'chat.example' });
  raw.write(`<stream:stream to='chat.example' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`);
  const features = await raw.waitFor(/<stream:features>.*?<\/stream:features>/s);
  t.regex(features[0], /<register xmlns='urn:xmpp:invite'\/>/, 'registration with an invitation offered (XEP-0445)');
  raw.write(`<iq type='set' id='reg'><query xmlns='jabber:iq:register'><username>mallory</username><password>secret123</password></query></iq>`);
  const reply = await raw.waitFor(/<iq[^>]*id="reg"[^>]*>.*?<\/iq>/s);
  t.regex(reply[0], /not-allowed/);
  raw.close();
  t.false(await server.server.accounts.exists('chat.example', 'mallory'));
});

test('the disco#info of each host answers for that host', async (t) => {
  const alice = await connect(server, 'alice', { resource: 'd' });
  const info = await alice.request(xml('iq', { type: 'get', to: 'chat.example' }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' })));
  t.is(info.attrs.from, 'chat.example');
  t.truthy(info.getChild('query')?.getChildren('identity').find((i) => i.attrs.category === 'server'));
  await alice.stop();
});
