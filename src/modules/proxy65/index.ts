// XEP-0065: SOCKS5 Bytestreams — a file transfer proxy, for when two clients cannot reach each
// other directly (both behind NAT, as phones are): each connects to this server's SOCKS5 port,
// and the bytes go through. Served at proxy.<host>, listed in the host's disco#items; clients
// (Conversations, Gajim, Dino for Jingle file transfer, XEP-0260) find it there, ask it for its
// address (the streamhost), and the requester activates a transfer once both are connected.
// The SOCKS5 listener (relay.ts) is shared by the hosts that give it the same address.
import { createHash } from 'node:crypto';
import Element from 'ltx/lib/Element.js';
import { z } from 'zod';
import { byteSizeOrNever, duration, durationOrNever } from '../../config/units.js';
import { parseJid, type Jid } from '../../core/jid.js';
import type { Kernel } from '../../core/kernel.js';
import { defineModule } from '../../core/module.js';
import { StanzaError } from '../../core/stanza.js';
import { Socks5Relay, type Activation, type RelayLimits } from './relay.js';

export const NS_BYTESTREAMS = 'http://jabber.org/protocol/bytestreams';

/** Addresses that mean "every interface": not one a client can be told to connect to. */
const WILDCARDS = new Set(['0.0.0.0', '::', '']);

interface SharedRelay {
  relay: Promise<Socks5Relay>;
  users: number;
}

/** The SOCKS5 listeners of each server, by address: hosts giving the same one share it. */
const relays = new WeakMap<Kernel, Map<string, SharedRelay>>();

/** The relay listening at host:port for this server, opened by the first host to ask. */
function openRelay(server: Kernel, host: string, port: number, limits: RelayLimits): { relay: Promise<Socks5Relay>; release: () => Promise<void> } {
  let byAddress = relays.get(server);
  if (byAddress === undefined) relays.set(server, (byAddress = new Map()));
  const key = `${host}|${port}`;
  let shared = byAddress.get(key);
  if (shared === undefined) {
    const relay = new Socks5Relay(limits, server.log.child({ module: 'proxy65' }));
    shared = { relay: relay.listen(host, port).then(() => relay), users: 0 };
    byAddress.set(key, shared);
    shared.relay.catch(() => byAddress.delete(key));
  }
  shared.users++;
  const entry = shared;
  return {
    relay: entry.relay,
    release: async () => {
      if (--entry.users > 0) return;
      byAddress.delete(key);
      await (await entry.relay).close();
    },
  };
}

/** The hosts' relays, for tests: the one at `port` on this server. */
export async function relayOf(server: Kernel, port: number): Promise<Socks5Relay | undefined> {
  for (const shared of relays.get(server)?.values() ?? []) {
    const relay = await shared.relay;
    if (relay.port === port) return relay;
  }
  return undefined;
}

/** XEP-0065 §5.3.2: the SOCKS5 destination both parties connect to. */
export function transferHash(sid: string, requester: string, target: string): string {
  return createHash('sha1').update(sid + requester + target, 'utf8').digest('hex');
}

export default defineModule({
  name: 'proxy65',
  description: 'File transfer proxy: SOCKS5 Bytestreams (proxy.<host>) for clients that cannot connect directly',
  implements: [
    { spec: 'XEP-0065', version: '1.8.2', status: 'complete', note: 'the proxy (streamhost) side, at proxy.<host>; limits on connections, transfers per account, bytes and idle time' },
  ],
  options: z.strictObject({
    /** The service's domain; default proxy.<host>. */
    service_domain: z.string().min(1).optional(),
    /** Name shown in service discovery. */
    name: z.string().default('SOCKS5 Bytestreams'),
    /** The address the SOCKS5 listener binds to (loopback by default: set it to serve the network). */
    host: z.string().default('127.0.0.1'),
    /** The port it listens on (7777, as Prosody and ejabberd; 0: one the system chooses). */
    port: z.number().int().min(0).max(65535).default(7777),
    /** The address clients are told to connect to; default `host`, or the host's domain when `host` is a wildcard. */
    public_host: z.string().min(1).optional(),
    /** The port clients are told (behind port forwarding); default the listener's. */
    public_port: z.number().int().min(1).max(65535).optional(),
    /** Who may use the proxy: local (users of this server's hosts) or anyone (other servers' users too). */
    access: z.enum(['local', 'anyone']).default('local'),
    /** SOCKS5 connections open at once, all users together. */
    max_connections: z.number().int().min(2).default(200),
    /** SOCKS5 connections open at once from one IP address. */
    max_connections_per_address: z.number().int().min(2).default(20),
    /** Transfers one account may have running at once. */
    max_transfers_per_user: z.number().int().min(1).default(5),
    /** Bytes one transfer may carry, or never (no limit). */
    max_transfer_size: byteSizeOrNever().prefault('1GiB'),
    /** How long a connection may wait for its partner and the activation. */
    pending_timeout: duration().prefault('1m'),
    /** How long a running transfer may carry nothing before it is closed, or never. */
    idle_timeout: durationOrNever().prefault('5m'),
  }),
  async setup(m) {
    const options = m.options;
    const domain = (options.service_domain ?? `proxy.${m.host.domain}`).toLowerCase();
    const limits: RelayLimits = {
      maxConnections: options.max_connections,
      maxConnectionsPerAddress: options.max_connections_per_address,
      maxTransfersPerUser: options.max_transfers_per_user,
      maxTransferSize: options.max_transfer_size,
      pendingTimeoutMs: options.pending_timeout * 1000,
      idleTimeoutMs: options.idle_timeout === null ? null : options.idle_timeout * 1000,
    };
    const opened = openRelay(m.server, options.host, options.port, limits);
    const relay = await opened.relay;
    m.onStop(opened.release); // the port closes with the module
    const publicHost = options.public_host ?? (WILDCARDS.has(options.host) ? m.host.domain : options.host);
    const publicPort = options.public_port ?? relay.port;

    // XEP-0065 §4: identity proxy/bytestreams and the feature
    const component = m.component(domain, options.name);
    component.identity('proxy', 'bytestreams', options.name);
    component.feature(NS_BYTESTREAMS);
    component.messageRefusal = 'This is a file transfer proxy';

    /** XEP-0065 §4: "If the Requester does not have permissions ... the Proxy MUST return a <forbidden/> error". */
    const checkAccess = (from: Jid) => {
      if (from.local === '') throw new StanzaError('forbidden', 'Only users may use the file transfer proxy');
      if (options.access === 'local' && !m.server.hosts.has(from.domain)) {
        throw new StanzaError('forbidden', `Only users of this server may use ${domain}`);
      }
    };

    // XEP-0065 §4: the network address of the streamhost
    component.iq('get', NS_BYTESTREAMS, ({ from }) => {
      checkAccess(from);
      const query = new Element('query', { xmlns: NS_BYTESTREAMS });
      query.c('streamhost', { jid: domain, host: publicHost, port: String(publicPort) });
      return query;
    });

    // XEP-0065 §6.3.2: the requester activates the bytestream once both parties are connected
    const refusals: Record<Exclude<Activation, 'activated'>, () => StanzaError> = {
      // a third party's activation names another hash (its own JID is in it): unknown too
      unknown: () => new StanzaError('item-not-found', 'No such bytestream: no connection for this SID, requester and target'),
      'one-side': () => new StanzaError('not-allowed', 'Only one party of this bytestream is connected'),
      'already-active': () => new StanzaError('not-allowed', 'This bytestream is already activated'),
      'too-many': () => new StanzaError('resource-constraint', `Too many file transfers at once (at most ${options.max_transfers_per_user})`),
    };
    component.iq('set', NS_BYTESTREAMS, ({ payload, from }) => {
      checkAccess(from);
      const sid = payload.attrs.sid ?? '';
      const targetText = (payload.getChildText('activate') ?? '').trim();
      const target = parseJid(targetText);
      if (sid === '' || target === null || target.resource === '') throw new StanzaError('bad-request', 'Expected <query sid="..."><activate>target full JID</activate></query>');
      const requester = from.toString();
      // the parties hashed the JIDs as written; try that, then the normalized form
      let outcome = relay.activate(transferHash(sid, requester, targetText), from.bare);
      if (outcome === 'unknown' && target.toString() !== targetText) outcome = relay.activate(transferHash(sid, requester, target.toString()), from.bare);
      if (outcome === 'activated') return null;
      m.log.info({ from: requester, target: targetText, sid, outcome }, 'bytestream activation refused');
      throw refusals[outcome]();
    });
  },
});
