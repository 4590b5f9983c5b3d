// XEP-0049 private XML storage: what a user's clients keep on the server for themselves.
import test from 'ava';
import type Element from 'ltx/lib/Element.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { xml, type TestClient } from '../helpers/clients.js';
import { bare, freshAccounts, iqFailure, login, loginForTest } from '../helpers/conversation.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
const NS_PRIVATE = 'jabber:iq:private';
const NS_BOOKMARKS = 'storage:bookmarks';

let server: TestServer;
test.before(async () => {
  server = await startServer();
});
test.after.always(async () => server?.stop());

const store = (client: TestClient, element: Element, to?: string) =>
  client.request(xml('iq', to === undefined ? { type: 'set' } : { type: 'set', to }, xml('query', { xmlns: NS_PRIVATE }, element)));
const fetch = (client: TestClient, element: Element, to?: string) =>
  client.request(xml('iq', to === undefined ? { type: 'get' } : { type: 'get', to }, xml('query', { xmlns: NS_PRIVATE }, element)));
const bookmarks = (...rooms: string[]) => xml('storage', { xmlns: NS_BOOKMARKS }, ...rooms.map((jid) => xml('conference', { jid, autojoin: 'true' })));
const storedRooms = (result: Element) =>
  result.getChild('query', NS_PRIVATE)!.getChild('storage', NS_BOOKMARKS)!.getChildren('conference').map((c) => c.attrs.jid);

test('Alice stores her bookmarks, reads them on another device, and overwrites them', async (t) => {
  const { alice } = await freshAccounts(server, 'alice');
  const phone = await loginForTest(t, server, alice, 'phone');
  await store(phone, bookmarks('tea@conference.localhost'));
  const laptop = await loginForTest(t, server, alice, 'laptop');
  t.deepEqual(storedRooms(await fetch(laptop, xml('storage', { xmlns: NS_BOOKMARKS }))), ['tea@conference.localhost']);

  await store(laptop, bookmarks('croquet@conference.localhost', 'court@conference.localhost'), bare(server, alice));
  t.deepEqual(storedRooms(await fetch(phone, xml('storage', { xmlns: NS_BOOKMARKS }))), ['croquet@conference.localhost', 'court@conference.localhost']);
});

test('a namespace never stored reads back as the empty element', async (t) => {
  const { alice } = await freshAccounts(server, 'alice');
  const a = await loginForTest(t, server, alice, 'phone');
  const result = await fetch(a, xml('prefs', { xmlns: 'exodus:prefs' }));
  const prefs = result.getChild('query', NS_PRIVATE)!.getChild('prefs', 'exodus:prefs')!;
  t.is(prefs.children.length, 0);
});

test('someone else\'s private storage is forbidden', async (t) => {
  const { alice, mallory } = await freshAccounts(server, 'alice', 'mallory');
  const a = await loginForTest(t, server, alice, 'phone');
  await store(a, bookmarks('secret@conference.localhost'));
  const m = await loginForTest(t, server, mallory, 'pc');
  t.is(await iqFailure(fetch(m, xml('storage', { xmlns: NS_BOOKMARKS }), bare(server, alice))), 'forbidden');
  t.is(await iqFailure(store(m, bookmarks('spam@conference.localhost'), bare(server, alice))), 'forbidden');
});

test('elements in reserved namespaces or without one are refused', async (t) => {
  const { alice } = await freshAccounts(server, 'alice');
  const a = await loginForTest(t, server, alice, 'phone');
  t.is(await iqFailure(store(a, xml('query', { xmlns: NS_PRIVATE }))), 'not-acceptable');
  t.is(await iqFailure(store(a, xml('message', { xmlns: 'jabber:client' }))), 'not-acceptable');
  t.is(await iqFailure(a.request(xml('iq', { type: 'set' }, xml('query', { xmlns: NS_PRIVATE })))), 'not-acceptable');
  t.is(await iqFailure(a.request(xml('iq', { type: 'get' }, xml('query', { xmlns: NS_PRIVATE })))), 'bad-request');
});

test('private XML survives a restart', async (t) => {
  const first = await startServer();
  await first.createAccount('alice');
  const a = await login(first, 'alice', 'phone');
  await store(a, bookmarks('tea@conference.localhost'));
  await a.stop();
  await first.stop();

  const second = await startServer({ dataDir: first.dataDir });
  t.teardown(() => second.stop());
  const again = await loginForTest(t, second, 'alice', 'laptop');
  t.deepEqual(storedRooms(await fetch(again, xml('storage', { xmlns: NS_BOOKMARKS }))), ['tea@conference.localhost']);
});
