// Accounts and logging in, over real sockets: in-band registration (XEP-0077) before and after
// login, SASL SCRAM-SHA-1 / SCRAM-SHA-256 / SCRAM-SHA-512 / PLAIN (RFC 6120 §6) over STARTTLS and direct TLS,
// refusals (wrong password, no TLS) and failed-login throttling.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import type Element from 'ltx/lib/Element.js';
import { startServer, PASSWORD, type TestServer } from '../helpers/server.js';
import { client } from '@xmpp/client';
import { connect, RawClient, watchWire, xml } from '../helpers/clients.js';
import {
  NS_SASL, authenticatePlain, authenticateScram, bind, openStream, readElement, type Wire,
} from '../helpers/wire.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // the test server's certificate is self-signed

const NS_REGISTER = 'jabber:iq:register';
const NS_STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';

let server: TestServer;
test.before(async () => {
  // the tests below fail some logins on purpose; throttling gets its own server and test
  server = await startServer({ config: { c2s: { auth_throttle: { per_ip: { attempts: 1000 }, per_account_and_ip: { attempts: 1000 }, per_account: { attempts: 1000 } } } } });
  for (const name of ['alice', 'bob', 'erin', 'frank', 'gina']) await server.createAccount(name);
});
test.after.always(async () => server?.stop());

/** A raw client over STARTTLS with the stream opened, ready for SASL or registration. */
async function secureStream(s: TestServer = server, localAddress?: string): Promise<{ wire: RawClient; features: Element }> {
  const wire = await RawClient.open(s, { localAddress });
  const features = await openStream(wire, s.domain);
  return { wire, features };
}

function mechanismsOf(features: Element): string[] {
  return features.getChild('mechanisms', NS_SASL)?.getChildren('mechanism').map((m) => m.getText()) ?? [];
}

/** The bound raw client pings the server and returns the answer type: proof that the session works. */
async function pingServer(wire: Wire, id: string): Promise<string | undefined> {
  wire.write(`<iq type='get' id='${id}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
  return (await readElement(wire, 'iq', id)).attrs.type;
}

/**
 * Starts @xmpp/client as `username`: resolves with 'success' or the SASL condition it was refused
 * with. (Not the harness's connect(): a refused client must not keep trying to log in again.)
 */
async function loginOutcome(s: TestServer, username: string, password: string): Promise<string> {
  const xmpp = client({ service: `xmpp://127.0.0.1:${s.port}`, domain: s.domain, username, password });
  watchWire(xmpp, `${username}'s login attempt`, 'stream');
  (xmpp as unknown as { reconnect: { stop(): void } }).reconnect.stop();
  xmpp.on('error', () => undefined);
  try {
    await xmpp.start();
    return 'success';
  } catch (err) {
    return (err as { condition?: string }).condition ?? String(err);
  } finally {
    await xmpp.stop().catch(() => undefined);
  }
}

// --- in-band registration before login (XEP-0077 §3.1) ---------------------------------------

test('Dave registers an account in-band after STARTTLS, then logs in with it', async (t) => {
  const { wire, features } = await secureStream();
  t.truthy(features.getChild('register', 'http://jabber.org/features/iq-register'), 'registration is advertised as a stream feature');

  wire.write(`<iq type='get' id='reg-form'><query xmlns='${NS_REGISTER}'/></iq>`);
  const form = await readElement(wire, 'iq', 'reg-form');
  t.is(form.attrs.type, 'result');
  const query = form.getChild('query', NS_REGISTER)!;
  t.truthy(query.getChild('username'), 'the form asks for a username');
  t.truthy(query.getChild('password'), 'the form asks for a password');

  wire.write(`<iq type='set' id='reg-set'><query xmlns='${NS_REGISTER}'><username>dave</username><password>dave's secret</password></query></iq>`);
  const registered = await readElement(wire, 'iq', 'reg-set');
  t.is(registered.attrs.type, 'result');
  wire.close();

  const dave = await connect(server, 'dave', { password: "dave's secret", resource: 'home' });
  t.is(dave.jid, 'dave@localhost/home');
  await dave.stop();
});

test('registering a username that is already taken is refused with conflict', async (t) => {
  const { wire } = await secureStream();
  wire.write(`<iq type='set' id='reg-taken'><query xmlns='${NS_REGISTER}'><username>alice</username><password>not alice's</password></query></iq>`);
  const reply = await readElement(wire, 'iq', 'reg-taken');
  t.is(reply.attrs.type, 'error');
  t.truthy(reply.getChild('error')?.getChild('conflict', NS_STANZAS));
  wire.close();

  const alice = await connect(server, 'alice');
  t.is(alice.jid.split('/')[0], 'alice@localhost', "Alice's account and password are untouched");
  await alice.stop();
});

/** Registers `username` in-band on a fresh stream; the IQ reply's type and error condition. */
async function registerFrom(s: TestServer, username: string): Promise<string> {
  const { wire } = await secureStream(s);
  try {
    wire.write(`<iq type='set' id='reg'><query xmlns='${NS_REGISTER}'><username>${username}</username><password>a good password</password></query></iq>`);
    const reply = await readElement(wire, 'iq', 'reg');
    const error = reply.getChild('error');
    return error === undefined ? reply.attrs.type! : `${error.attrs.type}/${error.children.find((c) => typeof c !== 'string' && c.attrs.xmlns === NS_STANZAS && c.name !== 'text')?.toString().match(/^<([\w-]+)/)?.[1]}`;
  } finally {
    wire.close();
  }
}

// Issue 16.11: loopback was exempt from the registration limit, so a local reverse proxy or a
// script made 4,763 accounts a minute.
test('registrations from this machine are limited like any address unless exempt_loopback is set', async (t) => {
  const limited = await startServer({ config: { modules: { register: { registrations_per_ip: 3 }, disco: true, ping: true } } });
  t.teardown(() => limited.stop());
  for (const name of ['r1', 'r2', 'r3']) t.is(await registerFrom(limited, name), 'result', name);
  t.is(await registerFrom(limited, 'r4'), 'wait/resource-constraint', 'the fourth from 127.0.0.1 within the window is refused');

  const exempt = await startServer({ config: { modules: { register: { registrations_per_ip: 3, exempt_loopback: true }, disco: true, ping: true } } });
  t.teardown(() => exempt.stop());
  for (const name of ['r1', 'r2', 'r3', 'r4']) t.is(await registerFrom(exempt, name), 'result', `${name}, exempt`);
});

// --- logging in --------------------------------------------------------------------------------

test('Alice logs in with SCRAM-SHA-1 and chats with Bob', async (t) => {
  const alice = await connect(server, 'alice', { mechanism: 'SCRAM-SHA-1', resource: 'scram1' });
  const bob = await connect(server, 'bob', { resource: 'scram1' });
  await alice.send(xml('message', { to: 'bob@localhost/scram1', type: 'chat' }, xml('body', {}, 'logged in with SCRAM-SHA-1')));
  const atBob = await bob.next((s) => s.is('message'));
  t.is(atBob.getChildText('body'), 'logged in with SCRAM-SHA-1');
  t.is(atBob.attrs.from, 'alice@localhost/scram1');
  await alice.stop();
  await bob.stop();
});

test('Alice logs in with PLAIN inside TLS', async (t) => {
  const alice = await connect(server, 'alice', { mechanism: 'PLAIN', resource: 'plain' });
  t.is(alice.jid, 'alice@localhost/plain');
  const pong = await alice.request(xml('iq', { type: 'get', to: 'localhost' }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
  t.is(pong.attrs.type, 'result');
  await alice.stop();
});

test('Alice logs in over direct TLS (XEP-0368)', async (t) => {
  const alice = await connect(server, 'alice', { transport: 'direct', resource: 'direct' });
  t.is(alice.jid, 'alice@localhost/direct');
  await alice.stop();
});

test('Alice logs in with SCRAM-SHA-256 over STARTTLS, and the server proves it knows her password', async (t) => {
  const { wire, features } = await secureStream();
  t.true(mechanismsOf(features).includes('SCRAM-SHA-256'));
  const result = await authenticateScram(wire, 'sha256', 'alice');
  t.deepEqual(result, { outcome: 'success', serverSignatureVerified: true });
  t.is(await bind(wire, 'sha256'), 'alice@localhost/sha256');
  t.is(await pingServer(wire, 'after-sha256'), 'result');
  wire.close();
});

test('Alice logs in with SCRAM-SHA-256 over direct TLS, and the server proves it knows her password', async (t) => {
  const wire = await RawClient.openDirect(server);
  const features = await openStream(wire);
  t.falsy(features.getChild('starttls'), 'no STARTTLS on a connection that is already encrypted');
  t.deepEqual(mechanismsOf(features), ['SCRAM-SHA-512-PLUS', 'SCRAM-SHA-256-PLUS', 'SCRAM-SHA-1-PLUS', 'SCRAM-SHA-512', 'SCRAM-SHA-256', 'SCRAM-SHA-1', 'PLAIN'], 'channel binding first, where TLS is ours');
  const result = await authenticateScram(wire, 'sha256', 'alice');
  t.deepEqual(result, { outcome: 'success', serverSignatureVerified: true });
  t.is(await bind(wire, 'sha256-direct'), 'alice@localhost/sha256-direct');
  t.is(await pingServer(wire, 'after-sha256-direct'), 'result');
  wire.close();
});

test('Alice logs in with SCRAM-SHA-512 (draft-melnikov-scram-sha-512), and the server proves it knows her password', async (t) => {
  const { wire, features } = await secureStream();
  t.is(mechanismsOf(features)[mechanismsOf(features).indexOf('SCRAM-SHA-512') + 1], 'SCRAM-SHA-256', 'offered first among the unbound ones');
  const result = await authenticateScram(wire, 'sha512', 'alice');
  t.deepEqual(result, { outcome: 'success', serverSignatureVerified: true });
  t.is(await bind(wire, 'sha512'), 'alice@localhost/sha512');
  t.is(await pingServer(wire, 'after-sha512'), 'result');
  wire.close();
});

test('a wrong password with SCRAM-SHA-512 is refused with not-authorized', async (t) => {
  const { wire } = await secureStream();
  const result = await authenticateScram(wire, 'sha512', 'bob', 'not bobs password');
  t.deepEqual(result, { outcome: 'failure', condition: 'not-authorized' });
  wire.close();
});

test('a wrong password with SCRAM-SHA-256 is refused with not-authorized', async (t) => {
  const { wire } = await secureStream();
  const result = await authenticateScram(wire, 'sha256', 'bob', 'not bobs password');
  t.deepEqual(result, { outcome: 'failure', condition: 'not-authorized' });
  wire.close();
});

test('a wrong password with PLAIN is refused with not-authorized', async (t) => {
  const { wire } = await secureStream();
  const result = await authenticatePlain(wire, 'bob', 'not bobs password');
  t.deepEqual(result, { outcome: 'failure', condition: 'not-authorized' });
  wire.close();
});

test('Bob starting his client with a wrong password is told not-authorized', async (t) => {
  t.is(await loginOutcome(server, 'bob', 'not bobs password'), 'not-authorized');
});

// --- no authentication in the clear ------------------------------------------------------------

test('before STARTTLS no SASL mechanism is offered and <auth/> is refused with encryption-required', async (t) => {
  const wire = await RawClient.open(server, { tls: false });
  const features = await openStream(wire);
  t.truthy(features.getChild('starttls', 'urn:ietf:params:xml:ns:xmpp-tls')?.getChild('required'), 'STARTTLS is required');
  t.deepEqual(mechanismsOf(features), [], 'nothing to authenticate with before TLS');

  const result = await authenticatePlain(wire, 'alice');
  t.deepEqual(result, { outcome: 'failure', condition: 'encryption-required' });
  wire.close();
});

test('where encryption is optional, PLAIN is neither offered nor accepted in the clear', async (t) => {
  const relaxed = await startServer({ config: { c2s: { require_encryption: false } } });
  t.teardown(() => relaxed.stop());
  await relaxed.createAccount('alice');

  const wire = await RawClient.open(relaxed, { tls: false });
  const features = await openStream(wire);
  t.deepEqual(mechanismsOf(features), ['SCRAM-SHA-512', 'SCRAM-SHA-256', 'SCRAM-SHA-1'], 'PLAIN would show the password to the network');
  t.deepEqual(await authenticatePlain(wire, 'alice'), { outcome: 'failure', condition: 'invalid-mechanism' });

  // SCRAM does not reveal the password, so it is allowed in the clear here
  t.deepEqual(await authenticateScram(wire, 'sha256', 'alice'), { outcome: 'success', serverSignatureVerified: true });
  wire.close();
});

// --- throttling --------------------------------------------------------------------------------

test('after 3 failed logins from one address, even the right password gets temporary-auth-failure', async (t) => {
  const guarded = await startServer({ config: { c2s: { auth_throttle: { per_ip: { attempts: 3, window: '1m' } } } } });
  t.teardown(() => guarded.stop());
  await guarded.createAccount('alice');

  for (let attempt = 1; attempt <= 3; attempt++) {
    const { wire } = await secureStream(guarded);
    t.deepEqual(await authenticatePlain(wire, 'alice', `guess ${attempt}`), { outcome: 'failure', condition: 'not-authorized' }, `guess ${attempt}`);
    wire.close();
  }

  const { wire } = await secureStream(guarded);
  t.deepEqual(await authenticatePlain(wire, 'alice', PASSWORD), { outcome: 'failure', condition: 'temporary-auth-failure' });
  t.deepEqual(await authenticateScram(wire, 'sha256', 'alice', PASSWORD), { outcome: 'failure', condition: 'temporary-auth-failure' });
  wire.close();
  t.is(await loginOutcome(guarded, 'alice', PASSWORD), 'temporary-auth-failure');
});

/** PLAIN with `password` from `address` (a loopback address standing for another machine): the outcome. */
async function plainFrom(s: TestServer, address: string, username: string, password: string): Promise<string> {
  const { wire } = await secureStream(s, address);
  try {
    const result = await authenticatePlain(wire, username, password);
    return result.outcome === 'success' ? 'success' : result.condition;
  } finally {
    wire.close();
  }
}

// Issue 16.3: five wrong passwords from anyone who knew the JID locked the owner out for a
// minute, again and again. The guesser's address is refused, not the account.
test('five wrong passwords from a guesser refuse the guesser, not Alice logging in from her own machine', async (t) => {
  const guarded = await startServer(); // default limits
  t.teardown(() => guarded.stop());
  await guarded.createAccount('alice');

  for (let guess = 1; guess <= 5; guess++) {
    t.is(await plainFrom(guarded, '127.0.0.2', 'alice', `guess ${guess}`), 'not-authorized', `guess ${guess}`);
  }
  t.is(await plainFrom(guarded, '127.0.0.2', 'alice', PASSWORD), 'temporary-auth-failure', 'the guesser is refused, even with the right password');
  t.is(await plainFrom(guarded, '127.0.0.1', 'alice', PASSWORD), 'success', 'Alice, from another address, logs in');
  t.is(await loginOutcome(guarded, 'alice', PASSWORD), 'success', 'and so does her SCRAM client');
});

test('many addresses guessing one account slow each other down but never refuse the owner', async (t) => {
  const guarded = await startServer({ config: { c2s: { auth_throttle: { per_account: { attempts: 3 } } } } });
  t.teardown(() => guarded.stop());
  await guarded.createAccount('alice');

  // four machines, one guess each: past the account's soft limit of 3, a failure is delayed
  for (const address of ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5']) {
    t.is(await plainFrom(guarded, address, 'alice', 'a guess'), 'not-authorized', address);
  }
  t.is(await plainFrom(guarded, '127.0.0.6', 'alice', PASSWORD), 'success', 'a right password is never refused for the account');
});

test('each failed login is logged with the address and the account, in the line the README\'s fail2ban filter matches', async (t) => {
  const logFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-auth-log-')), 'xmppd.log');
  const guarded = await startServer({ logFile, config: { c2s: { auth_throttle: { per_account_and_ip: { attempts: 2 } } } } });
  t.teardown(() => guarded.stop());
  await guarded.createAccount('alice');

  t.is(await plainFrom(guarded, '127.0.0.7', 'alice', 'wrong'), 'not-authorized');
  t.is(await plainFrom(guarded, '127.0.0.7', 'alice', 'wrong again'), 'not-authorized');
  t.is(await plainFrom(guarded, '127.0.0.7', 'alice', PASSWORD), 'temporary-auth-failure');
  const log = fs.readFileSync(logFile, 'utf8');
  // the README's filter: failregex = authentication (failed|throttled) from <HOST> for
  const failregex = /authentication (failed|throttled) from (\S+) for (\S+)"/g;
  const matches = [...log.matchAll(failregex)].map((m) => [m[1], m[2], m[3]]);
  t.deepEqual(matches, [
    ['failed', '127.0.0.7', 'alice@localhost'],
    ['failed', '127.0.0.7', 'alice@localhost'],
    ['throttled', '127.0.0.7', 'alice@localhost'],
  ]);
});

// --- the account after login (XEP-0077 §3.2, §3.3) ---------------------------------------------

// XEP-0077 §3.3 addresses the password change to the server (to='shakespeare.lit'), and that is
// what clients send (Conversations, Gajim).
test('Erin changes her password with an IQ to the server, as XEP-0077 §3.3 shows', async (t) => {
  const erin = await connect(server, 'erin', { resource: 'old' });
  t.teardown(() => erin.stop());
  const reply = await erin.request(
    xml('iq', { type: 'set', to: 'localhost' }, xml('query', { xmlns: NS_REGISTER }, xml('username', {}, 'erin'), xml('password', {}, 'erins new password'))),
  );
  t.is(reply.attrs.type, 'result');
  await erin.stop();
  t.is(await loginOutcome(server, 'erin', PASSWORD), 'not-authorized', 'the old password no longer works');
  const again = await connect(server, 'erin', { password: 'erins new password' });
  t.truthy(again.jid);
  await again.stop();
});

test('Gina changes her password in-band; the old one stops working and the new one works', async (t) => {
  const gina = await connect(server, 'gina', { resource: 'old' });
  const reply = await gina.request(
    xml('iq', { type: 'set' }, xml('query', { xmlns: NS_REGISTER }, xml('username', {}, 'gina'), xml('password', {}, 'ginas new password'))),
  );
  t.is(reply.attrs.type, 'result');
  await gina.stop();

  t.is(await loginOutcome(server, 'gina', PASSWORD), 'not-authorized', 'the old password no longer works');
  const again = await connect(server, 'gina', { password: 'ginas new password', resource: 'new' });
  t.is(again.jid, 'gina@localhost/new');
  await again.stop();
});

test('Frank removes his account in-band; his stream ends and he can no longer log in', async (t) => {
  const frank = await connect(server, 'frank', { resource: 'leaving' });
  const disconnected = new Promise<void>((resolve) => frank.xmpp.on('disconnect', () => resolve()));
  const errors: string[] = [];
  frank.xmpp.on('error', (err: unknown) => errors.push((err as { condition?: string }).condition ?? String(err)));
  // the account is gone after this: don't let the client try to log back in
  (frank.xmpp as unknown as { reconnect?: { stop(): void } }).reconnect?.stop();

  const reply = await frank.request(xml('iq', { type: 'set' }, xml('query', { xmlns: NS_REGISTER }, xml('remove'))));
  t.is(reply.attrs.type, 'result');
  await Promise.race([disconnected, new Promise((resolve) => setTimeout(resolve, 5000))]);
  t.true(errors.includes('not-authorized'), `the server ends the stream with not-authorized (got: ${errors.join(', ')})`);
  await frank.stop();

  t.is(await loginOutcome(server, 'frank', PASSWORD), 'not-authorized');
  const { wire } = await secureStream();
  t.deepEqual(await authenticateScram(wire, 'sha256', 'frank'), { outcome: 'failure', condition: 'not-authorized' });
  wire.close();
});
