// One multi-user chat room (XEP-0045): its configuration, affiliations, occupants with their
// roles, discussion history and subject, and what it does with each stanza addressed to it.
//
// The hot path is a groupchat message: it is reflected to every occupant (the sender too, as
// the XEP-0045 §7.4 echo that clients use as an ack) with one serialisation for the whole room.
// The reflected stanza is serialised without a `to`, split after its element name, and each
// recipient gets `head + its escaped full JID + tail`, handed to its local session directly;
// only occupants on other servers go through the router. The database is not touched per
// recipient: a persistent room writes each message to its stored history once, batched.
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import Element from 'ltx/lib/Element.js';
import type { Logger } from 'pino';
import { parseJid, type Jid } from '../../core/jid.js';
import type { SessionDirectory, SessionRef } from '../../core/ports.js';
import { StanzaError, errorReply, iqResult } from '../../core/stanza.js';
import { parseElement } from '../../xml/parse.js';
import { escapeAttribute, serialize } from '../../xml/serialize.js';
import {
  FORM_REQUEST, NS_DATA, applyRoomConfig, readForm, roomConfigForm, roomInfoForm, voiceRequestForm, type RoomConfig,
} from './forms.js';
import { DiscussionHistory, historyRequest, type HistoryRequest } from './history.js';
import {
  NS_DELAY, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_MUC, NS_MUC_ADMIN, NS_MUC_OWNER, NS_MUC_USER, NS_OCCUPANT_ID, NS_PING, NS_SELF_PING,
  NS_STANZA_ID,
} from './ns.js';
import { enforceNickname, nicknameKey } from './nickname.js';
import { Occupant, prepare, presenceContent, type OccupantSession, type Prepared, type Role } from './occupant.js';
import {
  affiliationChangeRefusal, defaultRole, isAffiliation, isRole, mayListAffiliation, maySendPrivateMessage, roleChangeRefusal,
} from './permissions.js';
import type { Affiliation, RoomStore, RoomVcard } from './store.js';
import { NS_VCARD, photoHash } from '../vcard/index.js';
import { NS_MAM, NS_MAM_EXTENDED, type ArchiveService } from '../mam/index.js';
import type { DeliveryTracker } from '../../core/ports.js';
import { matches, type BlockingService } from '../blocking/index.js';

/** Archive results are copies: never re-routed if the session that asked ends. */
const RESULT_TRACKER: DeliveryTracker = { delivered() {}, undelivered() {} };

/** XEP-0313 §6 with XEP-0334: a group message with a body (or a store hint), unless told not to keep it. */

export type { Role } from './occupant.js';


/** What a room needs from its service. */
export interface RoomHost {
  readonly domain: string;
  readonly log: Logger;
  readonly sessions: SessionDirectory;
  /** Writes to a local session (src/core/ports.ts Delivery). */
  deliver(ref: SessionRef, stanza: Element, xml?: string, tracker?: DeliveryTracker): void;
  readonly store: RoomStore;
  readonly maxOccupants: number;
  readonly maxHistory: number;
  /** The largest room vCard an owner may set, serialised (its photo included). */
  readonly maxVcardSize: number;
  /** Is this domain one of ours (its sessions are in `sessions`)? */
  isLocal(domain: string): boolean;
  route(stanza: Element): void;
  /** The block list service (XEP-0191) of a local client's host, when it runs one. */
  blockingOf?(jid: Jid): BlockingService | undefined;
  /** The host's message archive (the mam module), when it runs one. */
  readonly archive?: ArchiveService | undefined;
  /** The message archive of one of this server's hosts, when it runs one (for private messages). */
  archiveOf?(domain: string): ArchiveService | undefined;
  /** The room is gone (destroyed, or temporary and empty). */
  removed(room: Room): void;
  /** A client (full JID) is now in `room` / is no longer: the service's index for sessions that end. */
  entered(jid: string, room: Room): void;
  left(jid: string, room: Room): void;
}

interface AdminChange {
  kind: 'role' | 'affiliation';
  value: string;
  nick?: string | undefined;
  jid?: string | undefined;
  reason: string;
}

export class Room {
  readonly jid: string;
  /** Until the owner configures it (XEP-0045 §10.1.1), only the owner may enter. */
  locked = false;
  subject = '';
  /** Room JID of whoever set the subject (or the room's own JID). */
  subjectBy = '';
  readonly occupants = new Map<string, Occupant>();
  private readonly byFullJid = new Map<string, Occupant>();
  readonly affiliations: Map<string, { affiliation: Affiliation; reason: string }>;
  private readonly history = new DiscussionHistory();
  /** Stored in the database (persistent rooms only). */
  persisted = false;
  /** Database writes of this room, in order. */
  private saving: Promise<void> = Promise.resolve();
  destroyed = false;
  /** The room's vCard (XEP-0486: its avatar), set by an owner. */
  vcard: RoomVcard | undefined;

  constructor(
    private readonly service: RoomHost,
    readonly name: string,
    public config: RoomConfig,
    readonly createdAt = Date.now(),
    affiliations = new Map<string, { affiliation: Affiliation; reason: string }>(),
    /** Salt of the XEP-0421 occupant ids (stored with a persistent room, so they stay the same). */
    readonly secret = randomBytes(24).toString('base64'),
  ) {
    this.jid = `${name}@${service.domain}`;
    this.affiliations = affiliations;
  }

  get occupantCount(): number {
    return this.occupants.size;
  }

  affiliationOf(bare: string): Affiliation {
    return this.affiliations.get(bare)?.affiliation ?? 'none';
  }

  private defaultRole(affiliation: Affiliation): Role {
    return defaultRole(affiliation, this.config.moderated);
  }

  /** XEP-0421 §3: an id per user and room that does not reveal the user's JID. */
  private occupantIdOf(bare: string): Element {
    const id = createHmac('sha256', this.secret).update(`${this.jid} ${bare}`).digest('base64');
    return new Element('occupant-id', { xmlns: NS_OCCUPANT_ID, id });
  }

  private nonAnonymous(): boolean {
    return this.config.whois === 'anyone';
  }

  /** Whether `viewer` sees occupants' real JIDs (XEP-0045 §7.2.3/§7.2.4). */
  private seesJids(viewer: Occupant): boolean {
    return this.nonAnonymous() || viewer.role === 'moderator';
  }

  // --- persistence ------------------------------------------------------------------------------

  /** Queues a database write after the ones before it; resolves when it is done. */
  private persist(write: (store: RoomStore) => Promise<void>): Promise<void> {
    const next = this.saving.then(() => write(this.service.store));
    this.saving = next.catch((err: unknown) => this.service.log.error({ err, room: this.jid }, 'saving the room failed'));
    return next;
  }

  /** A write nobody waits for: a failure is logged (by persist) and goes no further. */
  private persistInBackground(write: (store: RoomStore) => Promise<void>): void {
    this.persist(write).catch(() => undefined);
  }

  /** Brings the database in line with the persistence setting, after a configuration change. */
  private syncPersistence(): Promise<void> {
    if (this.config.persistent && !this.persisted) {
      this.persisted = true;
      const snapshot = { config: this.config, subject: this.subject, subjectBy: this.subjectBy, affiliations: [...this.affiliations], vcard: this.vcard };
      return this.persist((store) => store.saveRoom(this.name, snapshot.config, snapshot.subject, snapshot.subjectBy, this.createdAt, this.secret, snapshot.affiliations, snapshot.vcard));
    }
    if (!this.config.persistent && this.persisted) {
      this.persisted = false;
      return this.persist((store) => store.removeRoom(this.name));
    }
    if (this.persisted) {
      const config = this.config;
      return this.persist((store) => store.saveConfig(this.name, config));
    }
    return Promise.resolve();
  }

  /** Waits for this room's writes under way (at shutdown). */
  settled(): Promise<void> {
    return this.saving;
  }

  // --- delivery ---------------------------------------------------------------------------------

  private deliver(s: OccupantSession, p: Prepared): void {
    if (s.local) {
      const session = this.service.sessions.find(s.jid.bare, s.jid.resource);
      // no session: it ended a moment ago, and its session/closed event takes it out of the room
      if (session !== undefined && !(s.blocking !== undefined && this.blocked(s.blocking, s.jid, p))) this.service.deliver(session, p.stanza, p.head + s.toAttr + p.tail);
      return;
    }
    const copy = new Element(p.stanza.name, { ...p.stanza.attrs, to: s.jid.toString() });
    copy.children = p.stanza.children;
    this.service.route(copy);
  }

  /**
   * XEP-0191 §5.3: nothing from a JID the user blocks (an occupant, the room, or its service)
   * reaches the user's clients. Group stanzas bypass the router, where that is checked for the
   * rest, so it is checked here: one Set lookup for a user who blocks nobody. The list of a
   * client in a room is in memory: it was read before its join presence left (the blocking
   * module checks what a client sends), and stays while the account has a session.
   */
  private blocked(blocking: BlockingService, recipient: Jid, p: Prepared): boolean {
    const list = blocking.cached(recipient.local);
    if (list === undefined || list.size === 0) return false;
    if (p.from === undefined) p.from = parseJid(p.stanza.attrs.from ?? this.jid);
    return p.from !== null && matches(list, p.from);
  }

  /** A one-off stanza to one client. */
  private sendTo(s: OccupantSession, stanza: Element): void {
    this.deliver(s, prepare(stanza));
  }

  /** A stanza to every client of every occupant, serialised once. */
  private broadcast(stanza: Element): void {
    const p = prepare(stanza);
    for (const occupant of this.occupants.values()) {
      const sessions = occupant.sessions;
      for (let i = 0; i < sessions.length; i++) this.deliver(sessions[i]!, p);
    }
  }

  private sendToJid(to: string, stanza: Element): void {
    stanza.attrs.to = to;
    this.service.route(stanza);
  }

  private bounce(stanza: Element, error: StanzaError): void {
    if (stanza.attrs.type === 'error' || stanza.attrs.from === undefined) return;
    if (stanza.name === 'iq' && stanza.attrs.type === 'result') return;
    this.service.route(errorReply(stanza, error));
  }

  // --- presence ---------------------------------------------------------------------------------

  /** The muc#user <x/> with the occupant's item, as a viewer sees it. */
  private userX(o: Occupant, withJid: boolean, jid?: Jid): Element {
    const x = new Element('x', { xmlns: NS_MUC_USER });
    const item: Record<string, string> = { affiliation: this.affiliationOf(o.bare), role: o.role };
    if (withJid) item.jid = (jid ?? o.current.jid).toString();
    x.c('item', item);
    return x;
  }

  private presenceOf(o: Occupant, withJid: boolean): Element {
    const source = o.current.presence;
    const presence = new Element('presence', { from: o.roomJid });
    presence.children = [...source.children, o.occupantId, this.userX(o, withJid)];
    return presence;
  }

  private viewOf(o: Occupant, viewer: Occupant): Prepared {
    const withJid = this.seesJids(viewer);
    return o.view(withJid, () => this.presenceOf(o, withJid));
  }

  /** The occupant's own presence, with status codes (110 and others). */
  private selfPresence(o: Occupant, s: OccupantSession, codes: number[], type?: 'unavailable', itemExtra?: (item: Element) => void): Element {
    const presence = new Element('presence', type ? { from: o.roomJid, type } : { from: o.roomJid });
    presence.children = type === undefined ? [...o.current.presence.children, o.occupantId] : [o.occupantId];
    const x = this.userX(o, true, s.jid);
    if (itemExtra) itemExtra(x.getChild('item')!);
    for (const code of codes) x.c('status', { code: String(code) });
    presence.children.push(x);
    return presence;
  }

  /**
   * Whether occupants with this role have their presence broadcast (muc#roomconfig_presencebroadcast):
   * a large group that broadcasts only moderators' presence costs O(1), not O(occupants), per join.
   */
  private broadcastsRole(role: Role): boolean {
    return role !== 'none' && this.config.presenceBroadcast.includes(role);
  }

  /**
   * Tells everyone but `o` of its current presence (when its role's presence is broadcast, or was
   * before a role change); `o`'s own clients get it with 110 (+ `selfCodes`).
   */
  private announce(o: Occupant, selfCodes: number[] = [], previousRole?: Role): void {
    o.changed();
    let withJid: Prepared | undefined;
    let anonymous: Prepared | undefined;
    const toOthers = this.broadcastsRole(o.role) || (previousRole !== undefined && this.broadcastsRole(previousRole));
    if (toOthers) for (const other of this.occupants.values()) {
      if (other === o) continue;
      const p = this.seesJids(other)
        ? (withJid ??= o.view(true, () => this.presenceOf(o, true)))
        : (anonymous ??= o.view(false, () => this.presenceOf(o, false)));
      for (const s of other.sessions) this.deliver(s, p);
    }
    for (const s of o.sessions) this.sendTo(s, this.selfPresence(o, s, [110, ...selfCodes]));
    if (o.role === 'moderator' && previousRole !== undefined && previousRole !== 'moderator' && !this.nonAnonymous()) {
      // §9.7 (semi-anonymous room): a new moderator now sees everyone's real JID
      for (const other of this.occupants.values()) {
        if (other === o || !this.broadcastsRole(other.role)) continue;
        const p = this.viewOf(other, o);
        for (const s of o.sessions) this.deliver(s, p);
      }
    }
  }

  /** Everyone learns `o` left; its clients get 110 with `codes` (kick 307, ban 301, nick change 303...). */
  private announceDeparture(o: Occupant, codes: number[], itemExtra?: (item: Element) => void, status?: Element, visible = this.broadcastsRole(o.role)): void {
    const build = (withJid: boolean) => {
      const presence = new Element('presence', { from: o.roomJid, type: 'unavailable' });
      if (status) presence.children.push(status);
      presence.children.push(o.occupantId);
      const x = this.userX(o, withJid);
      const item = x.getChild('item')!;
      if (itemExtra) itemExtra(item);
      for (const code of codes) x.c('status', { code: String(code) });
      presence.children.push(x);
      return prepare(presence);
    };
    let withJid: Prepared | undefined;
    let anonymous: Prepared | undefined;
    if (visible) for (const other of this.occupants.values()) {
      if (other === o) continue;
      const p = this.seesJids(other) ? (withJid ??= build(true)) : (anonymous ??= build(false));
      for (const s of other.sessions) this.deliver(s, p);
    }
    for (const s of o.sessions) {
      const presence = this.selfPresence(o, s, [110, ...codes], 'unavailable', itemExtra);
      if (status) presence.children.unshift(status);
      this.sendTo(s, presence);
    }
  }

  /** A presence addressed to room/nick from `from`. */
  handlePresence(stanza: Element, from: Jid, nick: string, created: boolean): void {
    const type = stanza.attrs.type;
    const occupant = this.byFullJid.get(from.toString());
    if (type === 'unavailable') {
      if (occupant) this.leave(occupant, from, stanza);
      return;
    }
    if (type === 'error') {
      // the occupant's client is gone or refuses the room's traffic: take it out quietly
      if (occupant) this.leave(occupant, from, undefined);
      return;
    }
    if (type !== undefined) return; // subscriptions and probes mean nothing to a room
    if (nick === '') return this.bounce(stanza, new StanzaError('jid-malformed', 'A nickname is needed to enter a room'));
    // RFC 8266: the nick as the room uses it; invisible or control characters are refused
    const enforced = enforceNickname(nick);
    if (enforced === null) return this.bounce(stanza, new StanzaError('jid-malformed', 'That is not a valid nickname'));
    nick = enforced;
    if (occupant === undefined) return this.join(stanza, from, nick, created);
    const session = occupant.sessions.find((s) => s.jid.equals(from))!;
    session.presence = presenceContent(stanza);
    if (occupant.nick !== nick) return this.changeNick(occupant, stanza, nick);
    // a presence update (show/status): move this client to the end, its presence is the one shown
    occupant.sessions.splice(occupant.sessions.indexOf(session), 1);
    occupant.sessions.push(session);
    const mucX = stanza.getChild('x', NS_MUC);
    if (mucX === undefined) return this.announce(occupant);
    // A join from a client already in the room: it lost track (a reconnection the room did not
    // notice), so it gets the whole join sequence again, as a first join would (XEP-0045 §7.2).
    for (const other of this.occupants.values()) {
      if (other !== occupant && this.broadcastsRole(other.role)) this.deliver(session, this.viewOf(other, occupant));
    }
    this.announce(occupant, this.nonAnonymous() ? [100] : []);
    this.sendHistoryAndSubject(session, mucX);
  }

  private join(stanza: Element, from: Jid, nick: string, created: boolean): void {
    const bare = from.bare;
    const affiliation = this.affiliationOf(bare);
    const mucX = stanza.getChild('x', NS_MUC);
    // XEP-0045 §7.2.6-§7.2.9: the checks in the order the XEP lists them
    if (this.locked && affiliation !== 'owner') {
      return this.bounce(stanza, new StanzaError('item-not-found', 'This room is locked until its owner configures it'));
    }
    if (affiliation === 'outcast') return this.bounce(stanza, new StanzaError('forbidden', 'You are banned from this room'));
    if (this.config.membersOnly && affiliation === 'none') {
      return this.bounce(stanza, new StanzaError('registration-required', 'This room is for members only'));
    }
    const existing = this.holderOf(nick);
    if (existing !== undefined && existing.bare !== bare) {
      return this.bounce(stanza, new StanzaError('conflict', 'That nickname is already used in this room'));
    }
    if (existing !== undefined) nick = existing.nick; // the same user's other device, written another way
    if (existing === undefined) {
      const limit = this.config.maxUsers === 0 ? this.service.maxOccupants : Math.min(this.config.maxUsers, this.service.maxOccupants);
      if (this.occupants.size >= limit && affiliation !== 'owner' && affiliation !== 'admin') {
        return this.bounce(stanza, new StanzaError('service-unavailable', 'This room is full', 'wait'));
      }
    }
    if (this.config.passwordProtected && mucX?.getChildText('password') !== this.config.password) {
      return this.bounce(stanza, new StanzaError('not-authorized', 'A password is needed to enter this room'));
    }

    const local = this.service.isLocal(from.domain);
    const session: OccupantSession = {
      jid: from, toAttr: escapeAttribute(from.toString()), local, blocking: local ? this.service.blockingOf?.(from) : undefined, presence: presenceContent(stanza),
    };
    let occupant = existing;
    if (occupant === undefined) {
      occupant = new Occupant(nick, `${this.jid}/${nick}`, bare, this.defaultRole(affiliation), this.occupantIdOf(bare));
      // §7.2.3: first the presence of everyone already there, to the newcomer
      for (const other of this.occupants.values()) if (this.broadcastsRole(other.role)) this.deliver(session, this.viewOf(other, occupant));
      this.occupants.set(nick, occupant);
      occupant.sessions.push(session);
      this.track(from, occupant);
    } else {
      // §7.2.3 multi-session: another device of the same user under the same nick
      for (const other of this.occupants.values()) {
        if (other !== occupant && this.broadcastsRole(other.role)) this.deliver(session, this.viewOf(other, occupant));
      }
      occupant.sessions.push(session);
      this.track(from, occupant);
    }
    // then the newcomer's presence to everyone, and to itself with its status codes
    const codes: number[] = [];
    if (this.nonAnonymous()) codes.push(100);
    if (this.config.logging) codes.push(170);
    if (created) codes.push(201);
    // §7.2.3: the nick was changed on the way in (RFC 8266 enforcement, or another device's spelling)
    const to = stanza.attrs.to ?? '';
    if (to.slice(to.indexOf('/') + 1) !== nick) codes.push(210);
    if (existing === undefined) this.announce(occupant, codes);
    else this.sendTo(session, this.selfPresence(occupant, session, [110, ...codes]));

    this.sendHistoryAndSubject(session, mucX);
  }

  /** §7.2.15 discussion history, then §7.2.16 the subject (always, and last: it ends the join). */
  private sendHistoryAndSubject(session: OccupantSession, mucX: Element | undefined): void {
    this.sendHistory(session, mucX ? historyRequest(mucX.getChild('history')) : {});
    const subject = new Element('message', { from: this.subjectBy || this.jid, type: 'groupchat', id: randomUUID() });
    subject.c('subject').t(this.subject);
    this.sendTo(session, subject);
  }

  /**
   * The occupant whose nick collides with `nick` (RFC 8266 §2.4 comparison, look-alike letters
   * included): "alice", "ALICE" and "Аlice" with a Cyrillic А are all Alice's. A scan, on joins
   * and nick changes only.
   */
  private holderOf(nick: string): Occupant | undefined {
    const exact = this.occupants.get(nick);
    if (exact !== undefined) return exact;
    const key = nicknameKey(nick);
    for (const o of this.occupants.values()) if (nicknameKey(o.nick) === key) return o;
    return undefined;
  }

  private changeNick(o: Occupant, stanza: Element, nick: string): void {
    const holder = this.holderOf(nick);
    if (holder !== undefined && holder !== o) return this.bounce(stanza, new StanzaError('conflict', 'That nickname is already used in this room'));
    // §7.6: unavailable from the old nick with 303 and the new nick, then available from the new one
    this.announceDeparture(o, [303], (item) => void (item.attrs.nick = nick));
    this.occupants.delete(o.nick);
    o.nick = nick;
    o.roomJid = `${this.jid}/${nick}`;
    this.occupants.set(nick, o);
    this.announce(o);
  }

  private leave(o: Occupant, from: Jid, stanza: Element | undefined): void {
    const index = o.sessions.findIndex((s) => s.jid.equals(from));
    if (index === -1) return;
    if (o.sessions.length > 1) {
      // another device stays under this nick: only the departing client hears it left
      const shown = index === o.sessions.length - 1;
      const [session] = o.sessions.splice(index, 1);
      this.untrack(from);
      if (stanza) this.sendTo(session!, this.selfPresence(o, session!, [110], 'unavailable'));
      // the room showed the departing client's presence: now it shows the one that stays
      if (shown) this.announce(o);
      else o.changed();
      return;
    }
    // §7.14: everyone hears the occupant left, with the status it left with
    const status = stanza?.getChild('status');
    this.announceDeparture(o, [], undefined, status);
    this.removeOccupant(o);
  }

  private track(jid: Jid, occupant: Occupant): void {
    this.byFullJid.set(jid.toString(), occupant);
    this.service.entered(jid.toString(), this);
  }

  private untrack(jid: Jid): void {
    this.byFullJid.delete(jid.toString());
    this.service.left(jid.toString(), this);
  }

  /** A client of an occupant is gone without saying goodbye (its session ended). */
  clientGone(jid: Jid): void {
    const occupant = this.byFullJid.get(jid.toString());
    if (occupant) this.leave(occupant, jid, undefined);
  }

  private removeOccupant(o: Occupant): void {
    for (const s of o.sessions) this.untrack(s.jid);
    o.sessions.length = 0;
    this.occupants.delete(o.nick);
    if (this.occupants.size === 0 && !this.config.persistent) this.destroy(undefined, undefined, false).catch(() => undefined);
  }

  /** Takes an occupant out with unavailable presence and status codes (kick 307, ban 301, 321, 322). */
  private eject(o: Occupant, codes: number[], actor: Occupant | undefined, reason: string): void {
    const visible = this.broadcastsRole(o.role);
    o.role = 'none';
    o.changed();
    this.announceDeparture(o, codes, (item) => {
      if (actor) item.c('actor', { nick: actor.nick });
      if (reason) item.c('reason').t(reason);
    }, undefined, visible);
    this.removeOccupant(o);
  }

  // --- messages ---------------------------------------------------------------------------------

  /** Returns a promise when the message is accepted once it settles (its write to the room's archive). */
  handleMessage(stanza: Element, from: Jid, nick: string): Promise<unknown> | void {
    const type = stanza.attrs.type;
    if (type === 'error') return; // an occupant's client refused something we sent: nothing to answer
    const sender = this.byFullJid.get(from.toString());
    if (nick !== '') return this.privateMessage(stanza, sender, nick);
    if (type === 'groupchat') return this.groupchat(stanza, sender);
    const userX = stanza.getChild('x', NS_MUC_USER);
    if (userX !== undefined) {
      const invites = userX.getChildren('invite');
      if (invites.length > 0) return this.invite(stanza, from, sender, invites);
      const decline = userX.getChild('decline');
      if (decline !== undefined) return this.decline(from, decline);
    }
    const form = stanza.getChild('x', NS_DATA);
    if (form !== undefined && readForm(form).get('FORM_TYPE')?.[0] === FORM_REQUEST) return this.voiceRequest(stanza, sender, form);
    this.bounce(stanza, new StanzaError('not-acceptable', 'Group messages have type groupchat'));
  }

  /**
   * §8.6: a visitor asks for voice with a muc#request form, which goes to the moderators; a
   * moderator who sends it back with muc#request_allow set gives the visitor voice.
   */
  private voiceRequest(stanza: Element, sender: Occupant | undefined, form: Element): void {
    if (sender === undefined) return this.bounce(stanza, new StanzaError('not-acceptable', 'Only occupants may ask for voice'));
    const values = readForm(form);
    if (form.attrs.type === 'submit' && sender.role === 'moderator' && values.has('muc#request_allow')) {
      const allow = values.get('muc#request_allow')?.[0];
      const target = this.occupants.get(values.get('muc#roomnick')?.[0] ?? '');
      if ((allow === '1' || allow === 'true') && target !== undefined && target.role === 'visitor') {
        const refusal = roleChangeRefusal({ affiliation: this.affiliationOf(sender.bare), role: sender.role }, { affiliation: this.affiliationOf(target.bare), role: target.role }, 'participant');
        if (refusal) return this.bounce(stanza, refusal);
        this.setRole(target, 'participant', sender, '');
      }
      return;
    }
    if (sender.role !== 'visitor') return; // already has voice: nothing to ask for
    const approval = new Element('message', { from: this.jid });
    approval.append(voiceRequestForm(sender.current.jid.bare, sender.nick));
    for (const moderator of this.occupants.values()) {
      if (moderator.role !== 'moderator') continue;
      for (const s of moderator.sessions) this.sendTo(s, approval);
    }
  }

  private groupchat(stanza: Element, sender: Occupant | undefined): Promise<unknown> | void {
    if (sender === undefined) return this.bounce(stanza, new StanzaError('not-acceptable', 'Only occupants may send messages to the room'));
    if (sender.role === 'visitor' || sender.role === 'none') {
      return this.bounce(stanza, new StanzaError('forbidden', 'You have no voice in this moderated room'));
    }
    const subject = stanza.getChild('subject');
    const body = stanza.getChild('body');
    if (subject !== undefined && body === undefined) {
      // §8.1: a subject change
      if (sender.role !== 'moderator' && !this.config.changeSubject) {
        return this.bounce(stanza, new StanzaError('forbidden', 'Only moderators may change the subject of this room'));
      }
      this.subject = subject.getText();
      this.subjectBy = sender.roomJid;
      if (this.persisted) {
        const [text, by] = [this.subject, this.subjectBy];
        this.persistInBackground((store) => store.saveSubject(this.name, text, by));
      }
    }
    const attrs: Record<string, string> = {};
    for (const key in stanza.attrs) if (key !== 'to' && key !== 'from') attrs[key] = stanza.attrs[key]!;
    attrs.from = sender.roomJid;
    const reflected = new Element('message', attrs);
    const children = reflected.children;
    for (const child of stanza.children) {
      if (typeof child !== 'string') {
        // XEP-0359 §5: a stanza-id claiming to be ours is not to be trusted; XEP-0421 §4: nor an occupant-id
        if (child.name === 'stanza-id' && child.attrs.xmlns === NS_STANZA_ID && child.attrs.by === this.jid) continue;
        if (child.attrs.xmlns === NS_OCCUPANT_ID) continue;
      }
      children.push(child);
    }
    children.push(sender.occupantId);
    // XEP-0313 §6 / XEP-0359: the stanza-id of an archived message is its id in the room's archive
    const archive = this.config.archiving ? this.service.archive : undefined;
    let stanzaId: string;
    let archived: Promise<unknown> | undefined;
    const kept = archive?.archiveGroupchat(this.jid, sender.nick, reflected) ?? null;
    if (kept !== null) {
      stanzaId = kept.id;
      archived = kept.written;
    } else {
      stanzaId = randomUUID();
    }
    children.push(new Element('stanza-id', { xmlns: NS_STANZA_ID, id: stanzaId, by: this.jid }));
    const p = prepare(reflected);
    for (const occupant of this.occupants.values()) {
      const sessions = occupant.sessions;
      for (let i = 0; i < sessions.length; i++) this.deliver(sessions[i]!, p);
    }
    if (body !== undefined && this.config.historyLength > 0) {
      const stamp = Date.now();
      this.remember(reflected, stamp, p.xml.length);
      if (this.persisted) this.service.store.addHistory(this.name, stamp, p.xml, this.config.historyLength);
    }
    return archived; // the sender's stream acknowledges the message once the archive has it
  }

  private remember(stanza: Element, stamp: number, chars: number): void {
    this.history.add(stanza, stamp, chars, this.config.historyLength);
  }

  /** A persistent room's history read back at start (oldest first); unreadable entries are skipped. */
  restoreHistory(messages: Array<{ stamp: number; stanza: string }>): void {
    for (const message of messages) {
      try {
        this.remember(parseElement(message.stanza), message.stamp, message.stanza.length);
      } catch (err) {
        this.service.log.error({ err, room: this.jid }, 'unreadable history entry skipped');
      }
    }
  }

  private sendHistory(s: OccupantSession, request: HistoryRequest): void {
    for (const entry of this.history.select(request)) {
      const message = new Element('message', { ...entry.stanza.attrs });
      message.children = [...entry.stanza.children, new Element('delay', { xmlns: NS_DELAY, from: this.jid, stamp: new Date(entry.stamp).toISOString() })];
      this.sendTo(s, message);
    }
  }

  /** Returns a promise when the recipient's archive keeps the message (the sender's ack waits for it). */
  private privateMessage(stanza: Element, sender: Occupant | undefined, nick: string): Promise<unknown> | void {
    if (sender === undefined) return this.bounce(stanza, new StanzaError('not-acceptable', 'Only occupants may send private messages'));
    if (stanza.attrs.type === 'groupchat') return this.bounce(stanza, new StanzaError('bad-request', 'Private messages are not groupchat'));
    if (!maySendPrivateMessage(this.config.allowPm, sender.role)) return this.bounce(stanza, new StanzaError('forbidden', 'Private messages are not allowed in this room'));
    const target = this.occupants.get(nick);
    if (target === undefined) return this.bounce(stanza, new StanzaError('item-not-found', `Nobody is called ${nick} here`));
    const attrs: Record<string, string> = { ...stanza.attrs, from: sender.roomJid };
    delete attrs.to;
    const message = new Element('message', attrs);
    message.children = stanza.children.filter((c) => typeof c === 'string' || !((c.name === 'x' && c.attrs.xmlns === NS_MUC_USER) || c.attrs.xmlns === NS_OCCUPANT_ID));
    message.children.push(sender.occupantId, new Element('x', { xmlns: NS_MUC_USER })); // XEP-0045 §7.5: marks it as from the room
    // XEP-0313: a private message is the recipient's, kept in their own archive (the sender's
    // archive has it already, from their server); delivered with its stanza-id there
    let archived: Promise<unknown> | undefined;
    const recipient = parseJid(target.bare);
    const archive = recipient === null || recipient.local === '' ? undefined : this.service.archiveOf?.(recipient.domain);
    const from = parseJid(sender.roomJid);
    if (archive !== undefined && recipient !== null && from !== null) {
      const { stanzaId, written } = archive.archivePrivate(message, recipient, from);
      if (stanzaId !== null) message.children.push(stanzaId);
      archived = written;
    }
    const p = prepare(message);
    for (const s of target.sessions) this.deliver(s, p);
    return archived;
  }

  private invite(stanza: Element, from: Jid, sender: Occupant | undefined, invites: Element[]): void {
    if (sender === undefined) return this.bounce(stanza, new StanzaError('not-acceptable', 'Only occupants may invite'));
    const affiliation = this.affiliationOf(sender.bare);
    const isAdmin = affiliation === 'owner' || affiliation === 'admin';
    // §7.8.2: in a members-only room, only admins invite unless occupants are allowed to
    if (this.config.membersOnly && !isAdmin && !this.config.allowInvites) {
      return this.bounce(stanza, new StanzaError('forbidden', 'Only admins may invite people to this room'));
    }
    if (sender.role === 'visitor') return this.bounce(stanza, new StanzaError('forbidden', 'Visitors may not invite'));
    for (const invite of invites) {
      const to = invite.attrs.to === undefined ? null : parseBare(invite.attrs.to);
      if (to === null) return this.bounce(stanza, new StanzaError('jid-malformed', 'Whom to invite?'));
      // §9.4 / §7.8.2: inviting into a members-only room makes the invitee a member
      if (this.config.membersOnly && this.affiliationOf(to) === 'none') this.setAffiliation(to, 'member', '').catch(() => undefined);
      const reason = invite.getChildText('reason') ?? '';
      const message = new Element('message', { from: this.jid });
      const x = message.c('x', { xmlns: NS_MUC_USER });
      const forwarded = x.c('invite', { from: from.bare });
      if (reason) forwarded.c('reason').t(reason);
      if (this.config.passwordProtected) x.c('password').t(this.config.password);
      message.c('body').t(`${from.bare} invites you to the room ${this.jid}${reason ? `: ${reason}` : ''}`);
      this.sendToJid(to, message);
    }
  }

  private decline(from: Jid, decline: Element): void {
    const to = decline.attrs.to === undefined ? null : parseBare(decline.attrs.to);
    if (to === null) return;
    const message = new Element('message', { from: this.jid });
    const forwarded = message.c('x', { xmlns: NS_MUC_USER }).c('decline', { from: from.bare });
    const reason = decline.getChildText('reason');
    if (reason) forwarded.c('reason').t(reason);
    this.sendToJid(to, message);
  }

  // --- IQs --------------------------------------------------------------------------------------

  /** An IQ to the room or to an occupant; `reply` sends the result payload (or the error). */
  handleIq(stanza: Element, from: Jid, nick: string): void {
    const type = stanza.attrs.type;
    const sender = this.byFullJid.get(from.toString());
    if (nick !== '') return this.occupantIq(stanza, from, sender, nick);
    if (type !== 'get' && type !== 'set') return;
    const payload = stanza.getChildElements()[0];
    const xmlns = payload?.attrs.xmlns;
    const reply = (result: Element | null) => this.service.route(iqResult(stanza, result));
    const run = async () => {
      if (payload === undefined) throw new StanzaError('bad-request');
      if (type === 'get' && xmlns === NS_DISCO_INFO) return this.discoInfo(payload);
      if (type === 'get' && xmlns === NS_DISCO_ITEMS) return this.discoItems(payload, sender);
      if (type === 'get' && xmlns === NS_PING) return null;
      if (xmlns === NS_MUC_ADMIN) return type === 'get' ? this.adminGet(from, sender, payload) : this.adminSet(from, sender, payload);
      if (xmlns === NS_MUC_OWNER) return type === 'get' ? this.ownerGet(from, payload) : this.ownerSet(from, sender, payload);
      if (xmlns === NS_MAM && this.service.archive !== undefined) return this.archiveIq(type, from, payload, this.service.archive);
      if (xmlns === NS_VCARD) return type === 'get' ? this.vcardGet() : this.vcardSet(from, payload);
      throw new StanzaError('service-unavailable');
    };
    run().then(reply, (err: unknown) => {
      if (err instanceof StanzaError) return this.bounce(stanza, err);
      this.service.log.error({ err, room: this.jid }, 'room IQ failed');
      this.bounce(stanza, new StanzaError('internal-server-error'));
    });
  }

  /** Which client of an occupant asked a passed-on IQ, by the asker's nick and the IQ's id. */
  private readonly askers = new Map<string, string>();

  private rememberAsker(nick: string, id: string | undefined, from: Jid): void {
    if (id === undefined) return;
    // answers that never come must not pile up: the oldest are forgotten (their answer goes to
    // the client the room shows, as before)
    if (this.askers.size >= MAX_PENDING_IQS) this.askers.delete(this.askers.keys().next().value!);
    this.askers.set(askedKey(nick, id), from.toString());
  }

  /** An occupant joined from this account (the first, if it joined under several nicks). */
  private occupantOfAccount(bare: string): Occupant | undefined {
    for (const occupant of this.occupants.values()) if (occupant.bare === bare) return occupant;
    return undefined;
  }

  private occupantIq(stanza: Element, from: Jid, sender: Occupant | undefined, nick: string): void {
    const type = stanza.attrs.type;
    const target = this.occupants.get(nick);
    if (type === 'result' || type === 'error') {
      // an answer to an IQ we passed on: back to the asker (the occupant called `nick`); a
      // vCard answered by an occupant's account (below) comes from its bare JID
      if (sender === undefined && from.resource === '') sender = this.occupantOfAccount(from.bare);
      if (sender === undefined || target === undefined) return;
      // to the client that asked, which need not be the one whose presence the room shows
      const key = askedKey(nick, stanza.attrs.id);
      const asker = this.askers.get(key);
      this.askers.delete(key);
      const session = (asker !== undefined && target.sessions.find((s) => s.jid.toString() === asker)) || target.current;
      this.sendTo(session, passedOn(stanza, sender.roomJid));
      return;
    }
    // XEP-0410 §3.2: a self-ping is answered by the room: "you are still joined"
    if (stanza.getChild('ping', NS_PING) && sender !== undefined && sender === target) {
      return this.service.route(iqResult(stanza, null));
    }
    if (sender === undefined) return this.bounce(stanza, new StanzaError('not-acceptable', 'You are not in this room'));
    if (target === undefined) return this.bounce(stanza, new StanzaError('item-not-found', `Nobody is called ${nick} here`));
    // A vCard is the account's (XEP-0054), kept by its server: asked of the account, not of a
    // client that may not answer it (Gajim does not), so the avatar whose hash the occupant's
    // presence carries (XEP-0153) can be fetched; the answer comes back from its bare JID.
    this.rememberAsker(sender.nick, stanza.attrs.id, from);
    if (type === 'get' && stanza.getChild('vCard', NS_VCARD) !== undefined) {
      return this.sendToJid(target.bare, passedOn(stanza, sender.roomJid));
    }
    // §7.5 (IQs between occupants): passed on to one client of the occupant, from the asker's room JID
    this.sendTo(target.current, passedOn(stanza, sender.roomJid));
  }

  // --- the room's message archive (XEP-0313 §6) --------------------------------------------------

  private async archiveIq(type: 'get' | 'set', from: Jid, payload: Element, archive: ArchiveService): Promise<Element> {
    // a members-only room's archive is for its members; outcasts see no room's
    const affiliation = this.affiliationOf(from.bare);
    if (affiliation === 'outcast' || (this.config.membersOnly && affiliation === 'none')) {
      throw new StanzaError('forbidden', 'Only members may read the archive of this room');
    }
    // the archive is mam's (XEP-0313 §6); the room decides who may read it and where results go
    return archive.queryRoom(this.jid, type, payload, from.toString(), (message, xml) => {
      const session = this.service.isLocal(from.domain) ? this.service.sessions.find(from.bare, from.resource) : undefined;
      if (session !== undefined) this.service.deliver(session, message, xml, RESULT_TRACKER);
      else if (!this.service.isLocal(from.domain)) this.service.route(parseElement(xml));
    });
  }

  // --- the room's vCard and avatar (XEP-0486, over XEP-0054) -------------------------------------

  /** XEP-0486 §4: anyone may read the room's vCard (its avatar is shown before joining). */
  private vcardGet(): Element {
    // XEP-0054 §3.3: none set is an empty vCard
    return this.vcard === undefined ? new Element('vCard', { xmlns: NS_VCARD }) : parseElement(this.vcard.vcard);
  }

  /** XEP-0486 §5: an owner replaces the room's vCard as a whole; others get forbidden. */
  private async vcardSet(from: Jid, payload: Element): Promise<null> {
    if (this.affiliationOf(from.bare) !== 'owner') throw new StanzaError('forbidden', "Only the room's owners may change its vCard");
    if (payload.name !== 'vCard') throw new StanzaError('bad-request', 'Expected a <vCard/> element');
    const vcard = serialize(payload);
    if (Buffer.byteLength(vcard) > this.service.maxVcardSize) {
      throw new StanzaError('not-acceptable', `The vCard is larger than ${this.service.maxVcardSize} bytes`);
    }
    const previousHash = this.vcard?.avatarHash ?? '';
    const card: RoomVcard = { vcard, avatarHash: photoHash(payload) };
    this.vcard = card;
    if (this.persisted) await this.persist((store) => store.saveVcard(this.name, card));
    if (card.avatarHash !== previousHash && !this.locked) {
      // XEP-0045 §10.2.1 status 104: the room information changed (its avatar hash), clients
      // ask disco#info again; occupants' own presence is untouched
      const notice = new Element('message', { from: this.jid, type: 'groupchat', id: randomUUID() });
      notice.c('x', { xmlns: NS_MUC_USER }).c('status', { code: '104' });
      this.broadcast(notice);
    }
    return null;
  }

  private discoInfo(payload: Element): Element {
    if (payload.attrs.node !== undefined) throw new StanzaError('item-not-found');
    const c = this.config;
    const query = new Element('query', { xmlns: NS_DISCO_INFO });
    query.c('identity', { category: 'conference', type: 'text', name: c.name || this.name });
    const features = [
      NS_MUC, NS_STANZA_ID, NS_OCCUPANT_ID, NS_SELF_PING, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PING, NS_VCARD,
      c.public ? 'muc_public' : 'muc_hidden',
      c.persistent ? 'muc_persistent' : 'muc_temporary',
      c.membersOnly ? 'muc_membersonly' : 'muc_open',
      c.moderated ? 'muc_moderated' : 'muc_unmoderated',
      c.whois === 'anyone' ? 'muc_nonanonymous' : 'muc_semianonymous',
      c.passwordProtected ? 'muc_passwordprotected' : 'muc_unsecured',
    ];
    if (c.archiving && this.service.archive !== undefined) features.push(NS_MAM, NS_MAM_EXTENDED);
    for (const feature of features) query.c('feature', { var: feature });
    query.append(roomInfoForm(c, this.occupants.size, this.subject, this.vcard?.avatarHash ?? ''));
    return query;
  }

  private discoItems(payload: Element, viewer: Occupant | undefined): Element {
    if (payload.attrs.node !== undefined) throw new StanzaError('item-not-found');
    const query = new Element('query', { xmlns: NS_DISCO_ITEMS });
    // §6.5: the occupants' room JIDs, to occupants only (others learn nothing about who is inside)
    if (viewer !== undefined) for (const o of this.occupants.values()) query.c('item', { jid: o.roomJid, name: o.nick });
    return query;
  }

  // --- administration: affiliations and roles (§9, §10) ------------------------------------------

  private async adminGet(from: Jid, sender: Occupant | undefined, payload: Element): Promise<Element> {
    const item = payload.getChild('item');
    const affiliation = this.affiliationOf(from.bare);
    const query = new Element('query', { xmlns: NS_MUC_ADMIN });
    if (item?.attrs.affiliation !== undefined) {
      const wanted = item.attrs.affiliation;
      if (!isAffiliation(wanted) || wanted === 'none') throw new StanzaError('bad-request', 'Which affiliation?');
      if (!mayListAffiliation(affiliation, wanted)) throw new StanzaError('forbidden', 'You may not see that list');
      for (const [jid, a] of this.affiliations) {
        if (a.affiliation !== wanted) continue;
        const attrs: Record<string, string> = { affiliation: wanted, jid };
        const nick = this.nickOf(jid);
        if (nick !== undefined) attrs.nick = nick;
        const entry = query.c('item', attrs);
        if (a.reason) entry.c('reason').t(a.reason);
      }
      return query;
    }
    if (item?.attrs.role !== undefined) {
      const wanted = item.attrs.role;
      if (!isRole(wanted) || wanted === 'none') throw new StanzaError('bad-request', 'Which role?');
      if (sender?.role !== 'moderator') throw new StanzaError('forbidden', 'Only moderators may list roles');
      for (const o of this.occupants.values()) {
        if (o.role !== wanted) continue;
        query.c('item', { role: wanted, nick: o.nick, affiliation: this.affiliationOf(o.bare), jid: o.current.jid.toString() });
      }
      return query;
    }
    throw new StanzaError('bad-request', 'Ask for an affiliation or a role');
  }

  private nickOf(bare: string): string | undefined {
    for (const o of this.occupants.values()) if (o.bare === bare) return o.nick;
    return undefined;
  }

  private async adminSet(from: Jid, sender: Occupant | undefined, payload: Element): Promise<null> {
    const actorAffiliation = this.affiliationOf(from.bare);
    const changes: AdminChange[] = [];
    for (const item of payload.getChildren('item')) {
      const reason = item.getChildText('reason') ?? '';
      if (item.attrs.affiliation !== undefined) {
        changes.push({ kind: 'affiliation', value: item.attrs.affiliation, jid: item.attrs.jid, nick: item.attrs.nick, reason });
      } else if (item.attrs.role !== undefined) {
        changes.push({ kind: 'role', value: item.attrs.role, nick: item.attrs.nick, reason });
      } else throw new StanzaError('bad-request', 'Each item changes a role or an affiliation');
    }
    if (changes.length === 0) throw new StanzaError('bad-request', 'Nothing to change');
    // check them all before changing anything (§9: the whole request succeeds or fails)
    const plan: Array<() => Promise<void> | void> = [];
    const owners = new Set([...this.affiliations].filter(([, a]) => a.affiliation === 'owner').map(([jid]) => jid));
    for (const change of changes) {
      if (change.kind === 'role') {
        if (!isRole(change.value)) throw new StanzaError('bad-request', `Unknown role ${change.value}`);
        const role: Role = change.value;
        if (sender === undefined) throw new StanzaError('forbidden', 'Only moderators change roles');
        const target = change.nick === undefined ? undefined : this.occupants.get(change.nick);
        if (target === undefined) throw new StanzaError('item-not-found', 'No occupant with that nickname');
        const refusal = roleChangeRefusal({ affiliation: actorAffiliation, role: sender.role }, { affiliation: this.affiliationOf(target.bare), role: target.role }, role);
        if (refusal) throw refusal;
        plan.push(() => this.setRole(target, role, sender, change.reason));
      } else {
        if (!isAffiliation(change.value)) throw new StanzaError('bad-request', `Unknown affiliation ${change.value}`);
        const affiliation: Affiliation = change.value;
        let jid = change.jid === undefined ? undefined : parseBare(change.jid) ?? undefined;
        if (jid === undefined && change.nick !== undefined) jid = this.occupants.get(change.nick)?.bare;
        if (jid === undefined) throw new StanzaError('bad-request', 'Whose affiliation?');
        const current = this.affiliationOf(jid);
        const refusal = affiliationChangeRefusal(actorAffiliation, current, affiliation);
        if (refusal) throw refusal;
        if (current === 'owner' && affiliation !== 'owner') {
          owners.delete(jid);
          if (owners.size === 0) throw new StanzaError('conflict', 'A room needs an owner');
        }
        if (affiliation === 'owner') owners.add(jid);
        const target = jid;
        plan.push(() => this.setAffiliation(target, affiliation, change.reason, sender));
      }
    }
    for (const step of plan) await step();
    return null;
  }

  private setRole(target: Occupant, role: Role, actor: Occupant | undefined, reason: string): void {
    if (!this.occupants.has(target.nick)) return;
    if (role === 'none') return this.eject(target, [307], actor, reason); // §8.2 kick
    const previous = target.role;
    target.role = role;
    this.announce(target, [], previous);
  }

  /**
   * Changes an affiliation (and the roles of the user's occupants that follow from it);
   * resolves once it is stored, for a persistent room.
   */
  setAffiliation(bare: string, affiliation: Affiliation, reason: string, actor?: Occupant): Promise<void> {
    if (affiliation === 'none') this.affiliations.delete(bare);
    else this.affiliations.set(bare, { affiliation, reason });
    for (const o of [...this.occupants.values()]) {
      if (o.bare !== bare) continue;
      if (affiliation === 'outcast') this.eject(o, [301], actor, reason); // §9.1 ban
      else if (affiliation === 'none' && this.config.membersOnly) this.eject(o, [321], actor, reason); // §9.5
      else {
        const previous = o.role;
        o.role = this.defaultRole(affiliation);
        this.announce(o, [], previous);
      }
    }
    if (!this.persisted) return Promise.resolve();
    return this.persist((store) => store.setAffiliation(this.name, bare, affiliation, reason));
  }

  /** The user's account is gone: its affiliation too, quietly (its sessions are ending). */
  forgetAffiliation(bare: string): void {
    this.affiliations.delete(bare);
    if (this.persisted) this.persistInBackground((store) => store.setAffiliation(this.name, bare, 'none', ''));
  }

  // --- ownership: configuration and destruction (§10) -------------------------------------------

  private ownerGet(from: Jid, payload: Element): Element {
    if (this.affiliationOf(from.bare) !== 'owner') throw new StanzaError('forbidden', 'Only owners configure the room');
    if (payload.getChildElements().length > 0) throw new StanzaError('bad-request');
    const query = new Element('query', { xmlns: NS_MUC_OWNER });
    query.append(roomConfigForm(this.config, this.service.maxOccupants));
    return query;
  }

  private async ownerSet(from: Jid, sender: Occupant | undefined, payload: Element): Promise<null> {
    if (this.affiliationOf(from.bare) !== 'owner') throw new StanzaError('forbidden', 'Only owners configure the room');
    const destroy = payload.getChild('destroy');
    if (destroy !== undefined) {
      const venue = destroy.attrs.jid;
      await this.destroy(venue === undefined ? undefined : venue, destroy.getChildText('reason') ?? undefined, true);
      return null;
    }
    const x = payload.getChild('x', NS_DATA);
    if (x === undefined) throw new StanzaError('bad-request', 'Submit a configuration form');
    if (x.attrs.type === 'cancel') {
      // §10.1.3: cancelling the initial configuration destroys the new room
      if (this.locked) await this.destroy(undefined, undefined, true);
      return null;
    }
    if (x.attrs.type !== 'submit') throw new StanzaError('bad-request', 'Submit the form');
    const previous = this.config;
    this.config = applyRoomConfig(previous, readForm(x), { maxOccupants: this.service.maxOccupants, maxHistory: this.service.maxHistory });
    const wasLocked = this.locked;
    this.locked = false; // §10.1.2: an instant room, or a configured reserved room, opens
    this.history.trim(this.config.historyLength);
    await this.syncPersistence();
    this.configurationChanged(previous, wasLocked, sender);
    return null;
  }

  private configurationChanged(previous: RoomConfig, wasLocked: boolean, actor: Occupant | undefined): void {
    const c = this.config;
    // §10.2.1: everyone is told, with the privacy-related codes when anonymity changed
    if (!wasLocked) {
      const codes = [104];
      if (previous.whois !== c.whois) codes.push(c.whois === 'anyone' ? 172 : 173);
      if (previous.logging !== c.logging) codes.push(c.logging ? 170 : 171);
      const notice = new Element('message', { from: this.jid, type: 'groupchat', id: randomUUID() });
      const x = notice.c('x', { xmlns: NS_MUC_USER });
      for (const code of codes) x.c('status', { code: String(code) });
      this.broadcast(notice);
    }
    if (c.membersOnly && !previous.membersOnly) {
      // §9.5: turning members-only removes those who are not members
      for (const o of [...this.occupants.values()]) {
        if (this.affiliationOf(o.bare) === 'none') this.eject(o, [322], actor, '');
      }
    }
    if (c.moderated !== previous.moderated) {
      for (const o of this.occupants.values()) {
        const role = this.defaultRole(this.affiliationOf(o.bare));
        if (this.affiliationOf(o.bare) === 'none' && o.role !== role && o.role !== 'moderator') {
          const previous = o.role;
          o.role = role;
          this.announce(o, [], previous);
        }
      }
    }
    if (previous.whois !== c.whois) for (const o of this.occupants.values()) o.changed();
  }

  /**
   * §10.9: everyone leaves with a <destroy/> (and the alternate venue, if any), and the room is
   * forgotten, from the database too. `explicit`: an owner asked, rather than the last occupant leaving.
   */
  destroy(venue: string | undefined, reason: string | undefined, explicit: boolean): Promise<void> {
    if (this.destroyed) return Promise.resolve();
    this.destroyed = true;
    if (explicit) {
      for (const o of this.occupants.values()) {
        const info = new Element('destroy', venue ? { jid: venue } : {});
        if (reason) info.c('reason').t(reason);
        for (const s of o.sessions) {
          const presence = new Element('presence', { from: o.roomJid, type: 'unavailable' });
          const x = presence.c('x', { xmlns: NS_MUC_USER });
          x.c('item', { affiliation: 'none', role: 'none' });
          x.children.push(info);
          x.c('status', { code: '110' });
          this.sendTo(s, presence);
        }
      }
    }
    for (const o of this.occupants.values()) for (const s of o.sessions) this.untrack(s.jid);
    this.occupants.clear();
    this.service.removed(this);
    if (!this.persisted) return Promise.resolve();
    this.persisted = false;
    return this.persist((store) => store.removeRoom(this.name));
  }

  /** A newly created room: its creator becomes its owner (§10.1). */
  static create(service: RoomHost, name: string, config: RoomConfig, owner: string, locked: boolean): Room {
    const room = new Room(service, name, config);
    room.affiliations.set(owner, { affiliation: 'owner', reason: '' });
    room.locked = locked;
    return room;
  }
}

/** The bare JID of an address given in a form or an item, or null when it is malformed. */
function parseBare(value: string): string | null {
  return parseJid(value)?.bare ?? null;
}

/** IQs passed on between occupants whose asking client the room remembers. */
const MAX_PENDING_IQS = 256;
const askedKey = (nick: string, id: string | undefined) => `${nick}\u0000${id ?? ''}`;

/**
 * An IQ between occupants as the room passes it on (XEP-0045 §7.5): from the asker's room JID,
 * and without the room JID it was sent to. It is prepared like any room stanza, `to` spliced in
 * per recipient, so a `to` left here went out twice in one tag: clients dropped the connection.
 */
function passedOn(stanza: Element, from: string): Element {
  const { to: _to, ...attrs } = stanza.attrs;
  const copy = new Element('iq', { ...attrs, from });
  copy.children = stanza.children;
  return copy;
}
