// Message archive (XEP-0313): Alice and Bob chat; whatever device Bob picks up later finds the
// conversation on the server, page by page, and each live message names its archive entry
// (XEP-0359 stanza-id).
import test, { type ExecutionContext } from 'ava';
import type Element from 'ltx/lib/Element.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { xml, type TestClient } from '../helpers/clients.js';
import { bare, chat, errorCondition, freshAccounts, iqFailure, makeFriends, online, settle, loginForTest } from '../helpers/conversation.js';
import { NS_MAM, NS_SID, mamQuery, stanzaIdOf, type ArchivedMessage, type MamPage } from '../helpers/mam.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
const NS_CARBONS = 'urn:xmpp:carbons:2';
const NS_FORWARD = 'urn:xmpp:forward:0';
const MAX_PAGE = 20;

let server: TestServer;
test.before(async () => {
  server = await startServer({
    config: { modules: { roster: {}, presence: {}, offline: {}, carbons: {}, disco: {}, ping: {}, register: {}, mam: { max_page: MAX_PAGE } } },
  });
});
test.after.always(async () => server?.stop());

async function device(t: ExecutionContext, username: string, resource: string, options: { carbons?: boolean } = {}): Promise<TestClient> {
  const client = await loginForTest(t, server, username, resource);
  if (options.carbons) await client.request(xml('iq', { type: 'set' }, xml('enable', { xmlns: NS_CARBONS })));
  await online(client);
  return client;
}

/** Alice and Bob exchange `n` messages, alternating, each one waited for by its recipient. */
async function converse(a: TestClient, b: TestClient, n: number): Promise<string[]> {
  const bodies: string[] = [];
  for (let i = 1; i <= n; i++) {
    const [from, to] = i % 2 === 1 ? [a, b] : [b, a];
    const body = `message ${i} from ${from === a ? 'alice' : 'bob'}`;
    bodies.push(body);
    await from.send(chat(to.jid.split('/')[0]!, body));
    await to.next((s) => s.is('message') && s.getChildText('body') === body);
  }
  return bodies;
}

/** The error condition a query failed with. */
const mamFailure = (query: Promise<MamPage>) => iqFailure(query.then((page) => page.fin));
const bodiesOf = (results: ArchivedMessage[]) => results.map((r) => r.body);

test('a new device of Bob pages back through the last week, backwards then forwards, each message once in order', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await device(t, alice, 'phone');
  const b = await device(t, bob, 'phone');
  const sent = await converse(a, b, 25);

  const tablet = await device(t, bob, 'tablet');
  const weekAgo = new Date(Date.now() - 7 * 86_400_000);
  // backwards from the end (<before/> empty), 7 at a time, as clients fill a chat window upwards
  const pages: ArchivedMessage[][] = [];
  let before = '';
  for (;;) {
    const page = await mamQuery(tablet, { with: bare(server, alice), start: weekAgo, max: 7, before });
    pages.unshift(page.results);
    t.is(page.first, page.results[0]?.id);
    t.is(page.last, page.results.at(-1)?.id);
    if (page.complete) break;
    t.is(page.results.length, 7, 'only the last page is short');
    before = page.first!;
  }
  t.is(pages.length, 4);
  const backwards = pages.flat();
  t.deepEqual(bodiesOf(backwards), sent);
  t.is(new Set(backwards.map((r) => r.id)).size, 25, 'every archive id is distinct');
  for (const r of backwards) {
    t.is(r.message.attrs.xmlns, 'jabber:client');
    t.true(r.message.attrs.from!.startsWith(`${alice}@`) || r.message.attrs.from!.startsWith(`${bob}@`));
    t.regex(r.stamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  }

  // forwards from the start, with <after/>
  const forwards: ArchivedMessage[] = [];
  let after: string | undefined;
  for (let n = 0; ; n++) {
    const page = await mamQuery(tablet, { with: bare(server, alice), start: weekAgo, max: 10, ...(after === undefined ? {} : { after }) });
    forwards.push(...page.results);
    if (page.complete) {
      t.is(n, 2);
      break;
    }
    after = page.last;
  }
  t.deepEqual(forwards.map((r) => r.id), backwards.map((r) => r.id));
  // Alice's archive has the same conversation under ids of its own
  const alicesView = await mamQuery(a, { with: bare(server, bob) });
  t.deepEqual(bodiesOf(alicesView.results), sent.slice(0, MAX_PAGE), 'no <max/>: a page of the server\'s size');
  t.false(alicesView.complete);
  t.false(alicesView.results.some((r) => backwards.some((x) => x.id === r.id)));
});

test('a delivered message carries the stanza-id of its entry in the recipient archive; carbons carry theirs', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const aPhone = await device(t, alice, 'phone');
  const aLaptop = await device(t, alice, 'laptop', { carbons: true });
  const bPhone = await device(t, bob, 'phone');
  const bLaptop = await device(t, bob, 'laptop', { carbons: true });
  const aliceBare = bare(server, alice);
  const bobBare = bare(server, bob);

  await aPhone.send(chat(`${bobBare}/phone`, 'to your phone'));
  const got = await bPhone.next((s) => s.is('message') && s.getChildText('body') === 'to your phone');
  const received = await bLaptop.next((s) => s.is('message') && s.getChild('received', NS_CARBONS) !== undefined);
  const sentCopy = await aLaptop.next((s) => s.is('message') && s.getChild('sent', NS_CARBONS) !== undefined);

  const bobsId = stanzaIdOf(got, bobBare);
  t.truthy(bobsId);
  t.is(got.getChildren('stanza-id', NS_SID).length, 1, "the sender's archive id does not travel to the recipient");
  const receivedCopy = received.getChild('received', NS_CARBONS)!.getChild('forwarded', NS_FORWARD)!.getChild('message')!;
  t.is(stanzaIdOf(receivedCopy, bobBare), bobsId);
  const sentMessage = sentCopy.getChild('sent', NS_CARBONS)!.getChild('forwarded', NS_FORWARD)!.getChild('message')!;
  const alicesId = stanzaIdOf(sentMessage, aliceBare);
  t.truthy(alicesId);

  const bobs = await mamQuery(bPhone, { with: aliceBare });
  t.deepEqual(bobs.results.map((r) => r.id), [bobsId]);
  const alices = await mamQuery(aPhone, { with: bobBare });
  t.deepEqual(alices.results.map((r) => r.id), [alicesId]);
  t.is(alices.results[0]!.message.getChildren('stanza-id', NS_SID).length, 0, 'the archived copy is the message as sent');
});

test('a stanza-id forged in our name is stripped; one by someone else is kept', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await device(t, alice, 'phone');
  const b = await device(t, bob, 'phone');
  const bobBare = bare(server, bob);
  await a.send(xml('message', { to: bobBare, type: 'chat' }, xml('body', {}, 'trust me'),
    xml('stanza-id', { xmlns: NS_SID, by: bobBare, id: 'forged-1' }),
    xml('stanza-id', { xmlns: NS_SID, by: 'elsewhere.example', id: 'theirs-1' })));
  const got = await b.next((s) => s.is('message') && s.getChildText('body') === 'trust me');
  const ids = got.getChildren('stanza-id', NS_SID);
  t.is(ids.filter((s) => s.attrs.by === bobBare).length, 1);
  t.not(stanzaIdOf(got, bobBare), 'forged-1');
  t.is(stanzaIdOf(got, 'elsewhere.example'), 'theirs-1');
  const archived = await mamQuery(b, { with: bare(server, alice) });
  t.is(archived.results[0]!.id as string | undefined, stanzaIdOf(got, bobBare));
  t.is(archived.results[0]!.message.getChildren('stanza-id', NS_SID).filter((s) => s.attrs.by === bobBare).length, 0);
});

test('a message for an offline user is archived, and the stored copy carries the stanza-id', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await device(t, alice, 'phone');
  await a.send(chat(bare(server, bob), 'while you were away'));
  await settle(a);
  const b = await device(t, bob, 'phone');
  const got = await b.next((s) => s.is('message') && s.getChildText('body') === 'while you were away');
  const archived = await mamQuery(b, {});
  t.deepEqual(bodiesOf(archived.results), ['while you were away']);
  t.is(stanzaIdOf(got, bare(server, bob)), archived.results[0]!.id);
});

test('a message refused because the offline storage is full is bounced, and is not in the recipient\'s archive either', async (t) => {
  const small = await startServer({ config: { modules: { roster: {}, presence: {}, offline: { max_messages: 3 }, disco: {}, ping: {}, mam: {} } } });
  t.teardown(() => small.stop());
  await small.createAccount('alice');
  await small.createAccount('bob');
  const a = await loginForTest(t, small, 'alice', 'phone');
  const sent = [1, 2, 3, 4, 5].map((i) => `while you were away ${i}`);
  for (const body of sent) await a.send(chat('bob@localhost', body));
  await settle(a);
  const refused = a.received.filter((s) => s.is('message') && s.attrs.type === 'error');
  t.deepEqual(refused.map((s) => [s.getChildText('body'), errorCondition(s)]), [[sent[3], 'resource-constraint'], [sent[4], 'resource-constraint']]);
  const b = await loginForTest(t, small, 'bob', 'phone');
  await online(b);
  await b.next((s) => s.is('message') && s.getChildText('body') === sent[2]);
  t.deepEqual(bodiesOf((await mamQuery(b, {})).results), sent.slice(0, 3), 'what he was told of, as the sender was');
  t.deepEqual(bodiesOf((await mamQuery(a, {})).results), sent, 'the sender\'s archive keeps what she sent');
});

test('what is archived: bodies, receipts and markers; not chat states alone, nor no-store, nor errors', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await device(t, alice, 'phone');
  const b = await device(t, bob, 'phone');
  const to = bare(server, bob);
  await a.send(xml('message', { to, type: 'chat', id: 'typing' }, xml('composing', { xmlns: 'http://jabber.org/protocol/chatstates' })));
  await a.send(xml('message', { to, type: 'chat', id: 'secret' }, xml('body', {}, 'off the record'), xml('no-store', { xmlns: 'urn:xmpp:hints' })));
  await a.send(xml('message', { to, type: 'chat', id: 'hello' }, xml('body', {}, 'hello'), xml('active', { xmlns: 'http://jabber.org/protocol/chatstates' })));
  await a.send(xml('message', { to, type: 'chat', id: 'tick' }, xml('received', { xmlns: 'urn:xmpp:receipts', id: 'x1' })));
  await a.send(xml('message', { to, type: 'chat', id: 'read' }, xml('displayed', { xmlns: 'urn:xmpp:chat-markers:0', id: 'x1' })));
  await a.send(xml('message', { to, type: 'headline', id: 'news' }, xml('body', {}, 'extra!')));
  await b.next((s) => s.is('message') && s.attrs.id === 'news');
  const archived = await mamQuery(b, { with: bare(server, alice) });
  t.deepEqual(archived.results.map((r) => r.message.attrs.id), ['hello', 'tick', 'read']);
  const sent = await mamQuery(a, {});
  t.deepEqual(sent.results.map((r) => r.message.attrs.id), ['hello', 'tick', 'read']);
});

test('filters: with a full JID, start and end, after-id and before-id, ids', async (t) => {
  const { alice, bob, carol } = await freshAccounts(server, 'alice', 'bob', 'carol');
  const a = await device(t, alice, 'phone');
  const aLaptop = await device(t, alice, 'laptop');
  const b = await device(t, bob, 'phone');
  const c = await device(t, carol, 'phone');
  await converse(a, b, 4); // 1 3 from alice/phone, 2 4 from bob
  await aLaptop.send(chat(bare(server, bob), 'from the laptop'));
  await b.next((s) => s.getChildText('body') === 'from the laptop');
  await c.send(chat(bare(server, bob), 'carol here'));
  await b.next((s) => s.getChildText('body') === 'carol here');

  const all = await mamQuery(b, {});
  t.deepEqual(bodiesOf(all.results), ['message 1 from alice', 'message 2 from bob', 'message 3 from alice', 'message 4 from bob', 'from the laptop', 'carol here']);
  t.true(all.complete);
  const withAlice = await mamQuery(b, { with: bare(server, alice) });
  t.is(withAlice.results.length, 5);
  const withLaptop = await mamQuery(b, { with: `${bare(server, alice)}/laptop` });
  t.deepEqual(bodiesOf(withLaptop.results), ['from the laptop']);
  const withCarol = await mamQuery(b, { with: bare(server, carol) });
  t.deepEqual(bodiesOf(withCarol.results), ['carol here']);

  const ids = all.results.map((r) => r.id);
  t.deepEqual(bodiesOf((await mamQuery(b, { afterId: ids[3] })).results), ['from the laptop', 'carol here']);
  t.deepEqual(bodiesOf((await mamQuery(b, { beforeId: ids[2] })).results), ['message 1 from alice', 'message 2 from bob']);
  t.deepEqual(bodiesOf((await mamQuery(b, { afterId: ids[0], beforeId: ids[3] })).results), ['message 2 from bob', 'message 3 from alice']);
  t.deepEqual((await mamQuery(b, { ids: [ids[4]!, ids[1]!] })).results.map((r) => r.id), [ids[1], ids[4]], 'in archive order');

  const stamps = all.results.map((r) => new Date(r.stamp));
  const window = await mamQuery(b, { start: stamps[0], end: stamps[5] });
  t.is(window.results.length, 6);
  t.deepEqual((await mamQuery(b, { start: new Date(stamps[5]!.getTime() + 1) })).results, []);
  t.deepEqual((await mamQuery(b, { end: new Date(stamps[0]!.getTime() - 1) })).results, []);
  const future = await mamQuery(b, { start: new Date(Date.now() + 86_400_000) });
  t.deepEqual(future.results, []);
  t.true(future.complete);
});

test('bad queries get the errors XEP-0313 and XEP-0059 name', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await device(t, alice, 'phone');
  t.is(await mamFailure(mamQuery(a, { afterId: 'nosuchid12345' })), 'item-not-found');
  t.is(await mamFailure(mamQuery(a, { before: 'zzzzzzzzzzzz' })), 'item-not-found');
  t.is(await mamFailure(mamQuery(a, { fields: { 'free-text': 'lunch' } })), 'bad-request');
  t.is(await mamFailure(mamQuery(a, { fields: { start: 'yesterday' } })), 'bad-request');
  t.is(await mamFailure(mamQuery(a, { to: bare(server, bob) })), 'forbidden', "another user's archive");
  // an archive id of Bob's is not found in Alice's archive
  const b = await device(t, bob, 'phone');
  await a.send(chat(bare(server, bob), 'hi'));
  const got = await b.next((s) => s.getChildText('body') === 'hi');
  t.is(await mamFailure(mamQuery(a, { afterId: stanzaIdOf(got, bare(server, bob))! })), 'item-not-found');
});

test('a page is at most max_page long, whatever <max/> asks', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await device(t, alice, 'phone');
  const b = await device(t, bob, 'phone');
  for (let i = 0; i < MAX_PAGE + 5; i++) await a.send(chat(bare(server, bob), `n${i}`));
  await b.next((s) => s.getChildText('body') === `n${MAX_PAGE + 4}`);
  const page = await mamQuery(b, { max: 1000 });
  t.is(page.results.length, MAX_PAGE);
  t.false(page.complete);
  const rest = await mamQuery(b, { max: 1000, after: page.last! });
  t.is(rest.results.length, 5);
  t.true(rest.complete);
  const count = await mamQuery(b, { max: 0 });
  t.deepEqual(count.results, []);
  t.is(count.fin.getChild('set', 'http://jabber.org/protocol/rsm')?.getChildText('count'), String(MAX_PAGE + 5));
});

test("preferences: Bob's 'never' keeps nothing in his archive (Alice's keeps hers); 'roster' only contacts", async (t) => {
  const { alice, bob, carol } = await freshAccounts(server, 'alice', 'bob', 'carol');
  await makeFriends(server, bob, carol);
  const a = await device(t, alice, 'phone');
  const b = await device(t, bob, 'phone');
  const c = await device(t, carol, 'phone');
  const bobBare = bare(server, bob);

  const set = await b.request(xml('iq', { type: 'set' }, xml('prefs', { xmlns: NS_MAM, default: 'never' }, xml('always'), xml('never'))));
  t.is(set.getChild('prefs', NS_MAM)?.attrs.default, 'never');
  await a.send(chat(bobBare, 'not kept by bob'));
  await b.next((s) => s.getChildText('body') === 'not kept by bob');
  t.deepEqual((await mamQuery(b, {})).results, []);
  t.deepEqual(bodiesOf((await mamQuery(a, {})).results), ['not kept by bob']);

  await b.request(xml('iq', { type: 'set' }, xml('prefs', { xmlns: NS_MAM, default: 'roster' }, xml('always'), xml('never'))));
  await a.send(chat(bobBare, 'from a stranger'));
  await c.send(chat(bobBare, 'from a contact'));
  await b.next((s) => s.getChildText('body') === 'from a stranger');
  await b.next((s) => s.getChildText('body') === 'from a contact');
  t.deepEqual(bodiesOf((await mamQuery(b, {})).results), ['from a contact']);

  // a JID on the always list is archived whatever the default
  await b.request(xml('iq', { type: 'set' }, xml('prefs', { xmlns: NS_MAM, default: 'never' }, xml('always', {}, xml('jid', {}, bare(server, alice))), xml('never'))));
  const prefs = await b.request(xml('iq', { type: 'get' }, xml('prefs', { xmlns: NS_MAM })));
  t.deepEqual(prefs.getChild('prefs', NS_MAM)!.getChild('always')!.getChildren('jid').map((j) => j.getText()), [bare(server, alice)]);
  await a.send(chat(bobBare, 'always kept'));
  await b.next((s) => s.getChildText('body') === 'always kept');
  t.deepEqual(bodiesOf((await mamQuery(b, {})).results), ['from a contact', 'always kept']);
});

test('discovery: the account advertises MAM and stanza-ids; the form and the metadata are there', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await device(t, alice, 'phone');
  const info = await a.request(xml('iq', { type: 'get', to: bare(server, alice) }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' })));
  const features = info.getChild('query')!.getChildren('feature').map((f) => f.attrs.var);
  for (const feature of [NS_MAM, `${NS_MAM}#extended`, NS_SID]) t.true(features.includes(feature), feature);

  const form = await a.request(xml('iq', { type: 'get' }, xml('query', { xmlns: NS_MAM })));
  const vars = form.getChild('query', NS_MAM)!.getChild('x', 'jabber:x:data')!.getChildren('field').map((f: Element) => f.attrs.var);
  t.deepEqual(vars, ['FORM_TYPE', 'with', 'start', 'end', 'before-id', 'after-id', 'ids']);

  const empty = await a.request(xml('iq', { type: 'get' }, xml('metadata', { xmlns: NS_MAM })));
  t.deepEqual(empty.getChild('metadata', NS_MAM)!.getChildElements(), []);
  const b = await device(t, bob, 'phone');
  await a.send(chat(bare(server, bob), 'one'));
  await a.send(chat(bare(server, bob), 'two'));
  await b.next((s) => s.getChildText('body') === 'two');
  const all = await mamQuery(a, {});
  const meta = (await a.request(xml('iq', { type: 'get' }, xml('metadata', { xmlns: NS_MAM })))).getChild('metadata', NS_MAM)!;
  t.is(meta.getChild('start')?.attrs.id, all.results[0]!.id);
  t.is(meta.getChild('end')?.attrs.id, all.results[1]!.id);
});

test('an account removed in-band takes its archive with it; whoever registers the name next starts empty', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await device(t, alice, 'phone');
  const b = await device(t, bob, 'phone');
  await a.send(chat(bare(server, bob), 'for the old bob'));
  await b.next((s) => s.getChildText('body') === 'for the old bob');
  t.is((await mamQuery(b, {})).results.length, 1);
  await b.request(xml('iq', { type: 'set' }, xml('query', { xmlns: 'jabber:iq:register' }, xml('remove'))));
  await server.createAccount(bob);
  const newBob = await device(t, bob, 'laptop');
  // the deletion runs in the background: the archive is empty once it is done
  let results = (await mamQuery(newBob, {})).results;
  for (let attempt = 0; results.length > 0 && attempt < 50; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    results = (await mamQuery(newBob, {})).results;
  }
  t.deepEqual(results, []);
  t.deepEqual((await mamQuery(a, {})).results.map((r) => r.body), ['for the old bob'], "Alice's archive is hers");
});

test('across two virtual hosts, both archives keep the conversation (ids unique server-wide)', async (t) => {
  const twoHosts = await startServer({
    config: {
      hosts: [{ domain: 'localhost', registration: 'open' }, { domain: 'chat.example' }],
      modules: { roster: {}, presence: {}, offline: {}, disco: {}, ping: {}, mam: {} },
    },
  });
  t.teardown(() => twoHosts.stop());
  await twoHosts.createAccount('alice');
  await twoHosts.server.accounts.create('chat.example', 'bob', 'bobs password');
  const a = await loginForTest(t, twoHosts, 'alice', 'a');
  const b = await loginForTest(t, { ...twoHosts, domain: 'chat.example' }, 'bob', 'b', { password: 'bobs password' });
  await online(a);
  await online(b);
  const sent: string[] = [];
  for (let i = 1; i <= 10; i++) {
    sent.push(`across ${i}`);
    await a.send(chat('bob@chat.example', `across ${i}`));
  }
  await b.next((s) => s.getChildText('body') === 'across 10');
  t.deepEqual(bodiesOf((await mamQuery(a, {})).results), sent);
  t.deepEqual(bodiesOf((await mamQuery(b, {})).results), sent);
});
