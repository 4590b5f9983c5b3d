import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { ScramServerExchange, authzidIsOwnBareJid, downgradeProtectionHash } from '../../src/c2s/sasl/scram.js';
import { endPointHash, type ChannelBinding } from '../../src/c2s/sasl/channel-binding.js';
import { parsePlain } from '../../src/c2s/sasl/plain.js';
import { offeredMechanisms } from '../../src/c2s/sasl/negotiation.js';
import {
  type ScramCredentials,
  type ScramHash,
  computeScramCredentials,
  credentialsFromSaltedPassword,
  deriveScramCredentials,
  verifyPassword,
} from '../../src/accounts/credentials.js';

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const text = (b: Buffer) => b.toString('utf8');

/** A server whose user database holds exactly the given accounts. */
function serverFor(hash: ScramHash, accounts: Record<string, ScramCredentials>, serverNonce?: string) {
  const looked: string[] = [];
  const exchange = new ScramServerExchange(
    hash,
    async (username) => {
      looked.push(username);
      return accounts[username] ?? null;
    },
    serverNonce === undefined ? {} : { serverNonce },
  );
  return { exchange, looked };
}

/**
 * A SCRAM client written straight from RFC 5802 §3 with node:crypto, independent of the server
 * code, so that the two check each other. Runs the whole exchange and verifies the server's
 * signature on success.
 */
async function runClient(
  exchange: ScramServerExchange,
  hash: ScramHash,
  opts: { username: string; password: string; gs2Header?: string; cbData?: Buffer; tamper?: (clientFinal: string) => string },
) {
  const gs2Header = opts.gs2Header ?? 'n,,';
  const escaped = opts.username.replace(/=/g, '=3D').replace(/,/g, '=2C');
  const clientFirstBare = `n=${escaped},r=${crypto.randomBytes(12).toString('base64')}`;
  const first = await exchange.start(Buffer.from(gs2Header + clientFirstBare));
  if ('failure' in first) return { step: 'start' as const, failure: first.failure };

  const serverFirst = text(first.challenge);
  const attrs = Object.fromEntries(serverFirst.split(',').map((a) => [a[0], a.slice(2)]));
  const len = { sha1: 20, sha256: 32, sha512: 64 }[hash];
  const salted = crypto.pbkdf2Sync(opts.password, Buffer.from(attrs.s!, 'base64'), Number(attrs.i), len, hash);
  const clientKey = crypto.createHmac(hash, salted).update('Client Key').digest();
  const storedKey = crypto.createHash(hash).update(clientKey).digest();
  const cbindInput = Buffer.concat([Buffer.from(gs2Header), opts.cbData ?? Buffer.alloc(0)]);
  const withoutProof = `c=${cbindInput.toString('base64')},r=${attrs.r}`;
  const authMessage = `${clientFirstBare},${serverFirst},${withoutProof}`;
  const signature = crypto.createHmac(hash, storedKey).update(authMessage).digest();
  const proof = Buffer.from(clientKey.map((byte, i) => byte ^ signature[i]!));
  let clientFinal = `${withoutProof},p=${proof.toString('base64')}`;
  if (opts.tamper) clientFinal = opts.tamper(clientFinal);

  const final = exchange.finish(Buffer.from(clientFinal));
  if ('failure' in final) return { step: 'finish' as const, failure: final.failure, serverFirst };
  const serverKey = crypto.createHmac(hash, salted).update('Server Key').digest();
  const expected = crypto.createHmac(hash, serverKey).update(authMessage).digest('base64');
  return { step: 'success' as const, verified: text(final.success) === `v=${expected}`, ...final, serverFirst };
}

// --- The RFC test vectors --------------------------------------------------------------------

test('RFC 5802 §5: SCRAM-SHA-1 example exchange for user/pencil', async (t) => {
  const creds = await computeScramCredentials('pencil', 'sha1', Buffer.from('QSXCR+Q6sek8bf92', 'base64'), 4096);
  const { exchange } = serverFor('sha1', { user: creds }, '3rfcNHYJY1ZVvWVs7j');

  const first = await exchange.start(Buffer.from('n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL'));
  t.deepEqual(
    'challenge' in first && text(first.challenge),
    'r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096',
  );
  const final = exchange.finish(
    Buffer.from('c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts='),
  );
  t.deepEqual(final, { success: Buffer.from('v=rmF9pqV8S7suAoZWja4dJRkFsKQ='), username: 'user', authzid: '' });
});

test('RFC 7677 §3: SCRAM-SHA-256 example exchange for user/pencil', async (t) => {
  const creds = await computeScramCredentials('pencil', 'sha256', Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64'), 4096);
  const { exchange } = serverFor('sha256', { user: creds }, '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0');

  const first = await exchange.start(Buffer.from('n,,n=user,r=rOprNGfwEbeRWgbNEkqO'));
  t.deepEqual(
    'challenge' in first && text(first.challenge),
    'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
  );
  const final = exchange.finish(
    Buffer.from(
      'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
    ),
  );
  t.deepEqual(final, {
    success: Buffer.from('v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4='),
    username: 'user',
    authzid: '',
  });
});

// draft-melnikov-scram-sha-512 has no example exchange: this is RFC 7677's with SHA-512, every
// value computed independently with Python's hashlib and hmac (pbkdf2_hmac('sha512', ...)).
const SHA512_VECTOR = {
  salted: '8W7+G+Z/HQlQLr1e2SYv3f+6Wjd6tPC2h+XtW6D1Boa4pK4WZHbairO5UdL6kji2OZj0VGG8M6RkgUlJzsljHQ==',
  storedKey: '6AAub3065EYRmyFpM2RNwqK+eGnrkYuEWbXn19LsEmBqzu8QaCXNc1FwpnX9NhH2hK/60dzj9DoO5DvVkOHbvg==',
  serverKey: 'jZHbYjC1aHh0/hKbxyBuGFjDrgjgKTT1esA7awWiKcRZ0o/0b1yWEebBeSVkkCFewf91nLDfKF24mvD5nmE6rA==',
  proof: 'gMGXRcevScNtxZ6/8lQYpGtnsNAc3mGcmNomv+xnoOMw+3R2xNJdMNnzMlTN8PPC6wdp6dybEmDYXYTxwnYPJQ==',
  signature: 'ZQnYEgWQMFmmsM8aQMF0nDDCy/AgCzkwk8CmMZYcMg0vSVlKDanekLtifDSeVGT4+5ZxXnJq199RVG2rR7N7Zw==',
};

test('SCRAM-SHA-512: the RFC 7677 §3 exchange for user/pencil with SHA-512, against a computed vector', async (t) => {
  const salt = Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64');
  const creds = await computeScramCredentials('pencil', 'sha512', salt, 4096);
  t.deepEqual(creds, { salt: 'W22ZaJ0SNY7soEsUEjb6gQ==', iterations: 4096, storedKey: SHA512_VECTOR.storedKey, serverKey: SHA512_VECTOR.serverKey });
  const { exchange } = serverFor('sha512', { user: creds }, '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0');
  t.is(exchange.mechanism, 'SCRAM-SHA-512');

  const first = await exchange.start(Buffer.from('n,,n=user,r=rOprNGfwEbeRWgbNEkqO'));
  t.deepEqual('challenge' in first && text(first.challenge), 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096');
  const final = exchange.finish(Buffer.from(`c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=${SHA512_VECTOR.proof}`));
  t.deepEqual(final, { success: Buffer.from(`v=${SHA512_VECTOR.signature}`), username: 'user', authzid: '' });
});

test('SCRAM-SHA-512: a SHA-256-sized proof is malformed, a wrong one not-authorized', async (t) => {
  const creds = await computeScramCredentials('pencil', 'sha512', Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64'), 4096);
  const nonce = 'rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0';
  for (const [proof, condition] of [[Buffer.alloc(32, 1), 'malformed-request'], [Buffer.alloc(64, 1), 'not-authorized']] as const) {
    const { exchange } = serverFor('sha512', { user: creds }, '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0');
    await exchange.start(Buffer.from('n,,n=user,r=rOprNGfwEbeRWgbNEkqO'));
    const final = exchange.finish(Buffer.from(`c=biws,r=${nonce},p=${proof.toString('base64')}`));
    t.like('failure' in final ? final.failure : final, { condition });
  }
});

test('XEP-0480: the keys of a SaltedPassword sent by the client are those of the password', (t) => {
  const keys = credentialsFromSaltedPassword(Buffer.from(SHA512_VECTOR.salted, 'base64'), Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64'), 4096, 'sha512');
  t.deepEqual(keys, { salt: 'W22ZaJ0SNY7soEsUEjb6gQ==', iterations: 4096, storedKey: SHA512_VECTOR.storedKey, serverKey: SHA512_VECTOR.serverKey });
});

test('the mechanisms offered: strongest first, -PLUS where the channel binds, only the hashes every account has', (t) => {
  const binding: ChannelBinding = { types: ['tls-exporter'], data: () => Buffer.alloc(32) };
  t.deepEqual(offeredMechanisms(true, binding), [
    'SCRAM-SHA-512-PLUS', 'SCRAM-SHA-256-PLUS', 'SCRAM-SHA-1-PLUS', 'SCRAM-SHA-512', 'SCRAM-SHA-256', 'SCRAM-SHA-1', 'PLAIN',
  ]);
  t.deepEqual(offeredMechanisms(true, binding, ['sha1']), ['SCRAM-SHA-1-PLUS', 'SCRAM-SHA-1', 'PLAIN'], 'a host with SHA-1-only accounts');
  t.deepEqual(offeredMechanisms(false, null, ['sha512', 'sha1', 'sha256']), ['SCRAM-SHA-512', 'SCRAM-SHA-256', 'SCRAM-SHA-1'], 'no PLAIN in the clear');
  t.deepEqual(offeredMechanisms(true, null, []), ['PLAIN'], 'no hash common to all accounts: PLAIN only');
});

// --- Full exchanges with derived credentials ---------------------------------------------------

for (const hash of ['sha1', 'sha256', 'sha512'] as const) {
  test(`${hash}: Alice logs in with her password and verifies the server signature`, async (t) => {
    const { exchange } = serverFor(hash, { alice: await deriveScramCredentials('wonderland', hash) });
    const result = await runClient(exchange, hash, { username: 'alice', password: 'wonderland' });
    t.is(result.step, 'success');
    t.like(result, { verified: true, username: 'alice', authzid: '' });
  });

  test(`${hash}: a wrong password is not-authorized`, async (t) => {
    const { exchange } = serverFor(hash, { alice: await deriveScramCredentials('wonderland', hash) });
    const result = await runClient(exchange, hash, { username: 'alice', password: 'looking-glass' });
    t.deepEqual(result.failure, { condition: 'not-authorized' });
    t.is(result.step, 'finish');
  });
}

test('an unknown user gets a normal-looking, stable challenge and fails only at the end', async (t) => {
  const alice = await deriveScramCredentials('wonderland', 'sha256');
  const attempt = () => runClient(serverFor('sha256', { alice }).exchange, 'sha256', { username: 'mallory', password: 'x' });
  const one = await attempt();
  const two = await attempt();
  t.is(one.step, 'finish');
  t.deepEqual(one.failure, { condition: 'not-authorized' }); // the same answer as a wrong password
  const salt = (m: string | undefined) => /,s=([^,]+),i=(\d+)$/.exec(m ?? '')?.slice(1);
  t.is(Buffer.from(salt(one.serverFirst)![0]!, 'base64').length, 16);
  t.is(salt(one.serverFirst)![1], '4096');
  t.deepEqual(salt(one.serverFirst), salt(two.serverFirst), 'the same salt each time, like a real account');
});

test('the GS2 flag y (client could bind, thinks we cannot) is accepted, since no -PLUS is offered', async (t) => {
  const { exchange } = serverFor('sha1', { alice: await deriveScramCredentials('wonderland', 'sha1') });
  const result = await runClient(exchange, 'sha1', { username: 'alice', password: 'wonderland', gs2Header: 'y,,' });
  t.like(result, { step: 'success', verified: true });
});

test('the GS2 flag p= (client requires channel binding) is refused', async (t) => {
  const { exchange } = serverFor('sha1', { alice: await deriveScramCredentials('wonderland', 'sha1') });
  const result = await exchange.start(Buffer.from('p=tls-exporter,,n=alice,r=abcdef'));
  t.like(result, { failure: { condition: 'malformed-request' } });
});

test('a gs2 header that changed between the messages (c= mismatch) is not-authorized', async (t) => {
  const { exchange } = serverFor('sha1', { alice: await deriveScramCredentials('wonderland', 'sha1') });
  const result = await runClient(exchange, 'sha1', {
    username: 'alice',
    password: 'wonderland',
    gs2Header: 'y,,',
    tamper: (m) => m.replace(/^c=[^,]+/, `c=${b64('n,,')}`),
  });
  t.like(result, { step: 'finish', failure: { condition: 'not-authorized' } });
});

test('a tampered nonce in the client-final-message is not-authorized', async (t) => {
  const { exchange } = serverFor('sha256', { alice: await deriveScramCredentials('wonderland', 'sha256') });
  const result = await runClient(exchange, 'sha256', {
    username: 'alice',
    password: 'wonderland',
    tamper: (m) => m.replace(/,r=([^,]+)/, ',r=$1X'),
  });
  t.like(result, { step: 'finish', failure: { condition: 'not-authorized' } });
});

test('malformed client-first-messages are malformed-request', async (t) => {
  const bad = [
    Buffer.alloc(0),
    Buffer.from('n,,'),
    Buffer.from('x,,n=alice,r=abc'),
    Buffer.from('n,b=alice,n=alice,r=abc'),
    Buffer.from('n,,r=abc,n=alice'),
    Buffer.from('n,,n=alice'),
    Buffer.from('n,,n=,r=abc'),
    Buffer.from('n,,n=al=ice,r=abc'), // '=' not followed by 2C or 3D
    Buffer.from('n,,m=ext,n=alice,r=abc'), // RFC 5802 §5.1: unknown mandatory extension
    Buffer.from('n,,n=alice,r='),
    Buffer.from('n,,n=alice,r=ab\u00e9c'), // the nonce must be printable ASCII
    Buffer.from('n,,n=ali\u0007ce,r=abc'), // SASLprep prohibits control characters
    Buffer.from([0x6e, 0x2c, 0x2c, 0x6e, 0x3d, 0xff, 0x2c, 0x72, 0x3d, 0x61]), // not UTF-8
  ];
  for (const message of bad) {
    const { exchange, looked } = serverFor('sha1', {});
    t.like(await exchange.start(message), { failure: { condition: 'malformed-request' } }, JSON.stringify(text(message)));
    t.deepEqual(looked, [], 'no lookup for a malformed message');
  }
});

test('malformed client-final-messages are malformed-request', async (t) => {
  const alice = await deriveScramCredentials('wonderland', 'sha1');
  const tampers: Array<(m: string) => string> = [
    (m) => m.replace(/,p=.*$/, ''), // no proof
    (m) => m.replace(/,p=.*$/, ',p=!!!!'), // proof not base64
    (m) => m.replace(/,p=.*$/, `,p=${Buffer.alloc(32).toString('base64')}`), // wrong length for SHA-1
    (m) => m.replace(/^c=[^,]+,/, ''), // no channel binding attribute
    (m) => m.replace(/^c=[^,]+,r=[^,]+,/, ''), // no c= and no r=
  ];
  for (const tamper of tampers) {
    const { exchange } = serverFor('sha1', { alice });
    const result = await runClient(exchange, 'sha1', { username: 'alice', password: 'wonderland', tamper });
    t.like(result, { step: 'finish', failure: { condition: 'malformed-request' } });
  }
});

test('messages out of order are malformed-request', async (t) => {
  const alice = await deriveScramCredentials('wonderland', 'sha1');
  const early = serverFor('sha1', { alice }).exchange;
  t.like(early.finish(Buffer.from('c=biws,r=abc,p=AAAA')), { failure: { condition: 'malformed-request' } });

  const twice = serverFor('sha1', { alice }).exchange;
  t.true('challenge' in (await twice.start(Buffer.from('n,,n=alice,r=abc'))));
  t.like(await twice.start(Buffer.from('n,,n=alice,r=abc')), { failure: { condition: 'malformed-request' } });

  // One exchange is one attempt: after a success, replaying the final message fails.
  const replay = serverFor('sha1', { alice }).exchange;
  let final = '';
  const result = await runClient(replay, 'sha1', {
    username: 'alice',
    password: 'wonderland',
    tamper: (m) => (final = m),
  });
  t.is(result.step, 'success');
  t.like(replay.finish(Buffer.from(final)), { failure: { condition: 'malformed-request' } });
});

test('a failing user store is temporary-auth-failure', async (t) => {
  const exchange = new ScramServerExchange('sha1', async () => {
    throw new Error('database is down');
  });
  t.deepEqual(await exchange.start(Buffer.from('n,,n=alice,r=abc')), {
    failure: { condition: 'temporary-auth-failure' },
  });
});

test('usernames arrive decoded (=2C, =3D) and SASLprepped', async (t) => {
  const odd = serverFor('sha1', {});
  await odd.exchange.start(Buffer.from('n,,n=a=2Cb=3Dc,r=abc'));
  t.deepEqual(odd.looked, ['a,b=c']);

  const softHyphen = serverFor('sha1', {}); // RFC 4013 §3: U+00AD maps to nothing
  await softHyphen.exchange.start(Buffer.from('n,,n=al\u00adice,r=abc'));
  t.deepEqual(softHyphen.looked, ['alice']);
});

test('passwords are SASLprepped: I<U+00AD>X is the same password as IX (RFC 4013 §3)', async (t) => {
  const { exchange } = serverFor('sha256', { alice: await deriveScramCredentials('I\u00adX', 'sha256') });
  const result = await runClient(exchange, 'sha256', { username: 'alice', password: 'IX' });
  t.like(result, { step: 'success', verified: true });
});

test('the authzid is handed back so the caller can check it is the bare JID', async (t) => {
  const { exchange } = serverFor('sha1', { alice: await deriveScramCredentials('wonderland', 'sha1') });
  const result = await runClient(exchange, 'sha1', {
    username: 'alice',
    password: 'wonderland',
    gs2Header: 'n,a=alice@example.com,',
  });
  t.like(result, { step: 'success', verified: true, authzid: 'alice@example.com' });
  t.true(authzidIsOwnBareJid('alice@example.com', 'alice', 'example.com'));
  t.true(authzidIsOwnBareJid('', 'alice', 'example.com'));
  t.true(authzidIsOwnBareJid('Alice@Example.COM', 'alice', 'example.com'));
  t.false(authzidIsOwnBareJid('bob@example.com', 'alice', 'example.com'));
  t.false(authzidIsOwnBareJid('alice@example.com/phone', 'alice', 'example.com'));
});

test('deriveScramCredentials makes a fresh 16-byte salt each time and keeps the count', async (t) => {
  const a = await deriveScramCredentials('wonderland', 'sha256', 5000);
  const b = await deriveScramCredentials('wonderland', 'sha256', 5000);
  t.is(Buffer.from(a.salt, 'base64').length, 16);
  t.not(a.salt, b.salt);
  t.not(a.storedKey, b.storedKey);
  t.is(a.iterations, 5000);
  t.is(Buffer.from(a.storedKey, 'base64').length, 32);
  t.is(Buffer.from(a.serverKey, 'base64').length, 32);
  await t.throwsAsync(deriveScramCredentials('bad\u0007password', 'sha1'), { message: /password cannot be used/ });
});

test('key derivation does not block the event loop', async (t) => {
  let ticked = false;
  setImmediate(() => (ticked = true));
  await deriveScramCredentials('wonderland', 'sha256', 200_000);
  t.true(ticked);
});

// --- PLAIN -----------------------------------------------------------------------------------

test('PLAIN: authzid, username and password are split at NUL and SASLprepped', (t) => {
  t.deepEqual(parsePlain(Buffer.from('\0alice\0wonderland')), { authzid: '', username: 'alice', password: 'wonderland' });
  t.deepEqual(parsePlain(Buffer.from('alice@example.com\0al\u00adice\0I\u00adX')), {
    authzid: 'alice@example.com',
    username: 'alice',
    password: 'IX',
  });
});

test('PLAIN: malformed messages are malformed-request', (t) => {
  for (const bad of ['alice\0wonderland', '\0\0wonderland', '\0alice\0', 'a\0b\0c\0d', '\0ali\u0007ce\0pw']) {
    t.like(parsePlain(Buffer.from(bad)), { condition: 'malformed-request' }, JSON.stringify(bad));
  }
  t.like(parsePlain(Buffer.from([0, 0x61, 0, 0xff])), { condition: 'malformed-request' });
});

test('PLAIN: the password is checked against the stored SCRAM keys', async (t) => {
  for (const hash of ['sha1', 'sha256'] as const) {
    const creds = await deriveScramCredentials('wonderland', hash);
    t.true(await verifyPassword('wonderland', creds, hash));
    t.false(await verifyPassword('looking-glass', creds, hash));
  }
});

// --- Channel binding (-PLUS) and XEP-0474 ------------------------------------------------------

test('XEP-0474 §6.3 example: the downgrade protection hash of SCRAM-SHA-1(-PLUS) with two binding types', (t) => {
  t.is(downgradeProtectionHash('sha1', ['SCRAM-SHA-1-PLUS', 'SCRAM-SHA-1'], ['tls-exporter', 'tls-server-end-point']), 'G6k/rBLDqgOhRRaCuuatSDFkJ08=');
});

/** A connection whose only binding is tls-exporter with fixed data. */
const exporterBinding: ChannelBinding = {
  types: ['tls-exporter'],
  data: (type) => (type === 'tls-exporter' ? Buffer.alloc(32, 7) : null),
};

test('-PLUS: the gs2 header and the channel binding data must both be in c=', async (t) => {
  const alice = await deriveScramCredentials('wonderland', 'sha256');
  const plus = () => new ScramServerExchange('sha256', async () => alice, { plus: true, channelBinding: exporterBinding });
  const good = await runClient(plus(), 'sha256', { username: 'alice', password: 'wonderland', gs2Header: 'p=tls-exporter,,', cbData: Buffer.alloc(32, 7) });
  t.like(good, { step: 'success', verified: true });
  const headerOnly = await runClient(plus(), 'sha256', { username: 'alice', password: 'wonderland', gs2Header: 'p=tls-exporter,,' });
  t.like(headerOnly, { step: 'finish', failure: { condition: 'not-authorized' } });
  // another connection's data (a relay in the middle): the client's proof is valid for it, the binding is not
  const relayed = await runClient(plus(), 'sha256', { username: 'alice', password: 'wonderland', gs2Header: 'p=tls-exporter,,', cbData: Buffer.alloc(32, 8) });
  t.like(relayed, { step: 'finish', failure: { condition: 'not-authorized' } });
});

test('-PLUS refuses n, y and types the connection does not have; without -PLUS, y is a downgrade when binding was offered', async (t) => {
  const alice = await deriveScramCredentials('wonderland', 'sha256');
  const start = (plus: boolean, first: string) => new ScramServerExchange('sha256', async () => alice, { plus, channelBinding: exporterBinding }).start(Buffer.from(first));
  t.like(await start(true, 'n,,n=alice,r=abc'), { failure: { condition: 'malformed-request' } });
  t.like(await start(true, 'y,,n=alice,r=abc'), { failure: { condition: 'malformed-request' } });
  t.like(await start(true, 'p=tls-unique,,n=alice,r=abc'), { failure: { condition: 'malformed-request' } });
  t.like(await start(false, 'y,,n=alice,r=abc'), { failure: { condition: 'not-authorized' } });
  t.like(await start(false, 'p=tls-exporter,,n=alice,r=abc'), { failure: { condition: 'malformed-request' } });
  t.truthy('challenge' in (await start(false, 'n,,n=alice,r=abc')), 'n is fine: the client cannot bind');
});

test('tls-server-end-point hashes: SHA-256 for ECDSA P-256 and for SHA-1 signatures, SHA-384 and SHA-512 where signed so', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-endpoint-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const make = (name: string, keyArgs: string[], digestName: string) => {
    const file = path.join(dir, `${name}.der`);
    execFileSync('openssl', ['req', '-x509', '-newkey', ...keyArgs, '-nodes', '-keyout', path.join(dir, `${name}.key`), '-outform', 'DER', '-out', file, `-${digestName}`, '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' });
    return fs.readFileSync(file);
  };
  t.is(endPointHash(make('ec256', ['ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], 'sha256')), 'sha256');
  t.is(endPointHash(make('ec384', ['ec', '-pkeyopt', 'ec_paramgen_curve:P-384'], 'sha384')), 'sha384');
  t.is(endPointHash(make('rsa512', ['rsa:2048'], 'sha512')), 'sha512');
  t.is(endPointHash(make('rsa1', ['rsa:2048'], 'sha1')), 'sha256', 'RFC 5929 §4.1: SHA-1 is replaced by SHA-256');
  t.is(endPointHash(Buffer.from('not a certificate')), null);
});
