// A real Prosody (Debian's `prosody` package) for federation interop tests: its own config, data
// directory, log and pidfile in a temp dir, loopback ports, in the foreground (-F), stopped by
// PID. Its DNS goes to a test DNS server (Prosody resolves through libunbound, which its
// `unbound = { forward = "127.0.0.1@port" }` option points at our server instead of the system's).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './federation.js';
import { startExternal } from './external-server.js';
import type { Requirement } from './requirements.js';

export const PROSODY = '/usr/bin/prosody';
export const hasProsody = fs.existsSync(PROSODY) && fs.existsSync('/usr/bin/prosodyctl');
export const prosodyRequirement: Requirement = { available: hasProsody, what: `Prosody (${PROSODY})`, debianPackages: 'prosody' };

export interface ProsodyHost {
  domain: string;
  cert: string;
  key: string;
  /** Trust only this CA for peers' certificates (and require them: s2s_secure_auth). */
  cafile?: string;
}

/** A component Prosody runs itself (`Component "domain" "module"`), e.g. a pubsub service. */
export interface ProsodyComponent {
  domain: string;
  /** The Prosody module that serves it: 'pubsub', 'muc'... */
  module: string;
  cert: string;
  key: string;
  /** Extra Lua lines of its section, e.g. 'autocreate_on_publish = true'. */
  settings?: string[];
}

export interface ProsodyServer {
  pid: number;
  c2sPort: number;
  s2sPort: number;
  dir: string;
  /** Its data directory (internal storage: one folder per host, percent-encoded). */
  dataDir: string;
  logFile: string;
  register(username: string, domain: string, password: string): void;
  stop(): Promise<void>;
}

const lua = (s: string) => JSON.stringify(s); // a Lua string literal (JSON escapes are valid Lua)

export interface ProsodyOptions {
  hosts: ProsodyHost[];
  dnsPort: number;
  /** 'internal_hashed' stores SCRAM keys (Prosody's default); the federation tests keep plain passwords. */
  authentication?: 'internal_plain' | 'internal_hashed';
  /** Modules enabled besides the federation tests' few (offline, vcard, private, pep, mam...). */
  modules?: string[];
  components?: ProsodyComponent[];
  admins?: string[];
}

export async function startProsody(options: ProsodyOptions): Promise<ProsodyServer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-prosody-'));
  const c2sPort = await freePort();
  const s2sPort = await freePort();
  const configFile = path.join(dir, 'prosody.cfg.lua');
  const logFile = path.join(dir, 'prosody.log');
  const user = os.userInfo().username;
  const groupId = os.userInfo().gid;
  const group = spawnSync('getent', ['group', String(groupId)], { encoding: 'utf8' }).stdout.split(':')[0] || user;
  fs.mkdirSync(path.join(dir, 'data'));
  fs.writeFileSync(
    configFile,
    [
      // run as whoever runs the tests: no switch to the 'prosody' user, no system paths
      `prosody_user = ${lua(user)}`,
      `prosody_group = ${lua(group)}`,
      `run_as_root = true`, // CI runs as root; Prosody refuses to without this
      `daemonize = false`,
      `pidfile = ${lua(path.join(dir, 'prosody.pid'))}`,
      `data_path = ${lua(path.join(dir, 'data'))}`,
      `certificates = ${lua(dir)}`,
      `interfaces = { "127.0.0.1" }`,
      `c2s_ports = { ${c2sPort} }`,
      `s2s_ports = { ${s2sPort} }`,
      `c2s_direct_tls_ports = { }`,
      `s2s_direct_tls_ports = { }`,
      `http_ports = { }`,
      `https_ports = { }`,
      `use_ipv6 = false`,
      `modules_enabled = { ${['roster', 'saslauth', 'tls', 'dialback', 'disco', 'ping', 'presence', ...(options.modules ?? [])].map(lua).join(', ')} }`,
      `authentication = ${lua(options.authentication ?? 'internal_plain')}`,
      `storage = "internal"`,
      `log = { { levels = { min = "debug" }, to = "file", filename = ${lua(logFile)} } }`,
      `unbound = { resolvconf = false; hoststxt = false; forward = ${lua(`127.0.0.1@${options.dnsPort}`)} }`,
      `s2s_timeout = 10`,
      `admins = { ${(options.admins ?? []).map(lua).join(', ')} }`,
      ...options.hosts.flatMap((host) => [
        `VirtualHost ${lua(host.domain)}`,
        `  ssl = { certificate = ${lua(host.cert)}; key = ${lua(host.key)};${host.cafile ? ` cafile = ${lua(host.cafile)};` : ''} }`,
        `  s2s_secure_auth = ${host.cafile ? 'true' : 'false'}`,
      ]),
      // components load no global module: dialback and TLS for their s2s are named here
      ...(options.components ?? []).flatMap((component) => [
        `Component ${lua(component.domain)} ${lua(component.module)}`,
        `  ssl = { certificate = ${lua(component.cert)}; key = ${lua(component.key)}; }`,
        `  modules_enabled = { "dialback", "tls" }`,
        ...(component.settings ?? []).map((line) => `  ${line}`),
      ]),
    ].join('\n') + '\n',
  );
  const child = await startExternal('prosody', PROSODY, ['--config', configFile, '-F'], { readyPort: c2sPort, timeoutMs: 15000 });
  return {
    pid: child.pid!,
    c2sPort,
    s2sPort,
    dir,
    dataDir: path.join(dir, 'data'),
    logFile,
    register(username, domain, password) {
      const result = spawnSync('/usr/bin/prosodyctl', ['--config', configFile, 'register', username, domain, password], { encoding: 'utf8' });
      if (result.status !== 0) throw new Error(`prosodyctl register failed: ${result.stdout}${result.stderr}`);
    },
    stop: () => child.stop(5000),
  };
}
