// What a stanza is worth when not everything can go out at once (src/c2s/csi.ts classify): the
// one classification client state indication and overload shedding share.
import test from 'ava';
import parse from 'ltx/lib/parse.js';
import type Element from 'ltx/lib/Element.js';
import { classify, isImportant } from '../../src/c2s/csi.js';

const el = (xml: string) => parse(xml) as Element;

test('a message with a body is essential, whatever rides along', (t) => {
  t.is(classify(el("<message><body>hi</body><request xmlns='urn:xmpp:receipts'/><active xmlns='http://jabber.org/protocol/chatstates'/><markable xmlns='urn:xmpp:chat-markers:0'/></message>")), 'essential');
});

test('receipts and chat markers are receipts, even with hints and ids', (t) => {
  t.is(classify(el("<message><received xmlns='urn:xmpp:receipts' id='a'/></message>")), 'receipt');
  t.is(classify(el("<message><displayed xmlns='urn:xmpp:chat-markers:0' id='a'/><store xmlns='urn:xmpp:hints'/><origin-id xmlns='urn:xmpp:sid:0' id='x'/></message>")), 'receipt');
  t.true(isImportant(el("<message><received xmlns='urn:xmpp:receipts' id='a'/></message>")), 'CSI still delivers receipts at once');
});

test('typing notifications are chat states; presence broadcasts are presence', (t) => {
  t.is(classify(el("<message type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>")), 'chat-state');
  t.is(classify(el('<presence><show>away</show></presence>')), 'presence');
  t.is(classify(el("<presence type='unavailable'/>")), 'presence');
});

test('errors, IQs, subscription requests and unknown payloads are essential', (t) => {
  t.is(classify(el("<message type='error'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>")), 'essential');
  t.is(classify(el("<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>")), 'essential');
  t.is(classify(el("<presence type='subscribe'/>")), 'essential');
  t.is(classify(el("<message><x xmlns='jabber:x:conference' jid='room@muc'/></message>")), 'essential');
});

test('a carbon copy is worth what it carries', (t) => {
  const carbon = (inner: string) => el(`<message><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message>${inner}</message></forwarded></received></message>`);
  t.is(classify(carbon('<body>hi</body>')), 'essential');
  t.is(classify(carbon("<received xmlns='urn:xmpp:receipts' id='a'/>")), 'receipt');
  t.is(classify(carbon("<paused xmlns='http://jabber.org/protocol/chatstates'/>")), 'chat-state');
});
