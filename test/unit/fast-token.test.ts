// XEP-0484 tokens are stored as SHA-256 of the token (src/modules/fast/store.ts). That is enough
// to check the HT mechanisms' HMACs only because HMAC hashes a key longer than its block first
// (RFC 2104 §2): these tests hold the token length to that, and the Bind2 resource to its shape.
import crypto from 'node:crypto';
import test from 'ava';
import { newToken, tokenKey } from '../../src/modules/fast/store.js';
import { htHash } from '../../src/c2s/sasl/negotiation.js';
import { bind2Resource } from '../../src/c2s/features/bind2.js';

test('a token is longer than the HMAC-SHA-256 block, so its SHA-256 keys the same HMAC as the token itself', (t) => {
  for (let i = 0; i < 20; i++) {
    const { token, key } = newToken();
    t.true(Buffer.byteLength(token, 'utf8') > 64);
    t.deepEqual(key, tokenKey(token));
    const cb = crypto.randomBytes(32);
    const byToken = crypto.createHmac('sha256', Buffer.from(token, 'utf8')).update('Initiator').update(cb).digest();
    t.deepEqual(htHash(key, 'Initiator', cb), byToken);
  }
});

test('Bind2 resources: tag plus a suffix, stable per user agent, random without one', (t) => {
  const a = bind2Resource('Conversations', 'alice@localhost', 'ua-1');
  t.regex(a, /^Conversations\.[A-Za-z0-9_-]{8}$/);
  t.is(bind2Resource('Conversations', 'alice@localhost', 'ua-1'), a, 'the same installation, the same resource');
  t.not(bind2Resource('Conversations', 'alice@localhost', 'ua-2'), a);
  t.not(bind2Resource('Conversations', 'bob@localhost', 'ua-1'), a, 'the suffix names nothing across accounts');
  t.not(bind2Resource('phone', 'alice@localhost', null), bind2Resource('phone', 'alice@localhost', null));
  t.regex(bind2Resource(null, 'alice@localhost', null), /^[A-Za-z0-9_-]{8}$/);
  t.regex(bind2Resource(' my / phone ', 'alice@localhost', null), /^myphone\./, 'no spaces or slashes from the tag');
});
