// Where to connect for a remote domain (RFC 6120 §3.2.1, XEP-0368): a static route from the
// configuration, else DNS SRV records — `_xmpps-server._tcp` (direct TLS) and
// `_xmpp-server._tcp` (STARTTLS) merged by priority and weight — else the domain itself on 5269.
import dns from 'node:dns/promises';
import net from 'node:net';
import type { S2SRoute, S2SSettings } from './settings.js';

/** What we ask DNS: SRV records, and addresses of host names when not the system's resolver. */
export interface S2SResolver {
  resolveSrv(name: string): Promise<Array<{ name: string; port: number; priority: number; weight: number }>>;
  /** An address for `host` (undefined: let the system resolve the name when connecting). */
  address(host: string): Promise<string | undefined>;
}

/** The system's resolver, or the configured DNS servers ("ip" or "ip:port") for every lookup. */
export function createResolver(servers: readonly string[]): S2SResolver {
  if (servers.length === 0) return { resolveSrv: (name) => dns.resolveSrv(name), address: async () => undefined };
  const resolver = new dns.Resolver();
  resolver.setServers([...servers]);
  return {
    resolveSrv: (name) => resolver.resolveSrv(name),
    async address(host) {
      if (net.isIP(host)) return host;
      const v4 = await resolver.resolve4(host).catch(() => [] as string[]);
      if (v4.length > 0) return v4[0];
      const v6 = await resolver.resolve6(host).catch(() => [] as string[]);
      return v6[0];
    },
  };
}

/** The targets to try, in order; throws 'service-unavailable' when the domain says it has no XMPP (a "." target). */
export async function resolveTargets(domain: string, settings: S2SSettings, resolver: Pick<S2SResolver, 'resolveSrv'>): Promise<S2SRoute[]> {
  const route = staticRoute(domain, settings);
  if (route !== undefined) return [route];
  const lookup = (name: string) => resolver.resolveSrv(name).catch(() => [] as Array<{ name: string; port: number; priority: number; weight: number }>);
  const [direct, starttls] = await Promise.all([lookup(`_xmpps-server._tcp.${domain}`), lookup(`_xmpp-server._tcp.${domain}`)]);
  const records = [
    ...direct.map((r) => ({ ...r, tls: 'direct' as const })),
    ...starttls.map((r) => ({ ...r, tls: 'starttls' as const })),
  ];
  // RFC 2782: a single record with target "." means the service is decidedly not available
  if (records.length > 0 && records.every((r) => r.name === '' || r.name === '.')) throw new Error('service-unavailable');
  if (records.length === 0) return [{ host: domain, port: 5269, tls: 'starttls' }];
  // lower priority first; among equals, heavier weight first (XEP-0368 §3: direct TLS wins ties)
  records.sort((a, b) => a.priority - b.priority || b.weight - a.weight || (a.tls === b.tls ? 0 : a.tls === 'direct' ? -1 : 1));
  return records.filter((r) => r.name !== '.' && r.name !== '').map((r) => ({ host: r.name, port: r.port, tls: r.tls }));
}

/** The configured route for `domain`, or for its closest parent (conference.b.example → b.example). */
export function staticRoute(domain: string, settings: S2SSettings): S2SRoute | undefined {
  for (let name = domain; ; ) {
    const route = settings.routes.get(name);
    if (route !== undefined) return route;
    const dot = name.indexOf('.');
    if (dot === -1) return undefined;
    name = name.slice(dot + 1);
  }
}
