// Certificates for virtual hosts: a self-signed one generated on first start so that STARTTLS
// works out of the box (RFC 6120 §5 makes TLS the norm; our security defaults require it before
// SASL), and the checks `xmppd check` runs on whatever certificate the admin configured.
import crypto from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * @peculiar/x509, loaded the first time a certificate is made: a tenth of a second of start-up
 * that every CLI command and every start with its certificates already in place would pay.
 */
let x509Library: Promise<typeof import('@peculiar/x509')> | undefined;
function loadX509(): Promise<typeof import('@peculiar/x509')> {
  return (x509Library ??= (async () => {
    await import('reflect-metadata'); // before @peculiar/x509, whose dependency tsyringe needs it at load time
    const x509 = await import('@peculiar/x509');
    x509.cryptoProvider.set(crypto.webcrypto);
    return x509;
  })());
}

const TEN_YEARS_MS = 10 * 365.25 * 24 * 60 * 60 * 1000;
/** A DNS host name (letters, digits, hyphens, dots): also keeps the file name inside `dir`. */
const HOSTNAME = /^(?!-)[a-z0-9-]{1,63}(?:\.(?!-)[a-z0-9-]{1,63})*$/;

export interface CertificateFiles {
  certFile: string;
  keyFile: string;
  generated: boolean;
}

/**
 * Returns `<dir>/<hostname>.crt` and `.key`, generating them first if either is missing:
 * an ECDSA P-256 key and a self-signed certificate valid for ten years, naming the host and
 * `*.<host>` so that components such as conference.<host> are covered by the same file.
 * (TLS libraries ignore a wildcard over a single label, so for `localhost` only the host itself
 * is really covered; see certificateCoversHost.)
 */
export async function ensureSelfSignedCertificate(dir: string, host: string): Promise<CertificateFiles> {
  const hostname = host.toLowerCase(); // DNS names are case-insensitive; one file per host
  if (!HOSTNAME.test(hostname)) throw new Error(`cannot make a certificate for "${hostname}": not a host name`);
  const certFile = path.join(dir, `${hostname}.crt`);
  const keyFile = path.join(dir, `${hostname}.key`);
  if (existsSync(certFile) && existsSync(keyFile)) return { certFile, keyFile, generated: false };
  const x509 = await loadX509();

  const keys = (await crypto.webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
    'sign',
    'verify',
  ])) as crypto.webcrypto.CryptoKeyPair;
  const serial = crypto.randomBytes(16);
  serial[0] = (serial[0]! & 0x7f) | 0x01; // a positive, non-zero DER INTEGER (RFC 5280 §4.1.2.2)
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial.toString('hex'),
    name: [{ CN: [hostname] }],
    notBefore: new Date(now - 60 * 60 * 1000), // an hour of slack for clocks that run behind
    notAfter: new Date(now + TEN_YEARS_MS),
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      // serverAuth for c2s and incoming s2s; clientAuth for outgoing s2s with SASL EXTERNAL.
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      // RFC 6125 §6.4: clients match DNS names in subjectAltName, not the CN.
      new x509.SubjectAlternativeNameExtension([
        { type: 'dns', value: hostname },
        { type: 'dns', value: `*.${hostname}` },
      ]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const keyPem = crypto.KeyObject.from(keys.privateKey).export({
    type: 'pkcs8',
    format: 'pem',
  }) as string;

  await mkdir(dir, { recursive: true });
  // Write to temporary names and rename, so a crash never leaves half a pair behind.
  // The key is readable by its owner only.
  const suffix = `.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
  await writeFile(keyFile + suffix, keyPem, { mode: 0o600 });
  await chmod(keyFile + suffix, 0o600);
  await writeFile(certFile + suffix, cert.toString('pem') + '\n', { mode: 0o644 });
  await rename(keyFile + suffix, keyFile);
  await rename(certFile + suffix, certFile);
  return { certFile, keyFile, generated: true };
}

export interface CertificateInfo {
  /** Names the certificate speaks for (DNS, XmppAddr, SRVName); the CN only when there are none. */
  subjectNames: string[];
  /** End of validity; an Invalid Date when the certificate could not be read. */
  notAfter: Date;
  /** Human readable problems; empty when the pair is usable. */
  problems: string[];
}

/** Reads a certificate and its key and says what is wrong with them, for `xmppd check`. */
export function loadCertificateInfo(certFile: string, keyFile: string): CertificateInfo {
  const info: CertificateInfo = { subjectNames: [], notAfter: new Date(NaN), problems: [] };

  const certPem = readText(certFile, 'certificate', info.problems);
  let cert: crypto.X509Certificate | undefined;
  if (certPem !== undefined) {
    if (!certPem.includes('-----BEGIN CERTIFICATE-----')) {
      info.problems.push(`${certFile} is not a PEM certificate (no BEGIN CERTIFICATE line)`);
    } else {
      try {
        cert = new crypto.X509Certificate(certPem);
      } catch (err) {
        info.problems.push(`${certFile} cannot be parsed: ${(err as Error).message}`);
      }
    }
  }
  if (cert) {
    info.subjectNames = subjectNamesOf(cert);
    info.notAfter = new Date(cert.validTo);
    const notBefore = new Date(cert.validFrom);
    const now = Date.now();
    if (info.notAfter.getTime() < now) info.problems.push(`${certFile} expired on ${info.notAfter.toISOString()}`);
    if (notBefore.getTime() > now) info.problems.push(`${certFile} is not valid before ${notBefore.toISOString()}`);
  }

  const keyPem = readText(keyFile, 'private key', info.problems);
  if (keyPem !== undefined) {
    if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(keyPem)) {
      info.problems.push(`${keyFile} is not a PEM private key (no BEGIN PRIVATE KEY line)`);
    } else {
      try {
        const key = crypto.createPrivateKey(keyPem);
        if (cert && !cert.checkPrivateKey(key)) {
          info.problems.push(`${keyFile} does not match the certificate ${certFile}`);
        }
      } catch (err) {
        info.problems.push(`${keyFile} cannot be loaded: ${(err as Error).message}`);
      }
    }
  }
  return info;
}

function readText(file: string, what: string, problems: string[]): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    problems.push(code === 'ENOENT' ? `${what} file ${file} does not exist` : `cannot read ${what} file ${file}: ${code ?? (err as Error).message}`);
    return undefined;
  }
}

/**
 * RFC 6120 §13.7.1.2 / RFC 6125: an XMPP server's identity is in subjectAltName as dNSName,
 * SRVName (_xmpp-client. / _xmpp-server.) or id-on-xmppAddr; the CN is a fallback only when
 * there is none. Node prints these as "DNS:a, othername:XmppAddr:b, othername:SRVName:_xmpp-server.c".
 */
function subjectNamesOf(cert: crypto.X509Certificate): string[] {
  const names: string[] = [];
  for (const entry of (cert.subjectAltName ?? '').split(', ')) {
    if (entry.startsWith('DNS:')) names.push(entry.slice(4));
    else if (entry.startsWith('othername:XmppAddr:')) names.push(entry.slice('othername:XmppAddr:'.length));
    else if (entry.startsWith('othername:SRVName:')) {
      names.push(entry.slice('othername:SRVName:'.length).replace(/^_xmpp-(?:client|server)\./, ''));
    }
  }
  if (names.length === 0) {
    const cn = /^CN=(.*)$/m.exec(cert.subject);
    if (cn?.[1]) names.push(cn[1]);
  }
  return [...new Set(names.map((n) => n.toLowerCase()))];
}

/**
 * RFC 6125 §6.4.3: '*' may stand for exactly one whole label, the leftmost one, so
 * `*.example.com` covers `chat.example.com` but neither `example.com` nor `a.b.example.com`.
 * Like OpenSSL and Node's checkServerIdentity (and RFC 6125 §7.2's warning about `*.com`), a
 * wildcard needs at least two labels after it: `*.localhost` covers nothing, so what this says
 * is what clients will accept.
 */
export function certificateCoversHost(subjectNames: string[], host: string): boolean {
  const wanted = host.toLowerCase().replace(/\.$/, '');
  const firstDot = wanted.indexOf('.');
  const parent = firstDot > 0 ? wanted.slice(firstDot + 1) : undefined;
  return subjectNames.some((name) => {
    const n = name.toLowerCase().replace(/\.$/, '');
    if (n === wanted) return true;
    return n.startsWith('*.') && n.slice(2).includes('.') && n.slice(2) === parent;
  });
}
