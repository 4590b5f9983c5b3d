// A room of 10,000 occupants: a group message reaches each of them once, addressed to each,
// from one serialisation, in time linear in the room's size.
import test from 'ava';
import type Element from 'ltx/lib/Element.js';
import pino from 'pino';
import xml from '@xmpp/xml';
import { parseJid } from '../../src/core/jid.js';
import { LocalDelivery, SessionRegistry, type Session } from '../../src/core/sessions.js';
import { defaultRoomConfig } from '../../src/modules/muc/forms.js';
import { Room, type RoomHost } from '../../src/modules/muc/room.js';
import type { RoomStore } from '../../src/modules/muc/store.js';

const SERVICE = 'conference.localhost';

/** A bound session that only counts what it is given. */
class CountingSession {
  received = 0;
  lastXml = '';
  lastStanza: Element | undefined;
  priority = 0;
  available = true;
  presence = null;
  readonly flags = new Set<string>();
  readonly node = 'local';
  get local(): this {
    return this;
  }
  directedPresence = null;
  inactive = false;
  lastActivity = 0;
  remoteAddress = '127.0.0.1';
  host = 'localhost';
  constructor(readonly jid: NonNullable<ReturnType<typeof parseJid>>) {}
  send(stanza: Element, serialised?: string): void {
    this.received++;
    this.lastStanza = stanza;
    this.lastXml = serialised ?? '';
  }
  close(): void {}
}

function roomOf(size: number): { room: Room; sessions: CountingSession[]; routed: Element[] } {
  const registry = new SessionRegistry();
  const delivery = new LocalDelivery();
  const routed: Element[] = [];
  const host: RoomHost = {
    domain: SERVICE,
    log: pino({ level: 'silent' }),
    sessions: registry,
    deliver: (ref, stanza, serialised, tracker) => delivery.deliver(ref, stanza, serialised, tracker),
    store: {} as RoomStore,
    maxOccupants: 20_000,
    maxHistory: 100,
    maxVcardSize: 65536,
    isLocal: (domain) => domain === 'localhost',
    route: (stanza) => void routed.push(stanza),
    removed: () => undefined,
    entered: () => undefined,
    left: () => undefined,
  };
  // a large group as its owner would set it up: only moderators' presence is broadcast, so a
  // join costs O(1) deliveries instead of 2 x the room's size (full presence would make filling
  // the room quadratic: 10^8 presences, inherent to MUC presence, not to the message fan-out)
  const config = { ...defaultRoomConfig(20), maxUsers: 0, presenceBroadcast: ['moderator' as const] };
  const room = Room.create(host, 'big', config, 'user0@localhost', false);
  const sessions: CountingSession[] = [];
  for (let i = 0; i < size; i++) {
    const jid = parseJid(`user${i}@localhost/phone`)!;
    const session = new CountingSession(jid);
    registry.add(session as unknown as Session);
    sessions.push(session);
    room.handlePresence(xml('presence', { from: jid.toString(), to: `big@${SERVICE}/user${i}` }, xml('x', { xmlns: 'http://jabber.org/protocol/muc' }, xml('history', { maxstanzas: '0' }))), jid, `user${i}`, i === 0);
  }
  return { room, sessions, routed };
}

function post(room: Room, sender: CountingSession, body: string): void {
  room.handleMessage(xml('message', { from: sender.jid.toString(), to: `big@${SERVICE}`, type: 'groupchat', id: body }, xml('body', {}, body)), sender.jid, '');
}

test('a message to a room of 10,000 reaches every occupant once, addressed to each, with one stanza-id', (t) => {
  const { room, sessions, routed } = roomOf(10_000);
  t.is(room.occupantCount, 10_000);
  const before = sessions.map((s) => s.received);
  post(room, sessions[1]!, 'hello ten thousand');
  let stanzaId: string | undefined;
  for (let i = 0; i < sessions.length; i++) {
    const s = sessions[i]!;
    t.is(s.received, before[i]! + 1);
    if (i % 997 !== 0) continue; // spot checks
    t.true(s.lastXml.startsWith(`<message to="${s.jid.toString()}" `), s.lastXml.slice(0, 80));
    const id = /<stanza-id xmlns="urn:xmpp:sid:0" id="([^"]+)" by="big@conference.localhost"\/>/.exec(s.lastXml)?.[1];
    t.truthy(id);
    stanzaId ??= id;
    t.is(id, stanzaId);
  }
  t.is(sessions[0]!.lastStanza, sessions[9_999]!.lastStanza, 'one stanza object for the whole room');
  t.deepEqual(routed.filter((s) => s.is('message')), [], 'nothing went through the router');
});
