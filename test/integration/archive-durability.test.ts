// kill -9 in the middle of a load loses no acknowledged message (issue 17): the sender's
// XEP-0198 acknowledgement of a message waits for the archive's commit of it. Three senders
// stream messages at their recipients, who are online, asking for acks as they go; the server, a
// real `xmppd start` child, is killed with SIGKILL once acks have come back and while messages
// are still arriving. After a restart every message acknowledged to its sender is in both
// parties' archives (XEP-0313), in the order sent, once. The archive's writer batches what
// arrives during a commit (on SQLite through its stage, src/modules/mam/store.ts), so the kill
// lands among batches, staged rows and moves.
import test, { type ExecutionContext } from 'ava';
import { startChild, startedPorts, workspace } from '../helpers/cli.js';
import { loginForTest } from '../helpers/conversation.js';
import { mamQuery } from '../helpers/mam.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { NS_SM, SmClient } from '../helpers/sm-client.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // the test server's certificate is self-signed

const PAIRS = 3;
/** Messages each sender writes; at the default receive rate limit (512 KiB/s) they take seconds to read. */
const MESSAGES = 4000;
/** A sender asks for an ack after this many messages. */
const ACK_EVERY = 50;
/** The kill comes once any sender has had this many acknowledged. */
const KILL_AFTER = 200;

/** The bodies of `owner`'s archive with `peer`, oldest first, every page. */
async function archivedBodies(t: ExecutionContext, server: TestServer, owner: string, peer: string): Promise<string[]> {
  const client = await loginForTest(t, server, owner, 'check');
  const bodies: string[] = [];
  for (let after: string | undefined; ; ) {
    const page = await mamQuery(client, { with: peer, max: 250, ...(after === undefined ? {} : { after }) });
    bodies.push(...page.results.map((r) => r.body ?? ''));
    if (page.complete || page.last === undefined) return bodies;
    after = page.last;
  }
}

/** The highest 'h' the server acknowledged to `sender` before the connection died. */
function acknowledged(sender: SmClient): number {
  return Math.max(0, ...sender.received.filter((e) => e.is('a', NS_SM)).map((a) => Number(a.attrs.h)));
}

test('kill -9 during a load: every message acknowledged to its sender is in both archives after the restart, in order, once', async (t) => {
  t.timeout(120_000);
  const ws = workspace(t, (dir, storage) =>
    `data_dir: ${JSON.stringify(dir)}\nlog: { level: info }\nhosts: [{ domain: localhost, modules: { proxy65: { port: 0 } } }]\n` +
    `c2s: { listen: [{ host: 127.0.0.1, port: 0, tls: starttls }], overload: { event_loop_lag: never } }\nhttp: { enabled: false }\n${storage}\n`,
  );
  const setup = await startServer({ dataDir: ws.dir });
  for (let i = 1; i <= PAIRS; i++) {
    await setup.createAccount(`sender${i}`);
    await setup.createAccount(`recipient${i}`);
  }
  await setup.stop();

  const { child, server } = await startChild(t, ws.config);
  const address = { port: startedPorts(server.output()).starttls, domain: 'localhost' } as TestServer;
  const senders: SmClient[] = [];
  for (let i = 1; i <= PAIRS; i++) {
    const recipient = await SmClient.login(address, `recipient${i}`, 'phone');
    t.teardown(() => recipient.cut());
    await recipient.online();
    const sender = await SmClient.login(address, `sender${i}`, 'desk');
    t.teardown(() => sender.cut());
    await sender.enable(false);
    senders.push(sender);
  }
  senders.forEach((sender, index) => {
    for (let n = 1; n <= MESSAGES; n++) {
      sender.chat(`recipient${index + 1}@localhost`, `message ${n}`);
      if (n % ACK_EVERY === 0) sender.nonza(`<r xmlns='${NS_SM}'/>`);
    }
  });
  await Promise.race(senders.map((sender) => sender.next((e) => e.is('a', NS_SM) && Number(e.attrs.h) >= KILL_AFTER, 60_000)));
  child.kill('SIGKILL');
  t.deepEqual(await server.exit, { code: null, signal: 'SIGKILL' });
  const acked = senders.map(acknowledged);
  t.log(`acknowledged before the kill: ${acked.join(', ')} of ${MESSAGES} each`);
  t.true(acked.some((h) => h < MESSAGES), 'the kill came while messages were still arriving');

  const restarted = await startServer({ dataDir: ws.dir });
  t.teardown(() => restarted.stop());
  for (let i = 1; i <= PAIRS; i++) {
    const sent = Array.from({ length: MESSAGES }, (_, n) => `message ${n + 1}`);
    for (const [owner, peer] of [[`sender${i}`, `recipient${i}`], [`recipient${i}`, `sender${i}`]] as const) {
      const archived = await archivedBodies(t, restarted, owner, `${peer}@localhost`);
      // what was archived is what was sent, from the first message on, none twice: the acknowledged
      // ones and perhaps some committed after the last ack the sender saw
      t.true(archived.length >= acked[i - 1]!, `${owner}: ${archived.length} archived, ${acked[i - 1]} acknowledged`);
      t.deepEqual(archived, sent.slice(0, archived.length), `${owner}'s archive with ${peer}: in order, once each`);
    }
  }
});
