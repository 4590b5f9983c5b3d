// A XEP-0313 client for tests: a query with its form fields and RSM paging, the results that
// came for it (in order) and the <fin/>.
import type Element from 'ltx/lib/Element.js';
import { xml, type TestClient } from './clients.js';

export const NS_MAM = 'urn:xmpp:mam:2';
export const NS_SID = 'urn:xmpp:sid:0';
export const NS_RSM = 'http://jabber.org/protocol/rsm';
const NS_FORWARD = 'urn:xmpp:forward:0';

export interface MamQuery {
  to?: string;
  with?: string;
  start?: Date;
  end?: Date;
  beforeId?: string;
  afterId?: string;
  ids?: string[];
  /** extra fields, raw */
  fields?: Record<string, string>;
  max?: number;
  /** '' asks for the last page */
  before?: string;
  after?: string;
}

export interface ArchivedMessage {
  /** the archive id (result@id) */
  id: string;
  stamp: string;
  message: Element;
  body: string | null;
}

export interface MamPage {
  results: ArchivedMessage[];
  fin: Element;
  complete: boolean;
  first: string | undefined;
  last: string | undefined;
}

let queryCounter = 0;

export function queryElement(q: MamQuery, queryId: string): Element {
  const fields: Element[] = [xml('field', { var: 'FORM_TYPE', type: 'hidden' }, xml('value', {}, NS_MAM))];
  const field = (name: string, ...values: string[]) => fields.push(xml('field', { var: name }, ...values.map((v) => xml('value', {}, v))));
  if (q.with !== undefined) field('with', q.with);
  if (q.start !== undefined) field('start', q.start.toISOString());
  if (q.end !== undefined) field('end', q.end.toISOString());
  if (q.beforeId !== undefined) field('before-id', q.beforeId);
  if (q.afterId !== undefined) field('after-id', q.afterId);
  if (q.ids !== undefined) field('ids', ...q.ids);
  for (const [name, value] of Object.entries(q.fields ?? {})) field(name, value);
  const set: Element[] = [];
  if (q.max !== undefined) set.push(xml('max', {}, String(q.max)));
  if (q.before !== undefined) set.push(xml('before', {}, q.before));
  if (q.after !== undefined) set.push(xml('after', {}, q.after));
  return xml('query', { xmlns: NS_MAM, queryid: queryId }, xml('x', { xmlns: 'jabber:x:data', type: 'submit' }, ...fields), ...(set.length > 0 ? [xml('set', { xmlns: NS_RSM }, ...set)] : []));
}

/** Runs one query; resolves with its results (everything that arrived before the IQ result) and the fin. */
export async function mamQuery(client: TestClient, q: MamQuery = {}): Promise<MamPage> {
  const queryId = `q${++queryCounter}`;
  const iq = xml('iq', q.to === undefined ? { type: 'set' } : { type: 'set', to: q.to }, queryElement(q, queryId));
  const result = await client.request(iq);
  const fin = result.getChild('fin', NS_MAM);
  if (fin === undefined) throw new Error(`no <fin/> in ${result.toString()}`);
  const results = client.received
    .filter((s) => s.is('message') && s.getChild('result', NS_MAM)?.attrs.queryid === queryId)
    .map((s) => {
      const r = s.getChild('result', NS_MAM)!;
      const forwarded = r.getChild('forwarded', NS_FORWARD)!;
      const message = forwarded.getChild('message')!;
      return { id: r.attrs.id, stamp: forwarded.getChild('delay', 'urn:xmpp:delay')?.attrs.stamp ?? '', message, body: message.getChildText('body') };
    });
  const set = fin.getChild('set', NS_RSM);
  return { results, fin, complete: fin.attrs.complete === 'true', first: set?.getChildText('first') ?? undefined, last: set?.getChildText('last') ?? undefined };
}

/** The stanza-id a live message carries from `by`. */
export function stanzaIdOf(message: Element, by: string): string | undefined {
  return message.getChildren('stanza-id', NS_SID).find((s) => s.attrs.by === by)?.attrs.id;
}
