// A client's stanzas are handled in the order it sent them, even when a handler waits for
// storage (m.wait): the ones behind wait too, as with Prosody's per-session runner.
import test from 'ava';
import pino from 'pino';
import { ModuleContext } from '../../src/core/module.js';
import type { StanzaEvent } from '../../src/core/router.js';
import { startServer, type TestServer } from '../helpers/server.js';
import type { TestClient } from '../helpers/clients.js';
import { bare, chat, freshAccounts, loginForTest, messages, online } from '../helpers/conversation.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // the test server's certificate is self-signed

let server: TestServer;
/** What a test holds a message's handler with: it waits until opened, then for the database. */
interface Gate {
  /** The handler has the message. */
  reached: Promise<void>;
  arrive(): void;
  /** Lets the handler go on; `true` makes it stop the message (handled). */
  open(verdict?: true): void;
  opened: Promise<true | undefined>;
}
/** Per message body. */
const gates = new Map<string, Gate>();

function gate(body: string): Gate {
  let arrive!: () => void;
  let open!: (verdict?: true) => void;
  const reached = new Promise<void>((resolve) => (arrive = resolve));
  const opened = new Promise<true | undefined>((resolve) => (open = resolve));
  const entry: Gate = { reached, arrive, open, opened };
  gates.set(body, entry);
  return entry;
}

test.before(async () => {
  server = await startServer();
  // a module that, for the bodies a test names, waits for the test and then for the database
  const m = new ModuleContext('ordering', server.server.kernel, server.server.hosts.get(server.domain)!, {}, pino({ level: 'silent' }));
  m.on('pre-message/bare', (e: StanzaEvent) => {
    const entry = gates.get(e.stanza.getChildText('body') ?? '');
    if (entry === undefined) return undefined;
    entry.arrive();
    return m.wait(entry.opened.then(async (verdict) => (await m.db.raw('select 1'), verdict)));
  }, 500);
});
test.after.always(async () => server?.stop());

/** Resolves once the server has read `count` more messages from its clients than `from` (its counter). */
async function serverHasRead(from: number, count: number): Promise<void> {
  while (server.server.metrics.stanzasIn.message < from + count) await new Promise((resolve) => setImmediate(resolve));
}

const bodies = (client: TestClient) => messages(client).map((m) => m.getChildText('body'));

test('messages sent after one whose handler waits for storage arrive after it, in order', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'phone');
  const b = await loginForTest(t, server, bob, 'laptop');
  await online(b);
  const first = gate('first (waits)');
  const read = server.server.metrics.stanzasIn.message;
  await a.send(chat(bare(server, bob), 'first (waits)'));
  await first.reached;
  await a.send(chat(bare(server, bob), 'second'));
  await a.send(chat(bare(server, bob), 'third'));
  await serverHasRead(read, 3); // read while the first one still waits
  t.deepEqual(bodies(b), [], 'nothing overtakes the waiting message');
  first.open();
  await b.next((s) => s.is('message') && s.getChildText('body') === 'third');
  t.deepEqual(bodies(b), ['first (waits)', 'second', 'third']);
});

test('a message its waiting handler refuses goes nowhere, and the ones behind it still go, in order', async (t) => {
  const { alice, bob } = await freshAccounts(server, 'alice', 'bob');
  const a = await loginForTest(t, server, alice, 'phone');
  const b = await loginForTest(t, server, bob, 'laptop');
  await online(b);
  const refused = gate('refused (waits)');
  const later = gate('later (waits too)');
  const read = server.server.metrics.stanzasIn.message;
  await a.send(chat(bare(server, bob), 'refused (waits)'));
  await refused.reached;
  await a.send(chat(bare(server, bob), 'later (waits too)'));
  await a.send(chat(bare(server, bob), 'last'));
  await serverHasRead(read, 3);
  refused.open(true); // handled: the chain stops there
  await later.reached; // its turn came only now
  t.deepEqual(bodies(b), []);
  later.open();
  await b.next((s) => s.is('message') && s.getChildText('body') === 'last');
  t.deepEqual(bodies(b), ['later (waits too)', 'last']);
});
