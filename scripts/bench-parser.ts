// The stream parser alone: a client stream of the overload scenario's mix (a typing notification,
// a body message asking for a receipt, a receipt, a tenth of a presence change, SM requests),
// fed in 16 KiB writes; prints nanoseconds per stanza (median of 7 timed sets of 100 rounds).
// Usage: node dist/scripts/bench-parser.js
import { StreamParser } from '../src/xml/parser.js';

const NS_RECEIPTS = 'urn:xmpp:receipts';
const NS_CHATSTATES = 'http://jabber.org/protocol/chatstates';
const HEADER = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

let stream = '';
const padding = 'x'.repeat(60);
for (let n = 0; n < 2000; n++) {
  const to = `user${n % 50}@localhost`;
  stream += `<message type='chat' to='${to}'><composing xmlns='${NS_CHATSTATES}'/></message>`;
  stream += `<message type='chat' to='${to}' id='o${n}_${(n * 1.234).toFixed(3)}'><body>bench:${n % 50}:${n}:${(n * 1.1).toFixed(3)}:${padding}</body>`
    + `<request xmlns='${NS_RECEIPTS}'/><active xmlns='${NS_CHATSTATES}'/></message>`;
  stream += `<message to='${to}/res'><received xmlns='${NS_RECEIPTS}' id='o${n}_123.456'/></message>`;
  if (n % 10 === 0) stream += `<presence to='${to}'><show>away</show><status>${n}:123.456</status></presence>`;
  if (n % 20 === 0) stream += `<r xmlns='urn:xmpp:sm:3'/><a xmlns='urn:xmpp:sm:3' h='${n}'/>`;
}
const bytes = Buffer.from(stream);
const writes: Buffer[] = [];
for (let i = 0; i < bytes.length; i += 16384) writes.push(bytes.subarray(i, i + 16384));

let stanzas = 0;
const handler = {
  onStreamStart: () => undefined,
  onStanza: () => void stanzas++,
  onStreamEnd: () => undefined,
  onParseError: (condition: string, text: string) => { throw new Error(`${condition}: ${text}`); },
};
const round = (): void => {
  const parser = new StreamParser(handler, 1 << 20);
  parser.write(HEADER);
  for (const chunk of writes) parser.write(chunk);
};

for (let i = 0; i < 50; i++) round(); // warm up
const perStanza: number[] = [];
for (let set = 0; set < 7; set++) {
  stanzas = 0;
  const started = process.hrtime.bigint();
  for (let i = 0; i < 100; i++) round();
  perStanza.push(Number(process.hrtime.bigint() - started) / stanzas);
}
perStanza.sort((a, b) => a - b);
const median = perStanza[3]!;
const stanzasPerRound = stanzas / 100;
console.log(`${stanzasPerRound} stanzas, ${bytes.length} bytes per round: ${median.toFixed(0)} ns per stanza (median of 7), `
  + `${(bytes.length / stanzasPerRound / median * 1000).toFixed(0)} MB/s`);
