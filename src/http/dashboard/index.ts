// The web admin dashboard at /admin/ (http.dashboard): a host's admins log in with their XMPP
// account and see the server (status, charts of the last hour, sessions, users, rooms, storage,
// certificates) and act on it through the same command registry as the CLI, the ad-hoc commands
// and the admin API (src/control/commands.ts). The charts draw samples of the /metrics counters.
//
// Security: loopback listeners and requests from this machine only by default, like the admin
// API (a relayed request, with X-Forwarded-For naming someone elsewhere, gets 403). The password
// is checked against the account's SCRAM keys, under the same login throttle as SASL. Nothing
// changes on GET; every POST needs the login's token and an Origin (or Referer) of this server.
// The pages load nothing but their own stylesheet and script (Content-Security-Policy).
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { verifyPassword, type ScramCredentials } from '../../accounts/credentials.js';
import { commandNamed } from '../../control/commands.js';
import { CommandError, parseArgs, type CertificateStatus, type LiveAdminContext, type RoomInfo, type ServerStatus, type SessionInfo, type StorageUsage } from '../../control/registry.js';
import { parseJid } from '../../core/jid.js';
import { fromLocalAdmin, isLoopbackAddress } from '../forwarded.js';
import { escapeHtml, sendPage as sendPolicedPage } from '../pages.js';
import type { HttpListenerInfo, HttpRequest } from '../router.js';
import type { HttpService } from '../service.js';
import type { DashboardSettings } from '../settings.js';
import { DASHBOARD_CSS, DASHBOARD_JS } from './assets.js';
import { cookieValue, DashboardLogins, randomToken, sameToken, type DashboardLogin } from './logins.js';
import { MetricsSamples } from './samples.js';
import {
  DASHBOARD_POLICY, certificatesPage, chartsFragment, layout, loginPage, overviewPage, roomsPage, sessionsPage, storagePage, usersPage,
  type PageName, type UserRow,
} from './views.js';

export type { DashboardSettings } from '../settings.js';

/** The login throttle of SASL (src/c2s/sasl/throttle.ts), as the dashboard uses it. */
export interface LoginThrottle {
  /** Seconds `address` must wait before it may try `account` again, or 0. */
  blockedFor(address: string, account: string): number;
  /** Counts a failure; ms to hold back the answer. */
  failed(address: string, account: string): number;
  succeeded(address: string, account: string): void;
}

/** What the dashboard needs of the running server (src/app/server.ts has it). */
export interface DashboardServer {
  log: Logger;
  http: HttpService;
  admin: ((hosts?: readonly string[]) => LiveAdminContext) | undefined;
  metrics: { registry: Registry };
  hosts: ReadonlyMap<string, { domain: string; isAdmin(bareJid: string): boolean }>;
  accounts: {
    credentials(host: string, username: string, hash: 'sha256'): Promise<ScramCredentials | null>;
    disabledReason(host: string, username: string): Promise<string | null>;
  };
  authThrottle: LoginThrottle;
}

const SESSION_COOKIE = 'xmppd_dashboard';
/** Before login: the token the login form carries (double submit), so that no other site can log a browser in. */
const LOGIN_COOKIE = 'xmppd_dashboard_login';
/** Users shown at once; a search narrows the list. */
const MAX_USERS_SHOWN = 100;
const FORM_LIMIT = 16 * 1024;

export interface Dashboard {
  samples: MetricsSamples;
  logins: DashboardLogins;
  close(): void;
}

/**
 * An HTML page under the dashboard's policy. Referrer-Policy same-origin, not no-referrer: under
 * no-referrer a browser sends `Origin: null` with the page's own forms, and the Origin check
 * could not tell them from another site's.
 */
function sendPage(request: HttpRequest, status: number, html: string): void {
  sendPolicedPage(request, status, html, DASHBOARD_POLICY, { 'Referrer-Policy': 'same-origin', 'X-Frame-Options': 'DENY' });
}

/**
 * The address the login throttle counts: the peer's, or behind a reverse proxy on this machine
 * (listeners: all) the client it names last in X-Forwarded-For, as for WebSocket logins
 * (src/c2s/websocket.ts): otherwise every guess through the proxy would count against it.
 */
function clientAddress(request: HttpRequest): string {
  const peer = request.req.socket.remoteAddress ?? 'unknown';
  const forwarded = request.req.headers['x-forwarded-for'];
  if (typeof forwarded === 'string' && request.listener.loopback && isLoopbackAddress(peer)) {
    const last = forwarded.split(',').pop()!.trim();
    if (last !== '') return last;
  }
  return peer;
}

export function serveDashboard(server: DashboardServer, settings: DashboardSettings | undefined): Dashboard | undefined {
  if (settings === undefined || !settings.enabled) return undefined;
  const base = settings.path;
  const log = server.log.child({ component: 'dashboard' });
  const samples = new MetricsSamples(server.metrics.registry, settings.sampleInterval, (err) => log.error({ err }, 'sampling the metrics failed'));
  const logins = new DashboardLogins(settings.idleTimeout);
  const onListener = settings.listeners === 'all' ? undefined : (l: HttpListenerInfo) => l.loopback;

  /** The hosts `jid` administers now (the configuration may have changed since the login). */
  const adminHostsOf = (jid: string) => [...server.hosts.values()].filter((h) => h.isAdmin(jid)).map((h) => h.domain);

  const secure = (request: HttpRequest) =>
    request.listener.tls === 'direct' || (request.listener.loopback && request.req.headers['x-forwarded-proto'] === 'https');

  const cookie = (request: HttpRequest, name: string, value: string, maxAge?: number) =>
    `${name}=${value}; Path=${base}/; HttpOnly; SameSite=Strict${secure(request) ? '; Secure' : ''}${maxAge === undefined ? '' : `; Max-Age=${maxAge}`}`;

  const redirect = (request: HttpRequest, to: string, cookies: string[] = []) => {
    request.res.writeHead(303, { Location: to, 'Content-Length': 0, 'Cache-Control': 'no-store', ...(cookies.length > 0 ? { 'Set-Cookie': cookies } : {}) });
    request.res.end();
  };

  const sendText = (request: HttpRequest, status: number, type: string, body: string) => {
    request.res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store', 'Content-Security-Policy': DASHBOARD_POLICY });
    request.res.end(request.req.method === 'HEAD' ? undefined : body);
  };

  /** The form was sent from one of our own pages: its Origin (or Referer) is this server as the browser reached it. */
  const fromOurPage = (request: HttpRequest): boolean => {
    const { headers } = request.req;
    let origin = headers.origin;
    if (origin === undefined && headers.referer !== undefined) {
      try {
        origin = new URL(headers.referer).origin;
      } catch {
        return false;
      }
    }
    if (origin === undefined || origin === 'null') return false;
    const ours = new Set([new URL(request.baseUrl).origin, `${request.listener.tls === 'direct' ? 'https' : 'http'}://${headers.host ?? ''}`]);
    if (request.listener.loopback && (headers['x-forwarded-proto'] === 'https' || headers['x-forwarded-proto'] === 'http')) ours.add(`${headers['x-forwarded-proto']}://${headers.host ?? ''}`);
    return ours.has(origin);
  };

  const readForm = async (request: HttpRequest): Promise<URLSearchParams | undefined> => {
    const type = (request.req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/x-www-form-urlencoded') return undefined;
    return new URLSearchParams((await request.body()).toString('utf8'));
  };

  /** Runs a registry command as `login` on the hosts it administers (commands for the machine's admin only, such as reload, are not offered). */
  const run = async (hosts: readonly string[], name: string, args: Record<string, unknown>): Promise<unknown> => {
    const command = commandNamed(name);
    if (command.access !== 'admin') throw new CommandError(`${name} is for the machine's administrator (xmppd ${name.replace('.', ' ')})`);
    const context = server.admin?.(hosts);
    if (context === undefined) throw new CommandError('admin commands are not available on this server');
    return command.run(context, parseArgs(command, args));
  };

  const page = (request: HttpRequest, login: DashboardLogin, current: PageName, title: string, body: string) => {
    const flash = login.flash;
    delete login.flash;
    sendPage(request, 200, layout(base, title, body, { jid: login.jid, csrf: login.csrf, current, flash }));
  };

  const showLogin = (request: HttpRequest, status: number, error?: string, jid?: string) => {
    let token = cookieValue(request.req.headers.cookie, LOGIN_COOKIE);
    const cookies: string[] = [];
    if (token === undefined || !/^[A-Za-z0-9_-]{43}$/.test(token)) {
      token = randomToken();
      cookies.push(cookie(request, LOGIN_COOKIE, token));
    }
    if (cookies.length > 0) request.res.setHeader('Set-Cookie', cookies);
    sendPage(request, status, loginPage(base, token, error, jid));
  };

  const logIn = async (request: HttpRequest) => {
    const form = await readForm(request);
    const token = cookieValue(request.req.headers.cookie, LOGIN_COOKIE);
    if (form === undefined || !fromOurPage(request) || token === undefined || !sameToken(form.get('csrf'), token)) {
      log.warn({ peer: request.req.socket.remoteAddress, origin: request.req.headers.origin }, 'dashboard login refused: not sent from its own login page');
      return showLogin(request, 403, 'The form has expired; please log in again.');
    }
    const given = (form.get('jid') ?? '').trim();
    const password = form.get('password') ?? '';
    const jid = parseJid(given);
    if (jid === null || jid.local === '' || jid.resource !== '' || !server.hosts.has(jid.domain) || password === '') {
      return showLogin(request, 401, 'Wrong address or password.', given);
    }
    const account = jid.bare;
    const address = clientAddress(request);
    // the throttle of SASL: the same counters, so guesses here and over XMPP add up
    const wait = server.authThrottle.blockedFor(address, account);
    if (wait > 0) {
      // the line fail2ban matches (README), as for SASL
      log.warn({ ip: address, jid: account, wait }, `authentication throttled from ${address} for ${account}`);
      return showLogin(request, 429, `Too many failed attempts; try again in ${wait} s.`, given);
    }
    const credentials = await server.accounts.credentials(jid.domain, jid.local, 'sha256');
    if (credentials === null || !(await verifyPassword(password, credentials, 'sha256'))) {
      const delay = server.authThrottle.failed(address, account);
      log.warn({ ip: address, jid: account }, `authentication failed from ${address} for ${account}`);
      if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay).unref());
      return showLogin(request, 401, 'Wrong address or password.', given);
    }
    server.authThrottle.succeeded(address, account);
    const disabled = await server.accounts.disabledReason(jid.domain, jid.local);
    if (disabled !== null) {
      log.info({ ip: address, jid: account }, 'dashboard login refused: the account is disabled');
      return showLogin(request, 403, 'This account is disabled.', given);
    }
    if (adminHostsOf(account).length === 0) {
      log.warn({ ip: address, jid: account }, 'dashboard login refused: not an admin of any host');
      return showLogin(request, 403, `${account} is not an administrator of this server.`, given);
    }
    const { id } = logins.create(account);
    log.info({ ip: address, jid: account }, 'admin logged in to the dashboard');
    redirect(request, `${base}/`, [cookie(request, SESSION_COOKIE, id), cookie(request, LOGIN_COOKIE, '', 0)]);
  };

  /** POST <base>/<action>: the registry command it stands for, the form fields it takes, the page to go back to. */
  const actions: Record<string, { command: string; fields: string[]; back: PageName; fixed?: Record<string, unknown> }> = {
    'sessions/kick': { command: 'sessions.kick', fields: ['jid'], back: 'sessions', fixed: { reason: 'Disconnected by an administrator' } },
    'users/add': { command: 'user.add', fields: ['jid', 'password'], back: 'users' },
    'users/disable': { command: 'user.disable', fields: ['jid', 'reason'], back: 'users' },
    'users/enable': { command: 'user.enable', fields: ['jid'], back: 'users' },
    'users/password': { command: 'user.passwd', fields: ['jid', 'password'], back: 'users' },
    'rooms/destroy': { command: 'room.destroy', fields: ['room', 'reason'], back: 'rooms' },
  };

  const known = new Set(['', 'charts', 'sessions', 'users', 'rooms', 'storage', 'certificates', 'login', 'logout', 'dashboard.css', 'dashboard.js', ...Object.keys(actions)]);

  const act = async (request: HttpRequest, login: DashboardLogin, hosts: readonly string[], id: string | undefined) => {
    const form = await readForm(request);
    // CSRF: a form of ours, with this login's token, from a page of this server
    if (form === undefined || !sameToken(form.get('csrf'), login.csrf) || !fromOurPage(request)) {
      log.warn({ admin: login.jid, action: request.subpath, origin: request.req.headers.origin }, 'dashboard POST refused: no valid token or foreign origin');
      return sendText(request, 403, 'text/plain; charset=utf-8', 'Refused: this form did not come from the dashboard (reload the page and try again)\n');
    }
    if (request.subpath === 'logout') {
      logins.end(id);
      log.info({ admin: login.jid }, 'admin logged out of the dashboard');
      return redirect(request, `${base}/login`, [cookie(request, SESSION_COOKIE, '', 0)]);
    }
    const action = actions[request.subpath];
    if (action === undefined) return sendText(request, 404, 'text/plain; charset=utf-8', 'Not found\n');
    const args: Record<string, unknown> = { ...action.fixed };
    for (const field of action.fields) {
      const value = form.get(field)?.trim();
      if (value !== undefined && value !== '') args[field] = field === 'password' ? form.get(field) : value;
    }
    const command = commandNamed(action.command);
    try {
      const result = await run(hosts, action.command, args);
      log.info({ admin: login.jid, command: action.command, target: args.jid ?? args.room }, 'dashboard command done');
      login.flash = { kind: 'ok', text: command.format ? command.format(result) : 'done' };
    } catch (err) {
      if (!(err instanceof CommandError)) {
        log.error({ err, admin: login.jid, command: action.command }, 'dashboard command failed');
        login.flash = { kind: 'error', text: 'The command failed (see the server log).' };
      } else {
        login.flash = { kind: 'error', text: err.message };
      }
    }
    redirect(request, `${base}/${action.back}`);
  };

  const show = async (request: HttpRequest, login: DashboardLogin, hosts: readonly string[]) => {
    const sub = request.subpath.replace(/\/$/, '');
    switch (sub) {
      case '':
        return page(request, login, '', 'Overview', overviewPage(base, (await run(hosts, 'status', {})) as ServerStatus, chartsFragment(samples.points(), Date.now(), samples.interval), samples.interval));
      case 'charts':
        return sendText(request, 200, 'text/html; charset=utf-8', chartsFragment(samples.points(), Date.now(), samples.interval));
      case 'sessions':
        return page(request, login, 'sessions', 'Sessions', sessionsPage(base, login.csrf, (await run(hosts, 'sessions.list', {})) as SessionInfo[]));
      case 'users': {
        const query = (request.query.get('q') ?? '').trim().toLowerCase();
        const all = ((await run(hosts, 'user.list', {})) as string[]).filter((jid) => jid.includes(query)).sort();
        const online = new Map<string, number>();
        for (const s of (await run(hosts, 'sessions.list', {})) as SessionInfo[]) {
          const bare = s.jid.split('/')[0]!;
          online.set(bare, (online.get(bare) ?? 0) + 1);
        }
        const rows: UserRow[] = [];
        for (const jid of all.slice(0, MAX_USERS_SHOWN)) {
          const info = (await run(hosts, 'user.info', { jid })) as { created: string; disabled: boolean; reason: string | null };
          rows.push({ jid, created: info.created, disabled: info.disabled, reason: info.reason, online: online.get(jid) ?? 0 });
        }
        return page(request, login, 'users', 'Users', usersPage(base, login.csrf, hosts, rows, all.length, request.query.get('q') ?? ''));
      }
      case 'rooms':
        return page(request, login, 'rooms', 'Rooms', roomsPage(base, login.csrf, (await run(hosts, 'room.list', {})) as RoomInfo[]));
      case 'storage':
        return page(request, login, 'storage', 'Storage', storagePage((await run(hosts, 'storage.usage', {})) as StorageUsage));
      case 'certificates':
        return page(request, login, 'certificates', 'Certificates', certificatesPage((await run(hosts, 'cert.list', {})) as CertificateStatus[]));
      default:
        return sendText(request, 404, 'text/plain; charset=utf-8', 'Not found\n');
    }
  };

  server.http.route({ prefix: base, methods: ['GET', 'POST'], listeners: onListener, maxBodySize: FORM_LIMIT }, async (request) => {
    // a loopback listener is reached by a local reverse proxy too: refuse what it relays
    if (settings.listeners === 'loopback' && !fromLocalAdmin(request.req)) {
      log.warn({ peer: request.req.socket.remoteAddress, forwardedFor: request.req.headers['x-forwarded-for'] }, 'dashboard refused: request relayed for a client elsewhere');
      return sendText(request, 403, 'text/plain; charset=utf-8', 'The dashboard is for this machine only\n');
    }
    const method = request.req.method;
    if (request.path === base) return redirect(request, `${base}/`);
    // what is not the dashboard's is not found, logged in or not (/admin/api when the admin API is off)
    if (!known.has(request.subpath.replace(/\/$/, ''))) return sendText(request, 404, 'text/plain; charset=utf-8', 'Not found\n');
    if (method !== 'POST') {
      if (request.subpath === 'dashboard.css') return sendText(request, 200, 'text/css; charset=utf-8', DASHBOARD_CSS);
      if (request.subpath === 'dashboard.js') return sendText(request, 200, 'text/javascript; charset=utf-8', DASHBOARD_JS);
    }
    if (request.subpath === 'login') {
      if (method === 'POST') return logIn(request);
      if (logins.find(cookieValue(request.req.headers.cookie, SESSION_COOKIE)) !== undefined) return redirect(request, `${base}/`);
      return showLogin(request, 200);
    }
    const id = cookieValue(request.req.headers.cookie, SESSION_COOKIE);
    const login = logins.find(id);
    const hosts = login === undefined ? [] : adminHostsOf(login.jid);
    if (login === undefined || hosts.length === 0) {
      // no login, an ended one, or one whose admin rights were withdrawn since
      if (login !== undefined) {
        log.info({ admin: login.jid }, 'dashboard login ended: no longer an admin');
        logins.endAllOf(login.jid);
      }
      if (method === 'POST') return sendText(request, 403, 'text/plain; charset=utf-8', 'Refused: not logged in\n');
      if (request.subpath === 'charts') return sendText(request, 401, 'text/plain; charset=utf-8', 'Not logged in\n');
      return redirect(request, `${base}/login`);
    }
    if (method === 'POST') return act(request, login, hosts, id);
    try {
      await show(request, login, hosts);
    } catch (err) {
      if (!(err instanceof CommandError)) throw err;
      sendPage(request, 400, layout(base, 'Error', `<div class="flash error">${escapeHtml(err.message)}</div>`));
    }
  });

  samples.start();
  log.info({ path: `${base}/`, listeners: settings.listeners }, 'dashboard served');
  return { samples, logins, close: () => samples.stop() };
}
