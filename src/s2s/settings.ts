// What the federation code reads from the `s2s:` section of the configuration.

export interface S2SRoute {
  host: string;
  port: number;
  /** 'direct': TLS from the first byte (XEP-0368); 'starttls': plain TCP, then STARTTLS. */
  tls: 'starttls' | 'direct';
}

export interface S2SSettings {
  enabled: boolean;
  listen: S2SRoute[];
  /** Remote domain → where to connect, instead of DNS. */
  routes: ReadonlyMap<string, S2SRoute>;
  /** DNS servers ("ip" or "ip:port") to ask instead of the system's resolver. */
  dnsServers: readonly string[];
  /** PEM bundle peers' certificates must chain to; undefined: the system's roots. */
  caFile: string | undefined;
  requireEncryption: boolean;
  requireValidCertificates: boolean;
  dialback: boolean;
  secureDomains: readonly string[];
  insecureDomains: readonly string[];
  /** XEP-0185 secret; undefined: generated once and kept in the data directory. */
  dialbackSecret: string | undefined;
  /** seconds to resolve, connect and authenticate an outgoing stream */
  connectTimeout: number;
  /** seconds without traffic after which a stream is closed */
  idleTimeout: number;
  maxQueuedStanzas: number;
  maxStanzaSize: number;
}

/** How a peer may prove it is who it says (per domain, from the policy options). */
export interface AuthPolicy {
  certificateRequired: boolean;
  dialbackAllowed: boolean;
}

export function authPolicy(settings: S2SSettings, remote: string): AuthPolicy {
  if (settings.secureDomains.includes(remote)) return { certificateRequired: true, dialbackAllowed: false };
  if (settings.insecureDomains.includes(remote)) return { certificateRequired: false, dialbackAllowed: true };
  return {
    certificateRequired: settings.requireValidCertificates,
    dialbackAllowed: settings.dialback && !settings.requireValidCertificates,
  };
}
