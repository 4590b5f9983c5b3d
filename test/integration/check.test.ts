// `xmppd check certs|dns|ports|features`, as an admin runs it before going live: the real CLI in a
// child process, with a real DNS server (test/helpers/dns.ts) answering the lookups.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import test from 'ava';
import { startChild, workspace } from '../helpers/cli.js';
import { startTestDns } from '../helpers/dns.js';
import { freePort } from '../helpers/federation.js';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import tls from 'node:tls';
import os from 'node:os';

test('check dns: records pointing at our listeners pass; a direct-TLS record on a STARTTLS port and a service without records fail, with the fix', async (t) => {
  const dns = await startTestDns();
  t.teardown(() => dns.close());
  const [starttls, direct, s2s] = [await freePort(), await freePort(), await freePort()];
  dns.addSrv('_xmpp-client._tcp.chat.example.org', 'xmpp.chat.example.org', starttls);
  dns.addSrv('_xmpps-client._tcp.chat.example.org', 'xmpp.chat.example.org', starttls); // wrong: that port speaks STARTTLS
  dns.addSrv('_xmpp-server._tcp.chat.example.org', 'xmpp.chat.example.org', s2s);
  // conference.chat.example.org: nothing at all
  const space = workspace(t, (dir, storage) => `data_dir: ${JSON.stringify(dir)}
log: { level: silent }
hosts: [{ domain: chat.example.org }]
${storage}
c2s: { listen: [{ host: 127.0.0.1, port: ${starttls}, tls: starttls }, { host: 127.0.0.1, port: ${direct}, tls: direct }] }
s2s: { enabled: true, listen: [{ host: 127.0.0.1, port: ${s2s} }], dns_servers: ['127.0.0.1:${dns.port}'] }
modules: { muc: {} }
`);
  const result = await space.cli('check', 'dns');
  t.is(result.code, 2, result.stdout + result.stderr);
  const out = result.stdout;
  t.regex(out, new RegExp(`ok   _xmpp-client\\._tcp\\.chat\\.example\\.org → xmpp\\.chat\\.example\\.org:${starttls}: 127\\.0\\.0\\.1, STARTTLS as we listen`));
  t.regex(out, new RegExp(`FAIL _xmpps-client\\._tcp\\.chat\\.example\\.org → xmpp\\.chat\\.example\\.org:${starttls}: port ${starttls} speaks starttls TLS, but _xmpps-client announces direct TLS`));
  t.regex(out, /fix: publish it as _xmpp-client\._tcp\.chat\.example\.org, or set tls: direct on that listener/);
  t.regex(out, new RegExp(`ok   _xmpp-server\\._tcp\\.chat\\.example\\.org → xmpp\\.chat\\.example\\.org:${s2s}`));
  t.regex(out, /FAIL conference\.chat\.example\.org: no _xmpp-server\._tcp\.conference\.chat\.example\.org SRV record and no A\/AAAA record/);
  t.regex(out, new RegExp(`fix: add "_xmpp-server\\._tcp\\.conference\\.chat\\.example\\.org\\. 3600 IN SRV 0 5 ${s2s} xmpp\\.conference\\.chat\\.example\\.org\\."`));
});

test('check ports: a port another program holds fails; with the server running, its listeners answer', async (t) => {
  const [taken, free] = [await freePort(), await freePort()];
  const holder = net.createServer();
  await new Promise<void>((resolve) => holder.listen(taken, '127.0.0.1', resolve));
  const space = workspace(t, (dir, storage) => `data_dir: ${JSON.stringify(dir)}
log: { level: info }
hosts: [{ domain: localhost, modules: { proxy65: { port: 0 } } }]
${storage}
c2s: { listen: [{ host: 127.0.0.1, port: ${taken} }, { host: 127.0.0.1, port: ${free}, tls: direct }] }
http: { enabled: false }
`);
  const stopped = await space.cli('check', 'ports');
  t.is(stopped.code, 2);
  t.regex(stopped.stdout, new RegExp(`FAIL c2s 127\\.0\\.0\\.1:${taken} \\(starttls\\): taken by another program`));
  t.regex(stopped.stdout, new RegExp(`ok   c2s 127\\.0\\.0\\.1:${free} \\(direct\\): free`));

  await new Promise((resolve) => holder.close(resolve));
  await startChild(t, space.config);
  const started = await space.cli('check', 'ports');
  t.is(started.code, 0, started.stdout + started.stderr);
  t.regex(started.stdout, new RegExp(`ok   c2s 127\\.0\\.0\\.1:${taken} \\(starttls\\): the running server accepts connections`));
  t.regex(started.stdout, new RegExp(`ok   c2s 127\\.0\\.0\\.1:${free} \\(direct\\): the running server accepts connections`));
});

test('check features: a public host without TURN, contact addresses, federation or a real certificate is told how to add each', async (t) => {
  const space = workspace(t, (dir, storage) => `data_dir: ${JSON.stringify(dir)}
log: { level: silent }
hosts: [{ domain: chat.example.org }]
${storage}
modules: { roster: {}, offline: {}, upload: {}, external_services: {} }
`);
  const result = await space.cli('check', 'features');
  t.is(result.code, 2);
  const out = result.stdout;
  t.regex(out, /ok   chat\.example\.org: contact lists \(RFC 6121\)/);
  t.regex(out, /FAIL chat\.example\.org: message history for every device \(XEP-0313\): module mam is not enabled\n\s+fix: add "mam:" under modules:/);
  t.regex(out, /FAIL chat\.example\.org: audio and video calls through STUN\/TURN \(XEP-0215\): no STUN or TURN server is listed/);
  t.regex(out, /FAIL chat\.example\.org: file links that work away from this machine: the HTTP listeners are on loopback and http\.public_url is not set/);
  t.regex(out, /FAIL chat\.example\.org: contact addresses for abuse reports and support \(XEP-0157\)/);
  t.regex(out, /FAIL chat\.example\.org: chatting with other servers \(federation\): s2s is off/);
  t.regex(out, /FAIL chat\.example\.org: a certificate clients accept: no tls: cert and key/);
  // the default configuration on localhost lacks only what needs the admin's own servers
  const defaults = await workspace(t).cli('check', 'features');
  t.deepEqual(defaults.stdout.split('\n').filter((l) => l.includes('FAIL')).map((l) => l.replace(/:.*/, '').trim()), ['FAIL localhost']);
  t.regex(defaults.stdout, /FAIL localhost: audio and video calls/);
});

/** A root CA, an intermediate it signs, and leaves signed by either, made with openssl. */
function chainOfTrust(dir: string) {
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const file = (name: string) => path.join(dir, name);
  const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl('req', '-x509', ...newKey, '-keyout', file('root.key'), '-out', file('root.crt'), '-days', '30', '-subj', '/CN=xmppd check root',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  fs.writeFileSync(file('ca.ext'), 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n');
  openssl('req', ...newKey, '-keyout', file('inter.key'), '-out', file('inter.csr'), '-subj', '/CN=xmppd check intermediate');
  openssl('x509', '-req', '-in', file('inter.csr'), '-CA', file('root.crt'), '-CAkey', file('root.key'), '-CAcreateserial', '-out', file('inter.crt'), '-days', '30', '-extfile', file('ca.ext'));
  const leaf = (domain: string, issuer: 'root' | 'inter', days: number) => {
    fs.writeFileSync(file(`${domain}.ext`), `subjectAltName=DNS:${domain}\nbasicConstraints=CA:FALSE\n`);
    openssl('req', ...newKey, '-keyout', file(`${domain}.key`), '-out', file(`${domain}.csr`), '-subj', `/CN=${domain}`);
    openssl('x509', '-req', '-in', file(`${domain}.csr`), '-CA', file(`${issuer}.crt`), '-CAkey', file(`${issuer}.key`), '-CAcreateserial', '-out', file(`${domain}.crt`), '-days', String(days), '-extfile', file(`${domain}.ext`));
    return { cert: file(`${domain}.crt`), key: file(`${domain}.key`) };
  };
  return { root: file('root.crt'), intermediate: file('inter.crt'), leaf };
}

test('check certs: names, days left and the chain; a leaf without its intermediate and a certificate about to expire fail', async (t) => {
  const space = workspace(t);
  const pki = chainOfTrust(fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-check-pki-')));
  const full = pki.leaf('full.example.org', 'inter', 20);
  fs.appendFileSync(full.cert, fs.readFileSync(pki.intermediate)); // certbot's fullchain.pem
  const bare = pki.leaf('bare.example.org', 'inter', 20); // certbot's cert.pem: no intermediate
  const soon = pki.leaf('soon.example.org', 'root', 3);
  // the root stands for a public CA through s2s.ca_file, the roots the check trusts besides the system's
  fs.writeFileSync(space.config, `data_dir: ${JSON.stringify(space.dir)}
log: { level: silent }
hosts:
  - { domain: full.example.org, tls: { cert: ${full.cert}, key: ${full.key} } }
  - { domain: bare.example.org, tls: { cert: ${bare.cert}, key: ${bare.key} } }
  - { domain: soon.example.org, tls: { cert: ${soon.cert}, key: ${soon.key} } }
  - { domain: localhost }
s2s: { ca_file: ${pki.root} }
storage: {}
`);
  const result = await space.cli('check', 'certs');
  t.is(result.code, 2, result.stdout + result.stderr);
  const out = result.stdout;
  t.regex(out, /ok   full\.example\.org: names full\.example\.org\n/);
  t.regex(out, /ok   full\.example\.org: valid until \d{4}-\d\d-\d\d \(1[89] days\)/);
  t.regex(out, /ok   full\.example\.org: chain of 2 up to xmppd check root, a root clients know/);
  t.regex(out, /FAIL bare\.example\.org: the chain stops at xmppd check intermediate, which is not a root clients know\n\s+fix: use the file with the intermediate certificates/);
  t.regex(out, /FAIL soon\.example\.org: expires on \d{4}-\d\d-\d\d, in [12] days\n\s+fix: renew it/);
  t.regex(out, /ok   soon\.example\.org: chain of 1 up to xmppd check root/);
  t.regex(out, /ok   localhost: self-signed certificate \(.*localhost\.crt\), fine for a name only this machine uses/);
});

test("cert import takes a host's certificate from certbot's live/ directory; the running server serves it to new connections without dropping the others", async (t) => {
  const pki = chainOfTrust(fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-import-pki-')));
  const issued = pki.leaf('full.example.org', 'inter', 20);
  // certbot's layout: live/<name>/fullchain.pem and privkey.pem
  const live = fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-live-'));
  t.teardown(() => fs.rmSync(live, { recursive: true, force: true }));
  fs.mkdirSync(path.join(live, 'full.example.org'));
  fs.writeFileSync(path.join(live, 'full.example.org', 'fullchain.pem'), Buffer.concat([fs.readFileSync(issued.cert), fs.readFileSync(pki.intermediate)]));
  fs.copyFileSync(issued.key, path.join(live, 'full.example.org', 'privkey.pem'));
  const direct = await freePort();
  const space = workspace(t, (dir, storage) => `data_dir: ${JSON.stringify(dir)}
log: { level: info }
hosts: [{ domain: full.example.org, modules: { proxy65: { port: 0 } } }, { domain: nocert.example.org, modules: { proxy65: false } }]
${storage}
c2s: { listen: [{ host: 127.0.0.1, port: ${direct}, tls: direct }] }
http: { enabled: false }
`);
  await startChild(t, space.config);
  const presented = () => new Promise<tls.TLSSocket>((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: direct, servername: 'full.example.org', rejectUnauthorized: false }, () => resolve(socket));
    socket.once('error', reject);
  });
  const before = await presented();
  t.teardown(() => before.destroy());
  t.not(before.getPeerX509Certificate()?.fingerprint256, new crypto.X509Certificate(fs.readFileSync(issued.cert)).fingerprint256, 'self-signed at first');

  const result = await space.cli('cert', 'import', live);
  t.is(result.code, 2, 'a host was left without a certificate');
  t.regex(result.stdout, new RegExp(`^full\\.example\\.org: imported ${live.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}/full\\.example\\.org/fullchain\\.pem \\(names full\\.example\\.org; valid until \\d{4}-\\d\\d-\\d\\d, 19 days\\)$`, 'm'));
  t.regex(result.stdout, /^nocert\.example\.org: no valid certificate naming it in /m);
  t.regex(result.stdout, /^reloaded: new TLS connections get the imported certificates$/m);
  t.is((fs.statSync(path.join(space.dir, 'certs', 'full.example.org.key')).mode & 0o777), 0o600);

  const after = await presented();
  t.teardown(() => after.destroy());
  t.is(after.getPeerX509Certificate()?.fingerprint256, new crypto.X509Certificate(fs.readFileSync(issued.cert)).fingerprint256);
  t.false(before.destroyed, 'the connection made before the import is still open');
});
