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
  private constructor(
    private readonly contexts: Map<string, tls.SecureContext>,
    private readonly fallback: tls.SecureContext,
    /** Each host's certificate and key (PEM), for contexts that also need a CA list (s2s). */
    private readonly pems: Map<string, { cert: Buffer; key: Buffer }>,
  ) {}

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
  withCa(ca: Buffer | undefined): TlsContexts {
    const contexts = new Map<string, tls.SecureContext>();
    for (const [domain, pem] of this.pems) contexts.set(domain, tls.createSecureContext({ ...pem, ...(ca ? { ca } : {}), minVersion: 'TLSv1.2' }));
    const first = this.pems.keys().next().value!;
    return new TlsContexts(contexts, contexts.get(first)!, this.pems);
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
      secureContext: this.fallback,
      SNICallback: (servername, callback) => callback(null, this.contextFor(servername)),
    };
  }
}
