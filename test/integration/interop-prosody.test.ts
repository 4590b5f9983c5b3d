// Federation with a real Prosody (Debian's `prosody`), both ways: a user on each server chats
// with and subscribes to the other. Two pairs of domains: one authenticated by Server Dialback
// (XEP-0220; certificates nobody trusts), one by certificates from a test CA (SASL EXTERNAL,
// XEP-0178; both sides require valid certificates for it). Prosody finds our s2s port through a
// test DNS server answering its SRV queries; we reach Prosody through static routes.
import test, { type ExecutionContext } from 'ava';
import type { TestServer } from '../helpers/server.js';
import { xml, type TestClient } from '../helpers/clients.js';
import { befriend, chat, errorCondition, isPresence, messages, settle } from '../helpers/conversation.js';
import { bareOf, chatTo, freePort, loginOn, startFederated } from '../helpers/federation.js';
import { createTestCa } from '../helpers/test-ca.js';
import { startTestDns, type TestDns } from '../helpers/dns.js';
import { hasProsody, prosodyRequirement, startProsody, type ProsodyServer } from '../helpers/prosody.js';
import { serialTestNeeding } from '../helpers/requirements.js';
import { createInstantRoom, enter, groupchat, isGroupchat } from '../helpers/muc.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // our clients trust whatever certificate

const OURS_DB = 'xmppd-db.example';
const OURS_CA = 'xmppd-ca.example';
const THEIRS_DB = 'prosody-db.example';
const THEIRS_CA = 'prosody-ca.example';
/** A Prosody domain with an untrusted certificate that our policy says must present a valid one. */
const THEIRS_STRICT = 'prosody-strict.example';

let xmppd: TestServer;
let prosody: ProsodyServer;
let dns: TestDns;

const interop = serialTestNeeding(prosodyRequirement);

test.before(async () => {
  if (!hasProsody) return;
  const trusted = createTestCa([OURS_CA, THEIRS_CA]);
  const untrusted = createTestCa([THEIRS_DB, THEIRS_STRICT]); // a CA nobody is told to trust: dialback it is
  dns = await startTestDns();
  prosody = await startProsody({
    dnsPort: dns.port,
    hosts: [
      { domain: THEIRS_DB, ...untrusted.certs[THEIRS_DB]! },
      { domain: THEIRS_CA, ...trusted.certs[THEIRS_CA]!, cafile: trusted.caFile },
      { domain: THEIRS_STRICT, ...untrusted.certs[THEIRS_STRICT]! },
    ],
  });
  const s2sPort = await freePort();
  xmppd = await startFederated({
    domain: OURS_DB,
    s2sPort,
    routes: { [THEIRS_DB]: prosody.s2sPort, [THEIRS_CA]: prosody.s2sPort, [THEIRS_STRICT]: prosody.s2sPort },
    s2s: { ca_file: trusted.caFile, secure_domains: [THEIRS_CA, THEIRS_STRICT] },
    config: {
      hosts: [
        { domain: OURS_DB, registration: 'open' },
        { domain: OURS_CA, registration: 'open', tls: trusted.certs[OURS_CA] },
      ],
    },
  });
  for (const domain of [OURS_DB, OURS_CA, `conference.${OURS_DB}`]) dns.addSrv(`_xmpp-server._tcp.${domain}`, domain, s2sPort);
});

test.after.always(async () => {
  await xmppd?.stop();
  await prosody?.stop();
  await dns?.close();
});

let counter = 0;

/** A fresh user on our side, on `domain`, online with its roster requested. */
async function ourUser(t: ExecutionContext, domain: string): Promise<TestClient> {
  const username = `ours${++counter}`;
  await xmppd.server.accounts.create(domain, username, 'secret-ours');
  return loginOn(t, { domain, port: xmppd.port }, username, 'secret-ours', 'xmppd');
}

/** A fresh user on Prosody, on `domain`, online with its roster requested. */
async function theirUser(t: ExecutionContext, domain: string): Promise<TestClient> {
  const username = `theirs${++counter}`;
  prosody.register(username, domain, 'secret-theirs');
  return loginOn(t, { domain, port: prosody.c2sPort }, username, 'secret-theirs', 'prosody');
}


async function chatBothWays(t: ExecutionContext, ours: TestClient, theirs: TestClient): Promise<void> {
  const got = await chatTo(ours, theirs, 'hello Prosody', `to-prosody-${counter}`, 20000);
  t.is(got.getChildText('body'), 'hello Prosody');
  t.is(got.attrs.from, ours.jid);
  const back = await chatTo(theirs, ours, 'hello xmppd', `to-xmppd-${counter}`, 20000);
  t.is(back.getChildText('body'), 'hello xmppd');
  t.is(back.attrs.from, theirs.jid);
}

function methodsWith(remote: string): string[] {
  return xmppd.server.s2s!.streams().filter((s) => s.remote === remote).map((s) => `${s.direction} ${s.method}`).sort();
}

interop('dialback: a user on each server chats with the other, both ways', async (t) => {
  const ours = await ourUser(t, OURS_DB);
  const theirs = await theirUser(t, THEIRS_DB);
  await chatBothWays(t, ours, theirs);
  t.deepEqual(methodsWith(THEIRS_DB), ['incoming dialback', 'outgoing dialback']);
});

interop('dialback: presence subscriptions both ways, then each sees the other come and go', async (t) => {
  const ours = await ourUser(t, OURS_DB);
  const theirs = await theirUser(t, THEIRS_DB);
  await befriend(ours, theirs); // ours asks first, then theirs (RFC 6121 §3.1 both ways)
  await ours.send(xml('presence', {}, xml('status', {}, 'xmppd here')));
  const seen = await theirs.next((s) => isPresence(ours.jid)(s) && s.getChildText('status') === 'xmppd here', 20000);
  t.truthy(seen);
  await theirs.send(xml('presence', { type: 'unavailable' }));
  await ours.next(isPresence(theirs.jid, 'unavailable'), 20000);
});

interop('certificates from a test CA: SASL EXTERNAL both ways, chat and subscription', async (t) => {
  const ours = await ourUser(t, OURS_CA);
  const theirs = await theirUser(t, THEIRS_CA);
  await chatBothWays(t, ours, theirs);
  await befriend(theirs, ours);
  t.deepEqual(methodsWith(THEIRS_CA), ['incoming sasl-external', 'outgoing sasl-external']);
});

interop("dialback: a Prosody user joins a group chat at our conference service and talks in it", async (t) => {
  const ours = await ourUser(t, OURS_DB);
  const theirs = await theirUser(t, THEIRS_DB);
  const room = `interop-${counter}@conference.${OURS_DB}`;
  await createInstantRoom(ours, room, 'Ours');
  await enter(theirs, room, 'Theirs');
  await ours.next(isPresence(`${room}/Theirs`), 20000);
  await theirs.send(groupchat(room, 'hello from Prosody'));
  await ours.next(isGroupchat(`${room}/Theirs`, 'hello from Prosody'), 20000);
  await ours.send(groupchat(room, 'welcome'));
  await theirs.next(isGroupchat(`${room}/Ours`, 'welcome'), 20000);
  t.pass();
});

interop('a Prosody domain that cannot prove itself with a valid certificate, where we require one, is refused both ways', async (t) => {
  const ours = await ourUser(t, OURS_DB);
  const theirs = await theirUser(t, THEIRS_STRICT);
  // we do not send to it: the sender gets an error, not silence
  await ours.send(chat(bareOf(theirs), 'are you really you?', { id: 'to-strict' }));
  const bounced = await ours.next((s) => s.is('message') && s.attrs.id === 'to-strict', 20000);
  t.is(errorCondition(bounced), 'remote-server-not-found');
  // nor accept from it: its dialback is refused, and Prosody tells its user
  await theirs.send(chat(bareOf(ours), 'let me in', { id: 'from-strict' }));
  const refused = await theirs.next((s) => s.is('message') && s.attrs.id === 'from-strict', 20000);
  t.is(refused.attrs.type, 'error');
  await settle(ours);
  t.deepEqual(messages(ours).filter((m) => m.attrs.type !== 'error').map((m) => m.attrs.id), [], 'nothing from the unproven domain was delivered');
  t.deepEqual(methodsWith(THEIRS_STRICT).filter((m) => m.startsWith('incoming')), []);
});
