// Parsing XEP-0313 queries: form fields and RSM paging turned into id bounds, and the errors
// a bad query gets. Archive ids round-trip through their public form.
import test from 'ava';
import { xml } from '@xmpp/client';
import type Element from 'ltx/lib/Element.js';
import { parseQuery } from '../../src/modules/mam/query.js';
import { IDS_PER_MS, idToTime, parsePublicId, publicId } from '../../src/modules/mam/store.js';
import { StanzaError } from '../../src/core/stanza.js';

const NS_MAM = 'urn:xmpp:mam:2';
const limits = { maxPage: 100 };

function query(fields: Record<string, string | string[]>, rsm: Element[] = []): Element {
  return xml('query', { xmlns: NS_MAM, queryid: 'q1' },
    xml('x', { xmlns: 'jabber:x:data', type: 'submit' },
      xml('field', { var: 'FORM_TYPE', type: 'hidden' }, xml('value', {}, NS_MAM)),
      ...Object.entries(fields).map(([name, value]) => xml('field', { var: name }, ...(Array.isArray(value) ? value : [value]).map((v) => xml('value', {}, v))))),
    ...(rsm.length > 0 ? [xml('set', { xmlns: 'http://jabber.org/protocol/rsm' }, ...rsm)] : []));
}

const condition = (f: () => unknown) => {
  try {
    f();
  } catch (err) {
    if (err instanceof StanzaError) return err.condition;
    throw err;
  }
  return undefined;
};

test('public ids sort like the archive, carry their time, and round-trip', (t) => {
  const a = publicId(1_700_000_000_000 * IDS_PER_MS, 0);
  const b = publicId(1_700_000_000_000 * IDS_PER_MS + 1, 1_679_615);
  const c = publicId(1_700_000_000_001 * IDS_PER_MS, 5);
  t.true(a < b && b < c);
  t.deepEqual(parsePublicId(b), { id: 1_700_000_000_000 * IDS_PER_MS + 1, nonce: 1_679_615 });
  t.is(idToTime(parsePublicId(c)!.id), 1_700_000_000_001);
  t.is(parsePublicId('not an id!'), null);
  t.is(parsePublicId('abc'), null);
  t.is(parsePublicId('1k824dbdc000000w'), null, 'w is not a base-32 digit');
  t.is(parsePublicId('1k824dbdc00000é5'), null);
  t.is(parsePublicId('vvvvvvvvvvvvvvvv'), null, 'beyond a safe integer');
});

test('public ids are 16 base-32 digits; every 25-bit nonce and safe id round-trips', (t) => {
  for (const [id, nonce] of [[0, 0], [1, 1], [Date.now() * IDS_PER_MS, 33_554_431], [Number.MAX_SAFE_INTEGER, 12_345], [2 ** 30 - 1, 2 ** 24]] as const) {
    const text = publicId(id, nonce);
    t.regex(text, /^[0-9a-v]{16}$/);
    t.deepEqual(parsePublicId(text), { id, nonce });
  }
  t.is(publicId(1_700_000_000_000 * IDS_PER_MS + 1, 5), '1hf7uaq000100005'); // (id).toString(32) and (nonce).toString(32), zero-padded
});

test('ids handed out in the earlier base-36 format still parse', (t) => {
  // id 1_700_000_000_000 * 1024 + 1, nonce 1_679_615 ('zzzz'), as the first release wrote them
  const legacy = (1_700_000_000_000 * IDS_PER_MS + 1).toString(36) + 'zzzz';
  t.deepEqual(parsePublicId(legacy), { id: 1_700_000_000_000 * IDS_PER_MS + 1, nonce: 1_679_615 });
  // and the same row's id in the new format names the same row
  t.deepEqual(parsePublicId(publicId(1_700_000_000_000 * IDS_PER_MS + 1, 1_679_615)), parsePublicId(legacy));
});

test('with, start and end become the filter; the page defaults to the server cap, forwards', (t) => {
  const parsed = parseQuery(query({ with: 'Juliet@Capulet.lit/balcony', start: '2026-01-01T00:00:00Z', end: '2026-01-02T00:00:00.500+01:00' }), limits);
  t.is(parsed.queryId, 'q1');
  t.is(parsed.filter.withBare, 'juliet@capulet.lit');
  t.is(parsed.filter.withResource, 'balcony');
  t.is(parsed.filter.minId, Date.parse('2026-01-01T00:00:00Z') * IDS_PER_MS);
  t.is(parsed.filter.maxId, Date.parse('2026-01-01T23:00:00.500Z') * IDS_PER_MS + IDS_PER_MS - 1, 'end is inclusive, offsets respected');
  t.is(parsed.max, 100);
  t.false(parsed.backwards);
});

test('RSM: max is capped, an empty <before/> asks for the last page, cursors narrow the range', (t) => {
  const cursor = publicId(5000 * IDS_PER_MS, 7);
  const last = parseQuery(query({}, [xml('max', {}, '1000'), xml('before')]), limits);
  t.is(last.max, 100);
  t.true(last.backwards);
  t.is(last.filter.maxId, undefined);
  const before = parseQuery(query({}, [xml('max', {}, '10'), xml('before', {}, cursor)]), limits);
  t.is(before.filter.maxId, 5000 * IDS_PER_MS - 1);
  t.deepEqual(before.cursors, [{ id: 5000 * IDS_PER_MS, nonce: 7 }]);
  const after = parseQuery(query({ 'after-id': cursor }, [xml('after', {}, publicId(6000 * IDS_PER_MS, 1))]), limits);
  t.is(after.filter.minId, 6000 * IDS_PER_MS + 1, 'the later of the two lower bounds');
  t.is(after.cursors.length, 2);
});

test('ids: only well-formed ones are looked for, at most a page of them', (t) => {
  const id = publicId(9000 * IDS_PER_MS, 3);
  const parsed = parseQuery(query({ ids: [id, 'bogus!'] }), limits);
  t.deepEqual(parsed.filter.ids, [9000 * IDS_PER_MS]);
  t.is(parsed.wanted?.get(9000 * IDS_PER_MS), 3);
  t.is(condition(() => parseQuery(query({ ids: Array.from({ length: 101 }, (_, i) => publicId(i * IDS_PER_MS, 0)) }), limits)), 'policy-violation');
});

test('bad queries: unknown fields, bad dates, bad JIDs, bad max, bad cursors, RSM index', (t) => {
  t.is(condition(() => parseQuery(query({ 'full-text': 'hello' }), limits)), 'bad-request');
  t.is(condition(() => parseQuery(query({ start: 'yesterday' }), limits)), 'bad-request');
  t.is(condition(() => parseQuery(query({ start: '2026-01-01' }), limits)), 'bad-request', 'a date without a time is not a XEP-0082 DateTime');
  t.is(condition(() => parseQuery(query({ with: '@@' }), limits)), 'jid-malformed');
  t.is(condition(() => parseQuery(query({ FORM_TYPE: 'urn:xmpp:mam:1' }), limits)), 'bad-request');
  t.is(condition(() => parseQuery(query({}, [xml('max', {}, '-1')]), limits)), 'bad-request');
  t.is(condition(() => parseQuery(query({ 'after-id': 'no such id!' }), limits)), 'item-not-found');
  t.is(condition(() => parseQuery(query({}, [xml('index', {}, '3')]), limits)), 'feature-not-implemented');
});
