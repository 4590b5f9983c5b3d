// Group chat administration (XEP-0045 §8-§10): kicks, bans, voice in moderated rooms, password
// rooms, affiliation rules, configuration changes and destruction with an alternate venue.
import test from 'ava';
import { startServer, type TestServer } from '../helpers/server.js';
import { xml } from '../helpers/clients.js';
import { bare, errorCondition, freshAccounts, iqFailure, login } from '../helpers/conversation.js';
import {
  NS_MUC_OWNER, NS_MUC_USER, adminGet, adminSet, configure, createInstantRoom, createPrivateGroup, enter, freshRoom, groupchat,
  isGroupchat, isPresenceFrom, itemOf, join, statusCodes, occupantClient, trio } from '../helpers/muc.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';

let server: TestServer;
test.before(async () => {
  server = await startServer();
});
test.after.always(async () => server?.stop());

test('an admin kicks an occupant (307) and bans another (301), who then cannot come back: forbidden', async (t) => {
  const { a, b, c, names } = await trio(t, server);
  const room = freshRoom('moderation');
  await createInstantRoom(a, room, 'Alice');
  await enter(b, room, 'Bob');
  await enter(c, room, 'Carol');

  // in this semi-anonymous room, Bob does not see Carol's real JID...
  t.false('jid' in itemOf(await b.next(isPresenceFrom(`${room}/Carol`))));
  // ...until Alice makes him an admin, and so a moderator
  await a.request(adminSet(room, { attrs: { jid: bare(server, names.bob), affiliation: 'admin' } }));
  const promoted = await b.next((s) => isPresenceFrom(`${room}/Bob`)(s) && itemOf(s).affiliation === 'admin');
  t.is(itemOf(promoted).role, 'moderator');
  const carolSeen = await b.next((s) => isPresenceFrom(`${room}/Carol`)(s) && itemOf(s).jid !== undefined);
  t.is(itemOf(carolSeen).jid, c.jid);

  // Bob kicks Carol: she is told why and by whom, the others see her leave with 307
  await b.request(adminSet(room, { attrs: { nick: 'Carol', role: 'none' }, reason: 'calm down' }));
  const kicked = await c.next(isPresenceFrom(`${room}/Carol`, 'unavailable'));
  t.deepEqual(statusCodes(kicked), [110, 307]);
  t.is(kicked.getChild('x', NS_MUC_USER)!.getChild('item')!.getChildText('reason'), 'calm down');
  t.is(kicked.getChild('x', NS_MUC_USER)!.getChild('item')!.getChild('actor')?.attrs.nick, 'Bob');
  t.deepEqual(statusCodes(await a.next(isPresenceFrom(`${room}/Carol`, 'unavailable'))), [307]);

  // a kick is not a ban: Carol comes back, and Bob bans her
  await enter(c, room, 'Carol');
  await b.request(adminSet(room, { attrs: { jid: bare(server, names.carol), affiliation: 'outcast' }, reason: 'enough' }));
  const banned = await c.next(isPresenceFrom(`${room}/Carol`, 'unavailable'));
  t.deepEqual(statusCodes(banned), [110, 301]);
  t.is(itemOf(banned).affiliation, 'outcast');
  const refused = await join(c, room, 'Carol');
  t.is(refused.attrs.type, 'error');
  t.is(errorCondition(refused), 'forbidden');

  // the ban list shows her; an admin may not kick the owner
  const outcasts = await b.request(adminGet(room, { affiliation: 'outcast' }));
  t.deepEqual(outcasts.getChild('query')!.getChildren('item').map((i) => i.attrs.jid), [bare(server, names.carol)]);
  t.is(await iqFailure(b.request(adminSet(room, { attrs: { nick: 'Alice', role: 'none' } }))), 'not-allowed');
  // and a participant may not kick anyone
  await a.request(adminSet(room, { attrs: { jid: bare(server, names.bob), affiliation: 'member' } }));
  await b.next((s) => isPresenceFrom(`${room}/Bob`)(s) && itemOf(s).role === 'participant');
  t.is(await iqFailure(b.request(adminSet(room, { attrs: { nick: 'Alice', role: 'none' } }))), 'forbidden');
});

test('in a moderated room visitors cannot speak until a moderator gives them voice', async (t) => {
  const { a, b } = await trio(t, server);
  const room = freshRoom('moderated');
  await enter(a, room, 'Alice');
  await configure(a, room, { 'muc#roomconfig_moderatedroom': '1' });
  const self = await enter(b, room, 'Bob');
  t.is(itemOf(self).role, 'visitor');
  await b.send(groupchat(room, 'can I talk?'));
  const error = await b.next((s) => s.is('message') && s.attrs.type === 'error');
  t.is(errorCondition(error), 'forbidden');

  await a.request(adminSet(room, { attrs: { nick: 'Bob', role: 'participant' } }));
  const voiced = await b.next((s) => isPresenceFrom(`${room}/Bob`)(s) && itemOf(s).role === 'participant');
  t.true(statusCodes(voiced).includes(110));
  await b.send(groupchat(room, 'thanks for the voice'));
  await a.next(isGroupchat(`${room}/Bob`, 'thanks for the voice'));
  // and voice can be taken away again
  await a.request(adminSet(room, { attrs: { nick: 'Bob', role: 'visitor' } }));
  await b.next((s) => isPresenceFrom(`${room}/Bob`)(s) && itemOf(s).role === 'visitor');
  await b.send(groupchat(room, 'one more thing'));
  t.is(errorCondition(await b.next((s) => s.is('message') && s.attrs.type === 'error')), 'forbidden');
});

test('a password-protected room lets in only those who know the password', async (t) => {
  const { a, b, c } = await trio(t, server);
  const room = freshRoom('secret');
  await enter(a, room, 'Alice');
  await configure(a, room, { 'muc#roomconfig_passwordprotectedroom': '1', 'muc#roomconfig_roomsecret': 'open sesame' });
  const without = await join(b, room, 'Bob');
  t.is(errorCondition(without), 'not-authorized');
  const wrong = await join(b, room, 'Bob', { password: 'open barley' });
  t.is(errorCondition(wrong), 'not-authorized');
  await enter(c, room, 'Carol', { password: 'open sesame' });
  // the room says so in disco
  const info = await b.request(xml('iq', { type: 'get', to: room }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' })));
  t.true(info.getChild('query')!.getChildren('feature').some((f) => f.attrs.var === 'muc_passwordprotected'));
});

test('the owner reads and changes the configuration form; others may not', async (t) => {
  const { a, b } = await trio(t, server);
  const room = freshRoom('config');
  await createInstantRoom(a, room, 'Alice');
  await enter(b, room, 'Bob');
  const form = await a.request(xml('iq', { type: 'get', to: room }, xml('query', { xmlns: NS_MUC_OWNER })));
  const fields = form.getChild('query')!.getChild('x', 'jabber:x:data')!.getChildren('field').map((f) => f.attrs.var);
  for (const name of ['roomname', 'roomdesc', 'persistentroom', 'publicroom', 'membersonly', 'moderatedroom', 'passwordprotectedroom',
    'roomsecret', 'whois', 'maxusers', 'changesubject', 'allowinvites', 'allowpm', 'enablelogging', 'historylength']) {
    t.true(fields.includes(`muc#roomconfig_${name}`), name);
  }
  t.is(await iqFailure(b.request(xml('iq', { type: 'get', to: room }, xml('query', { xmlns: NS_MUC_OWNER })))), 'forbidden');

  // becoming non-anonymous is announced (104, 172)
  await configure(a, room, { 'muc#roomconfig_roomname': 'Book club', 'muc#roomconfig_whois': 'anyone' });
  const notice = await b.next((s) => s.is('message') && s.attrs.from === room && statusCodes(s).includes(104));
  t.deepEqual(statusCodes(notice), [104, 172]);
  const info = await b.request(xml('iq', { type: 'get', to: room }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' })));
  t.is(info.getChild('query')!.getChild('identity')!.attrs.name, 'Book club');
  t.true(info.getChild('query')!.getChildren('feature').some((f) => f.attrs.var === 'muc_nonanonymous'));

  // turning members-only removes non-members (322)
  await configure(a, room, { 'muc#roomconfig_membersonly': '1' });
  const removed = await b.next(isPresenceFrom(`${room}/Bob`, 'unavailable'));
  t.deepEqual(statusCodes(removed), [110, 322]);
});

test('an owner destroys a room, pointing everyone to another one', async (t) => {
  const { a, b } = await trio(t, server);
  const room = freshRoom('old');
  const venue = freshRoom('new');
  await createInstantRoom(a, room, 'Alice');
  await enter(b, room, 'Bob');
  await a.request(xml('iq', { type: 'set', to: room }, xml('query', { xmlns: NS_MUC_OWNER },
    xml('destroy', { jid: venue }, xml('reason', {}, 'we moved')))));
  const gone = await b.next(isPresenceFrom(`${room}/Bob`, 'unavailable'));
  const destroy = gone.getChild('x', NS_MUC_USER)!.getChild('destroy')!;
  t.is(destroy.attrs.jid, venue);
  t.is(destroy.getChildText('reason'), 'we moved');
  const error = await iqFailure(b.request(xml('iq', { type: 'get', to: room }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' }))));
  t.is(error, 'item-not-found');
});

test('only owners make admins, and a room keeps at least one owner', async (t) => {
  const { a, b, c, names } = await trio(t, server);
  const room = freshRoom('owners');
  await createPrivateGroup(a, room, 'Alice');
  await a.request(adminSet(room, { attrs: { jid: bare(server, names.bob), affiliation: 'admin' } }));
  await enter(b, room, 'Bob');
  // an admin adds members, but does not make admins
  await b.request(adminSet(room, { attrs: { jid: bare(server, names.carol), affiliation: 'member' } }));
  t.is(await iqFailure(b.request(adminSet(room, { attrs: { jid: bare(server, names.carol), affiliation: 'admin' } }))), 'not-allowed');
  await enter(c, room, 'Carol');
  t.is(await iqFailure(a.request(adminSet(room, { attrs: { jid: bare(server, names.alice), affiliation: 'member' } }))), 'conflict');
  const owners = await c.request(adminGet(room, { affiliation: 'owner' }));
  t.deepEqual(owners.getChild('query')!.getChildren('item').map((i) => i.attrs.jid), [bare(server, names.alice)]);
});

test('a large group can broadcast only its moderators\' presence: participants join quietly', async (t) => {
  const { a, b, c } = await trio(t, server);
  const room = freshRoom('broadcast');
  await enter(a, room, 'Alice');
  await configure(a, room, { 'muc#roomconfig_presencebroadcast': ['moderator'] });
  await enter(b, room, 'Bob');
  t.true(b.received.some(isPresenceFrom(`${room}/Alice`)), 'the moderator\'s presence is shown');
  await enter(c, room, 'Carol');
  t.false(c.received.some(isPresenceFrom(`${room}/Bob`)), 'participants\' presence is not');
  await b.send(groupchat(room, 'messages still reach everyone'));
  await Promise.all([a, c].map((client) => client.next(isGroupchat(`${room}/Bob`, 'messages still reach everyone'))));
  t.false(a.received.some(isPresenceFrom(`${room}/Bob`)));
  t.false(a.received.some(isPresenceFrom(`${room}/Carol`)));
});

test('a private group as Conversations makes one: the returned form submitted whole, members added in one request', async (t) => {
  const { a, b, c, names } = await trio(t, server);
  const room = freshRoom('conversations');
  const self = await join(a, room, 'Alice');
  t.true(statusCodes(self).includes(201));
  // the client fetches the form, changes some values and sends every field back
  const form = (await a.request(xml('iq', { type: 'get', to: room }, xml('query', { xmlns: NS_MUC_OWNER })))).getChild('query')!.getChild('x', 'jabber:x:data')!;
  const wanted: Record<string, string> = {
    'muc#roomconfig_persistentroom': '1', 'muc#roomconfig_membersonly': '1', 'muc#roomconfig_whois': 'anyone',
    'muc#roomconfig_publicroom': '0', 'muc#roomconfig_roomname': 'Family',
  };
  const submitted = xml('x', { xmlns: 'jabber:x:data', type: 'submit' },
    ...form.getChildren('field').map((field) => xml('field', { var: field.attrs.var! },
      ...(wanted[field.attrs.var!] !== undefined ? [wanted[field.attrs.var!]!] : field.getChildren('value').map((v) => v.getText())).map((v) => xml('value', {}, v)))));
  await a.request(xml('iq', { type: 'set', to: room }, xml('query', { xmlns: NS_MUC_OWNER }, submitted)));
  // both members in one admin request, then they join (after a direct invitation, user to user)
  await a.request(adminSet(room,
    { attrs: { jid: bare(server, names.bob), affiliation: 'member' } },
    { attrs: { jid: bare(server, names.carol), affiliation: 'member' } }));
  await enter(b, room, 'Bob');
  await enter(c, room, 'Carol');
  const info = await c.request(xml('iq', { type: 'get', to: room }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' })));
  const features = info.getChild('query')!.getChildren('feature').map((f) => f.attrs.var);
  for (const feature of ['muc_persistent', 'muc_membersonly', 'muc_nonanonymous', 'muc_hidden', 'muc_unsecured']) t.true(features.includes(feature), feature);
  t.is(info.getChild('query')!.getChild('identity')!.attrs.name, 'Family');
});

test('a visitor asks for voice; the moderators get the request and one grants it (§8.6)', async (t) => {
  const { a, b } = await trio(t, server);
  const room = freshRoom('voice-request');
  await enter(a, room, 'Alice');
  await configure(a, room, { 'muc#roomconfig_moderatedroom': '1' });
  await enter(b, room, 'Bob');
  await b.send(xml('message', { to: room }, xml('x', { xmlns: 'jabber:x:data', type: 'submit' },
    xml('field', { var: 'FORM_TYPE' }, xml('value', {}, 'http://jabber.org/protocol/muc#request')),
    xml('field', { var: 'muc#role', type: 'list-single' }, xml('value', {}, 'participant')))));
  const request = await a.next((s) => s.is('message') && s.attrs.from === room && s.getChild('x', 'jabber:x:data') !== undefined);
  const fields = request.getChild('x', 'jabber:x:data')!.getChildren('field');
  const value = (name: string) => fields.find((f) => f.attrs.var === name)?.getChildText('value');
  t.is(value('muc#roomnick'), 'Bob');
  t.is(value('muc#jid'), b.jid.split('/')[0]);
  await a.send(xml('message', { to: room }, xml('x', { xmlns: 'jabber:x:data', type: 'submit' },
    xml('field', { var: 'FORM_TYPE' }, xml('value', {}, 'http://jabber.org/protocol/muc#request')),
    xml('field', { var: 'muc#role' }, xml('value', {}, 'participant')),
    xml('field', { var: 'muc#roomnick' }, xml('value', {}, 'Bob')),
    xml('field', { var: 'muc#request_allow' }, xml('value', {}, 'true')))));
  await b.next((s) => isPresenceFrom(`${room}/Bob`)(s) && itemOf(s).role === 'participant');
  await b.send(groupchat(room, 'thank you'));
  await a.next(isGroupchat(`${room}/Bob`, 'thank you'));
  t.pass();
});

test('a removed account loses its memberships: someone registering the name later is not a member', async (t) => {
  const { a } = await trio(t, server);
  const { dave } = await freshAccounts(server, 'dave');
  const room = freshRoom('removed');
  await createPrivateGroup(a, room, 'Alice');
  await a.request(adminSet(room, { attrs: { jid: bare(server, dave), affiliation: 'member' } }));
  const d = await login(server, dave, 'phone');
  await d.request(xml('iq', { type: 'set' }, xml('query', { xmlns: 'jabber:iq:register' }, xml('remove'))));
  await d.stop();
  await server.createAccount(dave); // a stranger takes the name
  const stranger = await occupantClient(t, server, dave);
  t.is(errorCondition(await join(stranger, room, 'Dave')), 'registration-required');
  const members = await a.request(adminGet(room, { affiliation: 'member' }));
  t.deepEqual(members.getChild('query')!.getChildren('item'), []);
});
