// The load generator's hand-rolled protocol pieces: stanza framing and the SCRAM client.
import test from 'ava';
import { chooseMechanism } from '../../src/bench/connection.js';
import { childText, errorCondition, startTagAttr, StanzaSplitter, type Stanza } from '../../src/bench/framing.js';
import { messageBody, parseBody } from '../../src/bench/scenarios/msg.js';
import { clearScramCache, ScramClient } from '../../src/bench/scram.js';

function collect(): { splitter: StanzaSplitter; stanzas: Stanza[]; events: string[] } {
  const stanzas: Stanza[] = [];
  const events: string[] = [];
  const splitter = new StanzaSplitter({
    streamHeader: () => events.push('header'),
    stanza: (s) => stanzas.push(s),
    streamEnd: () => events.push('end'),
  });
  return { splitter, stanzas, events };
}

test('the splitter yields the header, features and stanzas, whatever the chunking', (t) => {
  const text = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' id='x'>"
    + "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>"
    + "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\n "
    + "<message to='a@b' type=\"chat\"><body>hi &amp; bye</body></message></stream:stream>";
  for (const size of [1, 3, 7, text.length]) {
    const { splitter, stanzas, events } = collect();
    for (let i = 0; i < text.length; i += size) splitter.push(text.slice(i, i + size));
    t.deepEqual(stanzas.map((s) => s.name), ['stream:features', 'proceed', 'message'], `chunk ${size}`);
    t.deepEqual(events, ['header', 'end'], `chunk ${size}`);
    t.is(childText(stanzas[2]!.xml, 'body'), 'hi &amp; bye');
  }
});

test('a message nested in a message (carbons, forwards) stays one stanza', (t) => {
  const { splitter, stanzas } = collect();
  splitter.push("<message from='me@x'><forwarded><message to='y'><body>1</body></message><message/></forwarded></message><iq id='1'/>");
  t.deepEqual(stanzas.map((s) => s.name), ['message', 'iq']);
  t.true(stanzas[0]!.xml.endsWith('</forwarded></message>'));
});

test('elements whose names start like a stanza name do not confuse the depth count', (t) => {
  const { splitter, stanzas } = collect();
  splitter.push("<iq id='a'><iqx/><query/></iq><iq id='b'/>");
  t.deepEqual(stanzas.map((s) => startTagAttr(s.xml, 'id')), ['a', 'b']);
});

test('attributes are read from the start tag only, with either quote', (t) => {
  const xml = `<iq type="result" id='b1'><bind><jid>u@d/r</jid></bind><x type='inner'/></iq>`;
  t.is(startTagAttr(xml, 'type'), 'result');
  t.is(startTagAttr(xml, 'id'), 'b1');
  t.is(startTagAttr(xml, 'to'), undefined);
  t.is(childText(xml, 'jid'), 'u@d/r');
});

test('error conditions of stanzas, streams and SASL', (t) => {
  t.is(errorCondition("<iq type='error' id='r'><query xmlns='jabber:iq:register'/><error type='cancel'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"), 'conflict');
  t.is(errorCondition("<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text>no</text></stream:error>"), 'host-unknown');
  t.is(errorCondition("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>"), 'not-authorized');
  t.is(errorCondition("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><text>x</text><aborted/></failure>"), 'aborted');
});

test('SCRAM-SHA-1 matches the RFC 5802 example exchange', async (t) => {
  clearScramCache();
  const scram = new ScramClient('sha1', 'user', 'pencil', 'fyko+d2lbbFgONRv9qkxdawL');
  t.is(scram.clientFirst(), 'n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL');
  const final = await scram.clientFinal('r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096');
  t.is(final, 'c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=');
  t.true(scram.verifyServerFinal('v=rmF9pqV8S7suAoZWja4dJRkFsKQ='));
  t.false(scram.verifyServerFinal('v=AAAAAAAAAAAAAAAAAAAAAAAAAAA='));
});

test('SCRAM-SHA-256 matches the RFC 7677 example exchange', async (t) => {
  const scram = new ScramClient('sha256', 'user', 'pencil', 'rOprNGfwEbeRWgbNEkqO');
  const final = await scram.clientFinal('r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096');
  t.is(final, 'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=');
  t.true(scram.verifyServerFinal('v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4='));
});

test('SCRAM refuses a server nonce that does not extend ours', async (t) => {
  const scram = new ScramClient('sha1', 'user', 'pencil', 'abc');
  await t.throwsAsync(scram.clientFinal('r=zzz,s=QSXCR+Q6sek8bf92,i=4096'), { message: /nonce/ });
});

test('mechanism choice prefers SCRAM-SHA-1 and never sends PLAIN in the clear', (t) => {
  t.is(chooseMechanism(['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-1'], 'auto', true), 'SCRAM-SHA-1');
  t.is(chooseMechanism(['PLAIN', 'SCRAM-SHA-256'], 'auto', true), 'SCRAM-SHA-256');
  t.is(chooseMechanism(['PLAIN'], 'auto', true), 'PLAIN');
  t.throws(() => chooseMechanism(['PLAIN'], 'auto', false), { message: /no usable SASL mechanism/ });
  t.throws(() => chooseMechanism(['SCRAM-SHA-1'], 'PLAIN', true), { message: /not offered/ });
});

test('message bodies are 100 characters and carry sender, sequence and send time', (t) => {
  const body = messageBody(17, 4242, 12345.678);
  t.is(body.length, 100);
  t.deepEqual(parseBody(body), { sender: 17, seq: 4242, sentAt: 12345.678 });
  t.is(parseBody('hello'), null);
});
