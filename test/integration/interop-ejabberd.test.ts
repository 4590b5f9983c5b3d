// Federation with a real ejabberd (Debian's `ejabberd`), both ways: a user on each server chats
// with the other and they subscribe to each other's presence. One pair of domains authenticates
// by Server Dialback (certificates nobody trusts), the other by certificates from a test CA
// (SASL EXTERNAL). ejabberd finds our s2s port through the test DNS server.
import test, { type ExecutionContext } from 'ava';
import type { TestServer } from '../helpers/server.js';
import { xml, type TestClient } from '../helpers/clients.js';
import { befriend, isPresence } from '../helpers/conversation.js';
import { chatTo, freePort, loginOn, startFederated } from '../helpers/federation.js';
import { createTestCa } from '../helpers/test-ca.js';
import { startTestDns, type TestDns } from '../helpers/dns.js';
import { ejabberdRequirement, hasEjabberd, startEjabberd, type EjabberdServer } from '../helpers/ejabberd.js';
import { serialTestNeeding } from '../helpers/requirements.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';

const OURS = 'xmppd-ej.example';
const THEIRS = 'ejabberd.example';
const OURS_CA = 'xmppd-ejca.example';
const THEIRS_CA = 'ejabberd-ca.example';

let xmppd: TestServer;
let ejabberd: EjabberdServer;
let dns: TestDns;

const interop = serialTestNeeding(ejabberdRequirement);

test.before(async () => {
  if (!hasEjabberd) return;
  const untrusted = createTestCa([THEIRS]);
  const trusted = createTestCa([OURS_CA, THEIRS_CA]);
  dns = await startTestDns();
  ejabberd = await startEjabberd({
    hosts: [{ domain: THEIRS, ...untrusted.certs[THEIRS]! }, { domain: THEIRS_CA, ...trusted.certs[THEIRS_CA]! }],
    caFile: trusted.caFile,
    dnsPort: dns.port,
  });
  const s2sPort = await freePort();
  xmppd = await startFederated({
    domain: OURS,
    s2sPort,
    routes: { [THEIRS]: ejabberd.s2sPort, [THEIRS_CA]: ejabberd.s2sPort },
    s2s: { ca_file: trusted.caFile, secure_domains: [THEIRS_CA] },
    config: { hosts: [{ domain: OURS, registration: 'open' }, { domain: OURS_CA, registration: 'open', tls: trusted.certs[OURS_CA] }] },
  });
  // ejabberd resolves SRV targets through the system (getaddrinfo), so the target is localhost
  for (const domain of [OURS, OURS_CA]) dns.addSrv(`_xmpp-server._tcp.${domain}`, 'localhost', s2sPort);
});

test.after.always(async () => {
  await xmppd?.stop();
  await ejabberd?.stop();
  await dns?.close();
});

let counter = 0;

async function ourUser(t: ExecutionContext, domain = OURS): Promise<TestClient> {
  const username = `ours${++counter}`;
  await xmppd.server.accounts.create(domain, username, 'secret-ours');
  return loginOn(t, { domain, port: xmppd.port }, username, 'secret-ours', 'xmppd');
}

async function theirUser(t: ExecutionContext, domain = THEIRS): Promise<TestClient> {
  const username = `theirs${++counter}`;
  await ejabberd.register(username, domain, 'secret-theirs');
  return loginOn(t, { domain, port: ejabberd.c2sPort }, username, 'secret-theirs', 'ejabberd');
}

interop('a user on each server chats with the other, both ways (dialback)', async (t) => {
  const ours = await ourUser(t);
  const theirs = await theirUser(t);
  const got = await chatTo(ours, theirs, 'hello ejabberd', 'to-ejabberd', 20000);
  t.is(got.attrs.from, ours.jid);
  const back = await chatTo(theirs, ours, 'hello xmppd', 'to-xmppd', 20000);
  t.is(back.attrs.from, theirs.jid);
  const methods = xmppd.server.s2s!.streams().filter((s) => s.remote === THEIRS).map((s) => `${s.direction} ${s.method}`).sort();
  t.deepEqual(methods, ['incoming dialback', 'outgoing dialback']);
});

interop('presence subscriptions both ways, then presence flows', async (t) => {
  const ours = await ourUser(t);
  const theirs = await theirUser(t);
  await befriend(theirs, ours);
  await ours.send(xml('presence', {}, xml('status', {}, 'xmppd here')));
  await theirs.next((s) => isPresence(ours.jid)(s) && s.getChildText('status') === 'xmppd here', 20000);
  await theirs.send(xml('presence', { type: 'unavailable' }));
  await ours.next(isPresence(theirs.jid, 'unavailable'), 20000);
  t.pass();
});

interop('certificates from a test CA: SASL EXTERNAL both ways, chat and subscription', async (t) => {
  const ours = await ourUser(t, OURS_CA);
  const theirs = await theirUser(t, THEIRS_CA);
  await chatTo(ours, theirs, 'signed', 'ca-to-ejabberd', 20000);
  await chatTo(theirs, ours, 'sealed', 'ca-to-xmppd', 20000);
  await befriend(ours, theirs);
  const methods = xmppd.server.s2s!.streams().filter((s) => s.remote === THEIRS_CA).map((s) => `${s.direction} ${s.method}`).sort();
  t.deepEqual(methods, ['incoming sasl-external', 'outgoing sasl-external']);
});
