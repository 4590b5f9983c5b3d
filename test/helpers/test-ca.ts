// A throwaway certificate authority for federation tests (openssl): one CA, and for each domain
// a certificate signed by it naming the domain and its subdomains (for conference.<domain>).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface TestCa {
  dir: string;
  caFile: string;
  certs: Record<string, { cert: string; key: string }>;
}

export function createTestCa(domains: string[]): TestCa {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-test-ca-'));
  const caKey = path.join(dir, 'ca.key');
  const caFile = path.join(dir, 'ca.crt');
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', caKey, '-out', caFile, '-days', '2',
    '-subj', '/CN=xmppd test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  const certs: TestCa['certs'] = {};
  for (const domain of domains) {
    const key = path.join(dir, `${domain}.key`);
    const csr = path.join(dir, `${domain}.csr`);
    const cert = path.join(dir, `${domain}.crt`);
    const ext = path.join(dir, `${domain}.ext`);
    fs.writeFileSync(ext, `subjectAltName=DNS:${domain},DNS:*.${domain}\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n`);
    openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${domain}`);
    openssl('x509', '-req', '-in', csr, '-CA', caFile, '-CAkey', caKey, '-CAcreateserial', '-out', cert, '-days', '2', '-extfile', ext);
    fs.chmodSync(key, 0o644); // Prosody may read it as its own user
    certs[domain] = { cert, key };
  }
  fs.chmodSync(dir, 0o755);
  return { dir, caFile, certs };
}
