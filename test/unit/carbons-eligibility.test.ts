// Which messages carbons copy (XEP-0280 §6), and how a copy counts for an inactive client (XEP-0352).
import test from 'ava';
import { eligible } from '../../src/modules/carbons/index.js';
import { isImportant } from '../../src/c2s/csi.js';
import { parseElement } from '../../src/xml/parse.js';

const message = (xml: string) => parseElement(xml);

test('chat messages, and normal ones with a body or a conversation payload, are copied', (t) => {
  t.true(eligible(message(`<message type='chat'><body>hi</body></message>`), 'sent', false, false));
  t.true(eligible(message(`<message type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`), 'sent', false, false));
  t.true(eligible(message(`<message><body>hi</body></message>`), 'received', false, false));
  t.true(eligible(message(`<message><received xmlns='urn:xmpp:receipts' id='1'/></message>`), 'received', false, false));
  t.true(eligible(message(`<message><displayed xmlns='urn:xmpp:chat-markers:0' id='1'/></message>`), 'sent', false, false));
  t.false(eligible(message(`<message><x xmlns='urn:example:game'/></message>`), 'sent', false, false));
});

test('group chat, headlines, hints and what a MUC sends are not', (t) => {
  t.false(eligible(message(`<message type='groupchat'><body>hi</body></message>`), 'received', false, false));
  t.false(eligible(message(`<message type='headline'><body>news</body></message>`), 'received', false, false));
  t.false(eligible(message(`<message type='chat'><body>hi</body><private xmlns='urn:xmpp:carbons:2'/></message>`), 'sent', false, false));
  t.false(eligible(message(`<message type='chat'><body>hi</body><no-copy xmlns='urn:xmpp:hints'/></message>`), 'sent', false, false));
  t.false(eligible(message(`<message type='chat'><body>pm</body><x xmlns='http://jabber.org/protocol/muc#user'/></message>`), 'received', false, false));
  t.false(eligible(message(`<message type='chat'><body>pm</body></message>`), 'received', false, true), 'from a local MUC service');
  t.true(eligible(message(`<message type='chat'><body>pm</body><x xmlns='http://jabber.org/protocol/muc#user'/></message>`), 'sent', false, false), 'a private message the user sends is theirs');
  t.false(eligible(message(`<message type='chat'><sent xmlns='urn:xmpp:carbons:2'/></message>`), 'received', false, false), 'a carbon is never copied again');
});

test('an error is copied when it answers a message that was: it carries its payload, or comes from a bare JID', (t) => {
  t.true(eligible(message(`<message type='error'><body>hi</body><error type='cancel'/></message>`), 'received', false, false));
  t.true(eligible(message(`<message type='error'><error type='cancel'/></message>`), 'received', true, false));
  t.false(eligible(message(`<message type='error'><error type='cancel'/></message>`), 'received', false, false));
  t.false(eligible(message(`<message type='error'><body>hi</body><error type='cancel'/></message>`), 'sent', false, false), 'errors a client sends are not');
});

test('a carbon of a typing notification can wait for an inactive client; a carbon of a message can not', (t) => {
  const wrap = (inner: string) => message(`<message from='a@x'><sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>${inner}</forwarded></sent></message>`);
  t.false(isImportant(wrap(`<message xmlns='jabber:client' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`)));
  t.true(isImportant(wrap(`<message xmlns='jabber:client' type='chat'><body>hi</body></message>`)));
});
