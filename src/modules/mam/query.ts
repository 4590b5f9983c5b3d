// XEP-0313 §4 queries, shared by user archives and room archives: the data form and RSM
// (XEP-0059) paging of a <query/> turned into an id range on the archive's index, the results
// sent as <message><result><forwarded/></result></message>, and the <fin/> that ends them.
import Element from 'ltx/lib/Element.js';
import { parseJid } from '../../core/jid.js';
import { StanzaError } from '../../core/stanza.js';
import { escapeAttribute } from '../../xml/serialize.js';
import { IDS_PER_MS, idToTime, parsePublicId, publicId, type ArchiveFilter, type ArchiveStore } from './store.js';

export const NS_MAM = 'urn:xmpp:mam:2';
export const NS_MAM_EXTENDED = 'urn:xmpp:mam:2#extended';
export const NS_SID = 'urn:xmpp:sid:0';
export const NS_RSM = 'http://jabber.org/protocol/rsm';
const NS_DATA = 'jabber:x:data';
const NS_FORWARD = 'urn:xmpp:forward:0';
const NS_DELAY = 'urn:xmpp:delay';

/** XEP-0082 date-time; Date.parse alone accepts far more than the profile. */
const DATE_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/;

export interface QueryLimits {
  /** the most results one query returns, and the page size when the client gives no <max/> */
  maxPage: number;
}

/** A parsed <query/>: the filter (owner filled in by the caller) and the page wanted. */
export interface ParsedQuery {
  queryId: string | undefined;
  filter: Omit<ArchiveFilter, 'owner'>;
  /** public ids that must exist in the archive (after-id, before-id, RSM cursors) */
  cursors: Array<{ id: number; nonce: number }>;
  /** public ids asked for by `ids`, for the nonce check */
  wanted: Map<number, number> | undefined;
  max: number;
  backwards: boolean;
}

function fieldValues(field: Element): string[] {
  return field.getChildren('value').map((v) => v.getText().trim());
}

function single(field: Element): string {
  const values = fieldValues(field);
  if (values.length !== 1 || values[0] === '') throw new StanzaError('bad-request', `Field ${field.attrs.var} needs one value`);
  return values[0]!;
}

function dateField(field: Element): number {
  const text = single(field);
  const time = DATE_TIME.test(text) ? Date.parse(text) : Number.NaN;
  if (!Number.isFinite(time)) throw new StanzaError('bad-request', `Field ${field.attrs.var} is not a XEP-0082 date-time: ${text}`);
  return time;
}

function archiveId(text: string, what: string): { id: number; nonce: number } {
  const parsed = parsePublicId(text);
  // an id that cannot be one of ours names nothing in the archive (XEP-0059 §2.6)
  if (parsed === null) throw new StanzaError('item-not-found', `No such ${what} in the archive: ${text}`);
  return parsed;
}

const raise = (bound: number | undefined, value: number) => (bound === undefined ? value : Math.max(bound, value));
const lower = (bound: number | undefined, value: number) => (bound === undefined ? value : Math.min(bound, value));

export function parseQuery(query: Element, limits: QueryLimits): ParsedQuery {
  const filter: Omit<ArchiveFilter, 'owner'> = {};
  const cursors: Array<{ id: number; nonce: number }> = [];
  let wanted: Map<number, number> | undefined;
  const form = query.getChild('x', NS_DATA);
  if (form !== undefined) {
    for (const field of form.getChildren('field')) {
      switch (field.attrs.var) {
        case 'FORM_TYPE':
          if (single(field) !== NS_MAM) throw new StanzaError('bad-request', `FORM_TYPE must be ${NS_MAM}`);
          break;
        case 'with': {
          const jid = parseJid(single(field));
          if (jid === null) throw new StanzaError('jid-malformed', 'Field with is not a JID');
          filter.withBare = jid.bare;
          if (jid.resource !== '') filter.withResource = jid.resource;
          break;
        }
        case 'start':
          filter.minId = raise(filter.minId, dateField(field) * IDS_PER_MS);
          break;
        case 'end':
          filter.maxId = lower(filter.maxId, dateField(field) * IDS_PER_MS + IDS_PER_MS - 1);
          break;
        case 'after-id': {
          const cursor = archiveId(single(field), 'after-id');
          cursors.push(cursor);
          filter.minId = raise(filter.minId, cursor.id + 1);
          break;
        }
        case 'before-id': {
          const cursor = archiveId(single(field), 'before-id');
          cursors.push(cursor);
          filter.maxId = lower(filter.maxId, cursor.id - 1);
          break;
        }
        case 'ids': {
          const values = fieldValues(field).filter((v) => v !== '');
          if (values.length > limits.maxPage) throw new StanzaError('policy-violation', `At most ${limits.maxPage} ids per query`);
          wanted = new Map();
          for (const value of values) {
            const parsed = parsePublicId(value);
            if (parsed !== null) wanted.set(parsed.id, parsed.nonce);
          }
          filter.ids = [...wanted.keys()];
          break;
        }
        default:
          // XEP-0313 §4.1: a field we do not know is an error, not a filter silently ignored
          throw new StanzaError('bad-request', `Unsupported field: ${field.attrs.var ?? '(no var)'}`);
      }
    }
  }

  let max = limits.maxPage;
  let backwards = false;
  const set = query.getChild('set', NS_RSM);
  if (set !== undefined) {
    const maxText = set.getChildText('max');
    if (maxText !== null) {
      const n = Number(maxText.trim());
      if (!Number.isInteger(n) || n < 0) throw new StanzaError('bad-request', 'RSM <max/> must be a non-negative integer');
      max = Math.min(n, limits.maxPage); // the server's cap (XEP-0059 §2.1 lets it return fewer)
    }
    const after = set.getChild('after');
    if (after !== undefined) {
      const cursor = archiveId(after.getText().trim(), 'RSM <after/> item');
      cursors.push(cursor);
      filter.minId = raise(filter.minId, cursor.id + 1);
    }
    const before = set.getChild('before');
    if (before !== undefined) {
      backwards = true; // XEP-0059 §2.5: an empty <before/> asks for the last page
      const text = before.getText().trim();
      if (text !== '') {
        const cursor = archiveId(text, 'RSM <before/> item');
        cursors.push(cursor);
        filter.maxId = lower(filter.maxId, cursor.id - 1);
      }
    }
    if (set.getChild('index') !== undefined) throw new StanzaError('feature-not-implemented', 'RSM <index/> is not supported; page with <after/> and <before/>');
  }
  return { queryId: query.attrs.queryid, filter, cursors, wanted, max, backwards };
}

export interface QueryTarget {
  store: ArchiveStore;
  /** the archive's bare JID */
  owner: string;
  /** the requester's full JID: where the results go */
  to: string;
  /** `from` of the result messages: none for the user's own archive, the room for a room's */
  from?: string | undefined;
  /** Sends one result message (its element carries no payload: the xml is what goes out). */
  send(message: Element, xml: string): void;
}

/**
 * Runs a parsed query: sends each result and returns the <fin/> for the IQ result (XEP-0313
 * §4.3). A cursor not in the archive is item-not-found (XEP-0059 §2.6).
 */
export async function runQuery(target: QueryTarget, query: ParsedQuery): Promise<Element> {
  const { store, owner } = target;
  for (const cursor of query.cursors) {
    if (!(await store.exists(owner, cursor.id, cursor.nonce))) throw new StanzaError('item-not-found', 'No such message in the archive');
  }
  const filter = { ...query.filter, owner };
  const empty = (filter.minId !== undefined && filter.maxId !== undefined && filter.minId > filter.maxId) || filter.ids?.length === 0;
  const page = empty || query.max === 0 ? { rows: [], complete: empty } : await store.page(filter, query.max, query.backwards);
  const rows = query.wanted === undefined ? page.rows : page.rows.filter((r) => query.wanted!.get(r.id) === r.nonce);

  const head = `<message to="${escapeAttribute(target.to)}"${target.from === undefined ? '' : ` from="${escapeAttribute(target.from)}"`}>`;
  const queryIdAttr = query.queryId === undefined ? '' : ` queryid="${escapeAttribute(query.queryId)}"`;
  for (const row of rows) {
    const id = publicId(row.id, row.nonce);
    const xml = `${head}<result xmlns="${NS_MAM}"${queryIdAttr} id="${id}"><forwarded xmlns="${NS_FORWARD}">`
      + `<delay xmlns="${NS_DELAY}" stamp="${new Date(idToTime(row.id)).toISOString()}"/>${row.stanza}</forwarded></result></message>`;
    // the element is what stream management and client state indication look at: a result, not a message to re-route
    const message = new Element('message', target.from === undefined ? { to: target.to } : { to: target.to, from: target.from });
    message.c('result', { xmlns: NS_MAM, id });
    target.send(message, xml);
  }

  const fin = new Element('fin', page.complete ? { xmlns: NS_MAM, complete: 'true' } : { xmlns: NS_MAM });
  const set = fin.c('set', { xmlns: NS_RSM });
  if (rows.length > 0) {
    set.c('first').t(publicId(rows[0]!.id, rows[0]!.nonce));
    set.c('last').t(publicId(rows[rows.length - 1]!.id, rows[rows.length - 1]!.nonce));
  } else if (query.max === 0 || empty) {
    set.c('count').t(empty ? '0' : String(await store.count(filter)));
  }
  return fin;
}

/** XEP-0313 §4.1.5: the form a client fills in, with the fields this server understands. */
export function queryForm(): Element {
  const query = new Element('query', { xmlns: NS_MAM });
  const form = query.c('x', { xmlns: NS_DATA, type: 'form' });
  form.c('field', { var: 'FORM_TYPE', type: 'hidden' }).c('value').t(NS_MAM);
  form.c('field', { var: 'with', type: 'jid-single' });
  form.c('field', { var: 'start', type: 'text-single' });
  form.c('field', { var: 'end', type: 'text-single' });
  form.c('field', { var: 'before-id', type: 'text-single' });
  form.c('field', { var: 'after-id', type: 'text-single' });
  form.c('field', { var: 'ids', type: 'text-multi' });
  return query;
}

/** XEP-0441: the first and last message of an archive. */
export async function metadata(store: ArchiveStore, owner: string): Promise<Element> {
  const ends = await store.ends(owner);
  const element = new Element('metadata', { xmlns: NS_MAM });
  if (ends !== null) {
    element.c('start', { id: publicId(ends.first.id, ends.first.nonce), timestamp: new Date(idToTime(ends.first.id)).toISOString() });
    element.c('end', { id: publicId(ends.last.id, ends.last.nonce), timestamp: new Date(idToTime(ends.last.id)).toISOString() });
  }
  return element;
}
