// Calls need a relay when both ends are behind NAT: the TURN credentials a client gets over
// XMPP (XEP-0215, the TURN REST convention of a shared secret) allocate a relay on a real
// coturn, started by the test; made-up ones do not.
import test from 'ava';
import { startServer, type TestServer } from '../helpers/server.js';
import { xml } from '../helpers/clients.js';
import { loginForTest } from '../helpers/conversation.js';
import { serialTestNeeding } from '../helpers/requirements.js';
import { allocateRelay, coturnRequirement, startTurn, type TestTurn } from '../helpers/coturn.js';
import { STANDARD_MODULES } from '../../src/config/schema.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // the test server's certificate is self-signed

const NS_EXTDISCO = 'urn:xmpp:extdisco:2';
const SECRET = 'a secret shared with coturn';
const turnTest = serialTestNeeding(coturnRequirement);

let turn: TestTurn | undefined;
let server: TestServer;

test.before(async () => {
  if (!coturnRequirement.available) return;
  turn = await startTurn(SECRET);
  const modules = Object.fromEntries(STANDARD_MODULES.map((name) => [name, name === 'external_services'
    ? { secret: SECRET, services: [{ type: 'turn', host: '127.0.0.1', port: turn!.port, transport: 'udp' }] }
    : {}]));
  server = await startServer({ config: { modules } });
  await server.createAccount('alice');
});
test.after.always(async () => {
  await server?.stop();
  turn?.stop();
});

turnTest('credentials obtained over XMPP allocate a relay on coturn; made-up ones are refused', async (t) => {
  const alice = await loginForTest(t, server, 'alice', 'phone');
  const result = await alice.request(xml('iq', { type: 'get', to: 'localhost' }, xml('services', { xmlns: NS_EXTDISCO, type: 'turn' })));
  const service = result.getChild('services', NS_EXTDISCO)!.getChild('service')!;
  t.is(service.attrs.port, String(turn!.port));
  const relay = await allocateRelay(turn!.port, service.attrs.username!, service.attrs.password!);
  t.true(relay.ok, relay.output.slice(-1500));
  const forged = await allocateRelay(turn!.port, service.attrs.username!, 'not-the-password');
  t.false(forged.ok, 'a password not made with the shared secret');
});
