// Publish-subscribe from a client's side (XEP-0060, XEP-0163): requests as clients build them,
// and entity capabilities (XEP-0115) computed here independently of the server's code.
import { createHash } from 'node:crypto';
import type Element from 'ltx/lib/Element.js';
import { xml, type TestClient } from './clients.js';

export const NS_PUBSUB = 'http://jabber.org/protocol/pubsub';
export const NS_PUBSUB_OWNER = 'http://jabber.org/protocol/pubsub#owner';
export const NS_PUBSUB_EVENT = 'http://jabber.org/protocol/pubsub#event';
export const NS_PUBSUB_ERRORS = 'http://jabber.org/protocol/pubsub#errors';
export const NS_DISCO_INFO = 'http://jabber.org/protocol/disco#info';
export const NS_DISCO_ITEMS = 'http://jabber.org/protocol/disco#items';
const NS_CAPS = 'http://jabber.org/protocol/caps';
const CLIENT_NODE = 'https://test.example/client';

/** A data form of `type` with FORM_TYPE and fields. */
export function form(formType: string, fields: Record<string, string | string[]>, type = 'submit'): Element {
  return xml('x', { xmlns: 'jabber:x:data', type },
    xml('field', { var: 'FORM_TYPE', type: 'hidden' }, xml('value', {}, formType)),
    ...Object.entries(fields).map(([name, value]) => xml('field', { var: name }, ...(Array.isArray(value) ? value : [value]).map((v) => xml('value', {}, v)))));
}

export function publishOptions(fields: Record<string, string | string[]>): Element {
  return xml('publish-options', {}, form('http://jabber.org/protocol/pubsub#publish-options', fields));
}

/** Publishes one item; `to` undefined is the user's own PEP service. */
export function publish(client: TestClient, node: string, payload: Element, options: { id?: string; to?: string; publishOptions?: Record<string, string | string[]> } = {}): Promise<Element> {
  const children = [xml('publish', { node }, xml('item', options.id === undefined ? {} : { id: options.id }, payload))];
  if (options.publishOptions) children.push(publishOptions(options.publishOptions));
  return client.request(xml('iq', options.to === undefined ? { type: 'set' } : { type: 'set', to: options.to }, xml('pubsub', { xmlns: NS_PUBSUB }, ...children)));
}

export function pubsubIq(client: TestClient, type: 'get' | 'set', to: string | undefined, ...children: Element[]): Promise<Element> {
  return client.request(xml('iq', to === undefined ? { type } : { type, to }, xml('pubsub', { xmlns: NS_PUBSUB }, ...children)));
}

export function ownerIq(client: TestClient, type: 'get' | 'set', to: string | undefined, ...children: Element[]): Promise<Element> {
  return client.request(xml('iq', to === undefined ? { type } : { type, to }, xml('pubsub', { xmlns: NS_PUBSUB_OWNER }, ...children)));
}

/** The items of a node, as `<item/>` elements. */
export async function items(client: TestClient, to: string | undefined, node: string, attrs: Record<string, string> = {}, ids: string[] = []): Promise<Element[]> {
  const result = await pubsubIq(client, 'get', to, xml('items', { node, ...attrs }, ...ids.map((id) => xml('item', { id }))));
  return result.getChild('pubsub', NS_PUBSUB)!.getChild('items')!.getChildren('item');
}

/** The pubsub-specific error condition of a failed request (e.g. 'precondition-not-met'). */
export async function pubsubFailure(request: Promise<unknown>): Promise<{ condition: string; pubsub?: string }> {
  try {
    const result = await request;
    throw new Error(`expected an error, got ${String(result)}`);
  } catch (err) {
    const condition = (err as { condition?: string }).condition;
    const application = (err as { application?: Element }).application;
    if (condition === undefined) throw err;
    const app = application?.attrs.xmlns === NS_PUBSUB_ERRORS ? application.name : undefined;
    return app === undefined ? { condition } : { condition, pubsub: app };
  }
}

/** Is this a pubsub event notification for `node` from `from`? */
export function isEvent(node: string, from?: string): (s: Element) => boolean {
  return (s) => {
    if (!s.is('message')) return false;
    if (from !== undefined && s.attrs.from !== from) return false;
    const event = s.getChild('event', NS_PUBSUB_EVENT);
    return event !== undefined && event.getChildElements().some((c) => c.attrs.node === node);
  };
}

/** The first item of an event notification. */
export function eventItem(message: Element): Element | undefined {
  return message.getChild('event', NS_PUBSUB_EVENT)?.getChild('items')?.getChild('item');
}

const answers = new WeakMap<TestClient, (node: string | undefined) => Element>();

/**
 * Makes the client answer disco#info with `features` (XEP-0115 §6.2) and returns the `<c/>` to
 * put in its presence, its ver computed per §5.1 with SHA-1.
 */
export function advertiseCaps(client: TestClient, features: string[]): Element {
  const identity = { category: 'client', type: 'phone', name: 'test' };
  const all = [...new Set([NS_DISCO_INFO, NS_CAPS, ...features])].sort();
  const s = `${identity.category}/${identity.type}//${identity.name}<` + all.map((f) => `${f}<`).join('');
  const ver = createHash('sha1').update(s).digest('base64');
  const answer = (node: string | undefined) => xml('query', { xmlns: NS_DISCO_INFO, ...(node ? { node } : {}) },
    xml('identity', identity), ...all.map((f) => xml('feature', { var: f })));
  // one handler per client, answering with what it advertised last
  if (!answers.has(client)) {
    const callee = (client.xmpp as unknown as { iqCallee: { get(ns: string, name: string, handler: (ctx: { element: Element }) => Element): void } }).iqCallee;
    callee.get(NS_DISCO_INFO, 'query', (ctx) => answers.get(client)!(ctx.element.attrs.node));
  }
  answers.set(client, answer);
  return xml('c', { xmlns: NS_CAPS, hash: 'sha-1', node: CLIENT_NODE, ver });
}
