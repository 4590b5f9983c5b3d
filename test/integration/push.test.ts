// XEP-0357 push notifications, as a phone lives them: Bob's phone enables push with its app
// server, then sleeps (its connection dropped, its session waiting for resumption) or is gone;
// Alice writes; the app server gets a summary that wakes the phone. End to end, the app server is
// a real third party's: a pubsub component of a Prosody (Debian's) started here, reached over
// s2s, where the notification lands on the device's node. The other tests use a local account
// as a fake app server whose client answers the publishes as the test says.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import type Element from 'ltx/lib/Element.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { xml, type TestClient } from '../helpers/clients.js';
import { bare, chat, freshAccounts, iqFailure, login, loginForTest, online, settle } from '../helpers/conversation.js';
import { NS_MUC, createInstantRoom, enter, groupchat, isGroupchat } from '../helpers/muc.js';
import { eventually, freePort, loginOn, startFederated } from '../helpers/federation.js';
import { SmClient } from '../helpers/sm-client.js';
import { createTestCa } from '../helpers/test-ca.js';
import { startTestDns, type TestDns } from '../helpers/dns.js';
import { hasProsody, prosodyRequirement, startProsody, type ProsodyServer } from '../helpers/prosody.js';
import { serialTestNeeding } from '../helpers/requirements.js';
import { STANDARD_MODULES } from '../../src/config/schema.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // the test server's certificate is self-signed

const NS_PUSH = 'urn:xmpp:push:0';
const NS_PUBSUB = 'http://jabber.org/protocol/pubsub';
const NS_DATA = 'jabber:x:data';
const NS_DISCO_INFO = 'http://jabber.org/protocol/disco#info';
const NS_JINGLE_MESSAGE = 'urn:xmpp:jingle-message:0';
const NS_STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';
const PUBLISH_OPTIONS = 'http://jabber.org/protocol/pubsub#publish-options';
/** The throttle of the test server: a burst gives one push at once and one this much later. */
const THROTTLE = '2s';

const OURS = 'xmppd-push.example';
/** The Prosody of the app server's operator, and its pubsub component: the app server. */
const THEIRS = 'prosody-push.example';
const APP_SERVICE = `push.${THEIRS}`;
const NS_PUBSUB_EVENT = 'http://jabber.org/protocol/pubsub#event';

let server: TestServer;
let prosody: ProsodyServer | undefined;
let dns: TestDns | undefined;
const interop = serialTestNeeding(prosodyRequirement);

test.before(async () => {
  const modules: Record<string, unknown> = Object.fromEntries(STANDARD_MODULES.map((name) => [name, {}]));
  modules.push = { throttle: THROTTLE, max_errors: 3 };
  // a phone that leaves an acknowledgement request unanswered a second counts as asleep
  const c2s = { ack_delay: '1s' };
  if (!hasProsody) {
    server = await startServer({ config: { modules, c2s } });
    return;
  }
  const { certs } = createTestCa([THEIRS, APP_SERVICE]); // a CA nobody trusts: dialback
  dns = await startTestDns();
  const s2sPort = await freePort();
  dns.addSrv(`_xmpp-server._tcp.${OURS}`, OURS, s2sPort);
  prosody = await startProsody({
    dnsPort: dns.port,
    hosts: [{ domain: THEIRS, ...certs[THEIRS]! }],
    // Prosody's pubsub lets only admins create nodes: the app server's operator is one
    components: [{ domain: APP_SERVICE, module: 'pubsub', ...certs[APP_SERVICE]! }],
    admins: [`operator@${THEIRS}`],
  });
  server = await startFederated({ domain: OURS, s2sPort, routes: { [THEIRS]: prosody.s2sPort, [APP_SERVICE]: prosody.s2sPort }, config: { modules, c2s } });
});
test.after.always(async () => {
  await server?.stop();
  await prosody?.stop();
  await dns?.close();
});

/** The publish-options form Conversations sends: its secret for the app server. */
function publishOptions(secret: string): Element {
  return xml('x', { xmlns: NS_DATA, type: 'submit' },
    xml('field', { var: 'FORM_TYPE' }, xml('value', {}, PUBLISH_OPTIONS)),
    xml('field', { var: 'secret' }, xml('value', {}, secret)));
}

function enable(service: string, node: string, form?: Element): Element {
  return xml('iq', { type: 'set', id: `enable-${node}` }, xml('enable', { xmlns: NS_PUSH, jid: service, node }, ...(form ? [form] : [])));
}

/** A fake app server: a local account's client that answers each publish as told (a result by default). */
interface AppServer {
  client: TestClient;
  jid: string;
  /** The next publish it gets. */
  next(timeoutMs?: number): Promise<Element>;
  /** How it answers from now on: null for a result, else an error condition. */
  answer: string | null;
  publishes: Element[];
}

async function appServer(t: ExecutionContext): Promise<AppServer> {
  const { app } = await freshAccounts(server, 'app');
  const client = await loginForTest(t, server, app, 'relay');
  const fake: AppServer = {
    client,
    jid: client.jid,
    answer: null,
    publishes: [],
    next: (timeoutMs = 10000) => client.next(isPublish, timeoutMs),
  };
  client.xmpp.on('stanza', (stanza: Element) => {
    if (!isPublish(stanza)) return;
    fake.publishes.push(stanza);
    const reply = fake.answer === null
      ? xml('iq', { type: 'result', id: stanza.attrs.id, to: stanza.attrs.from })
      : xml('iq', { type: 'error', id: stanza.attrs.id, to: stanza.attrs.from }, xml('error', { type: 'cancel' }, xml(fake.answer, { xmlns: NS_STANZAS })));
    void client.send(reply);
  });
  return fake;
}

const isPublish = (s: Element) => s.is('iq') && s.attrs.type === 'set' && s.getChild('pubsub', NS_PUBSUB)?.getChild('publish') !== undefined;

/** The summary form's fields of a publish (XEP-0357 §5), by var. */
function summary(publish: Element): Record<string, string> {
  const form = publish.getChild('pubsub', NS_PUBSUB)!.getChild('publish')!.getChild('item')!.getChild('notification', NS_PUSH)!.getChild('x', NS_DATA)!;
  return Object.fromEntries(form.getChildren('field').map((f) => [f.attrs.var!, f.getChildText('value') ?? '']));
}

const nodeOf = (publish: Element) => publish.getChild('pubsub', NS_PUBSUB)!.getChild('publish')!.attrs.node;

/** Bob's phone: a raw stream-management client, push enabled with `service`, then its connection cut; resolves once the server holds its session for resumption. */
async function sleepingPhone(t: ExecutionContext, username: string, service: string, node: string, form?: Element, beforeSleep?: (phone: SmClient) => Promise<void>): Promise<SmClient> {
  const phone = await SmClient.login(server, username, 'phone');
  t.teardown(() => phone.cut());
  await phone.enable();
  await phone.online();
  await beforeSleep?.(phone);
  phone.stanza(enable(service, node, form).toString());
  const answer = await phone.next((e) => e.is('iq') && e.attrs.id === `enable-${node}`);
  t.is(answer.attrs.type, 'result');
  phone.cut();
  await eventually(() => [...(server.server.sessions.resources(bare(server, username))?.values() ?? [])].some((s) => s.describe().transport === 'hibernating'), 10000, 'the session to hibernate');
  return phone;
}

test("Bob's phone sleeps; Alice's message wakes it through its app server, with the sender, the count and the publish options, and without the text", async (t) => {
  const app = await appServer(t);
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  await sleepingPhone(t, bob, app.jid, 'bob-phone', publishOptions('s3cret'));
  const aliceClient = await loginForTest(t, server, alice, 'laptop');
  await aliceClient.send(chat(bare(server, bob), 'meet me at noon, the password is swordfish'));

  const publish = await app.next();
  t.is(publish.attrs.from, bare(server, bob));
  t.is(nodeOf(publish), 'bob-phone');
  t.deepEqual(summary(publish), { FORM_TYPE: 'urn:xmpp:push:summary', 'message-count': '1', 'last-message-sender': aliceClient.jid });
  t.false(publish.toString().includes('swordfish'));
  // XEP-0357 §5: the options the client gave go back in each publish
  const options = publish.getChild('pubsub', NS_PUBSUB)!.getChild('publish-options')!.getChild('x', NS_DATA)!;
  t.deepEqual(options.getChildren('field').map((f) => [f.attrs.var, f.getChildText('value')]), [['FORM_TYPE', PUBLISH_OPTIONS], ['secret', 's3cret']]);
});

test('a phone still connected that stops acknowledging (asleep on a link that looks open) is woken for what it has not acknowledged, counted once when the link then drops', async (t) => {
  const app = await appServer(t);
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const phone = await SmClient.login(server, bob, 'phone');
  t.teardown(() => phone.cut());
  await phone.enable();
  await phone.online();
  phone.stanza(enable(app.jid, 'dozing').toString());
  await phone.next((e) => e.is('iq') && e.attrs.id === 'enable-dozing');
  phone.ack();
  const aliceClient = await loginForTest(t, server, alice, 'laptop');
  await aliceClient.send(chat(bare(server, bob), 'wake up'));
  // the message and the server's <r/> reach the phone, which does not answer
  await phone.next((e) => e.is('message') && e.getChildText('body') === 'wake up');
  const publish = await app.next();
  t.deepEqual(summary(publish), { FORM_TYPE: 'urn:xmpp:push:summary', 'message-count': '1', 'last-message-sender': aliceClient.jid });
  t.false(phone.closed); // still connected: only the acknowledgement was late
  // then the link drops: the message already pushed for is not counted again
  phone.cut();
  await eventually(() => [...(server.server.sessions.resources(bare(server, bob))?.values() ?? [])].some((s) => s.describe().transport === 'hibernating'), 10000, 'the session to hibernate');
  await aliceClient.send(chat(bare(server, bob), 'hello?'));
  t.is(summary(await app.next())['message-count'], '2');
});

test('a burst of messages to a sleeping phone makes one push at once and one with the count at the end of the throttle interval', async (t) => {
  const app = await appServer(t);
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  await sleepingPhone(t, bob, app.jid, 'burst');
  const aliceClient = await loginForTest(t, server, alice, 'laptop');
  for (const word of ['one', 'two', 'three']) await aliceClient.send(chat(bare(server, bob), word));
  t.is(summary(await app.next())['message-count'], '1');
  t.is(summary(await app.next())['message-count'], '3');
  t.is(app.publishes.length, 2);
});

test('a call proposal (XEP-0353) wakes a sleeping phone; chat states do not', async (t) => {
  const app = await appServer(t);
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  await sleepingPhone(t, bob, app.jid, 'calls');
  const aliceClient = await loginForTest(t, server, alice, 'laptop');
  await aliceClient.send(xml('message', { to: bare(server, bob), type: 'chat' }, xml('composing', { xmlns: 'http://jabber.org/protocol/chatstates' })));
  await aliceClient.send(xml('message', { to: bare(server, bob), type: 'chat' }, xml('propose', { xmlns: NS_JINGLE_MESSAGE, id: 'call-1' }, xml('description', { xmlns: 'urn:xmpp:jingle:apps:rtp:1', media: 'audio' }))));
  const publish = await app.next();
  t.deepEqual(summary(publish), { FORM_TYPE: 'urn:xmpp:push:summary', 'message-count': '1', 'last-message-sender': aliceClient.jid });
  await settle(app.client);
  t.is(app.publishes.length, 1);
});

test('in a group chat, only a message that mentions Bob by his nickname wakes his sleeping phone', async (t) => {
  const app = await appServer(t);
  const { alice, bob, carol } = await freshAccounts(server, 'alice', 'bob', 'carol');
  const aliceClient = await loginForTest(t, server, alice, 'laptop');
  const carolClient = await loginForTest(t, server, carol, 'laptop');
  const room = `lunch-${bob}@conference.${server.domain}`;
  await createInstantRoom(aliceClient, room, 'Alice');
  await enter(carolClient, room, 'Carol');
  await sleepingPhone(t, bob, app.jid, 'muc', undefined, async (phone) => {
    phone.stanza(`<presence to='${room}/Bobby'><x xmlns='${NS_MUC}'/></presence>`);
    await phone.next((e) => e.is('presence') && e.attrs.from === `${room}/Bobby`);
  });
  await carolClient.send(groupchat(room, 'lunch anyone?'));
  await carolClient.next(isGroupchat(`${room}/Carol`, 'lunch anyone?'));
  await aliceClient.send(groupchat(room, 'bobby, are you coming?'));
  const publish = await app.next();
  t.is(summary(publish)['last-message-sender'], `${room}/Alice`);
  await settle(app.client);
  t.is(app.publishes.length, 1);
});

test('a registration is kept across a restart: Bob, offline, is woken by the restarted server', async (t) => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-push-restart-'));
  t.teardown(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  const first = await startServer({ dataDir });
  await first.createAccount('bob');
  const bobClient = await login(first, 'bob', 'phone');
  await bobClient.request(enable(`app@${first.domain}/relay`, 'kept'));
  await bobClient.stop();
  await first.stop();

  const again = await startServer({ dataDir });
  t.teardown(() => again.stop());
  await again.createAccount('app');
  await again.createAccount('alice');
  const app = await loginForTest(t, again, 'app', 'relay');
  const aliceClient = await loginForTest(t, again, 'alice', 'laptop');
  await aliceClient.send(chat(`bob@${again.domain}`, 'good morning'));
  const publish = await app.next(isPublish);
  t.is(nodeOf(publish), 'kept');
  t.is(summary(publish)['message-count'], '1');
});

test('Bob online gets his messages and no push; once his client is gone, the next message is pushed', async (t) => {
  const app = await appServer(t);
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const bobClient = await loginForTest(t, server, bob, 'phone');
  await online(bobClient);
  await bobClient.request(enable(app.jid, 'online'));
  const aliceLaptop = await loginForTest(t, server, alice, 'laptop');
  await aliceLaptop.send(chat(bare(server, bob), 'are you there?'));
  await bobClient.next((s) => s.is('message') && s.getChildText('body') === 'are you there?');
  await leave(bobClient);
  const alicePhone = await loginForTest(t, server, alice, 'phone');
  await alicePhone.send(chat(bare(server, bob), 'you left'));
  // the first push is about the second message: the first was read online
  const publish = await app.next();
  t.deepEqual(summary(publish), { FORM_TYPE: 'urn:xmpp:push:summary', 'message-count': '1', 'last-message-sender': alicePhone.jid });
});

test('a registration survives its session: Bob\'s phone with no session at all is woken, and a disabled node is not', async (t) => {
  const app = await appServer(t);
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const bobClient = await loginForTest(t, server, bob, 'phone');
  await bobClient.request(enable(app.jid, 'old-install'));
  await bobClient.request(enable(app.jid, 'new-install'));
  await bobClient.request(xml('iq', { type: 'set' }, xml('disable', { xmlns: NS_PUSH, jid: app.jid, node: 'old-install' })));
  await leave(bobClient);
  const aliceClient = await loginForTest(t, server, alice, 'laptop');
  await aliceClient.send(chat(bare(server, bob), 'hello'));
  const publish = await app.next();
  t.is(nodeOf(publish), 'new-install');
  await settle(app.client); // the old node's publish would have been routed with it
  t.deepEqual(app.publishes.map(nodeOf), ['new-install']);
  // disabling the app server without a node removes all its registrations
  const again = await loginForTest(t, server, bob, 'phone');
  await again.request(xml('iq', { type: 'set' }, xml('disable', { xmlns: NS_PUSH, jid: app.jid })));
  t.deepEqual(await server.server.db('push_registrations').where({ username: bob }).select('node'), []);
});

test('an app server that answers with errors three times in a row loses the registration; one that no longer knows the node, at once', async (t) => {
  const app = await appServer(t);
  app.answer = 'internal-server-error';
  const { alice, bob, carol } = await freshAccounts(server, 'alice', 'bob', 'carol');
  const bobClient = await loginForTest(t, server, bob, 'phone');
  await bobClient.request(enable(app.jid, 'flaky'));
  await leave(bobClient);
  const aliceClient = await loginForTest(t, server, alice, 'laptop');
  // calls are not throttled: three pushes in a row
  for (const id of ['c1', 'c2', 'c3']) {
    await aliceClient.send(xml('message', { to: bare(server, bob), type: 'chat' }, xml('propose', { xmlns: NS_JINGLE_MESSAGE, id })));
    await app.next();
  }
  const registrations = () => server.server.db('push_registrations').where({ username: bob }).select('node');
  await waitFor(async () => (await registrations()).length === 0, 'the registration to be disabled');
  await aliceClient.send(chat(bare(server, bob), 'still there?'));
  await settle(aliceClient);
  await settle(app.client);
  t.is(app.publishes.length, 3);

  app.answer = 'item-not-found';
  const carolClient = await loginForTest(t, server, carol, 'phone');
  await carolClient.request(enable(app.jid, 'uninstalled'));
  await leave(carolClient);
  await aliceClient.send(chat(bare(server, carol), 'hi Carol'));
  await app.next();
  await waitFor(async () => (await server.server.db('push_registrations').where({ username: carol })).length === 0, 'the registration to be disabled');
  t.pass();
});

test('enable without the app server\'s jid is a bad request, a form that is not publish-options too, an endless node not acceptable; the account advertises push', async (t) => {
  const { bob } = await freshAccounts(server, 'bob');
  const bobClient = await loginForTest(t, server, bob, 'phone');
  t.is(await iqFailure(bobClient.request(xml('iq', { type: 'set' }, xml('enable', { xmlns: NS_PUSH, node: 'n' })))), 'bad-request');
  const wrongForm = xml('x', { xmlns: NS_DATA, type: 'submit' }, xml('field', { var: 'FORM_TYPE' }, xml('value', {}, 'urn:example:other')));
  t.is(await iqFailure(bobClient.request(enable('push.example.org', 'n', wrongForm))), 'bad-request');
  t.is(await iqFailure(bobClient.request(xml('iq', { type: 'set' }, xml('disable', { xmlns: NS_PUSH })))), 'bad-request');
  t.is(await iqFailure(bobClient.request(enable('push.example.org', 'n'.repeat(600)))), 'not-acceptable');
  const info = await bobClient.request(xml('iq', { type: 'get', to: bare(server, bob) }, xml('query', { xmlns: NS_DISCO_INFO })));
  t.true(info.getChild('query', NS_DISCO_INFO)!.getChildren('feature').some((f) => f.attrs.var === NS_PUSH));
});

test('deleting Bob\'s account removes his push registrations', async (t) => {
  const { bob } = await freshAccounts(server, 'bob');
  const bobClient = await loginForTest(t, server, bob, 'phone');
  await bobClient.request(enable('push.example.org', 'to-delete'));
  t.is((await server.server.db('push_registrations').where({ username: bob })).length, 1);
  await server.server.kernel.deleteAccount(server.domain, bob);
  t.deepEqual(await server.server.db('push_registrations').where({ username: bob }), []);
});

interop("end to end: Bob's sleeping phone is woken through a real app server, a Prosody pubsub service reached over s2s", async (t) => {
  // the app server's operator makes the device's node, open to whoever knows it, and listens to it
  prosody!.register('operator', THEIRS, 'secret-operator');
  const operator = await loginOn(t, { domain: THEIRS, port: prosody!.c2sPort }, 'operator', 'secret-operator', 'relay');
  const node = 'device-0a1b2c';
  const created = await operator.request(xml('iq', { type: 'set', to: APP_SERVICE },
    xml('pubsub', { xmlns: NS_PUBSUB },
      xml('create', { node }),
      xml('configure', {}, xml('x', { xmlns: NS_DATA, type: 'submit' },
        xml('field', { var: 'FORM_TYPE' }, xml('value', {}, 'http://jabber.org/protocol/pubsub#node_config')),
        xml('field', { var: 'pubsub#publish_model' }, xml('value', {}, 'open')))))));
  t.is(created.attrs.type, 'result');
  await operator.request(xml('iq', { type: 'set', to: APP_SERVICE }, xml('pubsub', { xmlns: NS_PUBSUB }, xml('subscribe', { node, jid: operator.jid }))));

  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  await sleepingPhone(t, bob, APP_SERVICE, node, publishOptions('s3cret'));
  const aliceClient = await loginForTest(t, server, alice, 'laptop');
  await aliceClient.send(chat(bare(server, bob), 'the password is swordfish'));

  // Prosody's pubsub took the publish from bob@xmppd-push.example over s2s and notifies its subscriber
  const event = await operator.next((s) => s.is('message') && s.getChild('event', NS_PUBSUB_EVENT)?.getChild('items')?.attrs.node === node, 30000);
  const notification = event.getChild('event', NS_PUBSUB_EVENT)!.getChild('items')!.getChild('item')!.getChild('notification', NS_PUSH)!;
  const fields = Object.fromEntries(notification.getChild('x', NS_DATA)!.getChildren('field').map((f) => [f.attrs.var!, f.getChildText('value') ?? '']));
  t.deepEqual(fields, { FORM_TYPE: 'urn:xmpp:push:summary', 'message-count': '1', 'last-message-sender': aliceClient.jid });
  t.false(event.toString().includes('swordfish'));
  // and the item is on the node
  const items = await operator.request(xml('iq', { type: 'get', to: APP_SERVICE }, xml('pubsub', { xmlns: NS_PUBSUB }, xml('items', { node }))));
  t.is(items.getChild('pubsub', NS_PUBSUB)!.getChild('items')!.getChildren('item').length, 1);
  // the app server answered with a result: the registration stays
  t.is((await server.server.db('push_registrations').where({ username: bob })).length, 1);
});

/** Stops a client and waits until the server has ended its session. */
async function leave(client: TestClient): Promise<void> {
  const [account, resource] = client.jid.split('/') as [string, string];
  await client.stop();
  await eventually(() => server.server.sessions.resources(account)?.get(resource) === undefined, 10000, `${client.jid} to be gone`);
}

async function waitFor(condition: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 10000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
