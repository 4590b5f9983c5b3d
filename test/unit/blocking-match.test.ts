// Which addresses a block list item covers (XEP-0191 §4, the order of XEP-0016).
import test from 'ava';
import { matches } from '../../src/modules/blocking/index.js';
import { parseJid } from '../../src/core/jid.js';

const blocks = (items: string[], jid: string) => matches(new Set(items), parseJid(jid)!);

test('a full JID item covers that resource only', (t) => {
  t.true(blocks(['eve@example.com/phone'], 'eve@example.com/phone'));
  t.false(blocks(['eve@example.com/phone'], 'eve@example.com/laptop'));
  t.false(blocks(['eve@example.com/phone'], 'eve@example.com'));
});

test('a bare JID item covers every resource of the account', (t) => {
  t.true(blocks(['eve@example.com'], 'eve@example.com'));
  t.true(blocks(['eve@example.com'], 'eve@example.com/laptop'));
  t.false(blocks(['eve@example.com'], 'bob@example.com/laptop'));
  t.false(blocks(['eve@example.com'], 'example.com'));
});

test('a domain/resource item covers that resource of the domain and of its users', (t) => {
  t.true(blocks(['example.com/bot'], 'example.com/bot'));
  t.true(blocks(['example.com/bot'], 'eve@example.com/bot'));
  t.false(blocks(['example.com/bot'], 'eve@example.com/phone'));
});

test('a domain item covers the domain, its users and its subdomains, not look-alikes', (t) => {
  t.true(blocks(['example.com'], 'example.com'));
  t.true(blocks(['example.com'], 'eve@example.com/phone'));
  t.true(blocks(['example.com'], 'room@conference.example.com/nick'));
  t.false(blocks(['example.com'], 'eve@badexample.com'));
  t.false(blocks(['example.com'], 'eve@example.org'));
  t.false(blocks([], 'eve@example.com'));
});
