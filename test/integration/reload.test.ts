// Live reload as an admin does it: the real server process (`xmppd start`), a renewed
// certificate put in place, then `xmppd reload` (or SIGHUP). New TLS handshakes get the new
// certificate while a client connected before stays connected; a broken edit is refused with
// the line of the mistake and the server keeps running on the configuration it had.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import test, { type ExecutionContext } from 'ava';
import { client, type Client } from '@xmpp/client';
import { createTestCa } from '../helpers/test-ca.js';
import { startChild, startedPorts, workspace, type Workspace } from '../helpers/cli.js';
import { watchWire, xml } from '../helpers/clients.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // certificates of throwaway CAs

/** A certificate for localhost from a CA of its own: each call a different one, as a renewal is. */
function newCertificate(t: ExecutionContext): { cert: string; key: string; fingerprint: string } {
  const ca = createTestCa(['localhost']);
  t.teardown(() => fs.rmSync(ca.dir, { recursive: true, force: true }));
  const { cert, key } = ca.certs.localhost!;
  return { cert, key, fingerprint: new crypto.X509Certificate(fs.readFileSync(cert)).fingerprint256 };
}

/** Puts a certificate where the configuration points (what certbot's renewal does). */
function install(ws: Workspace, certificate: { cert: string; key: string }): void {
  fs.copyFileSync(certificate.cert, path.join(ws.dir, 'localhost.crt'));
  fs.copyFileSync(certificate.key, path.join(ws.dir, 'localhost.key'));
}

/** The configuration, one line per entry, so that a test knows the line of each. */
function configLines(dir: string, storage: string, extra: string[] = []): string[] {
  return [
    `data_dir: ${JSON.stringify(dir)}`,
    'log:',
    '  level: info',
    'hosts:',
    '  - domain: localhost',
    '    registration: closed',
    '    modules: { proxy65: { port: 0 } }  # the file transfer proxy on a free port',
    '    tls:',
    `      cert: ${path.join(dir, 'localhost.crt')}`,
    `      key: ${path.join(dir, 'localhost.key')}`,
    'http:',
    '  enabled: false',
    's2s:',
    '  enabled: false',
    'c2s:',
    '  listen:',
    '    - { host: 127.0.0.1, port: 0, tls: starttls }',
    '    - { host: 127.0.0.1, port: 0, tls: direct }',
    ...extra,
    storage,
  ];
}

/** The fingerprint of the certificate a new direct TLS connection is shown. */
function certificateSeen(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false, ALPNProtocols: ['xmpp-client'] }, () => {
      const fingerprint = socket.getPeerCertificate().fingerprint256;
      socket.destroy();
      resolve(fingerprint);
    });
    socket.once('error', reject);
  });
}

async function aliceOnline(t: ExecutionContext, port: number): Promise<{ xmpp: Client; disconnected: () => boolean }> {
  const xmpp = client({ service: `xmpp://127.0.0.1:${port}`, domain: 'localhost', username: 'alice', password: 'secret', resource: 'phone', timeout: 20_000 }); // a loaded machine is slow, not wrong
  watchWire(xmpp, "alice's @xmpp/client", 'stream');
  let disconnected = false;
  xmpp.on('error', () => undefined);
  xmpp.on('disconnect', () => (disconnected = true));
  // registered before the start: a client that failed to start must not keep reconnecting
  t.teardown(async () => {
    (xmpp as unknown as { reconnect?: { stop(): void } }).reconnect?.stop();
    await xmpp.stop().catch(() => undefined);
  });
  await xmpp.start();
  return { xmpp, disconnected: () => disconnected };
}

const pingServer = (xmpp: Client) => xmpp.iqCaller.request(xml('iq', { type: 'get', to: 'localhost' }, xml('ping', { xmlns: 'urn:xmpp:ping' })));

test('xmppd reload: a renewed certificate is used by new TLS connections at once; a connected client stays', async (t) => {
  const first = newCertificate(t);
  const renewed = newCertificate(t);
  const ws = workspace(t, (dir, storage) => configLines(dir, storage).join('\n') + '\n');
  install(ws, first);
  t.is((await ws.cli('user', 'add', 'alice@localhost', '--password', 'secret')).code, 0);
  const { server } = await startChild(t, ws.config);
  const ports = startedPorts(server.output());
  const alice = await aliceOnline(t, ports.starttls);
  t.is(await certificateSeen(ports.direct), first.fingerprint);

  install(ws, renewed);
  // the admin also opens registration and raises a limit, and changes what needs a restart
  fs.writeFileSync(ws.config, fs.readFileSync(ws.config, 'utf8').replace('registration: closed', 'registration: open').replace('s2s:\n  enabled: false', 's2s:\n  enabled: true'));
  const reloaded = await ws.cli('reload');

  t.is(reloaded.code, 0, reloaded.stderr);
  t.regex(reloaded.stdout, /^reloaded .*xmppd\.yml$/m);
  t.regex(reloaded.stdout, /^applied: certificates of localhost read again/m);
  t.regex(reloaded.stdout, /^applied: localhost: registration closed → open$/m);
  t.regex(reloaded.stdout, /^needs a restart: s2s\.enabled$/m);
  t.is(await certificateSeen(ports.direct), renewed.fingerprint, 'a new handshake gets the renewed certificate');
  await pingServer(alice.xmpp);
  t.false(alice.disconnected(), 'the client connected before the reload is still connected');
});

test('SIGHUP reloads like xmppd reload; a broken edit is refused with its line, by both, and the server keeps running', async (t) => {
  const first = newCertificate(t);
  const renewed = newCertificate(t);
  const ws = workspace(t, (dir, storage) => configLines(dir, storage).join('\n') + '\n');
  install(ws, first);
  t.is((await ws.cli('user', 'add', 'alice@localhost', '--password', 'secret')).code, 0);
  const { child, server } = await startChild(t, ws.config);
  const ports = startedPorts(server.output());
  const alice = await aliceOnline(t, ports.starttls);

  // a typo (line 7) and a value of the wrong type (line 20)
  const lines = configLines(ws.dir, '', ['  max_stanza_size: huge']);
  lines.splice(6, 0, '    registraton: open');
  const good = fs.readFileSync(ws.config, 'utf8');
  fs.writeFileSync(ws.config, lines.join('\n') + '\n' + good.split('\n').filter((l) => l.startsWith('storage:')).join('\n') + '\n');
  const refused = await ws.cli('reload');
  t.is(refused.code, 1);
  t.regex(refused.stderr, /was not reloaded; the running configuration is kept/);
  t.true(refused.stderr.includes(`${ws.config}:7:`), refused.stderr);
  t.regex(refused.stderr, /hosts\[0\]\.registraton: unknown option/);
  t.true(refused.stderr.includes(`${ws.config}:20:`), refused.stderr);

  child.kill('SIGHUP');
  await server.waitFor('SIGHUP: configuration not reloaded');
  t.is(child.exitCode, null, 'still running');
  await pingServer(alice.xmpp);
  t.is(await certificateSeen(ports.direct), first.fingerprint);

  // fixed, and the certificate renewed: SIGHUP applies it
  fs.writeFileSync(ws.config, good);
  install(ws, renewed);
  child.kill('SIGHUP');
  await server.waitFor('SIGHUP: configuration reloaded');
  t.is(await certificateSeen(ports.direct), renewed.fingerprint);
  await pingServer(alice.xmpp);
  t.false(alice.disconnected());
  t.is((await ws.cli('status')).code, 0);
});

test('xmppd reload starts, stops and reconfigures modules; a connected client sees the change and stays', async (t) => {
  const certificate = newCertificate(t);
  const modules = (entries: string[]) => ['modules:', ...entries.map((entry) => `  ${entry}`)];
  const ws = workspace(t, (dir, storage) => configLines(dir, storage, modules(['roster:', 'presence:', 'disco:', 'ping:'])).join('\n') + '\n');
  install(ws, certificate);
  t.is((await ws.cli('user', 'add', 'alice@localhost', '--password', 'secret')).code, 0);
  const { server } = await startChild(t, ws.config);
  const alice = await aliceOnline(t, startedPorts(server.output()).starttls);
  const ask = (payload: ReturnType<typeof xml>) => alice.xmpp.iqCaller.request(xml('iq', { type: 'get', to: 'localhost' }, payload)).then(
    (reply) => reply.attrs.type as string,
    (err: { condition?: string }) => err.condition ?? 'error',
  );
  const version = () => ask(xml('query', { xmlns: 'jabber:iq:version' }));
  const ping = () => ask(xml('ping', { xmlns: 'urn:xmpp:ping' }));
  t.is(await version(), 'service-unavailable');

  // version on, ping off, disco with contact addresses (and what depends on disco set up again)
  const edited = fs.readFileSync(ws.config, 'utf8').replace(/^modules:[\s\S]*?(?=\nstorage:)/m, modules(['roster:', 'presence:', 'disco: { contact: { abuse: [ "mailto:abuse@localhost" ] } }', 'version: { show_os: true }']).join('\n'));
  fs.writeFileSync(ws.config, edited);
  const reloaded = await ws.cli('reload');
  t.is(reloaded.code, 0, reloaded.stderr);
  t.regex(reloaded.stdout, /^applied: localhost: modules started: version$/m);
  t.regex(reloaded.stdout, /^applied: localhost: modules stopped: ping$/m);
  t.regex(reloaded.stdout, /^applied: localhost: modules set up again with their new options: disco$/m);
  t.notRegex(reloaded.stdout, /needs a restart: localhost: modules/);

  t.is(await version(), 'result');
  t.is(await ping(), 'service-unavailable');
  const info = await alice.xmpp.iqCaller.request(xml('iq', { type: 'get', to: 'localhost' }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' })));
  const form = info.getChild('query')?.getChildren('x').find((x) => x.getChildren('field').some((f) => f.getChildText('value') === 'http://jabber.org/network/serverinfo'));
  t.truthy(form, 'the contact addresses are in disco#info');
  t.true(info.getChild('query')!.getChildren('feature').some((f) => f.attrs.var === 'jabber:iq:version'));
  t.false(info.getChild('query')!.getChildren('feature').some((f) => f.attrs.var === 'urn:xmpp:ping'), 'ping no longer advertised');
  t.false(alice.disconnected(), 'the client connected before the reload is still connected');
});

test('a reload that withdraws an admin ends their dashboard login at their next request; restoring the right does not bring it back', async (t) => {
  const certificate = newCertificate(t);
  const withAdmins = (admins: string) => (dir: string, storage: string) =>
    configLines(dir, storage)
      .join('\n')
      .replace('    registration: closed', `    registration: closed\n    admins: ${admins}`)
      .replace('http:\n  enabled: false', 'http:\n  listen: [{ host: 127.0.0.1, port: 0, tls: none }]') + '\n';
  const ws = workspace(t, withAdmins('[boss@localhost]'));
  install(ws, certificate);
  t.is((await ws.cli('user', 'add', 'boss@localhost', '--password', 'secret')).code, 0);
  const { server } = await startChild(t, ws.config);
  const startLine = server.output().split('\n').find((l) => l.includes('"xmppd started"'))!;
  const origin = `http://127.0.0.1:${(JSON.parse(startLine) as { http: Array<{ port: number }> }).http[0]!.port}`;

  // the login form's token (double submit), then the login
  const form = await fetch(`${origin}/admin/login`);
  const loginToken = /xmppd_dashboard_login=([^;]+)/.exec(form.headers.get('set-cookie') ?? '')![1]!;
  const loggedIn = await fetch(`${origin}/admin/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { Cookie: `xmppd_dashboard_login=${loginToken}`, Origin: origin, 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ csrf: loginToken, jid: 'boss@localhost', password: 'secret' }).toString(),
  });
  const cookie = `xmppd_dashboard=${/xmppd_dashboard=([^;]+)/.exec(loggedIn.headers.getSetCookie().join('\n'))![1]!}`;
  const sessionsPage = () => fetch(`${origin}/admin/sessions`, { redirect: 'manual', headers: { Cookie: cookie } });
  t.is((await sessionsPage()).status, 200, 'logged in');

  const rewrite = (admins: string) => fs.writeFileSync(ws.config, withAdmins(admins)(ws.dir, fs.readFileSync(ws.config, 'utf8').split('\n').find((l) => l.startsWith('storage:'))!));
  rewrite('[]');
  const reloaded = await ws.cli('reload');
  t.is(reloaded.code, 0, reloaded.stderr);
  const refused = await sessionsPage();
  t.is(refused.status, 303);
  t.is(refused.headers.get('location'), '/admin/login');
  await server.waitFor('dashboard login ended: no longer an admin');

  rewrite('[boss@localhost]');
  t.is((await ws.cli('reload')).code, 0);
  t.is((await sessionsPage()).status, 303, 'the ended login stays ended: the admin logs in again');
});
