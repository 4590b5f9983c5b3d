// Keepalive whitespace between stanzas is not "unfinished markup": however much of it arrives
// before the next stanza, it is dropped as it comes (regression: 256 KiB of it in a row was
// refused with policy-violation, depending on how the socket happened to chunk it).
import test from 'ava';
import type Element from 'ltx/lib/Element.js';
import { StreamParser } from '../../src/xml/parser.js';

test('a megabyte of whitespace between stanzas, in 64 KiB writes, is no error', (t) => {
  const stanzas: Element[] = [];
  const errors: string[] = [];
  const parser = new StreamParser({
    onStreamStart: () => undefined,
    onStanza: (stanza) => stanzas.push(stanza),
    onStreamEnd: () => undefined,
    onParseError: (condition, text) => errors.push(`${condition}: ${text}`),
  }, 256 * 1024);
  parser.write(`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>`);
  const whitespace = ' '.repeat(64 * 1024);
  for (let i = 0; i < 16; i++) parser.write(whitespace);
  parser.write(`<message to='bob@localhost'><body>still here</body></message>`);
  t.deepEqual(errors, []);
  t.is(stanzas.length, 1);
  t.is(stanzas[0]!.getChildText('body'), 'still here');
});

test('text inside a stanza split across writes is still kept whole', (t) => {
  const stanzas: Element[] = [];
  const parser = new StreamParser({
    onStreamStart: () => undefined,
    onStanza: (stanza) => stanzas.push(stanza),
    onStreamEnd: () => undefined,
    onParseError: () => undefined,
  }, 256 * 1024);
  parser.write(`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'><message><body>fish &am`);
  parser.write(`p; chips</body></message>`);
  t.is(stanzas[0]!.getChildText('body'), 'fish & chips');
});
