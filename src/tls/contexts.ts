// TLS contexts per virtual host: the configured certificate, or a self-signed ECDSA one generated
// under <data_dir>/certs on first start (ECDSA P-256 makes each handshake much cheaper than RSA).
// Chosen by SNI; a client that sends no SNI gets the first host's certificate.
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import type { Logger } from 'pino';
import { ensureSelfSignedCertificate } from './certs.js';

export interface HostTlsFiles {
  cert: string;
  key: string;
}

export class TlsContexts {
  /** Copies made by withCa (s2s), rebuilt when this one is reloaded. */
  private readonly derived: Array<{ copy: TlsContexts; ca: Buffer | undefined }> = [];

  private constructor(
    private contexts: Map<string, tls.SecureContext>,
    private fallback: tls.SecureContext,
    /** Each host's certificate and key (PEM), for contexts that also need a CA list (s2s). */
    private pems: Map<string, { cert: Buffer; key: Buffer }>,
  ) {}

  /**
   * Reads the certificates again (`xmppd reload`, SIGHUP): every TLS handshake from now on uses
   * the new ones; connections already secured keep theirs. On an unreadable file it throws
   * and the current certificates stay.
   */
  async reload(hosts: ReadonlyArray<{ domain: string; tls?: HostTlsFiles | undefined }>, dataDir: string, log: Logger): Promise<void> {
    const fresh = await TlsContexts.load(hosts, dataDir, log);
    this.contexts = fresh.contexts;
    this.fallback = fresh.fallback;
    this.pems = fresh.pems;
    for (const { copy, ca } of this.derived) {
      const rebuilt = this.withCa(ca, false);
      copy.contexts = rebuilt.contexts;
      copy.fallback = rebuilt.fallback;
      copy.pems = rebuilt.pems;
    }
  }

  static async load(hosts: ReadonlyArray<{ domain: string; tls?: HostTlsFiles | undefined }>, dataDir: string, log: Logger): Promise<TlsContexts> {
    const contexts = new Map<string, tls.SecureContext>();
    const pems = new Map<string, { cert: Buffer; key: Buffer }>();
    for (const host of hosts) {
      let files = host.tls;
      if (files === undefined) {
        const generated = await ensureSelfSignedCertificate(path.join(dataDir, 'certs'), host.domain);
        if (generated.generated) log.warn({ host: host.domain, cert: generated.certFile }, 'generated a self-signed certificate; configure tls.cert/tls.key for production');
        files = { cert: generated.certFile, key: generated.keyFile };
      }
      const pem = { cert: fs.readFileSync(files.cert), key: fs.readFileSync(files.key) };
      pems.set(host.domain, pem);
      contexts.set(host.domain, tls.createSecureContext({ ...pem, minVersion: 'TLSv1.2' }));
    }
    const fallback = contexts.get(hosts[0]!.domain)!;
    return new TlsContexts(contexts, fallback, pems);
  }

  /**
   * Contexts for server-to-server streams: our host's certificate on both sides (a peer may
   * authenticate us by it, XEP-0178), and `ca` (undefined: the system's roots) to judge the peer's.
   */
  withCa(ca: Buffer | undefined, follow = true): TlsContexts {
    const contexts = new Map<string, tls.SecureContext>();
    for (const [domain, pem] of this.pems) contexts.set(domain, tls.createSecureContext({ ...pem, ...(ca ? { ca } : {}), minVersion: 'TLSv1.2' }));
    const first = this.pems.keys().next().value!;
    const copy = new TlsContexts(contexts, contexts.get(first)!, this.pems);
    if (follow) this.derived.push({ copy, ca });
    return copy;
  }

  /** The context for `servername`: its own host, or a parent host (conference.example.org → example.org). */
  contextFor(servername: string | undefined): tls.SecureContext {
    if (!servername) return this.fallback;
    const name = servername.toLowerCase();
    const exact = this.contexts.get(name);
    if (exact) return exact;
    const dot = name.indexOf('.');
    return (dot !== -1 && this.contexts.get(name.slice(dot + 1))) || this.fallback;
  }

  /** Options for `tls.createServer` / `new TLSSocket(..., { isServer: true })`. */
  serverOptions(): tls.TlsOptions {
    return {
      // read per connection (never cached in a tls.Server): a reload applies to the next handshake
      secureContext: this.fallback,
      SNICallback: (servername, callback) => callback(null, this.contextFor(servername)),
    };
  }
}
