// src/xml/serialize.ts: what the hot path writes is well-formed and says what the element says.
import test from 'ava';
import Element from 'ltx/lib/Element.js';
import { serialize, serializeToKeep } from '../../src/xml/serialize.js';
import { parseElement } from '../../src/xml/parse.js';

test('text and attribute values are escaped, and parse back to themselves', (t) => {
  const message = new Element('message', { to: 'a@b', id: `"it's" <1> & 2` });
  message.c('body').t(`5 > 3 & 2 < 4 "quoted" 'too'`);
  const xml = serialize(message);
  t.is(xml, `<message to="a@b" id="&quot;it&apos;s&quot; &lt;1&gt; &amp; 2"><body>5 &gt; 3 &amp; 2 &lt; 4 "quoted" 'too'</body></message>`);
  const back = parseElement(xml);
  t.is(back.attrs.id, message.attrs.id);
  t.is(back.getChildText('body'), message.getChildText('body'));
});

test('a default namespace is declared on the top element only when it has none of its own', (t) => {
  const plain = new Element('message', { to: 'a@b' });
  plain.c('body').t('hi');
  t.is(serialize(plain, 'jabber:client'), '<message xmlns="jabber:client" to="a@b"><body>hi</body></message>');
  const own = new Element('message', { xmlns: 'jabber:server', to: 'a@b' });
  t.is(serialize(own, 'jabber:client'), '<message xmlns="jabber:server" to="a@b"/>');
  t.is(serialize(plain), '<message to="a@b"><body>hi</body></message>');
});

test('the copy kept for storage is the same serialisation', (t) => {
  const message = new Element('message', { to: 'a@b', id: `it's` });
  message.c('body').t('x & y');
  message.c('active', { xmlns: 'http://jabber.org/protocol/chatstates' });
  t.is(serializeToKeep(message, 'jabber:client'), serialize(message, 'jabber:client'));
  t.is(serializeToKeep(message), serialize(message));
});
