// `xmppd check certs`: each host's certificate — the names it covers, when it expires, and whether
// the file carries the chain clients need to trust it (RFC 6125; what `prosodyctl check certs`
// looks at). Unreadable or mismatched files are already problems of plain `xmppd check`.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import type { CoreConfig } from '../config/schema.js';
import { certificateCoversHost, loadCertificateInfo } from '../tls/certs.js';
import { bad, good, isPublicName, type Finding } from './findings.js';

const DAY_MS = 24 * 60 * 60 * 1000;
/** certbot renews 30 days ahead; a certificate this close to its end was not renewed. */
const RENEWAL_OVERDUE_DAYS = 14;

export function checkCertificates(config: CoreConfig, now = Date.now()): Finding[] {
  const findings: Finding[] = [];
  // the roots clients know: the system's, and the private CA federation is configured with
  const extra = config.s2s.ca_file !== undefined && fs.existsSync(config.s2s.ca_file) ? pemBlocks(fs.readFileSync(config.s2s.ca_file, 'utf8')) : [];
  const roots = [...tls.rootCertificates, ...extra].map((pem) => new crypto.X509Certificate(pem));
  for (const host of config.hosts) {
    const domain = host.domain;
    if (host.tls === undefined) {
      const generated = path.join(config.data_dir, 'certs', `${domain}.crt`);
      findings.push(isPublicName(domain)
        ? bad(domain, `no certificate configured: a self-signed one is used (${generated}), which clients refuse`, 'set tls: { cert, key } for this host (e.g. from certbot)')
        : good(domain, `self-signed certificate (${generated}), fine for a name only this machine uses`));
      continue;
    }
    const info = loadCertificateInfo(host.tls.cert, host.tls.key);
    if (info.problems.length > 0) {
      for (const problem of info.problems) findings.push(bad(domain, problem, 'fix the tls: cert and key files of this host'));
      continue;
    }
    findings.push(certificateCoversHost(info.subjectNames, domain)
      ? good(domain, `names ${info.subjectNames.join(', ')}`)
      : bad(domain, `names ${info.subjectNames.join(', ')}, not ${domain}`, `get a certificate for ${domain}`));
    const daysLeft = Math.floor((info.notAfter.getTime() - now) / DAY_MS);
    findings.push(daysLeft < RENEWAL_OVERDUE_DAYS
      ? bad(domain, `expires on ${info.notAfter.toISOString().slice(0, 10)}, in ${daysLeft} days`, 'renew it (certbot renew), then xmppd reload')
      : good(domain, `valid until ${info.notAfter.toISOString().slice(0, 10)} (${daysLeft} days)`));
    findings.push(chainFinding(domain, fs.readFileSync(host.tls.cert, 'utf8'), roots));
  }
  return findings;
}

const pemBlocks = (text: string): string[] => text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];

/** Whether the file's certificates link up, in order, to a root clients know. */
function chainFinding(domain: string, pem: string, roots: readonly crypto.X509Certificate[]): Finding {
  const chain = pemBlocks(pem).map((block) => new crypto.X509Certificate(block));
  for (let i = 0; i + 1 < chain.length; i++) {
    if (!chain[i]!.checkIssued(chain[i + 1]!) || !chain[i]!.verify(chain[i + 1]!.publicKey)) {
      return bad(domain, `certificate ${i + 2} of the file did not issue certificate ${i + 1}`, 'put the certificate first, then its intermediates in order (certbot: fullchain.pem)');
    }
  }
  const last = chain[chain.length - 1]!;
  const known = (cert: crypto.X509Certificate) => roots.find((root) => cert.checkIssued(root) && cert.verify(root.publicKey));
  const root = known(last);
  const commonName = (subject: string) => subject.split('\n').find((line) => line.startsWith('CN='))?.slice(3) ?? subject.replace(/\n/g, ', ');
  if (root !== undefined) return good(domain, `chain of ${chain.length} up to ${commonName(root.subject)}, a root clients know`);
  if (last.subject === last.issuer && last.verify(last.publicKey)) {
    return chain.length === 1
      ? bad(domain, 'self-signed: clients and other servers do not trust it', 'use a certificate from a CA (e.g. Let\'s Encrypt with certbot)')
      : bad(domain, `the chain ends at ${commonName(last.subject)}, a root clients do not know`, 'use a certificate from a public CA, or make every client trust this one');
  }
  return bad(domain, `the chain stops at ${commonName(last.issuer)}, which is not a root clients know`, chain.length === 1 ? 'use the file with the intermediate certificates (certbot: fullchain.pem, not cert.pem)' : 'add the missing intermediate certificate to the file');
}
