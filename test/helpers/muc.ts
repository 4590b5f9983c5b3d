// Building blocks for group chat (XEP-0045) tests: joining, creating and configuring rooms,
// group messages, and reading the muc#user payloads a client receives.
import type { ExecutionContext } from 'ava';
import type Element from 'ltx/lib/Element.js';
import { xml, type TestClient } from './clients.js';
import { freshAccounts, loginForTest, online } from './conversation.js';
import type { TestServer } from './server.js';

export const SERVICE = 'conference.localhost';
export const NS_MUC = 'http://jabber.org/protocol/muc';
export const NS_MUC_USER = 'http://jabber.org/protocol/muc#user';
export const NS_MUC_ADMIN = 'http://jabber.org/protocol/muc#admin';
export const NS_MUC_OWNER = 'http://jabber.org/protocol/muc#owner';
export const NS_DATA = 'jabber:x:data';
export const NS_SID = 'urn:xmpp:sid:0';
export const NS_DELAY = 'urn:xmpp:delay';
export const NS_DISCO_INFO = 'http://jabber.org/protocol/disco#info';
export const NS_DISCO_ITEMS = 'http://jabber.org/protocol/disco#items';

let roomCounter = 0;
/** A room JID no other test uses. */
export function freshRoom(name = 'room'): string {
  return `${name}-${++roomCounter}-${process.pid}@${SERVICE}`;
}

/** The status codes of a stanza's muc#user payload. */
export function statusCodes(stanza: Element): number[] {
  return (stanza.getChild('x', NS_MUC_USER)?.getChildren('status') ?? []).map((s) => Number(s.attrs.code)).sort((a, b) => a - b);
}

/** The muc#user <item/> of a presence. */
export function itemOf(stanza: Element): Record<string, string> {
  return stanza.getChild('x', NS_MUC_USER)?.getChild('item')?.attrs ?? {};
}

export interface JoinOptions {
  password?: string;
  history?: Record<string, string>;
}

export function joinPresence(room: string, nick: string, options: JoinOptions = {}): Element {
  return xml('presence', { to: `${room}/${nick}` },
    xml('x', { xmlns: NS_MUC },
      options.password !== undefined ? xml('password', {}, options.password) : null,
      options.history !== undefined ? xml('history', options.history) : null));
}

/** Sends the join presence; resolves with the self-presence (status 110) or the error presence. */
export async function join(client: TestClient, room: string, nick: string, options: JoinOptions = {}): Promise<Element> {
  await client.send(joinPresence(room, nick, options));
  return client.next((s) => s.is('presence') && s.attrs.from === `${room}/${nick}` && (s.attrs.type === 'error' || (s.attrs.type === undefined && statusCodes(s).includes(110))));
}

/** Joins and then waits for the subject, which ends the join sequence (XEP-0045 §7.2.16). */
export async function enter(client: TestClient, room: string, nick: string, options: JoinOptions = {}): Promise<Element> {
  const self = await join(client, room, nick, options);
  if (self.attrs.type === 'error') throw new Error(`join failed: ${self.toString()}`);
  await client.next(isSubject(room));
  return self;
}

export function isSubject(room: string): (s: Element) => boolean {
  return (s) => s.is('message') && s.attrs.type === 'groupchat' && s.getChild('subject') !== undefined && s.getChild('body') === undefined && (s.attrs.from ?? '').startsWith(room);
}

export function configForm(fields: Record<string, string | string[]>): Element {
  return xml('x', { xmlns: NS_DATA, type: 'submit' },
    xml('field', { var: 'FORM_TYPE' }, xml('value', {}, 'http://jabber.org/protocol/muc#roomconfig')),
    ...Object.entries(fields).map(([name, value]) => xml('field', { var: name }, ...(Array.isArray(value) ? value : [value]).map((v) => xml('value', {}, v)))));
}

export function configure(owner: TestClient, room: string, fields: Record<string, string | string[]>): Promise<Element> {
  return owner.request(xml('iq', { type: 'set', to: room }, xml('query', { xmlns: NS_MUC_OWNER }, configForm(fields))));
}

/** Creates a room as Conversations creates a private group chat: members-only, non-anonymous, persistent. */
export async function createPrivateGroup(owner: TestClient, room: string, nick: string, extra: Record<string, string> = {}): Promise<Element> {
  const self = await enter(owner, room, nick);
  await configure(owner, room, {
    'muc#roomconfig_persistentroom': '1',
    'muc#roomconfig_membersonly': '1',
    'muc#roomconfig_whois': 'anyone',
    'muc#roomconfig_publicroom': '0',
    ...extra,
  });
  return self;
}

/** Creates an instant room (XEP-0045 §10.1.2): join, then submit an empty form. */
export async function createInstantRoom(owner: TestClient, room: string, nick: string): Promise<Element> {
  const self = await enter(owner, room, nick);
  await owner.request(xml('iq', { type: 'set', to: room }, xml('query', { xmlns: NS_MUC_OWNER }, xml('x', { xmlns: NS_DATA, type: 'submit' }))));
  return self;
}

export function groupchat(room: string, body: string, id?: string): Element {
  return xml('message', { to: room, type: 'groupchat', ...(id ? { id } : {}) }, xml('body', {}, body));
}

export function isGroupchat(from: string, body: string): (s: Element) => boolean {
  return (s) => s.is('message') && s.attrs.type === 'groupchat' && s.attrs.from === from && s.getChildText('body') === body;
}

export function stanzaIdOf(message: Element, by: string): string | undefined {
  return message.getChildren('stanza-id', NS_SID).find((s) => s.attrs.by === by)?.attrs.id;
}

export function adminSet(room: string, ...items: Array<{ attrs: Record<string, string>; reason?: string }>): Element {
  return xml('iq', { type: 'set', to: room }, xml('query', { xmlns: NS_MUC_ADMIN },
    ...items.map((item) => xml('item', item.attrs, item.reason ? xml('reason', {}, item.reason) : null))));
}

export function adminGet(room: string, attrs: Record<string, string>): Element {
  return xml('iq', { type: 'get', to: room }, xml('query', { xmlns: NS_MUC_ADMIN }, xml('item', attrs)));
}

export function invite(room: string, to: string, reason?: string): Element {
  return xml('message', { to: room }, xml('x', { xmlns: NS_MUC_USER }, xml('invite', { to }, reason ? xml('reason', {}, reason) : null)));
}

export function isPresenceFrom(from: string, type?: string): (s: Element) => boolean {
  return (s) => s.is('presence') && s.attrs.from === from && s.attrs.type === type;
}

/** A user logged in for one test and available, as a real client is: invitations to the bare JID reach it. */
export async function occupantClient(t: ExecutionContext, server: TestServer, username: string, resource = 'phone'): Promise<TestClient> {
  const client = await loginForTest(t, server, username, resource);
  await online(client);
  return client;
}

/** Three fresh users, logged in and available. */
export async function trio(t: ExecutionContext, server: TestServer): Promise<{ a: TestClient; b: TestClient; c: TestClient; names: Record<'alice' | 'bob' | 'carol', string> }> {
  const names = await freshAccounts(server, 'alice', 'bob', 'carol');
  const [a, b, c] = await Promise.all([occupantClient(t, server, names.alice), occupantClient(t, server, names.bob), occupantClient(t, server, names.carol)]);
  return { a, b, c, names };
}
