// Persistent group chats survive a server restart with their configuration and affiliations;
// temporary ones do not.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { startServer } from '../helpers/server.js';
import { xml } from '../helpers/clients.js';
import { bare, errorCondition, iqFailure, login, online } from '../helpers/conversation.js';
import {
  NS_DELAY, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_MUC_OWNER, stanzaIdOf, adminGet, createInstantRoom, createPrivateGroup, enter, freshRoom, groupchat, invite,
  isGroupchat, itemOf, join, statusCodes,
} from '../helpers/muc.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';

test('a members-only room comes back after a restart with its configuration, subject, members and history', async (t) => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-muc-restart-'));
  const room = freshRoom('club');
  const temporary = freshRoom('passing');

  let bobOccupantId: string | undefined;
  const first = await startServer({ dataDir });
  try {
    for (const name of ['alice', 'bob', 'carol', 'mallory']) await first.createAccount(name);
    const a = await login(first, 'alice', 'phone');
    const b = await login(first, 'bob', 'phone');
    await Promise.all([online(a), online(b)]);
    await createPrivateGroup(a, room, 'Alice', { 'muc#roomconfig_roomname': 'Book club', 'muc#roomconfig_publicroom': '1', 'muc#roomconfig_historylength': '2' });
    await a.send(invite(room, bare(first, 'bob')));
    await b.next((s) => s.is('message') && s.attrs.from === room);
    await enter(b, room, 'Bob');
    bobOccupantId = (await a.next((s) => s.is('presence') && s.attrs.from === `${room}/Bob`)).getChild('occupant-id', 'urn:xmpp:occupant-id:0')?.attrs.id;
    await a.request(xml('iq', { type: 'set', to: room }, xml('query', { xmlns: 'http://jabber.org/protocol/muc#admin' },
      xml('item', { jid: bare(first, 'carol'), affiliation: 'admin' }),
      xml('item', { jid: bare(first, 'mallory'), affiliation: 'outcast' }))));
    await a.send(xml('message', { to: room, type: 'groupchat' }, xml('subject', {}, 'Next: Middlemarch')));
    await b.next((s) => s.is('message') && s.getChildText('subject') === 'Next: Middlemarch');
    for (const body of ['too old to keep', 'almost too old', 'see you after the restart']) {
      await a.send(groupchat(room, body));
      await b.next(isGroupchat(`${room}/Alice`, body));
    }
    await createInstantRoom(a, temporary, 'Alice');
  } finally {
    await first.stop();
  }

  const second = await startServer({ dataDir });
  t.teardown(() => second.stop());
  const a = await login(second, 'alice', 'phone');
  const c = await login(second, 'carol', 'phone');
  const m = await login(second, 'mallory', 'phone');
  const b = await login(second, 'bob', 'phone');
  await Promise.all([online(a), online(b), online(c), online(m)]);

  // the room is listed again, with its name; the temporary one is gone
  const items = await a.request(xml('iq', { type: 'get', to: 'conference.localhost' }, xml('query', { xmlns: NS_DISCO_ITEMS })));
  const listed = items.getChild('query')!.getChildren('item').map((i) => i.attrs);
  t.true(listed.some((i) => i.jid === room && i.name === 'Book club'));
  t.false(listed.some((i) => i.jid === temporary));
  t.is(await iqFailure(a.request(xml('iq', { type: 'get', to: temporary }, xml('query', { xmlns: NS_DISCO_INFO })))), 'item-not-found');
  const info = await a.request(xml('iq', { type: 'get', to: room }, xml('query', { xmlns: NS_DISCO_INFO })));
  const features = info.getChild('query')!.getChildren('feature').map((f) => f.attrs.var);
  for (const feature of ['muc_persistent', 'muc_membersonly', 'muc_nonanonymous']) t.true(features.includes(feature), feature);

  // affiliations: Alice still owns it, Bob is a member, Carol an admin, Mallory banned
  const aliceSelf = await join(a, room, 'Alice');
  t.is(itemOf(aliceSelf).affiliation, 'owner');
  t.false(statusCodes(aliceSelf).includes(201), 'not created again');
  const subject = await a.next((s) => s.is('message') && s.getChild('subject') !== undefined);
  t.is(subject.getChildText('subject'), 'Next: Middlemarch');
  const bobSelf = await enter(b, room, 'Bob');
  t.is(itemOf(bobSelf).affiliation, 'member');
  t.truthy(bobOccupantId);
  t.is(bobSelf.getChild('occupant-id', 'urn:xmpp:occupant-id:0')?.attrs.id, bobOccupantId, 'the same occupant id as before the restart');
  // the discussion history was kept too, with its stanza-id and the time it was said
  const history = b.received.filter((s) => s.is('message') && s.getChild('body') !== undefined);
  t.deepEqual(history.map((m) => m.getChildText('body')), ['almost too old', 'see you after the restart'], 'as many as the room keeps');
  for (const m of history) {
    t.truthy(m.getChild('delay', NS_DELAY));
    t.truthy(stanzaIdOf(m, room));
  }
  const stored = await second.server.db('muc_history').where({ room: room.split('@')[0] }).count<Array<{ n: number }>>({ n: '*' });
  t.is(Number(stored[0]!.n), 2, 'the database keeps no more than that either');
  const carolSelf = await enter(c, room, 'Carol');
  t.is(itemOf(carolSelf).affiliation, 'admin');
  t.is(itemOf(carolSelf).role, 'moderator');
  t.is(errorCondition(await join(m, room, 'Mallory')), 'forbidden');
  const members = await a.request(adminGet(room, { affiliation: 'member' }));
  t.deepEqual(members.getChild('query')!.getChildren('item').map((i) => i.attrs.jid), [bare(second, 'bob')]);
  const form = await a.request(xml('iq', { type: 'get', to: room }, xml('query', { xmlns: NS_MUC_OWNER })));
  const field = (name: string) => form.getChild('query')!.getChild('x', 'jabber:x:data')!.getChildren('field').find((f) => f.attrs.var === name)?.getChildText('value');
  t.is(field('muc#roomconfig_roomname'), 'Book club');
  t.is(field('muc#roomconfig_membersonly'), '1');
  t.is(field('muc#roomconfig_whois'), 'anyone');

  // and the room works as before
  await b.send(groupchat(room, 'glad we are back'));
  await a.next(isGroupchat(`${room}/Bob`, 'glad we are back'));
});
