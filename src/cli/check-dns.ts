// `xmppd check dns`: whether clients and other servers can find this server (RFC 6120 §3.2,
// XEP-0368). For each public host: the client SRV records (`_xmpp-client._tcp` for STARTTLS,
// `_xmpps-client._tcp` for direct TLS) point at a port we listen on with that kind of TLS, and
// their targets have addresses; without SRV records, the host's own address and port 5222. With
// federation on, the same for `_xmpp-server._tcp` / `_xmpps-server._tcp` (port 5269), for the host
// and for the services other servers reach (conference.<host>, pubsub.<host>...).
import dns from 'node:dns/promises';
import type { CoreConfig } from '../config/schema.js';
import { modulesForHost } from '../config/load.js';
import { bad, good, isPublicName, type Finding } from './findings.js';

interface SrvRecord { name: string; port: number; priority: number; weight: number }

/** The lookups the check makes: the configured DNS servers (s2s.dns_servers) or the system's. */
export interface CheckResolver {
  srv(name: string): Promise<SrvRecord[]>;
  addresses(name: string): Promise<string[]>;
}

export function checkResolver(servers: readonly string[]): CheckResolver {
  const resolver = new dns.Resolver({ timeout: 3000, tries: 2 });
  if (servers.length > 0) resolver.setServers([...servers]);
  const none = () => [];
  return {
    srv: (name) => resolver.resolveSrv(name).catch(none),
    async addresses(name) {
      const [v4, v6] = await Promise.all([resolver.resolve4(name).catch(none), resolver.resolve6(name).catch(none)]);
      return [...v4, ...v6];
    },
  };
}

/** Modules that serve a subdomain other servers address (their `service_domain` option, else `<prefix>.<host>`). */
const SERVICE_PREFIXES: Record<string, string> = { muc: 'conference', pubsub: 'pubsub', upload: 'upload', proxy65: 'proxy' };

interface Listener { port: number; tls: string }

export async function checkDns(config: CoreConfig, resolver: CheckResolver = checkResolver(config.s2s.dns_servers)): Promise<Finding[]> {
  const findings: Finding[] = [];
  for (const host of config.hosts) {
    const domain = host.domain;
    if (!isPublicName(domain)) {
      findings.push(good(domain, 'not a public DNS name; nothing to look up'));
      continue;
    }
    findings.push(...await checkService(resolver, domain, 'client', config.c2s.listen, 5222));
    if (!config.s2s.enabled) continue;
    findings.push(...await checkService(resolver, domain, 'server', config.s2s.listen, 5269));
    for (const [module, options] of modulesForHost(config, host)) {
      const prefix = SERVICE_PREFIXES[module];
      if (prefix === undefined) continue;
      const service = typeof options.service_domain === 'string' ? options.service_domain.toLowerCase() : `${prefix}.${domain}`;
      findings.push(...await checkService(resolver, service, 'server', config.s2s.listen, 5269));
    }
  }
  return findings;
}

/** The SRV records of one service (client or server) of one domain, against our listeners. */
async function checkService(resolver: CheckResolver, domain: string, kind: 'client' | 'server', listeners: readonly Listener[], defaultPort: number): Promise<Finding[]> {
  const findings: Finding[] = [];
  const starttlsName = `_xmpp-${kind}._tcp.${domain}`;
  const directName = `_xmpps-${kind}._tcp.${domain}`;
  const [starttls, direct] = await Promise.all([resolver.srv(starttlsName), resolver.srv(directName)]);
  const records = [
    ...starttls.map((r) => ({ ...r, srv: starttlsName, tls: 'starttls' })),
    ...direct.map((r) => ({ ...r, srv: directName, tls: 'direct' })),
  ];
  // RFC 2782: a lone "." target says the service is not offered at this domain
  if (records.length > 0 && records.every((r) => r.name === '' || r.name === '.')) {
    return [bad(starttlsName, `says there is no XMPP ${kind} service at ${domain} (target ".")`, `remove the "." record, or point it at this server: ${srvLine(starttlsName, kind, listeners, domain)}`)];
  }
  if (records.length === 0) {
    // RFC 6120 §3.2.2: no SRV record, so the domain itself on the default port
    const addresses = await resolver.addresses(domain);
    const listening = listeners.some((l) => l.port === defaultPort && l.tls === 'starttls');
    if (addresses.length === 0) {
      findings.push(bad(domain, `no ${starttlsName} SRV record and no A/AAAA record: ${kind === 'client' ? 'clients' : 'other servers'} cannot find the server`, `add ${srvLine(starttlsName, kind, listeners, `xmpp.${domain}`)} (and an A record for its target), or an A record for ${domain}`));
    } else if (!listening) {
      findings.push(bad(domain, `no SRV record, so ${kind === 'client' ? 'clients' : 'other servers'} connect to ${domain}:${defaultPort}, where no ${kind === 'client' ? 'c2s' : 's2s'} listener has STARTTLS`, `add ${srvLine(starttlsName, kind, listeners, domain)}, or listen on ${defaultPort}`));
    } else {
      findings.push(good(domain, `no SRV record; ${kind === 'client' ? 'clients' : 'other servers'} use ${domain} (${addresses.join(', ')}) port ${defaultPort}`));
    }
    return findings;
  }
  for (const record of records) {
    if (record.name === '' || record.name === '.') continue;
    const target = record.name.replace(/\.$/, '');
    const where = `${record.srv} → ${target}:${record.port}`;
    const addresses = await resolver.addresses(target);
    if (addresses.length === 0) {
      findings.push(bad(where, `the target ${target} has no A or AAAA record`, `add an A (or AAAA) record for ${target}`));
      continue;
    }
    const ours = listeners.filter((l) => l.port === record.port);
    if (ours.length === 0) {
      findings.push(bad(where, `no ${kind === 'client' ? 'c2s' : 's2s'} listener on port ${record.port} (ours: ${listeners.map((l) => `${l.port} ${l.tls}`).join(', ') || 'none'})`, `point the record at one of our ports, or add { port: ${record.port}, tls: ${record.tls} } to ${kind === 'client' ? 'c2s' : 's2s'}.listen`));
    } else if (!ours.some((l) => l.tls === record.tls)) {
      findings.push(bad(where, `port ${record.port} speaks ${ours[0]!.tls} TLS, but ${record.srv.split('.')[0]} announces ${record.tls === 'direct' ? 'direct TLS (XEP-0368)' : 'STARTTLS'}`, record.tls === 'direct' ? `publish it as ${record.srv.replace('_xmpps-', '_xmpp-')}, or set tls: direct on that listener` : `publish it as ${record.srv.replace('_xmpp-', '_xmpps-')}, or set tls: starttls on that listener`));
    } else {
      findings.push(good(where, `${addresses.join(', ')}, ${record.tls === 'direct' ? 'direct TLS' : 'STARTTLS'} as we listen`));
    }
  }
  return findings;
}

/** A zone-file line for the SRV record we would want. */
function srvLine(name: string, kind: 'client' | 'server', listeners: readonly Listener[], target: string): string {
  const port = listeners.find((l) => l.tls === 'starttls')?.port ?? (kind === 'client' ? 5222 : 5269);
  return `"${name}. 3600 IN SRV 0 5 ${port} ${target}."`;
}
