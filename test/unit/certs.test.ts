import crypto from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import test from 'ava';
import 'reflect-metadata'; // before @peculiar/x509
import * as x509 from '@peculiar/x509';
import { certificateCoversHost, ensureSelfSignedCertificate, loadCertificateInfo } from '../../src/tls/certs.js';

async function tempDir(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'xmppd-certs-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * A TLS server that picks the pair's secure context by SNI, as a virtual host would; a client
 * connects and returns what it saw.
 */
async function handshake(cert: string, key: string, servername: string, ca?: string) {
  const context = tls.createSecureContext({ cert, key });
  const server = tls.createServer({ SNICallback: (_name, done) => done(null, context) }, (socket) => {
    socket.end('hello over TLS');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as AddressInfo;
    return await new Promise<{ peer: tls.PeerCertificate; data: string; protocol: string | null }>((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port, servername, ...(ca ? { ca } : { rejectUnauthorized: false }) });
      let data = '';
      socket.on('data', (chunk: Buffer) => (data += chunk.toString()));
      socket.on('end', () => resolve({ peer: socket.getPeerCertificate(), data, protocol: socket.getProtocol() }));
      socket.on('error', reject);
    });
  } finally {
    server.close();
  }
}

test('a fresh host gets a self-signed certificate that works in a real TLS handshake', async (t) => {
  const dir = path.join(await tempDir(t), 'nested', 'certs'); // created recursively
  const files = await ensureSelfSignedCertificate(dir, 'localhost');
  t.true(files.generated);
  t.is(files.certFile, path.join(dir, 'localhost.crt'));
  t.is(files.keyFile, path.join(dir, 'localhost.key'));
  t.is((await stat(files.keyFile)).mode & 0o777, 0o600, 'only the owner may read the key');
  t.regex(await readFile(files.keyFile, 'utf8'), /^-----BEGIN PRIVATE KEY-----/); // PKCS#8

  const cert = await readFile(files.certFile, 'utf8');
  const key = await readFile(files.keyFile, 'utf8');
  const seen = await handshake(cert, key, 'localhost');
  t.is(seen.data, 'hello over TLS');
  t.is(seen.peer.subject.CN, 'localhost');
  t.is(seen.peer.subjectaltname, 'DNS:localhost, DNS:*.localhost');
  t.truthy(seen.protocol);
  // Ten years of validity.
  const years = (new Date(seen.peer.valid_to).getTime() - Date.now()) / (365 * 24 * 3600 * 1000);
  t.true(years > 9.9 && years < 10.1);
  t.is(tls.checkServerIdentity('localhost', seen.peer), undefined);
  // TLS libraries refuse a wildcard over one label, and certificateCoversHost agrees with them.
  t.truthy(tls.checkServerIdentity('conference.localhost', seen.peer));
  t.false(certificateCoversHost(['localhost', '*.localhost'], 'conference.localhost'));
});

test('a client that trusts the self-signed certificate verifies the host and its components', async (t) => {
  const dir = await tempDir(t);
  const files = await ensureSelfSignedCertificate(dir, 'chat.example');
  const cert = await readFile(files.certFile, 'utf8');
  const key = await readFile(files.keyFile, 'utf8');
  for (const host of ['chat.example', 'conference.chat.example']) {
    // With `ca`, tls.connect verifies the chain and the name (rejectUnauthorized defaults to true).
    const seen = await handshake(cert, key, host, cert);
    t.is(seen.data, 'hello over TLS', host);
    t.is(tls.checkServerIdentity(host, seen.peer), undefined, host);
  }
  const info = loadCertificateInfo(files.certFile, files.keyFile);
  t.true(certificateCoversHost(info.subjectNames, 'conference.chat.example'));
  t.false(certificateCoversHost(info.subjectNames, 'a.b.chat.example'));
});

test('a second call reuses the files instead of generating new ones', async (t) => {
  const dir = await tempDir(t);
  const first = await ensureSelfSignedCertificate(dir, 'localhost');
  const pem = await readFile(first.certFile, 'utf8');
  const second = await ensureSelfSignedCertificate(dir, 'localhost');
  t.false(second.generated);
  t.deepEqual({ ...second, generated: true }, first);
  t.is(await readFile(second.certFile, 'utf8'), pem);
});

test('half a pair (key lost) is regenerated', async (t) => {
  const dir = await tempDir(t);
  const first = await ensureSelfSignedCertificate(dir, 'localhost');
  await rm(first.keyFile);
  const again = await ensureSelfSignedCertificate(dir, 'localhost');
  t.true(again.generated);
  t.deepEqual(loadCertificateInfo(again.certFile, again.keyFile).problems, []);
});

test('host names that are not host names are refused (no paths out of the directory)', async (t) => {
  const dir = await tempDir(t);
  await t.throwsAsync(ensureSelfSignedCertificate(dir, '../etc/passwd'), { message: /not a host name/ });
  await t.throwsAsync(ensureSelfSignedCertificate(dir, ''), { message: /not a host name/ });
});

test('loadCertificateInfo reads names and expiry of a good pair', async (t) => {
  const dir = await tempDir(t);
  const files = await ensureSelfSignedCertificate(dir, 'Example.ORG');
  const info = loadCertificateInfo(files.certFile, files.keyFile);
  t.deepEqual(info.problems, []);
  t.deepEqual(info.subjectNames, ['example.org', '*.example.org']);
  t.true(info.notAfter.getTime() > Date.now() + 9 * 365 * 24 * 3600 * 1000);
});

test('loadCertificateInfo reports a key that does not match the certificate', async (t) => {
  const dir = await tempDir(t);
  const a = await ensureSelfSignedCertificate(dir, 'a.example');
  const b = await ensureSelfSignedCertificate(dir, 'b.example');
  const info = loadCertificateInfo(a.certFile, b.keyFile);
  t.is(info.problems.length, 1);
  t.regex(info.problems[0]!, /does not match the certificate/);
});

test('loadCertificateInfo reports missing files and files that are not PEM', async (t) => {
  const dir = await tempDir(t);
  const missing = loadCertificateInfo(path.join(dir, 'none.crt'), path.join(dir, 'none.key'));
  t.is(missing.problems.length, 2);
  t.regex(missing.problems[0]!, /certificate file .*none\.crt does not exist/);
  t.regex(missing.problems[1]!, /private key file .*none\.key does not exist/);
  t.true(Number.isNaN(missing.notAfter.getTime()));

  await writeFile(path.join(dir, 'junk.crt'), 'not a certificate');
  await writeFile(path.join(dir, 'junk.key'), 'not a key');
  const junk = loadCertificateInfo(path.join(dir, 'junk.crt'), path.join(dir, 'junk.key'));
  t.regex(junk.problems[0]!, /is not a PEM certificate/);
  t.regex(junk.problems[1]!, /is not a PEM private key/);

  await writeFile(path.join(dir, 'broken.crt'), '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
  const good = await ensureSelfSignedCertificate(dir, 'localhost');
  const broken = loadCertificateInfo(path.join(dir, 'broken.crt'), good.keyFile);
  t.is(broken.problems.length, 1);
  t.regex(broken.problems[0]!, /cannot be parsed/);
});

test('loadCertificateInfo reports an expired certificate', async (t) => {
  const dir = await tempDir(t);
  const keys = (await crypto.webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
    'sign',
    'verify',
  ])) as crypto.webcrypto.CryptoKeyPair;
  const day = 24 * 3600 * 1000;
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: '01',
      name: 'CN=old.example',
      notBefore: new Date(Date.now() - 30 * day),
      notAfter: new Date(Date.now() - day),
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      keys,
    },
    crypto.webcrypto,
  );
  const certFile = path.join(dir, 'old.crt');
  const keyFile = path.join(dir, 'old.key');
  await writeFile(certFile, cert.toString('pem'));
  await writeFile(keyFile, crypto.KeyObject.from(keys.privateKey).export({ type: 'pkcs8', format: 'pem' }));
  const info = loadCertificateInfo(certFile, keyFile);
  t.is(info.problems.length, 1);
  t.regex(info.problems[0]!, /expired on/);
  t.deepEqual(info.subjectNames, ['old.example'], 'the CN stands in when there is no subjectAltName');
});

test('a wildcard covers exactly one leftmost label (RFC 6125 §6.4.3)', (t) => {
  const names = ['example.com', '*.example.com'];
  t.true(certificateCoversHost(names, 'example.com'));
  t.true(certificateCoversHost(names, 'conference.example.com'));
  t.true(certificateCoversHost(names, 'Upload.Example.COM.'));
  t.false(certificateCoversHost(names, 'a.b.example.com'));
  t.false(certificateCoversHost(names, 'example.org'));
  t.false(certificateCoversHost(names, 'notexample.com'));
  t.false(certificateCoversHost(['*.example.com'], 'example.com'));
  t.false(certificateCoversHost(['*.com'], 'com'));
  t.false(certificateCoversHost(['*.com'], 'example.com'), 'a wildcard needs two labels after it');
  t.false(certificateCoversHost(['f*.example.com'], 'foo.example.com'));
  t.false(certificateCoversHost([], 'example.com'));
});
