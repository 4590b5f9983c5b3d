// XEP-0215 external services (STUN/TURN for calls, TURN credentials from a shared secret) and
// XEP-0157 contact addresses, both from the YAML.
import { createHmac } from 'node:crypto';
import test from 'ava';
import { startServer, type TestServer } from '../helpers/server.js';
import { xml } from '../helpers/clients.js';
import { freshAccounts, iqFailure, loginForTest } from '../helpers/conversation.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
const NS_EXTDISCO = 'urn:xmpp:extdisco:2';
const SECRET = 'the turn secret';

let server: TestServer;
let plain: TestServer;
test.before(async () => {
  server = await startServer({
    config: {
      modules: {
        roster: {}, presence: {}, disco: { contact: { abuse: ['mailto:abuse@example.org'], admin: ['xmpp:admin@example.org', 'mailto:admin@example.org'] } },
        external_services: {
          secret: SECRET,
          credentials_lifetime: '1h',
          services: [
            { type: 'stun', host: 'turn.example.org', port: 3478, transport: 'udp' },
            { type: 'turn', host: 'turn.example.org', port: 3478, transport: 'udp' },
            { type: 'turns', host: 'turn.example.org', port: 5349, transport: 'tcp', username: 'fixed', password: 'pw' },
          ],
        },
      },
    },
  });
  plain = await startServer();
});
test.after.always(async () => {
  await server?.stop();
  await plain?.stop();
});

test('Alice\'s client lists the STUN and TURN services, with TURN credentials that the shared secret proves', async (t) => {
  const { alice } = await freshAccounts(server, 'alice');
  const a = await loginForTest(t, server, alice, 'phone');
  const info = await a.request(xml('iq', { type: 'get', to: server.domain }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' })));
  t.true(info.getChild('query')!.getChildren('feature').some((f) => f.attrs.var === NS_EXTDISCO));
  const result = await a.request(xml('iq', { type: 'get', to: server.domain }, xml('services', { xmlns: NS_EXTDISCO })));
  const services = result.getChild('services', NS_EXTDISCO)!.getChildren('service');
  t.deepEqual(services.map((s) => s.attrs.type), ['stun', 'turn', 'turns']);
  t.false('username' in services[0]!.attrs);
  const turn = services[1]!;
  t.is(turn.attrs.restricted, '1');
  // coturn's use-auth-secret: username "<expiry>:<user>", password base64(HMAC-SHA1(secret, username))
  const [expiry, user] = turn.attrs.username!.split(/:(.*)/s);
  t.is(user, `${alice}@${server.domain}`);
  t.is(turn.attrs.password, createHmac('sha1', SECRET).update(turn.attrs.username!).digest('base64'));
  t.true(Number(expiry) * 1000 > Date.now());
  t.is(new Date(turn.attrs.expires!).getTime(), Number(expiry) * 1000);
  t.deepEqual([services[2]!.attrs.username, services[2]!.attrs.password], ['fixed', 'pw']);

  const onlyTurn = await a.request(xml('iq', { type: 'get', to: server.domain }, xml('services', { xmlns: NS_EXTDISCO, type: 'turn' })));
  t.deepEqual(onlyTurn.getChild('services')!.getChildren('service').map((s) => s.attrs.type), ['turn']);
  // §3.3: credentials for one service
  const credentials = await a.request(xml('iq', { type: 'get', to: server.domain }, xml('credentials', { xmlns: NS_EXTDISCO }, xml('service', { host: 'turn.example.org', type: 'turn' }))));
  t.is(credentials.getChild('credentials')!.getChild('service')!.attrs.restricted, '1');
  t.is(await iqFailure(a.request(xml('iq', { type: 'get', to: server.domain }, xml('credentials', { xmlns: NS_EXTDISCO }, xml('service', { host: 'nowhere.example', type: 'turn' }))))), 'item-not-found');
});

test('the server\'s disco#info carries the contact addresses (XEP-0157)', async (t) => {
  const { alice } = await freshAccounts(server, 'alice');
  const a = await loginForTest(t, server, alice, 'phone');
  const info = await a.request(xml('iq', { type: 'get', to: server.domain }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' })));
  const form = info.getChild('query')!.getChildren('x', 'jabber:x:data').find((x) => x.getChildren('field').some((f) => f.attrs.var === 'FORM_TYPE' && f.getChildText('value') === 'http://jabber.org/network/serverinfo'))!;
  const values = (name: string) => form.getChildren('field').find((f) => f.attrs.var === name)?.getChildren('value').map((v) => v.getText());
  t.deepEqual(values('abuse-addresses'), ['mailto:abuse@example.org']);
  t.deepEqual(values('admin-addresses'), ['xmpp:admin@example.org', 'mailto:admin@example.org']);
  t.is(values('sales-addresses'), undefined);
});

test('without services configured nothing is advertised, and asking is service-unavailable', async (t) => {
  const { alice } = await freshAccounts(plain, 'alice');
  const a = await loginForTest(t, plain, alice, 'phone');
  const info = await a.request(xml('iq', { type: 'get', to: plain.domain }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' })));
  t.false(info.getChild('query')!.getChildren('feature').some((f) => f.attrs.var === NS_EXTDISCO));
  t.is(await iqFailure(a.request(xml('iq', { type: 'get', to: plain.domain }, xml('services', { xmlns: NS_EXTDISCO })))), 'service-unavailable');
});
