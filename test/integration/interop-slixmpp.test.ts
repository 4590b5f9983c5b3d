// Interoperability with a real third-party client library: slixmpp (Debian's python3-slixmpp)
// registers in-band, logs in with SCRAM over STARTTLS or direct TLS, and chats with an
// @xmpp/client user, and pages through its message archive with its own MAM plugin.
import test from 'ava';
import { startServer, type TestServer } from '../helpers/server.js';
import { connect, xml } from '../helpers/clients.js';
import { serialTestNeeding } from '../helpers/requirements.js';
import { runSlixmpp, slixmppRequirement } from '../helpers/slixmpp.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';

let server: TestServer;
test.before(async () => {
  server = await startServer();
  await server.createAccount('alice');
  await server.createAccount('dave', 'dave-password');
  await server.createAccount('erin', 'erin-password');
});
test.after.always(async () => server?.stop());

const interop = serialTestNeeding(slixmppRequirement);

interop('slixmpp registers in-band, logs in over STARTTLS and chats with Alice', async (t) => {
  const alice = await connect(server, 'alice', { resource: 'desk' });
  await alice.send(xml('presence'));
  const replied = alice.next((s) => s.is('message') && s.getChildText('body') === 'hello from slixmpp', 30000).then(async (m) => {
    t.is(m.attrs.from?.split('/')[0], 'carol@localhost');
    await alice.send(xml('message', { to: m.attrs.from!, type: 'chat' }, xml('body', {}, 'hi carol')));
  });
  const result = await runSlixmpp('slixmpp_client.py', ['--jid', 'carol@localhost/slix', '--password', 'carol-secret', '--port', String(server.port), '--peer', 'alice@localhost', '--register']);
  await replied;
  t.is(result.code, 0, result.stderr.slice(-2000));
  t.truthy(result.events.find((e) => e.event === 'registered'));
  t.like(result.events.find((e) => e.event === 'session'), { jid: 'carol@localhost/slix', mechanism: 'SCRAM-SHA-512-PLUS' }, 'the best it knows (tls-unique, which TLS 1.3 still gives)');
  t.truthy(result.events.find((e) => e.event === 'pong'));
  t.true((result.events.find((e) => e.event === 'disco')?.features as string[]).includes('urn:xmpp:ping'));
  t.deepEqual(result.events.find((e) => e.event === 'message'), { event: 'message', sender: 'alice@localhost/desk', body: 'hi carol' });
  await alice.stop();
});

interop('slixmpp logs in over direct TLS (XEP-0368)', async (t) => {
  const alice = await connect(server, 'alice', { resource: 'desk2' });
  await alice.send(xml('presence'));
  const replied = alice.next((s) => s.is('message') && s.getChildText('body') === 'direct hello', 30000).then((m) =>
    alice.send(xml('message', { to: m.attrs.from!, type: 'chat' }, xml('body', {}, 'got it'))),
  );
  const result = await runSlixmpp('slixmpp_client.py', ['--jid', 'dave@localhost/d', '--password', 'dave-password', '--port', String(server.directPort), '--peer', 'alice@localhost', '--body', 'direct hello', '--direct-tls']);
  await replied;
  t.is(result.code, 0, result.stderr.slice(-2000));
  t.is(result.events.find((e) => e.event === 'message')?.body, 'got it');
  await alice.stop();
});

// Only -PLUS: told to use SCRAM-SHA-512 on TLS, slixmpp sends the gs2 flag 'y' ("I could
// bind"), which a server that offered -PLUS refuses as a downgrade (RFC 5802 §6): auth.test.ts
// and scram-upgrade.test.ts log in with plain SCRAM-SHA-512 from a raw client.
for (const mechanism of ['SCRAM-SHA-512-PLUS'] as const) {
  interop(`slixmpp logs in with ${mechanism} (draft-melnikov-scram-sha-512) and chats`, async (t) => {
    const alice = await connect(server, 'alice', { resource: 'sha512' });
    await alice.send(xml('presence'));
    const body = `hello over ${mechanism}`;
    const replied = alice.next((s) => s.is('message') && s.getChildText('body') === body, 30000).then((m) =>
      alice.send(xml('message', { to: m.attrs.from!, type: 'chat' }, xml('body', {}, 'read you'))),
    );
    const result = await runSlixmpp('slixmpp_client.py', ['--jid', 'dave@localhost/sha512', '--password', 'dave-password', '--port', String(server.port), '--peer', 'alice@localhost', '--body', body, '--mechanism', mechanism]);
    await replied;
    t.is(result.code, 0, result.stderr.slice(-2000));
    t.like(result.events.find((e) => e.event === 'session'), { mechanism });
    t.is(result.events.find((e) => e.event === 'message')?.body, 'read you');
    await alice.stop();
  });
}

interop('slixmpp with a wrong password is refused', async (t) => {
  const result = await runSlixmpp('slixmpp_client.py', ['--jid', 'dave@localhost/d', '--password', 'wrong', '--port', String(server.port), '--peer', 'alice@localhost', '--timeout', '10']);
  t.is(result.code, 1);
  t.truthy(result.events.find((e) => e.event === 'error'));
});

interop("slixmpp's MAM plugin pages through Erin's archive forwards and backwards", async (t) => {
  const alice = await connect(server, 'alice', { resource: 'mam' });
  await alice.send(xml('presence'));
  const sent = Array.from({ length: 7 }, (_, i) => `archived ${i + 1}`);
  for (const body of sent) await alice.send(xml('message', { to: 'erin@localhost', type: 'chat' }, xml('body', {}, body)));
  await alice.request(xml('iq', { type: 'get', to: 'localhost' }, xml('ping', { xmlns: 'urn:xmpp:ping' }))); // all stored by now
  const result = await runSlixmpp('slixmpp_mam.py', ['--jid', 'erin@localhost/slix', '--password', 'erin-password', '--port', String(server.port), '--peer', 'alice@localhost', '--max', '3']);
  t.is(result.code, 0, result.stderr.slice(-2000) + JSON.stringify(result.events));
  t.true((result.events.find((e) => e.event === 'form')?.fields as string[]).includes('with'));
  const forwards = result.events.find((e) => e.event === 'forwards')?.messages as Array<{ id: string; body: string; from: string }>;
  const backwards = result.events.find((e) => e.event === 'backwards')?.messages as Array<{ id: string; body: string }>;
  t.deepEqual(forwards.map((m) => m.body), sent);
  t.true(forwards.every((m) => m.from === 'alice@localhost/mam'));
  t.deepEqual(backwards.map((m) => m.body), [...sent].reverse());
  t.deepEqual(backwards.map((m) => m.id), forwards.map((m) => m.id).reverse());
  await alice.stop();
});
