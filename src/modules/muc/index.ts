// XEP-0045: Multi-User Chat — group chats. One MUC service per virtual host, on its own domain
// (conference.<host> by default), listed in the host's disco#items. Rooms are created by joining
// them; persistent rooms (the "WhatsApp group": members-only, non-anonymous, persistent, as
// Conversations creates a private group chat) are kept in the database with their affiliations.
// The service hands each stanza to its room (room.ts); group messages fan out there with one
// serialisation per room and no database access.
import type Element from 'ltx/lib/Element.js';
import { z } from 'zod';
import { byteSize } from '../../config/units.js';
import type { Jid } from '../../core/jid.js';
import { defineModule } from '../../core/module.js';
import type { SessionRef } from '../../core/ports.js';
import { StanzaError } from '../../core/stanza.js';
import { defaultRoomConfig } from './forms.js';
import { NS_MUC, NS_STANZA_ID } from './ns.js';
import { Room, type RoomHost } from './room.js';
import { RoomStore, mucMigrations, type StoredRoom } from './store.js';

declare module '../../core/module.js' {
  interface Services {
    muc: MucAdminService;
  }
}

/** What the muc module offers the admin commands (`m.provide`, under the name `muc`). */
export interface MucAdminService {
  domain: string;
  rooms(): Array<{ jid: string; occupants: number; persistent: boolean; name: string }>;
  destroy(name: string, reason: string | undefined): Promise<boolean>;
}

export default defineModule({
  name: 'muc',
  description: 'Group chats: a Multi-User Chat service per host (conference.<host>)',
  implements: [
    { spec: 'XEP-0045', version: '1.34.5', status: 'partial', note: 'no nickname registration (§7.10) yet; rooms live on one node (no cluster support)' },
    { spec: 'XEP-0004', version: '2.13.1', status: 'complete', note: 'room configuration and room information forms' },
    { spec: 'XEP-0203', version: '2.0', status: 'complete', note: 'delay stamps on MUC discussion history' },
    { spec: 'XEP-0359', version: '0.7.0', status: 'complete', note: 'stanza-id on every group chat message, by the room' },
    { spec: 'XEP-0410', version: '1.1.0', status: 'complete', note: 'self-pings answered by the room' },
    { spec: 'XEP-0421', status: 'complete', note: 'occupant ids on MUC presence and messages, stable across restarts' },
    { spec: 'XEP-0313', version: '1.1.3', status: 'complete', note: 'room archives (§6) when the mam module is enabled; members-only rooms for members only' },
    { spec: 'XEP-0486', version: '0.1.0', status: 'complete', note: 'room vCards (XEP-0054) set by owners, read by anyone; the avatar hash in the room information form' },
  ],
  options: z.strictObject({
    /** The service's domain; default conference.<host>. */
    service_domain: z.string().min(1).optional(),
    /** Name shown in service discovery. */
    name: z.string().default('Chatrooms'),
    /** Who may create rooms: users of this host, anyone (other servers too), or the host's admins. */
    create_rooms: z.enum(['local', 'anyone', 'admins']).default('local'),
    /** Occupants per room (the room's own muc#roomconfig_maxusers can only lower it). */
    max_occupants: z.number().int().min(1).default(1000),
    /** Messages of discussion history a new room keeps for people who join. */
    history_length: z.number().int().min(0).default(20),
    /** The most an owner may set muc#roomconfig_historylength to. */
    max_history_length: z.number().int().min(0).default(100),
    /** A new room is locked until its owner configures it (XEP-0045 §10.1.1); false opens it at once. */
    room_locking: z.boolean().default(true),
    /** The largest vCard a room's owner may set (its avatar included, XEP-0486). */
    max_room_vcard_size: byteSize().prefault('64KiB'),
  }),
  migrations: mucMigrations,
  // A deleted account's affiliations in every room (owner, admin, member, and outcast too): the
  // next account of that name is someone else, who neither inherits rights nor a ban.
  removeAccountData: async ({ db, bareJid }) => void (await db('muc_affiliations').where({ jid: bareJid }).delete()),
  async setup(m) {
    const options = m.options;
    const domain = (options.service_domain ?? `conference.${m.host.domain}`).toLowerCase();
    const server = m.server;
    const rooms = new Map<string, Room>();
    const store = new RoomStore(m.db, domain, m.log);

    /** The rooms each client (full JID) is in, to take it out when its session ends. */
    const roomsOf = new Map<string, Set<Room>>();
    const service: RoomHost = {
      domain,
      log: m.log,
      sessions: m.sessions,
      deliver: (ref, stanza, xml, tracker) => m.deliver(ref, stanza, xml, tracker),
      store,
      maxOccupants: options.max_occupants,
      maxHistory: options.max_history_length,
      maxVcardSize: options.max_room_vcard_size,
      isLocal: (d) => server.hosts.has(d),
      route: (stanza) => m.route(stanza),
      blockingOf: (jid) => m.optional('blocking', jid.domain),
      // the mam module, when enabled, sets up after this one: looked up when needed
      get archive() {
        return m.optional('mam');
      },
      archiveOf: (d) => m.optional('mam', d),
      removed: (room) => {
        if (rooms.get(room.name) === room) rooms.delete(room.name);
        // a room created later under the same name is someone else's: it does not inherit the archive
        service.archive?.removeRoom(room.jid).catch((err: unknown) => m.log.error({ err, room: room.jid }, 'deleting a room archive failed'));
      },
      entered: (jid, room) => {
        let set = roomsOf.get(jid);
        if (set === undefined) roomsOf.set(jid, (set = new Set()));
        set.add(room);
      },
      left: (jid, room) => {
        const set = roomsOf.get(jid);
        if (set?.delete(room) && set.size === 0) roomsOf.delete(jid);
      },
    };

    /** A persistent room as it was stored, empty. */
    const restore = async (stored: StoredRoom): Promise<Room> => {
      const config = { ...defaultRoomConfig(options.history_length), ...stored.config };
      const room = new Room(service, stored.room, config, stored.createdAt, stored.affiliations, stored.secret || undefined);
      if (stored.secret === '') await store.saveSecret(room.name, room.secret); // a room stored before occupant ids
      room.subject = stored.subject;
      room.subjectBy = stored.subjectBy;
      room.persisted = true;
      room.vcard = stored.vcard;
      room.restoreHistory(await store.history(room.name, config.historyLength));
      return room;
    };
    // persistent rooms come back as they were left, empty
    for (const stored of await store.loadAll()) {
      const room = await restore(stored);
      rooms.set(room.name, room);
    }
    if (rooms.size > 0) m.log.info({ service: domain, rooms: rooms.size }, 'persistent rooms loaded');

    // for the admin commands `room list` / `room destroy` (src/control)
    m.provide('muc', {
      domain,
      rooms: () => [...rooms.values()].filter((r) => !r.destroyed).map((r) => ({ jid: r.jid, occupants: r.occupantCount, persistent: r.config.persistent, name: r.config.name })),
      async destroy(name, reason) {
        const room = rooms.get(name);
        if (room === undefined || room.destroyed) return false;
        await room.destroy(undefined, reason, true); // XEP-0045 §10.9: occupants told, stored room removed
        return true;
      },
    } satisfies MucAdminService);

    const mayCreate = (from: Jid): boolean => {
      if (options.create_rooms === 'anyone') return true;
      if (options.create_rooms === 'admins') return m.host.isAdmin(from.bare);
      return server.hosts.has(from.domain);
    };

    // the service itself (XEP-0045 §6.1-§6.3): disco and ping are the component's
    const component = m.component(domain, options.name);
    component.identity('conference', 'text', options.name);
    component.feature(NS_MUC);
    component.feature(NS_STANZA_ID);
    component.messageRefusal = 'Send messages to a room';
    // §6.3: the public rooms (not hidden, not locked)
    component.items(function* publicRooms() {
      for (const room of rooms.values()) if (room.config.public && !room.locked) yield { jid: room.jid, name: room.config.name || room.name };
    });
    const bounce = (stanza: Element, error: StanzaError) => component.bounce(stanza, error);

    /** A stanza to a room or an occupant (room@service, room@service/nick). */
    function receive(stanza: Element, from: Jid, to: Jid): unknown {
      let room = rooms.get(to.local);
      let created = false;
      if (room === undefined) {
        // §10.1.1: a presence to a room that does not exist creates it, with its sender as owner
        const join = stanza.name === 'presence' && stanza.attrs.type === undefined && to.resource !== '';
        if (!join) {
          if (stanza.name !== 'presence') bounce(stanza, new StanzaError('item-not-found', 'No such room'));
          return true;
        }
        if (!mayCreate(from)) {
          bounce(stanza, new StanzaError('not-allowed', 'You may not create rooms here'));
          return true;
        }
        // §7.2.1: a client that does not speak MUC (no <x/>) gets an instant room at once
        const speaksMuc = stanza.getChild('x', NS_MUC) !== undefined;
        room = Room.create(service, to.local, defaultRoomConfig(options.history_length), from.bare, options.room_locking && speaksMuc);
        rooms.set(room.name, room);
        created = true;
      }
      switch (stanza.name) {
        case 'presence':
          room.handlePresence(stanza, from, to.resource, created);
          break;
        case 'message':
          return room.handleMessage(stanza, from, to.resource) ?? true;
        case 'iq':
          room.handleIq(stanza, from, to.resource);
          break;
      }
      return true;
    }

    // In a cluster each room runs on one node; the node taking a room over (its first stanza
    // anywhere, or its node died) reads it as stored: another node may have changed it since.
    const placed = async (name: string): Promise<void> => {
      const current = rooms.get(name);
      if (current !== undefined && current.occupantCount > 0) return; // running here already
      const [stored] = await store.loadAll(name);
      if (stored === undefined) {
        if (current !== undefined) rooms.delete(name); // destroyed on another node
        return;
      }
      rooms.set(name, await restore(stored));
    };
    component.entities(receive, placed);

    // A client that ends without unavailable presence to the room (it never sent initial
    // presence, so the presence module has no directed presence to cancel) leaves anyway.
    m.on('session/closed', ({ session }: { session: SessionRef }) => {
      const joined = roomsOf.get(session.jid.toString());
      if (joined === undefined) return;
      for (const room of [...joined]) room.clientGone(session.jid);
    });
    // A removed account's affiliations go with it: whoever registers the name later is someone
    // else, and must not inherit its memberships or ownerships.
    m.on('account/deleted', ({ username }: { username: string }) => {
      const bare = `${username}@${m.host.domain}`;
      for (const room of rooms.values()) if (room.affiliations.has(bare)) room.forgetAffiliation(bare);
    });

    m.onStop(async () => {
      await Promise.all([...rooms.values()].map((room) => room.settled()));
      await store.settled();
    });
  },
});
