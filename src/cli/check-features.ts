// `xmppd check features`: for each host, what today's clients (Conversations, Monal, Gajim, Dino,
// Converse.js) look for, whether this configuration offers it, and how to turn it on when not,
// like `prosodyctl check features`. A module unknown to this build is not asked for.
import type { CoreConfig, HostConfig } from '../config/schema.js';
import { modulesForHost } from '../config/load.js';
import { moduleRegistry } from '../modules/index.js';
import { bad, good, isPublicName, type Finding } from './findings.js';

interface HostView {
  config: CoreConfig;
  host: HostConfig;
  /** Enabled modules with their effective options. */
  modules: Map<string, Record<string, unknown>>;
  public: boolean;
}

interface Expected {
  what: string;
  /** Only asked of hosts it makes sense for (e.g. federation of a public name). */
  applies?: (view: HostView) => boolean;
  /** undefined when offered; else why not and the fix. */
  missing: (view: HostView) => { why: string; fix: string } | undefined;
}

/** Missing when the module is not enabled on the host (and this build has it). */
const module = (name: string, what: string): Expected => ({
  what,
  applies: () => moduleRegistry.has(name),
  missing: (view) => view.modules.has(name) ? undefined : { why: `module ${name} is not enabled`, fix: `add "${name}:" under modules:` },
});

const EXPECTED: Expected[] = [
  module('roster', 'contact lists (RFC 6121)'),
  module('offline', 'offline messages (XEP-0160)'),
  module('mam', 'message history for every device (XEP-0313)'),
  module('carbons', 'the same chat on several devices (XEP-0280)'),
  {
    what: 'resuming a session after a network change (XEP-0198)',
    missing: ({ config }) => config.c2s.resume_timeout === null || config.c2s.resume_timeout === 0
      ? { why: 'c2s.resume_timeout is never', fix: 'set c2s.resume_timeout (e.g. 5m) so phones keep their session across network changes' } : undefined,
  },
  module('blocking', 'blocking contacts (XEP-0191)'),
  module('pubsub', 'PEP for OMEMO, avatars and bookmarks (XEP-0163)'),
  module('bookmarks', 'bookmarks shared by old and new clients (XEP-0402, XEP-0411)'),
  module('avatar_conversion', 'avatars shown by old and new clients (XEP-0398)'),
  module('vcard', 'profiles and avatars in vCards (XEP-0054, XEP-0153)'),
  module('muc', 'group chats (XEP-0045)'),
  module('upload', 'sharing images and files (XEP-0363)'),
  {
    what: 'file links that work away from this machine',
    applies: (view) => view.public && view.modules.has('upload'),
    missing: ({ config }) => {
      if (!config.http.enabled) return { why: 'http is off, so uploads have nowhere to go', fix: 'set http.enabled: true' };
      const loopbackOnly = config.http.listen.every((l) => l.host === '127.0.0.1' || l.host === '::1' || l.host === 'localhost');
      return loopbackOnly && config.http.public_url === undefined
        ? { why: 'the HTTP listeners are on loopback and http.public_url is not set', fix: 'put a reverse proxy in front and set http.public_url (e.g. https://{host}), or listen on a public address' }
        : undefined;
    },
  },
  module('push', 'push notifications to phones (XEP-0357)'),
  {
    what: 'audio and video calls through STUN/TURN (XEP-0215)',
    applies: () => moduleRegistry.has('external_services'),
    missing: ({ modules }) => {
      const options = modules.get('external_services');
      if (options === undefined) return { why: 'module external_services is not enabled', fix: 'add "external_services:" under modules:, with your STUN/TURN servers' };
      const services = Array.isArray(options.services) ? options.services : [];
      return services.length === 0 ? { why: 'no STUN or TURN server is listed', fix: 'list them under modules.external_services.services (coturn: turn and stun on port 3478, and secret: its static-auth-secret)' } : undefined;
    },
  },
  module('proxy65', 'file transfer through a proxy (XEP-0065)'),
  module('fast', 'fast reconnection with tokens (XEP-0484)'),
  module('invites', 'inviting friends (XEP-0401)'),
  {
    what: 'contact addresses for abuse reports and support (XEP-0157)',
    applies: (view) => view.public,
    missing: ({ modules }) => {
      const contact = (modules.get('disco')?.contact ?? {}) as Record<string, unknown>;
      const listed = ['abuse', 'admin', 'support', 'security'].some((kind) => Array.isArray(contact[kind]) && contact[kind].length > 0);
      return listed ? undefined : { why: 'no contact address is published', fix: 'set modules.disco.contact.abuse (e.g. [mailto:abuse@example.org]) and admin' };
    },
  },
  {
    what: 'web clients over WebSocket (RFC 7395)',
    missing: ({ config }) => config.http.enabled && config.http.websocket.enabled ? undefined : { why: 'http or http.websocket is off', fix: 'set http.websocket.enabled: true' },
  },
  {
    what: 'chatting with other servers (federation)',
    applies: (view) => view.public,
    missing: ({ config }) => config.s2s.enabled ? undefined : { why: 's2s is off', fix: 'set s2s.enabled: true and publish _xmpp-server._tcp SRV records (xmppd check dns)' },
  },
  {
    what: 'a certificate clients accept',
    applies: (view) => view.public,
    missing: ({ host }) => host.tls === undefined ? { why: 'no tls: cert and key, so a self-signed certificate is made, which clients refuse', fix: `set hosts[].tls: { cert: /etc/letsencrypt/live/<host>/fullchain.pem, key: .../privkey.pem }` } : undefined,
  },
];

export function checkFeatures(config: CoreConfig): Finding[] {
  const findings: Finding[] = [];
  for (const host of config.hosts) {
    const view: HostView = { config, host, modules: modulesForHost(config, host), public: isPublicName(host.domain) };
    for (const expected of EXPECTED) {
      if (expected.applies !== undefined && !expected.applies(view)) continue;
      const missing = expected.missing(view);
      findings.push(missing === undefined ? good(host.domain, expected.what) : bad(host.domain, `${expected.what}: ${missing.why}`, missing.fix));
    }
  }
  return findings;
}
