// XEP-0215 External Service Discovery: the STUN and TURN servers clients use for calls (Jingle
// RTP, XEP-0167), listed from the YAML. TURN credentials are made per request from a secret
// shared with the TURN server, the "TURN REST API" convention coturn implements
// (use-auth-secret): username `<expiry unix time>:<bare JID>`, password base64(HMAC-SHA1(secret,
// username)); the TURN server checks the HMAC and the expiry, so nothing is stored.
import { createHmac } from 'node:crypto';
import Element from 'ltx/lib/Element.js';
import { z } from 'zod';
import { duration } from '../../config/units.js';
import { defineModule } from '../../core/module.js';
import { StanzaError } from '../../core/stanza.js';

const NS_EXTDISCO = 'urn:xmpp:extdisco:2';

const serviceSchema = z.strictObject({
  type: z.enum(['stun', 'stuns', 'turn', 'turns']),
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535).optional(),
  transport: z.enum(['udp', 'tcp']).optional(),
  /** The name shown to users. */
  name: z.string().optional(),
  /** Fixed credentials for this service (instead of the shared secret). */
  username: z.string().optional(),
  password: z.string().optional(),
});
type ServiceConfig = z.infer<typeof serviceSchema>;

export default defineModule({
  name: 'external_services',
  description: 'STUN and TURN servers for calls, with TURN credentials from a shared secret',
  implements: [{ spec: 'XEP-0215', version: '1.0.0', status: 'complete', note: 'TURN credentials from a shared secret (TURN REST API), with expiry' }],
  options: z.strictObject({
    services: z.array(serviceSchema).default([]),
    /** The TURN server's static-auth-secret (coturn use-auth-secret); credentials for turn/turns services are made from it. */
    secret: z.string().min(1).optional(),
    /** How long generated TURN credentials are valid. */
    credentials_lifetime: duration().prefault('1d'),
  }),
  setup(m) {
    const { services, secret, credentials_lifetime: lifetime } = m.options;
    if (services.length === 0) return; // nothing to offer: not advertised
    m.feature(NS_EXTDISCO);

    function serviceElement(service: ServiceConfig, bareJid: string): Element {
      const attrs: Record<string, string> = { type: service.type, host: service.host };
      if (service.port !== undefined) attrs.port = String(service.port);
      if (service.transport !== undefined) attrs.transport = service.transport;
      if (service.name !== undefined) attrs.name = service.name;
      if (service.username !== undefined && service.password !== undefined) {
        Object.assign(attrs, { restricted: '1', username: service.username, password: service.password });
      } else if (secret !== undefined && (service.type === 'turn' || service.type === 'turns')) {
        const expiry = Math.floor(Date.now() / 1000) + lifetime;
        const username = `${expiry}:${bareJid}`;
        const password = createHmac('sha1', secret).update(username).digest('base64');
        Object.assign(attrs, { restricted: '1', username, password, expires: new Date(expiry * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z') });
      }
      return new Element('service', attrs);
    }

    // our own users only: TURN relays cost bandwidth
    const localOnly = (from: { domain: string }) => {
      if (from.domain !== m.host.domain) throw new StanzaError('forbidden', 'External services are for this server\'s users');
    };

    // §3.1 / §3.2: all services, or those of one type
    m.iq('get', NS_EXTDISCO, ({ from, payload }) => {
      localOnly(from);
      if (payload.name === 'credentials') {
        // §3.3: credentials for one service
        const wanted = payload.getChild('service');
        const service = services.find((s) => s.host === wanted?.attrs.host && (wanted?.attrs.type === undefined || s.type === wanted.attrs.type)
          && (wanted?.attrs.port === undefined || String(s.port) === wanted.attrs.port));
        if (service === undefined) throw new StanzaError('item-not-found', 'No such service');
        const credentials = new Element('credentials', { xmlns: NS_EXTDISCO });
        credentials.append(serviceElement(service, from.bare));
        return credentials;
      }
      if (payload.name !== 'services') throw new StanzaError('bad-request');
      const type = payload.attrs.type;
      const result = new Element('services', type === undefined ? { xmlns: NS_EXTDISCO } : { xmlns: NS_EXTDISCO, type });
      for (const service of services) if (type === undefined || service.type === type) result.append(serviceElement(service, from.bare));
      return result;
    }, 'host');
  },
});
