// The file transfer proxy (XEP-0065 SOCKS5 Bytestreams) at proxy.localhost: clients find it by
// service discovery, ask for its address, both parties of a transfer connect to its SOCKS5 port
// with the hash of the transfer, and once the requester activates it the bytes go through. Two
// real slixmpp clients send a file; raw sockets check what the proxy refuses.
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import type Element from 'ltx/lib/Element.js';
import { PASSWORD, startServer, type TestServer } from '../helpers/server.js';
import { xml, type TestClient } from '../helpers/clients.js';
import { freePort } from '../helpers/federation.js';
import { freshAccounts, iqFailure, loginForTest } from '../helpers/conversation.js';
import { serialTestNeeding } from '../helpers/requirements.js';
import { runSlixmpp, slixmppRequirement } from '../helpers/slixmpp.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // the test server's self-signed certificate

const NS_BYTESTREAMS = 'http://jabber.org/protocol/bytestreams';
const NS_DISCO_INFO = 'http://jabber.org/protocol/disco#info';
const NS_DISCO_ITEMS = 'http://jabber.org/protocol/disco#items';
const PROXY = 'proxy.localhost';
const MAX_TRANSFER = 1024 * 1024;

let server: TestServer;
test.before(async () => {
  server = await startServer({ config: { modules: { roster: {}, presence: {}, disco: {}, ping: {}, proxy65: { port: 0, max_transfer_size: MAX_TRANSFER, max_transfers_per_user: 1 } } } });
});
test.after.always(async () => server?.stop());

/** XEP-0065 §5.3.2: the hostname both parties CONNECT to. */
function hashOf(sid: string, requester: string, target: string): string {
  return createHash('sha1').update(sid + requester + target).digest('hex');
}

/** The proxy's SOCKS5 port, as a client learns it (XEP-0065 §4). */
async function streamhostOf(client: TestClient): Promise<{ jid: string; host: string; port: number }> {
  const result = await client.request(xml('iq', { type: 'get', to: PROXY }, xml('query', { xmlns: NS_BYTESTREAMS })));
  const streamhost = result.getChild('query', NS_BYTESTREAMS)!.getChild('streamhost')!;
  return { jid: streamhost.attrs.jid as string, host: streamhost.attrs.host as string, port: Number(streamhost.attrs.port) };
}

function activate(client: TestClient, sid: string, target: string): Promise<Element> {
  return client.request(xml('iq', { type: 'set', to: PROXY }, xml('query', { xmlns: NS_BYTESTREAMS, sid }, xml('activate', {}, target))));
}

/** A raw TCP connection to the proxy, reading what it sends as it comes. */
class RawSocket {
  readonly socket: net.Socket;
  private buffer = Buffer.alloc(0);
  private waiting: (() => void) | undefined;
  readonly closed: Promise<void>;
  ended = false;

  constructor(port: number) {
    this.socket = net.connect({ host: '127.0.0.1', port });
    this.socket.on('data', (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      this.waiting?.();
    });
    this.socket.on('error', () => undefined); // a reset by the proxy shows as `closed`
    this.closed = new Promise((resolve) => this.socket.on('close', () => ((this.ended = true), this.waiting?.(), resolve())));
  }

  /** Exactly `n` bytes (rejects if the connection closes first). */
  async read(n: number): Promise<Buffer> {
    while (this.buffer.length < n) {
      if (this.ended) throw new Error(`closed after ${this.buffer.length} of ${n} bytes`);
      await new Promise<void>((resolve) => (this.waiting = resolve));
    }
    const bytes = this.buffer.subarray(0, n);
    this.buffer = this.buffer.subarray(n);
    return bytes;
  }

  /** Everything until the proxy closes the connection. */
  async readToEnd(): Promise<Buffer> {
    await this.closed;
    const bytes = this.buffer;
    this.buffer = Buffer.alloc(0);
    return bytes;
  }

  write(bytes: Buffer | string): void {
    this.socket.write(bytes);
  }
}

/** RFC 1928 greeting (no authentication) and CONNECT to the transfer's hash; resolves once the proxy said yes. */
async function socksConnect(port: number, hash: string): Promise<RawSocket> {
  const peer = new RawSocket(port);
  peer.write(Buffer.from([5, 1, 0]));
  if (!(await peer.read(2)).equals(Buffer.from([5, 0]))) throw new Error('no-authentication method refused');
  peer.write(Buffer.concat([Buffer.from([5, 1, 0, 3, hash.length]), Buffer.from(hash), Buffer.from([0, 0])]));
  const reply = await peer.read(5 + hash.length + 2);
  if (reply[1] !== 0) throw new Error(`CONNECT refused with ${reply[1]}`);
  return peer;
}

async function twoUsers(t: Parameters<typeof loginForTest>[0], ...names: string[]): Promise<TestClient[]> {
  const accounts = await freshAccounts(server, ...names);
  return Promise.all(Object.values(accounts).map((name) => loginForTest(t, server, name, 'laptop')));
}

test("the proxy is in the server's service discovery as a bytestreams proxy, and gives its SOCKS5 address", async (t) => {
  const [alice] = await twoUsers(t, 'alice');
  const items = await alice!.request(xml('iq', { type: 'get', to: 'localhost' }, xml('query', { xmlns: NS_DISCO_ITEMS })));
  t.true(items.getChild('query')!.getChildren('item').some((item) => item.attrs.jid === PROXY));
  const info = (await alice!.request(xml('iq', { type: 'get', to: PROXY }, xml('query', { xmlns: NS_DISCO_INFO })))).getChild('query')!;
  t.true(info.getChildren('identity').some((i) => i.attrs.category === 'proxy' && i.attrs.type === 'bytestreams'));
  t.true(info.getChildren('feature').some((f) => f.attrs.var === NS_BYTESTREAMS));
  const streamhost = await streamhostOf(alice!);
  t.is(streamhost.jid, PROXY);
  t.is(streamhost.host, '127.0.0.1');
  t.true(streamhost.port > 0);
});

test('Alice relays bytes to Bob once she activates; Eve cannot activate their transfer, nor Alice a second time', async (t) => {
  const [alice, bob, eve] = await twoUsers(t, 'alice', 'bob', 'eve');
  const { port } = await streamhostOf(alice!);
  const sid = `s-${randomBytes(6).toString('hex')}`;
  const hash = hashOf(sid, alice!.jid, bob!.jid);

  // Bob, the target, connects first (XEP-0065 §6.3.1); Alice cannot activate before she is there too
  const atBob = await socksConnect(port, hash);
  t.is(await iqFailure(activate(alice!, sid, bob!.jid)), 'not-allowed');
  const atAlice = await socksConnect(port, hash);

  // Eve knows the SID and both JIDs, but her own JID is in the hash she names: no such transfer
  t.is(await iqFailure(activate(eve!, sid, bob!.jid)), 'item-not-found');
  // nor a SID nobody connected with
  t.is(await iqFailure(activate(alice!, 'other-sid', bob!.jid)), 'item-not-found');

  await activate(alice!, sid, bob!.jid);
  const file = randomBytes(200_000);
  atAlice.write(file);
  t.deepEqual(await atBob.read(file.length), file);
  atBob.write('thanks');
  t.is((await atAlice.read(6)).toString(), 'thanks');
  t.is(await iqFailure(activate(alice!, sid, bob!.jid)), 'not-allowed');

  // Alice is done: Bob sees the end of the stream
  atAlice.socket.end();
  t.is((await atBob.readToEnd()).length, 0);
});

test('a connection that does not speak SOCKS5 is closed, alone; a transfer waiting meanwhile still goes through', async (t) => {
  const [alice, bob] = await twoUsers(t, 'alice', 'bob');
  const { port } = await streamhostOf(alice!);
  const sid = `s-${randomBytes(6).toString('hex')}`;
  const hash = hashOf(sid, alice!.jid, bob!.jid);
  const atBob = await socksConnect(port, hash);
  const atAlice = await socksConnect(port, hash);

  const stranger = new RawSocket(port);
  stranger.write('GET / HTTP/1.1\r\nHost: proxy.localhost\r\n\r\n');
  t.is((await stranger.readToEnd()).length, 0, 'closed without an answer');
  // a SOCKS4 greeting, and a SOCKS5 client offering only username/password: closed as well
  const socks4 = new RawSocket(port);
  socks4.write(Buffer.from([4, 1, 0, 80, 127, 0, 0, 1, 0]));
  t.is((await socks4.readToEnd()).length, 0);
  const withPassword = new RawSocket(port);
  withPassword.write(Buffer.from([5, 1, 2]));
  t.deepEqual(await withPassword.readToEnd(), Buffer.from([5, 0xff]), 'RFC 1928 §3: no acceptable methods');

  await activate(alice!, sid, bob!.jid);
  atAlice.write('still here');
  t.is((await atBob.read(10)).toString(), 'still here');
  atAlice.socket.destroy();
  await atBob.closed;
});

test('a transfer larger than max_transfer_size is cut at the limit', async (t) => {
  const [alice, bob] = await twoUsers(t, 'alice', 'bob');
  const { port } = await streamhostOf(alice!);
  const sid = `s-${randomBytes(6).toString('hex')}`;
  const hash = hashOf(sid, alice!.jid, bob!.jid);
  const atBob = await socksConnect(port, hash);
  const atAlice = await socksConnect(port, hash);
  await activate(alice!, sid, bob!.jid);

  const file = randomBytes(3 * MAX_TRANSFER);
  atAlice.write(file);
  const received = await atBob.readToEnd();
  t.true(received.length <= MAX_TRANSFER, `${received.length} bytes reached Bob`);
  t.deepEqual(received, file.subarray(0, received.length), 'what came through is the start of the file');
  await atAlice.closed; // the sender's connection is closed too
});

test('an activation that names no full JID is a bad request', async (t) => {
  const [alice] = await twoUsers(t, 'alice');
  t.is(await iqFailure(alice!.request(xml('iq', { type: 'set', to: PROXY }, xml('query', { xmlns: NS_BYTESTREAMS, sid: 'x' }, xml('activate', {}, 'bob@localhost'))))), 'bad-request');
  t.is(await iqFailure(alice!.request(xml('iq', { type: 'set', to: PROXY }, xml('query', { xmlns: NS_BYTESTREAMS }, xml('activate', {}, alice!.jid))))), 'bad-request');
});

const interop = serialTestNeeding(slixmppRequirement);

interop('two slixmpp clients send a file through the proxy with their XEP-0065 plugin, byte for byte', async (t) => {
  const { sam, tom } = await freshAccounts(server, 'sam', 'tom');
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-proxy65-'));
  t.teardown(() => fs.rmSync(directory, { recursive: true, force: true }));
  const file = randomBytes(700_000);
  fs.writeFileSync(path.join(directory, 'holiday.jpg'), file);
  const output = path.join(directory, 'received.jpg');

  const result = await runSlixmpp('slixmpp_bytestreams.py', [
    '--jid', `${sam}@localhost/slix`, '--password', PASSWORD, '--port', String(server.port),
    '--peer', `${tom}@localhost/slix`, '--file', path.join(directory, 'holiday.jpg'), '--output', output,
  ]);

  t.is(result.code, 0, result.stderr.slice(-3000) + JSON.stringify(result.events));
  const proxies = result.events.find((e) => e.event === 'proxies')!.proxies as Record<string, [string, number]>;
  t.deepEqual(Object.keys(proxies), [PROXY], 'slixmpp found the proxy by service discovery');
  t.deepEqual(fs.readFileSync(output), file);
});

test('Alice may run one transfer at a time (max_transfers_per_user: 1): the second waits until the first is over', async (t) => {
  const [alice, bob] = await twoUsers(t, 'alice', 'bob');
  const { port } = await streamhostOf(alice!);
  const first = { sid: `s-${randomBytes(6).toString('hex')}`, at: [] as RawSocket[] };
  const second = { sid: `s-${randomBytes(6).toString('hex')}`, at: [] as RawSocket[] };
  for (const transfer of [first, second]) {
    const hash = hashOf(transfer.sid, alice!.jid, bob!.jid);
    transfer.at = [await socksConnect(port, hash), await socksConnect(port, hash)];
  }
  await activate(alice!, first.sid, bob!.jid);
  t.is(await iqFailure(activate(alice!, second.sid, bob!.jid)), 'resource-constraint');

  // the first transfer ends (both sides close): the second may go
  first.at[1]!.socket.end();
  first.at[0]!.socket.end();
  await Promise.all(first.at.map((peer) => peer.closed));
  for (;;) {
    try {
      await activate(alice!, second.sid, bob!.jid);
      break;
    } catch (err) {
      // the proxy may not have seen both ends close yet
      if ((err as { condition?: string }).condition !== 'resource-constraint') throw err;
    }
  }
  second.at[1]!.write('second file');
  t.is((await second.at[0]!.read(11)).toString(), 'second file');
  second.at[1]!.socket.destroy();
  await second.at[0]!.closed;
});

test.serial('connections beyond max_connections_per_address are closed at once; one never paired is closed after pending_timeout; the port closes with the server', async (t) => {
  const port = await freePort();
  const other = await startServer({ config: { modules: { disco: {}, proxy65: { port, max_connections_per_address: 2, pending_timeout: '2s' } } } });
  const waiting = [await socksConnect(port, hashOf('a', 'a@localhost/x', 'b@localhost/y')), await socksConnect(port, hashOf('b', 'a@localhost/x', 'b@localhost/y'))];
  const third = new RawSocket(port);
  third.write(Buffer.from([5, 1, 0]));
  t.is((await third.readToEnd()).length, 0, 'the third connection from 127.0.0.1 gets nothing');
  // nobody joins the two waiting ones: they are closed, and their places are free again
  await Promise.all(waiting.map((peer) => peer.closed));
  const later = await socksConnect(port, hashOf('c', 'a@localhost/x', 'b@localhost/y'));
  await other.stop();
  await later.closed; // a connection waiting for its partner is closed with the listener
  const error = await new Promise<NodeJS.ErrnoException>((resolve) => net.connect({ host: '127.0.0.1', port }).on('error', resolve));
  t.is(error.code, 'ECONNREFUSED');
});
