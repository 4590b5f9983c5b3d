// XEP-0313 Message Archive Management: every 1:1 conversation kept on the server for both
// parties, so a new device pages back through it, with XEP-0359 stanza-ids telling clients which
// archive entry a live message is. Also the archive's retention: messages (archived, and kept
// offline) older than the configured age are deleted by a background sweep in bounded batches.
import Element from 'ltx/lib/Element.js';
import { z } from 'zod';
import { durationOrNever, duration } from '../../config/units.js';
import { parseJid, type Jid } from '../../core/jid.js';
import { defineModule } from '../../core/module.js';
import type { Durable, StanzaEvent } from '../../core/router.js';
import type { DeliveryTracker } from '../../core/ports.js';
import { StanzaError, messageType } from '../../core/stanza.js';
import { serializeToKeep } from '../../xml/serialize.js';
import { parseElement } from '../../xml/parse.js';
import type { SessionLostEvent } from '../../c2s/hibernation.js';
import { NS_MAM, NS_MAM_EXTENDED, NS_SID, metadata, parseQuery, queryForm, runQuery } from './query.js';
import { ArchivePrefs, PrefsStore, RetentionStore, type DefaultPolicy } from './settings.js';
import { ArchiveStore, IDS_PER_MS, archiveMigrations, publicId, removeArchive } from './store.js';

export { NS_MAM, NS_MAM_EXTENDED, NS_SID, parseQuery, runQuery, queryForm, metadata } from './query.js';
export { ArchiveStore, publicId } from './store.js';

const NS_DELAY = 'urn:xmpp:delay';
const NS_HINTS = 'urn:xmpp:hints';
/**
 * Payloads worth archiving without a body, as Prosody's mod_mam and ejabberd's mod_mam decide:
 * the ticks (receipts, read markers), end-to-end encrypted messages, invitations, and the edits
 * of earlier messages (corrections, retractions, reactions). Chat states alone are not.
 */
const ARCHIVED_PAYLOADS = new Set([
  'urn:xmpp:receipts',
  'urn:xmpp:chat-markers:0',
  'eu.siacs.conversations.axolotl',
  'urn:xmpp:omemo:2',
  'jabber:x:encrypted',
  'urn:xmpp:openpgp:0',
  'jabber:x:conference',
  'urn:xmpp:message-correct:0',
  'urn:xmpp:message-retract:1',
  'urn:xmpp:reactions:0',
  'urn:xmpp:fasten:0',
]);

/** Result messages are copies of what is archived: never re-routed if their session ends. */
const RESULT_TRACKER: DeliveryTracker = { delivered() {}, undelivered() {} };

/** XEP-0313 §5.1.1 with XEP-0334 hints: what a user archive keeps. */
export function archivable(message: Element): boolean {
  const type = messageType(message);
  if (type === 'groupchat' || type === 'headline' || type === 'error') return false;
  let content = false;
  for (const child of message.children) {
    if (typeof child === 'string') continue;
    const xmlns = child.attrs.xmlns;
    if (xmlns === undefined) {
      if (child.name === 'body') content = true;
    } else if (xmlns === NS_HINTS) {
      if (child.name === 'no-store' || child.name === 'no-permanent-store') return false;
      if (child.name === 'store') content = true;
    } else if (ARCHIVED_PAYLOADS.has(xmlns)) {
      content = true;
    }
  }
  return content;
}

/**
 * XEP-0359 §5: a stanza-id claiming to come from `by` that `by` did not add is a forgery; it is
 * removed (a new children array, so that copies already made keep theirs).
 */
export function stripStanzaIds(message: Element, by: string): void {
  let found = false;
  for (const child of message.children) {
    if (typeof child !== 'string' && child.name === 'stanza-id' && child.attrs.xmlns === NS_SID && child.attrs.by === by) found = true;
  }
  if (found) message.children = message.children.filter((c) => typeof c === 'string' || c.name !== 'stanza-id' || c.attrs.xmlns !== NS_SID || c.attrs.by !== by);
}

/** The message as archived: its own serialisation with the namespace a forwarded copy needs (XEP-0297). */
export function archivedXml(message: Element): string {
  return serializeToKeep(message, 'jabber:client');
}

/** What the archive offers the other modules on its host: retention and the archive's copy for offline storage, archives for rooms. */
declare module '../../core/module.js' {
  interface Services {
    mam: ArchiveService;
  }
}

export interface ArchiveService {
  /** Messages of `username` stored before this time (ms) are expired; null: kept forever. */
  expiryCutoff(username: string, now?: number): number | null;
  /** The archive store rooms on this host keep their history in. */
  store: ArchiveStore;
  /** The most results per query. */
  maxPage: number;
  /**
   * Keeps a message a room occupant sent `owner` (an account of this host) privately (XEP-0045
   * §7.5) in `owner`'s archive: private messages through a room are the user's, not the room's.
   * Returns the stanza-id to add before delivery (null when not archived, or not known yet) and
   * what the sender's acknowledgement waits for.
   */
  archivePrivate(message: Element, owner: Jid, from: Jid): { stanzaId: Element | null; written: Promise<unknown> | undefined };
  /**
   * Keeps a message offline storage has accepted for `to` in `to`'s archive, and adds its
   * stanza-id, so that the stored copy carries it. Offline storage calls it once it has decided:
   * a message it refuses (storage full) is bounced to its sender, and is not in the recipient's
   * archive either.
   */
  archiveOffline(message: Element, to: Jid): void;
  /**
   * XEP-0313 §6: keeps a group message of `room` (its reflection, from room/nick) in the room's
   * archive. Returns its id there (the stanza-id the occupants get) and what the sender's
   * acknowledgement waits for; null when it is not archived (no body, a no-store hint).
   */
  archiveGroupchat(room: string, nick: string, message: Element): { id: string; written: Promise<unknown> } | null;
  /**
   * XEP-0313 §6: a query of a room's archive by `to` (the room checked who may read it): `get`
   * answers the form or the metadata, `set` sends the results with `send` and answers the <fin/>.
   */
  queryRoom(room: string, type: 'get' | 'set', payload: Element, to: string, send: (message: Element, xml: string) => void): Promise<Element>;
  /** Deletes a room's archive (the room is gone: a new room of that name starts with none). */
  removeRoom(room: string): Promise<unknown>;
}

/** XEP-0313 §6 and XEP-0334: a group message is archived when it has a body (or a store hint) and no no-store hint. */
function groupchatArchivable(message: Element): boolean {
  let content = false;
  for (const child of message.children) {
    if (typeof child === 'string') continue;
    if (child.attrs.xmlns === undefined && child.name === 'body') content = true;
    else if (child.attrs.xmlns === NS_HINTS) {
      if (child.name === 'no-store' || child.name === 'no-permanent-store') return false;
      if (child.name === 'store') content = true;
    }
  }
  return content;
}


/** What the offline module offers the retention sweep (see src/modules/offline). */
export interface OfflineExpiry {
  expire(cutoff: number, keep: (username: string) => boolean, batch: number): Promise<number>;
  expireAccount(username: string, cutoff: number): Promise<number>;
}

/**
 * What the archive knows of a message while it is routed, shared by the hosts of this process
 * (sender and recipient may be on two of them): one object per message, held by the message itself
 * under a symbol. Not a WeakMap: at tens of thousands of messages a second, ephemeron entries were
 * a large part of the garbage collector's work; a property dies with its message like any other.
 */
class Archiving implements Durable {
  /** The archive writes the message caused: none, one promise, or several. */
  writes: Promise<unknown> | Array<Promise<unknown>> | null = null;
  /** Already in its recipient's archive (full JID → bare JID → offline all fire). */
  inRecipientArchive = false;
  /** The children before the sender's stanza-id was added for sent carbons. */
  senderChildren: Element['children'] | null = null;
  /** The archived serialisation, valid while the children are `xmlChildren`. */
  xml: string | null = null;
  xmlChildren: Element['children'] | null = null;
  /** Its id in the archive it went into last: the other party's entry shares that stored copy (NewArchiveRow.sameMessage). */
  archivedId: number | undefined = undefined;

  /** What the sender's acknowledgement waits for (the event's `durable`, asked once the message is routed). */
  written(): Promise<unknown> | undefined {
    return allWritten(this);
  }
}
const ARCHIVING = Symbol('mam.archiving');
type ArchivedElement = Element & { [ARCHIVING]?: Archiving };

const knownState = (stanza: Element): Archiving | undefined => (stanza as ArchivedElement)[ARCHIVING];

function stateOf(stanza: Element): Archiving {
  return ((stanza as ArchivedElement)[ARCHIVING] ??= new Archiving());
}

function archivedXmlOf(stanza: Element, state: Archiving): string {
  if (state.xml !== null && state.xmlChildren === stanza.children) return state.xml;
  state.xmlChildren = stanza.children;
  return (state.xml = archivedXml(stanza));
}

function noteWrite(state: Archiving, written: Promise<unknown>): void {
  const writes = state.writes;
  if (writes === null) state.writes = written;
  else if (Array.isArray(writes)) {
    if (!writes.includes(written)) writes.push(written);
  } else if (writes !== written) state.writes = [writes, written];
}

/** What the sender's acknowledgement waits for. */
const allWritten = (state: Archiving): Promise<unknown> | undefined => (Array.isArray(state.writes) ? Promise.all(state.writes) : state.writes ?? undefined);

/** `children` with `extra` after them, as a new array (copies already made keep theirs). */
function withChild(children: Element['children'], extra: Element): Element['children'] {
  const copy = children.slice();
  copy.push(extra);
  return copy;
}

const yieldToEvents = () => new Promise<void>((resolve) => setImmediate(resolve));

export default defineModule({
  name: 'mam',
  description: 'Message history on the server, for every device, kept for a configurable time',
  implements: [
    { spec: 'XEP-0313', version: '1.1.3', status: 'complete', note: 'user archives (urn:xmpp:mam:2 and #extended) and the rooms of the muc module' },
    { spec: 'XEP-0359', version: '0.7.0', status: 'complete', note: 'stanza-id on delivered and carbon-copied messages; forged ones stripped' },
    { spec: 'XEP-0059', version: '1.0', status: 'partial', note: 'paging of archive queries: max, after, before (no index)' },
    { spec: 'XEP-0441', version: '0.2.0', status: 'complete', note: 'archive metadata' },
    { spec: 'XEP-0334', version: '0.3.0', status: 'partial', note: 'store, no-store and no-permanent-store hints respected by the archive' },
  ],
  dependencies: ['roster'],
  options: z.strictObject({
    /** XEP-0313 §7: whose messages an account archives until its user says otherwise. */
    default_policy: z.enum(['always', 'roster', 'never']).default('always'),
    /** The most messages one query returns (a bigger <max/> gets this many). */
    max_page: z.number().int().min(1).max(10_000).default(250),
    /** How long messages are kept, in the archive and in offline storage; `never`: forever. */
    archive_expires_after: durationOrNever().prefault('1y'),
    /** How often the expired messages are deleted. */
    expiry_sweep_interval: duration().prefault('1h'),
    /** Rows deleted per statement by the sweep, which yields to the server between batches. */
    expiry_batch: z.number().int().min(1).default(1000),
  }),
  migrations: archiveMigrations,
  async removeAccountData({ db, host, username, bareJid }) {
    await removeArchive(db, bareJid);
    await db('mam_prefs').where({ host, username }).delete();
    await db('mam_retention').where({ host, username }).delete();
  },
  async setup(m) {
    const domain = m.host.domain;
    const sessions = m.sessions;
    const store = new ArchiveStore(m.db, domain, (err, rows, stanzas) => {
      m.server.storage.failed(err); // readiness 503, and new messages refused (below) until it works again
      m.log.error({ err, rows }, 'archiving messages failed');
      // acknowledged only once archived: the senders are told it was not kept, not left believing it was
      for (const xml of stanzas) {
        let message: Element;
        try {
          message = parseElement(xml);
        } catch {
          continue; // (it was serialised here: cannot happen)
        }
        m.server.router.bounce(message, new StanzaError('internal-server-error', 'The message could not be stored (the server\'s storage failed); it may not have been delivered'));
      }
    });
    const prefsStore = new PrefsStore(m.db, domain);
    const retention = new RetentionStore(m.db, domain);
    const roster = m.use('roster');
    await Promise.all([store.init(), prefsStore.init(), retention.load()]);
    const options = m.options;


    const expiryCutoff = (username: string, now = Date.now()): number | null => {
      const override = retention.override(username);
      const seconds = override === undefined ? options.archive_expires_after : override;
      return seconds === null ? null : now - seconds * 1000;
    };

    m.feature(NS_MAM);
    m.feature(NS_MAM_EXTENDED);
    m.feature(NS_SID);
    m.accountFeature(NS_MAM);
    m.accountFeature(NS_MAM_EXTENDED);
    m.accountFeature(NS_SID);

    const serverDefault: ArchivePrefs = Object.freeze({ default: options.default_policy, always: [], never: [] });
    const prefsOf = (username: string): ArchivePrefs => prefsStore.get(username) ?? serverDefault;

    /** XEP-0313 §7: whether `username` archives a message with `peer`; undefined while its roster is not loaded. */
    function wanted(username: string, peer: string): boolean | undefined {
      const prefs = prefsOf(username);
      if (prefs.never.includes(peer)) return false;
      if (prefs.always.includes(peer) || prefs.default === 'always') return true;
      if (prefs.default === 'never') return false;
      const contacts = roster.store.cached(username);
      return contacts === undefined ? undefined : contacts.items.has(peer);
    }

    /**
     * Archives `stanza` for `owner` (an account of this host) with `peer`; returns the stanza-id
     * element, or null when it is not archived or not known yet (the roster is loaded first, and
     * the message archived afterwards without a stanza-id on the way), or when no one will see it
     * (`stanzaIdWanted` false).
     */
    function archive(stanza: Element, state: Archiving, owner: Jid, peer: Jid, stanzaIdWanted = true): Element | null {
      const decision = wanted(owner.local, peer.bare);
      if (decision === false) return null;
      const row = { owner: owner.bare, withBare: peer.bare, withResource: peer.resource, stanza: archivedXmlOf(stanza, state), tellSender: true, sameMessage: state.archivedId };
      if (decision === undefined) {
        const later = roster.store.load(owner.local).then(() => {
          if (wanted(owner.local, peer.bare) === true) return store.append(row).written;
          return undefined;
        });
        noteWrite(state, later.catch((err: unknown) => m.log.error({ err, owner: owner.bare }, 'archiving a message failed')));
        return null;
      }
      const { id, nonce, written } = store.append(row);
      state.archivedId = id;
      noteWrite(state, written);
      return stanzaIdWanted ? new Element('stanza-id', { xmlns: NS_SID, by: owner.bare, id: publicId(id, nonce) }) : null;
    }

    m.provide('mam', {
      expiryCutoff,
      store,
      maxPage: options.max_page,
      archivePrivate(message, owner, from) {
        if (!archivable(message)) return { stanzaId: null, written: undefined };
        const state = stateOf(message);
        const stanzaId = archive(message, state, owner, from);
        return { stanzaId, written: allWritten(state) };
      },
      archiveOffline(message, to) {
        const from = message.attrs.from === undefined ? null : parseJid(message.attrs.from);
        if (from !== null) incoming(message, from, to);
      },
      archiveGroupchat(room, nick, message) {
        if (!groupchatArchivable(message)) return null;
        const { id, nonce, written } = store.append({ owner: room, withBare: room, withResource: nick, stanza: archivedXml(message) });
        return { id: publicId(id, nonce), written };
      },
      async queryRoom(room, type, payload, to, send) {
        if (type === 'get') {
          if (payload.name === 'query') return queryForm();
          if (payload.name === 'metadata') return metadata(store, room);
          throw new StanzaError('bad-request', 'Expected <query/> or <metadata/>');
        }
        if (payload.name !== 'query') throw new StanzaError('bad-request', 'Expected <query/>');
        return runQuery({ store, owner: room, to, from: room, send }, parseQuery(payload, { maxPage: options.max_page }));
      },
      removeRoom: (room) => store.removeOwner(room),
    } satisfies ArchiveService);

    // --- the sender's archive (outgoing messages of our users' clients) --------------------------
    const outgoing = (e: StanzaEvent): true | undefined => {
      stripStanzaIds(e.stanza, e.from.bare);
      if (e.session === undefined || e.from.bare === e.to.bare || !archivable(e.stanza)) return undefined;
      if (!m.server.storage.healthy && wanted(e.from.local, e.to.bare) !== false) {
        // the archive cannot keep it: refused rather than acknowledged and lost (issue 16.4)
        m.server.router.bounce(e.stanza, new StanzaError('resource-constraint', 'The server cannot store messages right now; try again later', 'wait'));
        return true;
      }
      const state = stateOf(e.stanza);
      // accepted once archived: the kernel asks once the router has taken it, so the recipient's
      // archive write (noted while routing, or before offline storage settled) is waited for too
      e.durable = state;
      // the sender's id is only ever seen in a sent carbon, which needs another session of the account
      const carbonPossible = (sessions.resources(e.from.bare)?.size ?? 0) > 1;
      const stanzaId = archive(e.stanza, state, e.from, e.to, carbonPossible);
      if (stanzaId !== null) {
        // XEP-0313 §5.1.1 (with XEP-0280): the sent carbon carries the sender's archive id; a new
        // array, so that the message's own children are put back as they were (and serialised once)
        state.senderChildren = e.stanza.children;
        e.stanza.children = withChild(e.stanza.children, stanzaId);
      }
      return undefined;
    };
    // after blocking (which refuses before anything is kept), before carbons (-100) copy it
    m.on('pre-message/bare', outgoing, -50);
    m.on('pre-message/full', outgoing, -50);

    /** Last in the chain, after the sent carbons: the stanza-id names the sender's archive, not the recipient's. */
    const restoreChildren = (e: StanzaEvent): undefined => {
      const state = knownState(e.stanza);
      if (state !== undefined && state.senderChildren !== null) {
        e.stanza.children = state.senderChildren;
        state.senderChildren = null;
      }
      return undefined; // the router routes it
    };
    m.on('pre-message/bare', restoreChildren, -200);
    m.on('pre-message/full', restoreChildren, -200);

    // --- the recipient's archive (messages delivered to, or stored for, our users) ---------------
    const availableResource = (bare: string) => {
      for (const s of sessions.resources(bare)?.values() ?? []) if (s.available && s.priority >= 0) return true;
      return false;
    };

    function incoming(stanza: Element, from: Jid, to: Jid): void {
      const known = knownState(stanza);
      if (known?.inRecipientArchive === true || !archivable(stanza)) return;
      const state = known ?? stateOf(stanza);
      state.inRecipientArchive = true;
      const stanzaId = archive(stanza, state, to, from);
      // XEP-0359: the id this message has in the recipient's archive (a new array: copies made keep theirs)
      if (stanzaId !== null) stanza.children = withChild(stanza.children, stanzaId);
    }

    // below blocking (which drops before anything is kept), above carbons (-990) so copies carry the id
    m.on('message/full', (e: StanzaEvent) => {
      stripStanzaIds(e.stanza, e.to.bare);
      // delivered to that resource, or by RFC 6121 §8.5.3.2.1 as to the bare JID
      if (sessions.find(e.to.bare, e.to.resource) !== undefined || availableResource(e.to.bare)) incoming(e.stanza, e.from, e.to.toBare());
      return undefined;
    }, -500);
    m.on('message/bare', (e: StanzaEvent) => {
      stripStanzaIds(e.stanza, e.to.bare);
      if (availableResource(e.to.bare)) incoming(e.stanza, e.from, e.to);
      return undefined;
    }, -500);
    // kept offline: offline storage calls archiveOffline (above) once it has accepted the message

    // --- queries (§4) and preferences (§7) --------------------------------------------------------
    const ownArchive = (from: Jid, to: Jid): Jid => {
      if (from.domain !== domain || from.local === '' || (to.local !== '' && to.bare !== from.bare)) {
        throw new StanzaError('forbidden', 'An archive is queried by its own account');
      }
      return from;
    };

    m.iq('set', NS_MAM, async ({ payload, from, to, session }) => {
      const user = ownArchive(from, to);
      if (payload.name === 'prefs') return setPrefs(user.local, payload);
      if (payload.name !== 'query') throw new StanzaError('bad-request', 'Expected <query/> or <prefs/>');
      if (session === undefined) throw new StanzaError('service-unavailable', 'Archive results go to a client session');
      const query = parseQuery(payload, { maxPage: options.max_page });
      return runQuery({ store, owner: user.bare, to: from.toString(), send: (message, xml) => m.deliver(session, message, xml, RESULT_TRACKER) }, query);
    }, 'account');

    m.iq('get', NS_MAM, async ({ payload, from, to }) => {
      const user = ownArchive(from, to);
      if (payload.name === 'query') return queryForm();
      if (payload.name === 'prefs') return prefsElement(prefsOf(user.local));
      if (payload.name === 'metadata') return metadata(store, user.bare);
      throw new StanzaError('bad-request', 'Expected <query/>, <prefs/> or <metadata/>');
    }, 'account');

    async function setPrefs(username: string, payload: Element): Promise<Element> {
      const policy = payload.attrs.default ?? prefsOf(username).default;
      if (policy !== 'always' && policy !== 'never' && policy !== 'roster') throw new StanzaError('bad-request', 'default must be always, never or roster');
      const list = (name: string): string[] => {
        const jids: string[] = [];
        for (const jidElement of payload.getChild(name)?.getChildren('jid') ?? []) {
          const jid = parseJid(jidElement.getText().trim());
          if (jid === null) throw new StanzaError('jid-malformed', `Not a JID: ${jidElement.getText()}`);
          jids.push(jid.bare);
        }
        return jids;
      };
      const prefs: ArchivePrefs = { default: policy as DefaultPolicy, always: list('always'), never: list('never') };
      await prefsStore.set(username, prefs);
      return prefsElement(prefs);
    }

    // --- retention -------------------------------------------------------------------------------
    let sweeping: Promise<void> | undefined;
    let stopped = false;
    const offlineExpiry = () => m.optional('offline');
    const localOf = (owner: string) => {
      const at = owner.indexOf('@');
      return at !== -1 && owner.slice(at + 1) === domain ? owner.slice(0, at) : null;
    };

    /** Deletes what is older than its retention, a batch at a time, yielding to the server in between. */
    async function sweep(): Promise<void> {
      const overrides = await retention.load();
      const now = Date.now();
      const batch = options.expiry_batch;
      const hasOverride = (owner: string) => {
        const local = localOf(owner);
        return local !== null && overrides.has(local);
      };
      let deleted = 0;
      if (options.archive_expires_after !== null) {
        const cutoffId = (now - options.archive_expires_after * 1000) * IDS_PER_MS;
        for (let cursor = 0; !stopped;) {
          const done = await store.expireBatch(cursor, cutoffId, hasOverride, batch);
          if (done === null) break;
          cursor = done.lastId;
          deleted += done.deleted;
          await yieldToEvents();
        }
        const offline = offlineExpiry();
        if (offline !== undefined && !stopped) deleted += await offline.expire(now - options.archive_expires_after * 1000, (u) => overrides.has(u), batch);
      }
      for (const [username, seconds] of overrides) {
        if (seconds === null || stopped) continue;
        const cutoff = now - seconds * 1000;
        for (let n = batch; n >= batch && !stopped;) {
          n = await store.expireOwnerBatch(`${username}@${domain}`, cutoff * IDS_PER_MS, batch);
          deleted += n;
          await yieldToEvents();
        }
        deleted += (await offlineExpiry()?.expireAccount(username, cutoff)) ?? 0;
      }
      if (deleted > 0) m.log.info({ deleted }, 'expired messages deleted');
    }

    const startSweep = () => {
      if (sweeping !== undefined || stopped) return; // the last one is still going
      sweeping = sweep()
        .catch((err: unknown) => m.log.error({ err }, 'deleting expired messages failed'))
        .finally(() => (sweeping = undefined));
    };
    const timer = setInterval(startSweep, options.expiry_sweep_interval * 1000);
    timer.unref();
    // a shortened retention applies soon after a restart, not only an interval later
    const first = setTimeout(startSweep, Math.min(options.expiry_sweep_interval, 60) * 1000);
    first.unref();
    // --- a session's queue lost with the process (src/c2s/hibernation.ts) ----------------------
    // The session was waiting to be resumed when the process died: what it had been sent since
    // `since` and not acknowledged is in this archive (archived before the sender's ack). Each
    // message to that resource or to the account goes back to the router, and so to offline
    // storage (no session is bound yet), with its stanza-id and the time the server first had it.
    // A message the client had in fact received comes again: at least once, never lost.
    m.on('c2s/session-lost', async ({ jid, since }: SessionLostEvent) => {
      if (jid.domain !== domain) return undefined;
      let minId = Math.floor(since / 1000) * 1000 * IDS_PER_MS; // the coarse clock's second, whole
      let handedOn = 0;
      for (;;) {
        const page = await store.page({ owner: jid.bare, minId }, 250, false);
        for (const row of page.rows) {
          minId = row.id + 1;
          let message: Element;
          try {
            message = parseElement(row.stanza);
          } catch {
            continue;
          }
          const to = message.attrs.to === undefined ? null : parseJid(message.attrs.to);
          if (to === null || to.bare !== jid.bare || (to.resource !== '' && to.resource !== jid.resource)) continue;
          stateOf(message).inRecipientArchive = true; // it is: not archived again on its way
          message.children = withChild(message.children, new Element('stanza-id', { xmlns: NS_SID, by: jid.bare, id: publicId(row.id, row.nonce) }));
          if (!message.getChildren('delay', NS_DELAY).some((d) => d.attrs.from === domain)) {
            message.c('delay', { xmlns: NS_DELAY, from: domain, stamp: new Date(Math.floor(row.id / IDS_PER_MS)).toISOString() });
          }
          await m.server.router.undelivered(message, jid);
          handedOn++;
        }
        if (page.complete || page.rows.length === 0) break;
      }
      m.log.info({ jid: jid.toString(), messages: handedOn }, 'messages queued for a session lost with the last process handed on');
      return true;
    });

    m.onStop(async () => {
      stopped = true;
      await store.close();
      clearInterval(timer);
      clearTimeout(first);
      await sweeping;
    });

    m.on('account/deleted', ({ username }: { username: string }) => {
      prefsStore.forget(username);
      retention.forget(username);
    });
  },
});

function prefsElement(prefs: ArchivePrefs): Element {
  const element = new Element('prefs', { xmlns: NS_MAM, default: prefs.default });
  const always = element.c('always');
  for (const jid of prefs.always) always.c('jid').t(jid);
  const never = element.c('never');
  for (const jid of prefs.never) never.c('jid').t(jid);
  return element;
}
