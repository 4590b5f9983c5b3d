// The strict checker that every integration test's client traffic goes through: it must catch
// what lenient client parsers let pass, and accept XMPP's stream framing.
import test from 'ava';
import { WellFormedChecker } from '../helpers/well-formed.js';

const HEADER = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' from='localhost' id='1' version='1.0'>`;

function stream(...chunks: string[]): string | undefined {
  const checker = new WellFormedChecker('test', 'stream');
  for (const chunk of chunks) checker.write(chunk);
  return checker.problem;
}

function message(text: string): string | undefined {
  const checker = new WellFormedChecker('test', 'message');
  checker.message(text);
  return checker.problem;
}

test('a stream with stanzas, a restart and a close is accepted, in any split', (t) => {
  const whole = `${HEADER}<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features><proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>` +
    `${HEADER}<stream:features/> <message to='a@b' xml:lang='en'><body>a &amp; b &#x1F600; é</body></message>\n<presence/></stream:stream>`;
  t.is(stream(whole), undefined);
  for (let size = 1; size < 12; size++) {
    const chunks: string[] = [];
    for (let i = 0; i < whole.length; i += size) chunks.push(whole.slice(i, i + size));
    t.is(stream(...chunks), undefined, `in chunks of ${size}`);
  }
  const bytes = Buffer.from(whole);
  const checker = new WellFormedChecker('test', 'stream');
  for (let i = 0; i < bytes.length; i++) checker.write(bytes.subarray(i, i + 1)); // UTF-8 split mid-character
  t.is(checker.problem, undefined);
});

test('duplicate attributes are caught, by name and by expanded name', (t) => {
  t.regex(stream(HEADER, `<iq to='a' type='get' to='b' id='1'/>`) ?? '', /duplicate attribute to/);
  t.regex(stream(HEADER, `<x xmlns:a='urn:x' xmlns:b='urn:x' a:n='1' b:n='2'/>`) ?? '', /two attributes named \{urn:x\}n/);
});

test('unbound prefixes are caught', (t) => {
  t.regex(stream(HEADER, `<foo:bar/>`) ?? '', /unbound prefix in <foo:bar>/);
  t.regex(stream(HEADER, `<bar foo:x='1'/>`) ?? '', /unbound prefix in attribute foo:x/);
  t.regex(message(`<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>`) ?? '', /unbound prefix/);
  t.is(message(`<stream:features xmlns:stream='http://etherx.jabber.org/streams'/>`), undefined);
});

test('illegal characters, bad references and broken markup are caught', (t) => {
  t.regex(stream(HEADER, `<message><body>bell \x07</body></message>`) ?? '', /illegal character U\+0007/);
  t.regex(stream(HEADER, `<message><body>\ud800</body></message>`) ?? '', /illegal character U\+d800/);
  t.regex(stream(HEADER, `<message><body>&#0;</body></message>`) ?? '', /illegal character/);
  t.regex(stream(HEADER, `<message><body>&nbsp;</body></message>`) ?? '', /undeclared entity/);
  t.regex(stream(HEADER, `<message><body>a & b</body></message>`) ?? '', /bare &/);
  t.regex(stream(HEADER, `<message id='a<b'/>`) ?? '', /< in the value of id/);
  t.regex(stream(HEADER, `<message><body></message>`) ?? '', /closes <body>/);
  t.regex(stream(HEADER, `<message to='a'from='b'/>`) ?? '', /no space after attribute/);
  t.regex(stream(HEADER, `<!-- hi -->`) ?? '', /restricted XML/);
  t.regex(stream(HEADER, `<presence/></stream:stream><presence/>`) ?? '', /after the end of the stream/);
  t.regex(stream(`<message/>`) ?? '', /where the stream header belongs/);
});

test('a WebSocket message must be one complete element', (t) => {
  t.is(message(`<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>`), undefined);
  t.regex(message(`<message xmlns='jabber:client'><body>hi</body>`) ?? '', /not closed/);
  t.regex(message(`<presence xmlns='jabber:client'/><presence xmlns='jabber:client'/>`) ?? '', /second element/);
});
