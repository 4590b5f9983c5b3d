// src/core/jid.ts: addresses as RFC 7622 has them, on the ASCII fast path and off it.
import test from 'ava';
import { parseJid } from '../../src/core/jid.js';

test('localpart and domain are case-folded, the resource is kept as it is', (t) => {
  const jid = parseJid('Alice@Example.COM/Phone')!;
  t.is(jid.local, 'alice');
  t.is(jid.domain, 'example.com');
  t.is(jid.resource, 'Phone');
  t.is(jid.toString(), 'alice@example.com/Phone');
});

test('non-ASCII parts are put in NFC and folded', (t) => {
  const decomposed = 'Jose\u0301@example.com/cafe\u0301'; // e + combining acute accent
  const jid = parseJid(decomposed)!;
  t.is(jid.local, 'jos\u00e9');
  t.is(jid.resource, 'caf\u00e9');
  t.is(parseJid('\u00c9LODIE@example.com')!.local, '\u00e9lodie');
});

test('each part is at most 1023 bytes, counted in UTF-8', (t) => {
  t.truthy(parseJid(`${'a'.repeat(1023)}@example.com/${'r'.repeat(1023)}`));
  t.is(parseJid(`${'a'.repeat(1024)}@example.com`), null);
  t.is(parseJid(`a@example.com/${'r'.repeat(1024)}`), null);
  t.truthy(parseJid(`${'\u00e9'.repeat(511)}@example.com`)); // 1022 bytes
  t.is(parseJid(`${'\u00e9'.repeat(512)}@example.com`), null); // 1024 bytes in 512 characters
  t.is(parseJid(`a@example.com/${'\u00e9'.repeat(512)}`), null);
});

test('forbidden characters and empty parts are refused', (t) => {
  for (const bad of ['a b@example.com', 'a"b@example.com', '@example.com', 'a@example.com/', 'a@exa mple.com', 'a@example.com/x\u0007y', "a'b@example.com"]) {
    t.is(parseJid(bad), null, bad);
  }
});
