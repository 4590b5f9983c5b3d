// `xmppd cert import <dir>...`: takes each host's certificate from where certbot (or another ACME
// client) keeps it, as `prosodyctl cert import` does: `<dir>/<name>/fullchain.pem` with
// `privkey.pem` (certbot's live/ lineages), or `<dir>/<host>.crt` with `.key`. A certificate is
// taken when it names the host, matches its key and has not expired; the newest wins. It is
// copied to `<data_dir>/certs/<host>.crt` and `.key`, which the server uses for hosts without
// `tls:` in the configuration (in place of its self-signed one); `xmppd reload` then serves it.
import fs from 'node:fs';
import path from 'node:path';
import type { CoreConfig } from '../config/schema.js';
import { certificateCoversHost, loadCertificateInfo, type CertificateInfo } from '../tls/certs.js';

export interface CertImport {
  host: string;
  /** What happened, for the admin. */
  outcome: 'imported' | 'configured' | 'not-found';
  message: string;
}

interface Candidate {
  cert: string;
  key: string;
  info: CertificateInfo;
}

/** The certificate files under `dir` (one level of lineages, and loose pairs). */
function candidatesIn(dir: string): Array<{ cert: string; key: string }> {
  const found: Array<{ cert: string; key: string }> = [];
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return found;
  }
  for (const entry of entries) {
    const full = path.join(dir, entry.name);
    // certbot's live/<name>/ entries are symlinks to ../../archive: follow them
    if (entry.isDirectory() || (entry.isSymbolicLink() && fs.statSync(full, { throwIfNoEntry: false })?.isDirectory())) {
      const cert = path.join(full, 'fullchain.pem');
      const key = path.join(full, 'privkey.pem');
      if (fs.existsSync(cert) && fs.existsSync(key)) found.push({ cert, key });
    } else if (entry.name.endsWith('.crt')) {
      const key = full.slice(0, -'.crt'.length) + '.key';
      if (fs.existsSync(key)) found.push({ cert: full, key });
    }
  }
  return found;
}

export function importCertificates(config: CoreConfig, dirs: readonly string[], now = Date.now()): CertImport[] {
  const candidates: Candidate[] = [];
  for (const dir of dirs) {
    for (const files of candidatesIn(dir)) {
      const info = loadCertificateInfo(files.cert, files.key);
      if (info.problems.length === 0 && info.notAfter.getTime() > now) candidates.push({ ...files, info });
    }
  }
  const target = path.join(config.data_dir, 'certs');
  const results: CertImport[] = [];
  for (const host of config.hosts) {
    if (host.tls !== undefined) {
      results.push({ host: host.domain, outcome: 'configured', message: `uses tls: from the configuration (${host.tls.cert}); not imported` });
      continue;
    }
    const fitting = candidates.filter((c) => certificateCoversHost(c.info.subjectNames, host.domain));
    if (fitting.length === 0) {
      results.push({ host: host.domain, outcome: 'not-found', message: `no valid certificate naming it in ${dirs.join(', ')}` });
      continue;
    }
    const best = fitting.reduce((a, b) => (b.info.notAfter > a.info.notAfter ? b : a));
    install(target, host.domain, best);
    const days = Math.floor((best.info.notAfter.getTime() - now) / 86_400_000);
    results.push({
      host: host.domain,
      outcome: 'imported',
      message: `imported ${best.cert} (names ${best.info.subjectNames.join(', ')}; valid until ${best.info.notAfter.toISOString().slice(0, 10)}, ${days} days)`,
    });
  }
  return results;
}

/** Writes the pair under temporary names and renames, the key readable by its owner only. */
function install(dir: string, domain: string, candidate: Candidate): void {
  fs.mkdirSync(dir, { recursive: true });
  const owner = fs.statSync(path.dirname(dir));
  const suffix = `.${process.pid}.import`;
  const cert = path.join(dir, `${domain}.crt`);
  const key = path.join(dir, `${domain}.key`);
  fs.writeFileSync(key + suffix, fs.readFileSync(candidate.key), { mode: 0o600 });
  fs.writeFileSync(cert + suffix, fs.readFileSync(candidate.cert), { mode: 0o644 });
  // root importing for a server that runs as its own user: the files are that user's, like data_dir
  if (process.getuid?.() === 0) {
    fs.chownSync(key + suffix, owner.uid, owner.gid);
    fs.chownSync(cert + suffix, owner.uid, owner.gid);
  }
  fs.renameSync(key + suffix, key);
  fs.renameSync(cert + suffix, cert);
}
