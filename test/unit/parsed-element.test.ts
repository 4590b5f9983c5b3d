// The parser's elements (ParsedElement) find children as ltx's own Element does: same answers,
// for names, namespaces declared or inherited, prefixes, and text in between.
import test from 'ava';
import Element from 'ltx/lib/Element.js';
import { ParsedElement } from '../../src/xml/parser.js';
import { parseElement } from '../../src/xml/parse.js';

const ltxGetChild = Element.prototype.getChild;

test("getChild and getChildText answer as ltx's do", (t) => {
  const message = parseElement(`<message xmlns='jabber:client' to='a@b'>text
    <body>first</body><body xml:lang='de'>zweite</body>
    <request xmlns='urn:xmpp:receipts'/>
    <x:y xmlns:x='urn:example:x'><inner/></x:y>
    <received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'><body>carried</body></message></forwarded></received>
  </message>`);
  t.true(message instanceof ParsedElement);
  t.true(message instanceof Element);
  const asks: Array<[string, string | undefined]> = [
    ['body', undefined], ['body', 'jabber:client'], ['body', 'urn:other'], ['request', 'urn:xmpp:receipts'], ['request', undefined],
    ['request', 'jabber:client'], ['y', 'urn:example:x'], ['y', undefined], ['x:y', undefined], ['received', 'urn:xmpp:carbons:2'], ['missing', undefined],
  ];
  for (const [name, xmlns] of asks) {
    t.is(message.getChild(name, xmlns), ltxGetChild.call(message, name, xmlns), `${name} ${xmlns ?? ''}`);
  }
  t.is(message.getChildText('body'), 'first');
  t.is(message.getChildText('missing'), null);
  t.is(message.getChild('received', 'urn:xmpp:carbons:2')?.getChild('forwarded', 'urn:xmpp:forward:0')?.getChild('message')?.getChildText('body'), 'carried');
  // children added later by the server (ltx's own elements) are found too
  message.children.push(new Element('stanza-id', { xmlns: 'urn:xmpp:sid:0', id: '1' }));
  t.is(message.getChild('stanza-id', 'urn:xmpp:sid:0')?.attrs.id, '1');
});

test("made again from its constructor, as ltx's clone does, an element has attributes of its own", (t) => {
  const message = parseElement(`<message to='a@b' id='1'/>`);
  const Made = message.constructor as new (name: string, attrs?: Record<string, string> | string) => Element;
  const copy = new Made(message.name, message.attrs);
  copy.attrs.to = 'c@d';
  t.is(message.attrs.to, 'a@b');
  t.is(copy.attrs.id, '1');
  t.is(new Made('x', 'urn:example').attrs.xmlns, 'urn:example');
});
