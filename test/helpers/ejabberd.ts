// A real ejabberd (Debian's `ejabberd`) for federation interop tests: the Erlang VM started
// directly (not through ejabberdctl, which would switch to the ejabberd user and hide the PID),
// without Erlang distribution (no epmd), with its own config, Mnesia spool and log in a temp dir,
// loopback ports, and stopped by PID. Its resolver (Erlang's inet_res) asks our test DNS server,
// named in an inetrc file. Accounts are made by in-band registration (XEP-0077).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './federation.js';
import { startExternal } from './external-server.js';
import type { Requirement } from './requirements.js';
import { RawClient } from './clients.js';
import type { TestServer } from './server.js';
import { openStream, readElement } from './wire.js';

const ERL = '/usr/bin/erl';
const EJABBERD_LIBS = '/usr/lib/x86_64-linux-gnu';
export const hasEjabberd = fs.existsSync(ERL) && fs.existsSync(EJABBERD_LIBS) && fs.readdirSync(EJABBERD_LIBS).some((name) => name.startsWith('ejabberd-'));
export const ejabberdRequirement: Requirement = { available: hasEjabberd, what: `ejabberd (${ERL} and ${EJABBERD_LIBS}/ejabberd-*)`, debianPackages: 'ejabberd' };

export interface EjabberdServer {
  pid: number;
  c2sPort: number;
  s2sPort: number;
  logFile: string;
  register(username: string, domain: string, password: string): Promise<void>;
  /**
   * `ejabberdctl export_piefxis <dir>` (XEP-0227 files, one per host), run through ejabberd's
   * own command API (mod_http_api: the same command ejabberdctl runs; ejabberdctl itself needs
   * Erlang distribution, which this VM runs without). Needs `api: true`.
   */
  exportPiefxis(dir: string): Promise<void>;
  stop(): Promise<void>;
}

export interface EjabberdHost {
  domain: string;
  cert: string;
  key: string;
}

/** `caFile`: the CAs ejabberd trusts for peers' certificates (then it authenticates them by SASL EXTERNAL). */
export interface EjabberdOptions {
  hosts: EjabberdHost[];
  caFile?: string;
  dnsPort: number;
  /** Passwords stored as SCRAM keys (`auth_password_format: scram`) instead of plain. */
  scram?: boolean;
  /** Module lines added under `modules:`, like `mod_offline: {}`. */
  modules?: string[];
  /** The command API on a loopback HTTP port, for `exportPiefxis`. */
  api?: boolean;
}

export async function startEjabberd(options: EjabberdOptions): Promise<EjabberdServer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-ejabberd-'));
  const c2sPort = await freePort();
  const s2sPort = await freePort();
  const apiPort = options.api ? await freePort() : 0;
  const pems = options.hosts.map((host) => {
    const pem = path.join(dir, `${host.domain}.pem`);
    fs.writeFileSync(pem, fs.readFileSync(host.cert, 'utf8') + fs.readFileSync(host.key, 'utf8'));
    return pem;
  });
  const configFile = path.join(dir, 'ejabberd.yml');
  fs.writeFileSync(
    configFile,
    [
      `hosts: [${options.hosts.map((h) => JSON.stringify(h.domain)).join(', ')}]`,
      `loglevel: info`,
      `certfiles: [${pems.map((p) => JSON.stringify(p)).join(', ')}]`,
      ...(options.caFile ? [`ca_file: ${JSON.stringify(options.caFile)}`] : []),
      `listen:`,
      `  - { port: ${c2sPort}, ip: "127.0.0.1", module: ejabberd_c2s, starttls_required: true }`,
      `  - { port: ${s2sPort}, ip: "127.0.0.1", module: ejabberd_s2s_in }`,
      ...(options.api ? [`  - { port: ${apiPort}, ip: "127.0.0.1", module: ejabberd_http, request_handlers: { /api: mod_http_api } }`] : []),
      `s2s_use_starttls: required`,
      `s2s_access: all`,
      `auth_method: internal`,
      ...(options.scram ? ['auth_password_format: scram'] : []),
      ...(options.api ? ['api_permissions:', '  "loopback admin":', '    from: [ejabberd_ctl, mod_http_api]', '    who: { ip: 127.0.0.1/8 }', '    what: "*"'] : []),
      `registration_timeout: infinity`, // the tests register several accounts from one address
      `access_rules:`,
      `  register: { allow: all }`,
      `modules:`,
      `  mod_roster: {}`,
      `  mod_register: { ip_access: all, access: register }`,
      `  mod_disco: {}`,
      `  mod_ping: {}`,
      `  mod_s2s_dialback: {}`,
      ...(options.modules ?? []).map((line) => `  ${line}`),
      '',
    ].join('\n'),
  );
  const inetrc = path.join(dir, 'inetrc');
  // no /etc/resolv.conf or /etc/hosts: the system's answers would come first
  fs.writeFileSync(inetrc, `{resolv_conf, ""}.\n{hosts_file, ""}.\n{lookup, [dns]}.\n{nameserver, {127,0,0,1}, ${options.dnsPort}}.\n`);
  const logFile = path.join(dir, 'ejabberd.log');
  fs.mkdirSync(path.join(dir, 'spool'));
  const child = await startExternal('ejabberd', ERL, ['-noinput', '-mnesia', 'dir', JSON.stringify(path.join(dir, 'spool')), '-s', 'ejabberd'], {
    env: { ...process.env, EJABBERD_CONFIG_PATH: configFile, EJABBERD_LOG_PATH: logFile, ERL_INETRC: inetrc, ERL_LIBS: EJABBERD_LIBS, HOME: dir },
    readyPort: s2sPort,
    timeoutMs: 30000,
  });
  return {
    pid: child.pid!,
    c2sPort,
    s2sPort,
    logFile,
    async register(username, domain, password) {
      const wire = await RawClient.open({ domain, port: c2sPort } as TestServer);
      try {
        await openStream(wire, domain);
        wire.write(`<iq type='set' id='reg1'><query xmlns='jabber:iq:register'><username>${username}</username><password>${password}</password></query></iq>`);
        const result = await readElement(wire, 'iq', 'reg1');
        if (result.attrs.type !== 'result') throw new Error(`registration failed: ${result.toString()}`);
      } finally {
        wire.close();
      }
    },
    async exportPiefxis(target) {
      if (!options.api) throw new Error('startEjabberd({ api: true }) is needed for export_piefxis');
      const response = await fetch(`http://127.0.0.1:${apiPort}/api/export_piefxis`, { method: 'POST', body: JSON.stringify({ dir: target }) });
      const text = await response.text();
      if (!response.ok) throw new Error(`export_piefxis failed: ${response.status} ${text}`);
    },
    stop: () => child.stop(10000),
  };
}
