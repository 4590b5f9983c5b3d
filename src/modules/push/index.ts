// XEP-0357 Push Notifications: a phone's client registers its app server (the service that
// relays to Firebase, APNs...) with <enable/>; when something worth waking it for arrives while
// its session sleeps — hibernating, waiting for XEP-0198 resumption, or gone — the server
// publishes a summary to that app server, which wakes the app, which reconnects and fetches the
// messages itself. Decided as Prosody's mod_cloud_notify does: a message with a body, an
// encrypted payload (OMEMO, PGP, OX), a call proposal (XEP-0353), a group-chat message that
// mentions the user; never for a client that is connected (Client State Indication's
// "inactive" is still connected: Conversations reads those stanzas on its open socket).
//
// A device (one registration) is "live" while a session that enabled it is bound: its flag
// (`push:<hash>`) is on that session in the directory, so every node of a cluster sees it. A
// live session that hibernates, or leaves stream management's acknowledgement requests
// unanswered, is woken from the node holding it (`session/hibernating`,
// `session/hibernated-stanza`, `session/ack-delayed`); a device with no session is woken when a message for its
// account arrives (`message/bare`, `message/full`, just above the RFC 6121 delivery rules).
import { createHash, randomUUID } from 'node:crypto';
import Element from 'ltx/lib/Element.js';
import { z } from 'zod';
import { defineModule } from '../../core/module.js';
import { parseJid, type Jid } from '../../core/jid.js';
import type { SessionRef } from '../../core/ports.js';
import type { StanzaEvent } from '../../core/router.js';
import { StanzaError, messageType } from '../../core/stanza.js';
import { duration } from '../../config/units.js';
import { parseElement } from '../../xml/parse.js';
import { serialize } from '../../xml/serialize.js';
import { PushStore, pushMigrations, type PushRegistration } from './store.js';

declare module '../../core/module.js' {
  interface Services {
    push: PushService;
  }
}

/** What other modules use of push: whether a device of an account is woken by it (mail digests). */
export interface PushService {
  registered(username: string): Promise<boolean>;
}

export const NS_PUSH = 'urn:xmpp:push:0';
const NS_PUBSUB = 'http://jabber.org/protocol/pubsub';
const NS_DATA = 'jabber:x:data';
const FORM_PUBLISH_OPTIONS = 'http://jabber.org/protocol/pubsub#publish-options';
const FORM_SUMMARY = 'urn:xmpp:push:summary';
const NS_STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';
const NS_CARBONS = 'urn:xmpp:carbons:2';
const NS_FORWARD = 'urn:xmpp:forward:0';
const NS_JINGLE_MESSAGE = 'urn:xmpp:jingle-message:0';
const NS_REFERENCE = 'urn:xmpp:reference:0';
/** Payloads whose body the server cannot read, worth a push with or without a body (as mod_cloud_notify). */
const ENCRYPTED: ReadonlyArray<[string, string]> = [
  ['encrypted', 'eu.siacs.conversations.axolotl'], // OMEMO as Conversations speaks it
  ['encrypted', 'urn:xmpp:omemo:2'],
  ['encrypted', 'urn:xmpp:omemo:0'],
  ['x', 'jabber:x:encrypted'], // XEP-0027
  ['openpgp', 'urn:xmpp:openpgp:0'], // XEP-0373
];
/**
 * Longest app server JID and node kept (bytes): with the account they make the table's key,
 * which PostgreSQL indexes only up to about 2.7 KB. Real ones are a few dozen bytes.
 */
const MAX_SERVICE_BYTES = 512;
const MAX_NODE_BYTES = 512;
/** Registrations one account may hold (a few devices, each usually one). */
const MAX_REGISTRATIONS = 20;
/** The publish-options form kept per registration, serialised. */
const MAX_OPTIONS_BYTES = 4096;
/** Accounts whose registrations are kept in memory (including "none"); the oldest go first. */
const MAX_CACHED_ACCOUNTS = 10_000;
/** How long an app server has to answer a publish before it counts as an error. */
const REPLY_TIMEOUT_MS = 60_000;
/**
 * Errors that say the registration is over at the app server (the app was uninstalled, the node
 * is gone, we are not allowed any more): disabled at the first one. Other errors count.
 */
const FINAL_ERRORS = new Set(['item-not-found', 'not-authorized', 'forbidden', 'registration-required', 'subscription-required']);

/** What woke a device: a message (throttled) or a call (not: it rings now or never). */
type Reason = 'message' | 'call';

/** One device (registration) that is not online, and what it was told so far. */
interface Device {
  /** Messages worth a push since it was last online (the summary's message-count). */
  count: number;
  sender: string | undefined;
  body: string | undefined;
  /** Epoch ms of the last publish. */
  lastPush: number;
  /** The trailing publish of a burst, when one is due. */
  timer: NodeJS.Timeout | undefined;
}

/** The session flag that marks a session as the live one of a registration (the directory carries it). */
function flagOf(service: string, node: string): string {
  return `push:${createHash('sha256').update(`${service}\0${node}`).digest('base64url').slice(0, 16)}`;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export default defineModule({
  name: 'push',
  description: 'Push notifications (XEP-0357): wake a phone\'s app through its app server when a message arrives while it sleeps',
  implements: [{ spec: 'XEP-0357', version: '0.4.1', status: 'complete', note: 'summary with message-count and last-message-sender; bodies only when configured; publish-options kept; failing app servers disabled' }],
  migrations: pushMigrations,
  removeAccountData: async ({ db, host, username }) => void (await db('push_registrations').where({ host, username }).delete()),
  options: z.strictObject({
    /** Put the sender's address in the summary (last-message-sender). */
    include_sender: z.boolean().default(true),
    /** Put the message text in the summary (last-message-body): it then passes through the app server and the phone vendor's push service. */
    include_body: z.boolean().default(false),
    /** At most one push per device per this long for messages (a burst gives one now and one at the end); calls are not held back. */
    throttle: duration().prefault('10s'),
    /** Errors in a row from an app server after which its registration is disabled. */
    max_errors: z.number().int().min(1).default(5),
  }),
  async setup(m) {
    const domain = m.host.domain;
    const store = new PushStore(m.db, domain);
    const throttleMs = m.options.throttle * 1000;
    /** Registrations by username, as stored (an empty list: none), loaded on first need. */
    const cache = new Map<string, PushRegistration[]>();
    const loading = new Map<string, Promise<PushRegistration[]>>();
    /** Devices not online that were pushed to, by username then flag. */
    const devices = new Map<string, Map<string, Device>>();
    /** Errors in a row per registration (username, flag). */
    const errors = new Map<string, number>();
    /**
     * The devices each stanza was counted for: the same unacknowledged stanza is reported when
     * the acknowledgement is late and again when the connection then drops.
     */
    const counted = new WeakMap<Element, Set<string>>();
    /** Publishes waiting for the app server's answer, by IQ id. */
    const pending = new Map<string, { registration: PushRegistration; timer: NodeJS.Timeout }>();

    /**
     * Accounts that have a registration, or may have one after a change: a message for anyone
     * else (most accounts) costs no read and nothing kept while a read waits. Without it the
     * first message to each account read its registrations, and under load every message that
     * arrived meanwhile waited on that read with a closure of its own.
     */
    const withRegistrations = new Set(await store.accountsWithRegistrations());
    const forget = (username: string) => {
      cache.delete(username);
      loading.delete(username);
      withRegistrations.add(username); // enabled here or elsewhere, or disabled: the next read tells
    };
    m.provide('push', { registered: async (username) => withRegistrations.has(username) && (await store.count(username)) > 0 } satisfies PushService);
    const changed = m.sharedCache('registrations', forget);

    function registrationsOf(username: string): Promise<PushRegistration[]> {
      const known = cache.get(username);
      if (known !== undefined) return Promise.resolve(known);
      let running = loading.get(username);
      if (running === undefined) {
        running = store.list(username).then((list) => {
          if (loading.get(username) === running) {
            loading.delete(username);
            if (list.length === 0) withRegistrations.delete(username);
            if (cache.size >= MAX_CACHED_ACCOUNTS) cache.delete(cache.keys().next().value!);
            cache.set(username, list);
          }
          return list;
        });
        loading.set(username, running);
      }
      return running;
    }

    m.onStop(() => {
      for (const { timer } of pending.values()) clearTimeout(timer);
      pending.clear();
      for (const byFlag of devices.values()) for (const device of byFlag.values()) clearTimeout(device.timer);
      devices.clear();
    });

    m.accountFeature(NS_PUSH);
    m.gauge('xmppd_push_registrations', 'Push registrations (XEP-0357) of this host\'s accounts', () => store.total());

    // --- enable and disable (§5, §6) ------------------------------------------------------
    const ownAccount = (from: Jid, to: Jid) => {
      if (from.bare !== to.bare) throw new StanzaError('forbidden', 'Only the account itself enables push notifications');
    };
    const serviceOf = (payload: Element): string => {
      const attr = payload.attrs.jid;
      if (attr === undefined || attr === '') throw new StanzaError('bad-request', `<${payload.name}/> needs the app server's jid`);
      const jid = parseJid(attr);
      if (jid === null) throw new StanzaError('jid-malformed', `${attr} is not a JID`);
      const service = jid.toString();
      if (Buffer.byteLength(service) > MAX_SERVICE_BYTES) throw new StanzaError('not-acceptable', `The app server's JID is longer than ${MAX_SERVICE_BYTES} bytes`);
      return service;
    };
    /** The live sessions of an account flagged with `flag` (local or on another node). */
    const sessionsFlagged = (bare: string, flag: string): SessionRef[] =>
      [...(m.sessions.resources(bare)?.values() ?? [])].filter((s) => s.flags.has(flag));

    m.iq('set', NS_PUSH, async ({ from, to, payload, session }) => {
      ownAccount(from, to);
      const username = to.local;
      if (payload.name === 'enable') {
        const service = serviceOf(payload);
        const node = payload.attrs.node ?? '';
        if (Buffer.byteLength(node) > MAX_NODE_BYTES) throw new StanzaError('not-acceptable', `The node is longer than ${MAX_NODE_BYTES} bytes`);
        const form = payload.getChild('x', NS_DATA);
        if (form !== undefined) {
          // §5: "publish-options", a data form of that FORM_TYPE, sent back in each publish
          const formType = form.getChildren('field').find((f) => f.attrs.var === 'FORM_TYPE')?.getChildText('value');
          if (formType !== FORM_PUBLISH_OPTIONS) throw new StanzaError('bad-request', `The form must be of FORM_TYPE ${FORM_PUBLISH_OPTIONS}`);
        }
        const options = form === undefined ? null : serialize(form);
        if (options !== null && Buffer.byteLength(options) > MAX_OPTIONS_BYTES) throw new StanzaError('not-acceptable', 'The publish-options form is too large');
        const existing = await store.list(username);
        if (!existing.some((r) => r.service === service && r.node === node) && existing.length >= MAX_REGISTRATIONS) {
          throw new StanzaError('resource-constraint', `At most ${MAX_REGISTRATIONS} push registrations per account`);
        }
        await store.enable({ username, service, node, options });
        forget(username);
        changed(username);
        const flag = flagOf(service, node);
        // this session is that device, online now: nothing is pushed to it while it stays
        if (session !== undefined) m.sessions.setFlag(session, flag, true);
        online(username, flag);
        errors.delete(`${username}\0${flag}`);
        m.log.debug({ account: from.bare, service, node }, 'push notifications enabled');
        return null;
      }
      if (payload.name === 'disable') {
        const service = serviceOf(payload);
        const node = payload.attrs.node;
        const removed = (await registrationsOf(username)).filter((r) => r.service === service && (node === undefined || r.node === node));
        await store.disable(username, service, node);
        forget(username);
        changed(username);
        for (const registration of removed) stopDevice(registration);
        m.log.debug({ account: from.bare, service, node }, 'push notifications disabled');
        return null;
      }
      throw new StanzaError('bad-request', `Unknown element <${payload.name}/> in ${NS_PUSH}`);
    }, 'account');

    /** The registration's device is online (or gone): no trailing push, the count starts again. */
    function online(username: string, flag: string): void {
      const byFlag = devices.get(username);
      const device = byFlag?.get(flag);
      if (device === undefined) return;
      clearTimeout(device.timer);
      byFlag!.delete(flag);
      if (byFlag!.size === 0) devices.delete(username);
    }

    /** A registration is over: its flag leaves the sessions, its state goes. */
    function stopDevice(registration: PushRegistration): void {
      const flag = flagOf(registration.service, registration.node);
      for (const session of sessionsFlagged(`${registration.username}@${domain}`, flag)) m.sessions.setFlag(session, flag, false);
      online(registration.username, flag);
      errors.delete(`${registration.username}\0${flag}`);
    }

    // --- what is worth a push -----------------------------------------------------------------
    /**
     * Why `stanza` (for `session`, when it goes to one) should wake the device, if it should. As
     * mod_cloud_notify's is_important: a body, an encrypted payload or a call proposal; a
     * received carbon for what it carries; in a group chat, only a mention of the user.
     */
    function reasonFor(stanza: Element, session: SessionRef | undefined, account: string): Reason | undefined {
      if (stanza.name !== 'message') return undefined;
      const type = messageType(stanza);
      if (type === 'error' || type === 'headline') return undefined;
      const received = stanza.getChild('received', NS_CARBONS)?.getChild('forwarded', NS_FORWARD)?.getChild('message');
      if (received !== undefined) return reasonFor(received, session, account);
      if (stanza.getChild('sent', NS_CARBONS) !== undefined) return undefined; // the user's own words, from another device
      if (stanza.getChild('propose', NS_JINGLE_MESSAGE) !== undefined) return 'call';
      const body = stanza.getChildText('body');
      if (type === 'groupchat') return body !== null && body !== '' && stanza.getChild('subject') === undefined && mentions(stanza, body, session, account) ? 'message' : undefined;
      if (ENCRYPTED.some(([name, ns]) => stanza.getChild(name, ns) !== undefined)) return 'message';
      return body !== null && body !== '' ? 'message' : undefined;
    }

    /** A group-chat message mentions the user: by a XEP-0372 reference, or by the nickname the session joined with. */
    function mentions(stanza: Element, body: string, session: SessionRef | undefined, account: string): boolean {
      const from = stanza.attrs.from ?? '';
      const room = from.split('/')[0]!;
      const nick = [...(session?.directedPresence ?? [])].find((target) => target.startsWith(`${room}/`))?.slice(room.length + 1);
      if (nick !== undefined && from === `${room}/${nick}`) return false; // our own message, reflected
      for (const reference of stanza.getChildren('reference', NS_REFERENCE)) {
        const uri = reference.attrs.uri;
        if (reference.attrs.type === 'mention' && (uri === `xmpp:${account}` || (nick !== undefined && uri === `xmpp:${room}/${nick}`))) return true;
      }
      if (nick === undefined || nick === '') return false;
      return new RegExp(`(^|[^\\p{L}\\p{N}_])${escapeRegExp(nick)}($|[^\\p{L}\\p{N}_])`, 'iu').test(body);
    }

    // --- when --------------------------------------------------------------------------------
    /** `stanza` arrived for the device of `registration`, which is not online: push now, later (a burst) or not. */
    function arrived(registration: PushRegistration, stanza: Element, reason: Reason): void {
      const flag = flagOf(registration.service, registration.node);
      const seen = counted.get(stanza);
      if (seen?.has(flag) === true) return;
      if (seen === undefined) counted.set(stanza, new Set([flag]));
      else seen.add(flag);
      let byFlag = devices.get(registration.username);
      if (byFlag === undefined) devices.set(registration.username, (byFlag = new Map()));
      let device = byFlag.get(flag);
      if (device === undefined) byFlag.set(flag, (device = { count: 0, sender: undefined, body: undefined, lastPush: 0, timer: undefined }));
      const carried = stanza.getChild('received', NS_CARBONS)?.getChild('forwarded', NS_FORWARD)?.getChild('message') ?? stanza;
      device.count++;
      device.sender = carried.attrs.from;
      device.body = carried.getChildText('body') ?? undefined;
      const now = Date.now();
      // Throttle: the first message of a burst is pushed at once (the phone wakes and fetches
      // everything), the rest of the burst makes one more push at the end of the interval with
      // the count so far, unless the device came online meanwhile. A call always goes now.
      if (reason === 'call' || now - device.lastPush >= throttleMs) {
        clearTimeout(device.timer);
        device.timer = undefined;
        device.lastPush = now;
        publish(registration, device);
      } else if (device.timer === undefined) {
        const due = device;
        due.timer = setTimeout(() => {
          due.timer = undefined;
          due.lastPush = Date.now();
          publish(registration, due);
        }, throttleMs - (now - device.lastPush));
        due.timer.unref();
      }
    }

    /** For each registration of `username` matching `which`, once they are known. */
    function forRegistrations(username: string, which: (registration: PushRegistration) => boolean, act: (registration: PushRegistration) => void): void {
      const run = (list: PushRegistration[]) => {
        for (const registration of list) if (which(registration)) act(registration);
      };
      const known = cache.get(username);
      if (known !== undefined) return void (known.length > 0 && run(known));
      registrationsOf(username).then(run, (err: unknown) => m.log.error({ err, account: `${username}@${domain}` }, 'reading push registrations failed'));
    }

    // A device with no session: woken by what arrives for its account (delivered to its other
    // devices, or kept offline). Below carbons (-990), above the delivery rules (-1000).
    const forAccount = (e: StanzaEvent) => {
      if (!withRegistrations.has(e.to.local)) return undefined;
      // to a resource that is there: between that session and its peer (e.g. a call's signalling)
      if (!e.to.isBare && m.sessions.find(e.to.bare, e.to.resource) !== undefined) return undefined;
      const reason = reasonFor(e.stanza, undefined, e.to.bare);
      if (reason === undefined) return undefined;
      // the devices with a session now (theirs is woken by forSession), before a registration read waits
      const live = new Set<string>();
      for (const session of m.sessions.resources(e.to.bare)?.values() ?? []) for (const flag of session.flags) if (flag.startsWith('push:')) live.add(flag);
      const stanza = e.stanza;
      forRegistrations(e.to.local, (r) => !live.has(flagOf(r.service, r.node)), (r) => arrived(r, stanza, reason));
      return undefined;
    };
    m.on('message/bare', forAccount, -995);
    m.on('message/full', forAccount, -995);

    // A live device whose connection dropped, waiting for resumption (XEP-0198 §5): woken by
    // what was queued for it, from the node that holds it.
    const pushFlagsOf = (session: SessionRef) => [...session.flags].filter((flag) => flag.startsWith('push:'));
    const forSession = (session: SessionRef, stanza: Element) => {
      if (!withRegistrations.has(session.jid.local)) return;
      const flags = pushFlagsOf(session);
      if (flags.length === 0) return;
      const reason = reasonFor(stanza, session, session.jid.bare);
      if (reason === undefined) return;
      forRegistrations(session.jid.local, (r) => flags.includes(flagOf(r.service, r.node)), (r) => arrived(r, stanza, reason));
    };
    m.on('session/hibernating', ({ session, queued }) => {
      // sent to the connection that died and never acknowledged: what the phone may not have seen
      for (const stanza of queued) forSession(session, stanza);
      return undefined;
    });
    // connected but not acknowledging (XEP-0198 <r/> unanswered for c2s.ack_delay): a phone
    // asleep on a link that looks open, as mod_cloud_notify's smacks-ack-delayed
    m.on('session/ack-delayed', ({ session, queued }) => {
      for (const stanza of queued) forSession(session, stanza);
      return undefined;
    });
    m.on('session/hibernated-stanza', ({ session, stanza }) => void forSession(session, stanza));
    m.on('session/resumed', ({ session }) => {
      for (const flag of pushFlagsOf(session)) online(session.jid.local, flag);
      return undefined;
    });

    m.on('account/deleted', ({ username }) => {
      forget(username);
      for (const device of devices.get(username)?.values() ?? []) clearTimeout(device.timer);
      devices.delete(username);
      for (const key of errors.keys()) if (key.startsWith(`${username}\0`)) errors.delete(key);
      return undefined;
    });

    // --- the publish (§5) and its answer ---------------------------------------------------------
    function summary(device: Device): Element {
      const form = new Element('x', { xmlns: NS_DATA, type: 'submit' });
      const field = (name: string, value: string) => form.c('field', { var: name }).c('value').t(value).up().up();
      field('FORM_TYPE', FORM_SUMMARY);
      field('message-count', String(device.count));
      if (m.options.include_sender && device.sender !== undefined) field('last-message-sender', device.sender);
      if (m.options.include_body && device.body !== undefined) field('last-message-body', device.body);
      return form;
    }

    function publish(registration: PushRegistration, device: Device): void {
      const id = `push-${randomUUID()}`;
      const iq = new Element('iq', { type: 'set', id, from: `${registration.username}@${domain}`, to: registration.service });
      const pubsub = iq.c('pubsub', { xmlns: NS_PUBSUB });
      const publishElement = pubsub.c('publish', registration.node === '' ? {} : { node: registration.node });
      publishElement.c('item').c('notification', { xmlns: NS_PUSH }).append(summary(device));
      if (registration.options !== null) {
        try {
          pubsub.c('publish-options').append(parseElement(registration.options));
        } catch (err) {
          m.log.error({ err, account: iq.attrs.from, service: registration.service }, 'a stored publish-options form does not parse; sent without it');
        }
      }
      const timer = setTimeout(() => {
        pending.delete(id);
        failed(registration, 'no answer');
      }, REPLY_TIMEOUT_MS);
      timer.unref();
      pending.set(id, { registration, timer });
      m.log.debug({ account: iq.attrs.from, service: registration.service, count: device.count }, 'push notification sent');
      m.route(iq); // through the router: s2s to another domain, or a local entity
    }

    // the app server answers the account we published as
    m.on('iq/bare', (e: StanzaEvent) => {
      const id = e.stanza.attrs.id;
      const type = e.stanza.attrs.type;
      if ((type !== 'result' && type !== 'error') || id === undefined || !id.startsWith('push-')) return undefined;
      const waiting = pending.get(id);
      if (waiting === undefined || e.from.bare !== parseJid(waiting.registration.service)?.bare) return undefined;
      pending.delete(id);
      clearTimeout(waiting.timer);
      const key = `${waiting.registration.username}\0${flagOf(waiting.registration.service, waiting.registration.node)}`;
      if (type === 'result') errors.delete(key);
      else {
        const condition = e.stanza.getChild('error')?.getChildElements().find((c) => c.attrs.xmlns === NS_STANZAS)?.name ?? 'undefined-condition';
        failed(waiting.registration, condition);
      }
      return true;
    }, 50);

    /** The app server failed a publish: a final error, or max_errors in a row, disables the registration. */
    function failed(registration: PushRegistration, condition: string): void {
      const key = `${registration.username}\0${flagOf(registration.service, registration.node)}`;
      const count = (errors.get(key) ?? 0) + 1;
      errors.set(key, count);
      const account = `${registration.username}@${domain}`;
      if (!FINAL_ERRORS.has(condition) && count < m.options.max_errors) {
        m.log.info({ account, service: registration.service, condition, errors: count }, 'the app server failed a push notification');
        return;
      }
      m.log.warn({ account, service: registration.service, node: registration.node, condition, errors: count }, 'push registration disabled: its app server keeps failing or no longer knows it');
      stopDevice(registration);
      store.disable(registration.username, registration.service, registration.node).then(
        () => {
          forget(registration.username);
          changed(registration.username);
        },
        (err: unknown) => m.log.error({ err, account }, 'disabling a failed push registration failed'),
      );
    }
  },
});
