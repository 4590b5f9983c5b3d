// The stream parser reads input as it comes, in whatever pieces TCP makes of it: the result must
// not depend on the split, and the work must not grow with the square of a slow stanza's size
// (regression: an unfinished token was re-scanned from its start on every segment, so one
// connection sending a stanza just under the limit in 10-byte segments took most of a core).
import test from 'ava';
import type Element from 'ltx/lib/Element.js';
import { StreamParser } from '../../src/xml/parser.js';

const HEADER = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>`;

interface Outcome {
  stanzas: string[];
  errors: string[];
  ended: boolean;
  parser: StreamParser;
}

function feed(pieces: Array<string | Buffer>, max = 256 * 1024): Outcome {
  const out: Outcome = { stanzas: [], errors: [], ended: false, parser: undefined as unknown as StreamParser };
  out.parser = new StreamParser({
    onStreamStart: () => undefined,
    onStanza: (stanza: Element) => out.stanzas.push(stanza.toString()),
    onStreamEnd: () => { out.ended = true; },
    onParseError: (condition, text) => out.errors.push(`${condition}: ${text}`),
  }, max);
  for (const piece of pieces) out.parser.write(piece);
  return out;
}

const STREAM = HEADER +
  `<message to='bob@localhost' type='chat' id="m'1"><body>fish &amp; chips &#x1F41F; — ünïcödé &lt;3</body><x xmlns='urn:x' a="1 > 0"/></message> \n` +
  `<presence/><iq type='get' id='q'><query xmlns='jabber:iq:roster'><![CDATA[ <not a tag> ]] ]]></query></iq>` +
  `<message><body>${'long text '.repeat(300)}</body></message></stream:stream>`;

function splits(text: string, sizes: number[]): string[] {
  const out: string[] = [];
  let i = 0;
  let k = 0;
  while (i < text.length) {
    const n = sizes[k++ % sizes.length]!;
    out.push(text.slice(i, i + n));
    i += n;
  }
  return out;
}

test('every stanza parses the same whether it comes whole, byte by byte or in random pieces', (t) => {
  const whole = feed([STREAM]);
  t.deepEqual(whole.errors, []);
  t.is(whole.stanzas.length, 4);
  t.true(whole.ended);
  t.deepEqual(feed(splits(STREAM, [1])).stanzas, whole.stanzas, 'one character at a time');
  const bytes = Buffer.from(STREAM);
  const oneByte: Buffer[] = [];
  for (let i = 0; i < bytes.length; i++) oneByte.push(bytes.subarray(i, i + 1));
  t.deepEqual(feed(oneByte).stanzas, whole.stanzas, 'one byte at a time, UTF-8 split mid-character');
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let round = 0; round < 50; round++) {
    const sizes = Array.from({ length: 20 }, () => 1 + Math.floor(random() * 40));
    const result = feed(splits(STREAM, sizes));
    t.deepEqual(result.errors, []);
    t.deepEqual(result.stanzas, whole.stanzas, `split ${sizes.join(',')}`);
  }
});

test('errors are found in any split too', (t) => {
  for (const bad of [`<message><body></message>`, `<message a='1' a='2'/>`, `<!-- c -->`, `<message><body>&bogus;</body></message>`, `<a b='<'/>`]) {
    const whole = feed([HEADER + bad]).errors;
    t.is(whole.length, 1, bad);
    t.deepEqual(feed(splits(HEADER + bad, [1])).errors, whole, `${bad} byte by byte`);
    t.deepEqual(feed(splits(HEADER + bad, [3, 7])).errors, whole, `${bad} in pieces`);
  }
});

test('names the parser recognises in place and names it slices read the same, near misses included', (t) => {
  // message/to/xmlns/id are in its table of common names; the others differ by a character, a
  // length or a non-ASCII letter and take the general path
  const stanza = `<message to='a@b' tox='1' xmlns:x='urn:x' id='i' idx="2"><messages xmlns='urn:y'/><bodyx>t</bodyx>`
    + `<body xml:lang='en'>b</body><ünï ö='1'/><x:to x:to='3'/></message>`;
  const whole = feed([HEADER + stanza]);
  t.deepEqual(whole.errors, []);
  t.is(whole.stanzas[0], stanza.replace(/'/g, '"'));
  t.deepEqual(feed(splits(HEADER + stanza, [1])).stanzas, whole.stanzas);
  t.deepEqual(feed([HEADER + `<message to='a' to='b'/>`]).errors, ['not-well-formed: duplicate attribute to']);
  t.deepEqual(feed([HEADER + `<message to='a\u0001'/>`]).errors, ['not-well-formed: illegal character in attribute to']);
  t.deepEqual(feed([HEADER + `<message><body>a\u0001</body></message>`]).errors, ['not-well-formed: illegal character in text']);
});

test('a start tag that cannot become well-formed is refused before its end arrives', (t) => {
  for (const bad of [`<message to='1'from='2'`, `<message/x`, `<message <`, `<9message to='a'`]) {
    const result = feed([HEADER, bad]);
    t.is(result.errors.length, 1, bad);
    t.regex(result.errors[0]!, /^not-well-formed: /, bad);
  }
  // an unfinished one that may still become well-formed waits, however it is split
  for (const pieces of [[`<message to='1`], [`<message`], [`<message to`], [`<message to=`], [`<message/`], [`<message to='a>b' `]]) {
    t.deepEqual(feed([HEADER, ...pieces]).errors, [], pieces.join(''));
  }
});

test("only the root's own end tag ends the stream", (t) => {
  const ended = feed([HEADER, `<presence/></stream:stream>`]);
  t.true(ended.ended);
  t.deepEqual(ended.errors, []);
  const stray = feed([HEADER, `<presence/></foo>`]);
  t.false(stray.ended);
  t.deepEqual(stray.errors, ['not-well-formed: </foo> does not close <stream:stream>']);
});

test('a stanza just under the limit in 10-byte segments costs work linear in its size', (t) => {
  // the worst shapes: one huge attribute value, one huge text node, one huge CDATA section
  const size = 200 * 1024;
  const shapes = [
    `<message id='${'a'.repeat(size)}'/>`,
    `<message><body>${'b'.repeat(size)}</body></message>`,
    `<message><body><![CDATA[${'c'.repeat(size)}]]></body></message>`,
    `<message><body>${'d &amp; '.repeat(size / 8)}</body></message>`,
  ];
  for (const stanza of shapes) {
    const result = feed([HEADER, ...splits(stanza, [10])]);
    t.deepEqual(result.errors, []);
    t.is(result.stanzas.length, 1);
    // counted, never timed: each character is examined a bounded number of times
    t.true(result.parser.examined < 4 * (HEADER.length + stanza.length), `${result.parser.examined} characters examined for ${stanza.length}`);
  }
});

test('a slow stanza over the limit is refused while it arrives', (t) => {
  const result = feed([HEADER, `<message id='`, ...splits('x'.repeat(3000), [10])], 1024);
  t.deepEqual(result.errors, ['policy-violation: stanza exceeds the limit of 1024 bytes']);
  const text = feed([HEADER, `<message><body>`, ...splits('x'.repeat(3000), [10])], 1024);
  t.deepEqual(text.errors, ['policy-violation: stanza exceeds the limit of 1024 bytes']);
});

test('invalid UTF-8 is not-well-formed, even split across writes', (t) => {
  t.deepEqual(feed([Buffer.from(HEADER), Buffer.from([0x3c, 0x61, 0x3e, 0xc3, 0x28])]).errors, ['not-well-formed: invalid UTF-8']);
  t.deepEqual(feed([Buffer.from(HEADER), Buffer.from('<a>\xff', 'latin1')]).errors, ['not-well-formed: invalid UTF-8']);
  // an overlong encoding of '<' and a lone surrogate encoded in UTF-8
  t.deepEqual(feed([Buffer.from(HEADER), Buffer.from([0xc0, 0xbc])]).errors, ['not-well-formed: invalid UTF-8']);
  t.deepEqual(feed([Buffer.from(HEADER), Buffer.from([0xed, 0xa0]), Buffer.from([0x80])]).errors, ['not-well-formed: invalid UTF-8']);
  // a valid character split between writes is fine
  const euro = Buffer.from('<message><body>€</body></message>');
  t.deepEqual(feed([Buffer.from(HEADER), euro.subarray(0, 16), euro.subarray(16)]).stanzas, ['<message><body>€</body></message>']);
});

test('attributes named constructor, __proto__ or toString are attributes like any other', (t) => {
  const result = feed([HEADER + `<message constructor='a' __proto__='b' toString='c' hasOwnProperty='d'/>`]);
  t.deepEqual(result.errors, []);
  t.is(result.stanzas.length, 1);
  t.regex(result.stanzas[0]!, /constructor="a"/);
  t.regex(result.stanzas[0]!, /__proto__="b"/);
  t.deepEqual(feed([HEADER + `<message constructor='a' constructor='b'/>`]).errors, ['not-well-formed: duplicate attribute constructor']);
});

test('what follows a stream reset in the same write is dropped', (t) => {
  const stanzas: string[] = [];
  const parser: StreamParser = new StreamParser({
    onStreamStart: () => undefined,
    onStanza: (stanza) => {
      stanzas.push(stanza.name);
      if (stanza.name === 'starttls') parser.discardInput();
    },
    onStreamEnd: () => undefined,
    onParseError: () => undefined,
  }, 1024);
  parser.write(HEADER + `<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><message><body>injected</body></message>`);
  parser.write(HEADER + `<presence/>`);
  t.deepEqual(stanzas, ['starttls', 'presence']);
});
