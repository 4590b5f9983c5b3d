// Building blocks for conversation-style integration tests: fresh accounts per test, going
// online, roster requests and pushes, a full subscription handshake, and "settle" points that
// prove a stanza did NOT arrive without waiting for a timer.
import type { ExecutionContext } from 'ava';
import type net from 'node:net';
import type Element from 'ltx/lib/Element.js';
import type { TestServer } from './server.js';
import { connect, xml, type ConnectOptions, type TestClient } from './clients.js';

export const NS_ROSTER = 'jabber:iq:roster';
export const NS_PING = 'urn:xmpp:ping';
export const NS_STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';

let accountCounter = 0;

/**
 * Creates one account per name, with a suffix unique to the calling test (the tests of a file
 * run concurrently on one server): `freshAccounts(server, 'alice', 'bob')` gives
 * `{ alice: 'alice-3', bob: 'bob-4' }`.
 */
export async function freshAccounts<Name extends string>(server: TestServer, ...names: Name[]): Promise<Record<Name, string>> {
  const accounts = {} as Record<Name, string>;
  for (const name of names) {
    const username = `${name}-${++accountCounter}`;
    await server.createAccount(username);
    accounts[name] = username;
  }
  return accounts;
}

/** The bare JID of an account on the test server. */
export function bare(server: TestServer, username: string): string {
  return `${username}@${server.domain}`;
}

/** The account part of a client's JID. */
export function bareOf(client: TestClient): string {
  return client.jid.split('/')[0]!;
}

export async function login(server: TestServer, username: string, resource: string, options: ConnectOptions = {}): Promise<TestClient> {
  return connect(server, username, { resource, ...options });
}

/** Logs a user in for the duration of one test: the client is stopped when the test ends. */
export async function loginForTest(t: ExecutionContext, server: TestServer, username: string, resource: string, options: ConnectOptions = {}): Promise<TestClient> {
  const client = await login(server, username, resource, options);
  t.teardown(() => client.stop());
  return client;
}

/**
 * Sends available presence (initial or an update) and waits until the server has reflected it
 * back to this very resource (RFC 6121 §4.2.2): from then on, the server treats it as available.
 */
export async function online(client: TestClient, children: Element[] = []): Promise<Element> {
  await client.send(xml('presence', {}, ...children));
  return client.next((s) => s.is('presence') && s.attrs.from === client.jid && s.attrs.type === undefined);
}

/**
 * A round trip through the server back to this client's own stream (a ping to itself).
 * Everything the server had queued for this client earlier has been received once it resolves,
 * so a test can then check that a stanza did not arrive.
 */
export async function settle(client: TestClient): Promise<void> {
  await client.request(xml('iq', { type: 'get', to: client.jid }, xml('ping', { xmlns: NS_PING })));
}

/** Messages received so far, optionally only those with `body`. */
export function messages(client: TestClient, body?: string): Element[] {
  return client.received.filter((s) => s.is('message') && (body === undefined || s.getChildText('body') === body));
}

export function presencesFrom(client: TestClient, from: string, type?: string): Element[] {
  return client.received.filter((s) => s.is('presence') && s.attrs.from === from && s.attrs.type === type);
}

/** The defined condition of a stanza of type 'error' (RFC 6120 §8.3.3), e.g. 'service-unavailable'. */
export function errorCondition(stanza: Element): string | undefined {
  const error = stanza.getChild('error');
  return error?.getChildElements().find((c) => c.attrs.xmlns === NS_STANZAS && c.name !== 'text')?.name;
}

/** The stanza error condition an IQ request failed with (fails the test if it succeeded). */
export async function iqFailure(request: Promise<Element>): Promise<string> {
  try {
    const result = await request;
    throw new Error(`expected an error, got ${result.toString()}`);
  } catch (err) {
    const condition = (err as { condition?: string }).condition;
    if (condition === undefined) throw err;
    return condition;
  }
}

export function ping(to: string): Element {
  return xml('iq', { type: 'get', to }, xml('ping', { xmlns: NS_PING }));
}

export function chat(to: string, body: string, attrs: Record<string, string> = {}): Element {
  return xml('message', { to, type: 'chat', ...attrs }, xml('body', {}, body));
}

// --- roster -------------------------------------------------------------------------------------

export interface RosterEntry {
  jid: string;
  name?: string;
  subscription?: string;
  ask?: string;
  groups: string[];
}

export function rosterItems(query: Element | undefined): RosterEntry[] {
  return (query?.getChildren('item') ?? []).map((item) => {
    const entry: RosterEntry = { jid: item.attrs.jid, groups: item.getChildren('group').map((g) => g.getText()) };
    if (item.attrs.name !== undefined) entry.name = item.attrs.name;
    if (item.attrs.subscription !== undefined) entry.subscription = item.attrs.subscription;
    if (item.attrs.ask !== undefined) entry.ask = item.attrs.ask;
    return entry;
  });
}

/** Requests the roster (which makes this resource "interested", RFC 6121 §2.1.6); returns the result IQ. */
export function getRoster(client: TestClient, ver?: string): Promise<Element> {
  return client.request(xml('iq', { type: 'get' }, xml('query', ver === undefined ? { xmlns: NS_ROSTER } : { xmlns: NS_ROSTER, ver })));
}

export function setRosterItem(client: TestClient, item: { jid?: string; name?: string; subscription?: string; groups?: string[] }): Promise<Element> {
  const { groups = [], ...attrs } = item;
  const itemAttrs: Record<string, string> = {};
  for (const [key, value] of Object.entries(attrs)) if (value !== undefined) itemAttrs[key] = value;
  return client.request(xml('iq', { type: 'set' }, xml('query', { xmlns: NS_ROSTER }, xml('item', itemAttrs, ...groups.map((g) => xml('group', {}, g))))));
}

/** Is this a roster push (RFC 6121 §2.1.6) about `jid`? */
export function isPushAbout(jid: string, match: (item: Element) => boolean = () => true): (s: Element) => boolean {
  return (s) => {
    if (!s.is('iq') || s.attrs.type !== 'set') return false;
    const item = s.getChild('query', NS_ROSTER)?.getChild('item');
    return item !== undefined && item.attrs.jid === jid && match(item);
  };
}

/** Waits for the roster push about `jid` whose item matches; returns the pushed item. */
export async function nextPush(client: TestClient, jid: string, match?: (item: Element) => boolean): Promise<RosterEntry & { ver?: string }> {
  const push = await client.next(isPushAbout(jid, match));
  const query = push.getChild('query', NS_ROSTER)!;
  const [entry] = rosterItems(query);
  return query.attrs.ver === undefined ? entry! : { ...entry!, ver: query.attrs.ver };
}

export const subscription = (value: string) => (item: Element) => item.attrs.subscription === value;

export function presence(type: string, to: string, ...children: Element[]): Element {
  return xml('presence', { type, to }, ...children);
}

export function isPresence(from: string, type?: string): (s: Element) => boolean {
  return (s) => s.is('presence') && s.attrs.from === from && s.attrs.type === type;
}

/**
 * The whole RFC 6121 §3.1 handshake both ways, so that `a` and `b` end with subscription 'both'.
 * Both clients must be available and have requested their roster.
 */
export async function befriend(a: TestClient, b: TestClient): Promise<void> {
  const aBare = bareOf(a);
  const bBare = bareOf(b);
  await a.send(presence('subscribe', bBare));
  await b.next(isPresence(aBare, 'subscribe'));
  await b.send(presence('subscribed', aBare));
  await a.next(isPresence(bBare, 'subscribed'));
  await b.send(presence('subscribe', aBare));
  await a.next(isPresence(bBare, 'subscribe'));
  await a.send(presence('subscribed', bBare));
  await b.next(isPresence(aBare, 'subscribed'));
  await a.next(isPushAbout(bBare, subscription('both')));
  await b.next(isPushAbout(aBare, subscription('both')));
}

/** Logs both in, makes them friends, and logs them out again: two accounts with subscription 'both'. */
export async function makeFriends(server: TestServer, a: string, b: string): Promise<void> {
  const ca = await login(server, a, 'setup');
  const cb = await login(server, b, 'setup');
  await Promise.all([getRoster(ca), getRoster(cb)]);
  await Promise.all([online(ca), online(cb)]);
  await befriend(ca, cb);
  await Promise.all([ca.stop(), cb.stop()]);
}

/** Kills the client's TCP connection without a closing stream, as a phone losing its network does. */
export function dropConnection(client: TestClient): void {
  const xmpp = client.xmpp as unknown as { reconnect?: { stop(): void }; socket?: { socket?: net.Socket | null; destroy?(): void } | null };
  xmpp.reconnect?.stop(); // @xmpp/client would otherwise come back
  const wrapper = xmpp.socket;
  if (wrapper?.socket) wrapper.socket.destroy();
  else wrapper?.destroy?.();
}
