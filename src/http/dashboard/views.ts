// The dashboard's pages, rendered on the server. Every value from outside (JIDs, room names,
// client names, reasons, file paths) goes through escapeHtml; attributes are double-quoted.
import { escapeHtml as e } from '../pages.js';
import type { CertificateStatus, RoomInfo, ServerStatus, SessionInfo, StorageUsage } from '../../control/registry.js';
import type { DashboardLogin } from './logins.js';
import { formatNumber, lineChart } from './charts.js';
import type { Point } from './samples.js';

/** default-src 'none': scripts, styles and fetches from the dashboard itself only; no inline script or style. */
export const DASHBOARD_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

export const PAGES = [
  ['', 'Overview'],
  ['sessions', 'Sessions'],
  ['users', 'Users'],
  ['rooms', 'Rooms'],
  ['storage', 'Storage'],
  ['certificates', 'Certificates'],
] as const;

export type PageName = (typeof PAGES)[number][0];

/** The frame of every page: the stylesheet, the script, the navigation, the admin and the logout button. */
export function layout(base: string, title: string, body: string, login?: { jid: string; csrf: string; current: PageName; flash?: DashboardLogin['flash'] }): string {
  const nav = login
    ? `<nav>${PAGES.map(([path, name]) => `<a href="${e(`${base}/${path}`)}"${path === login.current ? ' class="current" aria-current="page"' : ''}>${name}</a>`).join('')}</nav>
<div class="who"><span>${e(login.jid)}</span><form method="post" action="${e(`${base}/logout`)}" class="inline">${csrfField(login.csrf)}<button type="submit">Log out</button></form></div>`
    : '';
  const flash = login?.flash ? `<div class="flash ${login.flash.kind}" role="status">${e(login.flash.text)}</div>` : '';
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${e(title)} · xmppd</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="${e(base)}/dashboard.css">
<script src="${e(base)}/dashboard.js" defer></script>
</head><body>
<header class="top"><span class="brand">xmppd</span>${nav}</header>
<main>${flash}${body}</main>
</body></html>`;
}

export function csrfField(token: string): string {
  return `<input type="hidden" name="csrf" value="${e(token)}">`;
}

export function loginPage(base: string, loginToken: string, error?: string, jid = ''): string {
  return layout(
    base,
    'Log in',
    `<div class="login card">
<h1>Server administration</h1>
<p class="muted">Log in with the XMPP account of an administrator (listed in <code>admins</code> of a host).</p>
${error ? `<div class="flash error" role="alert">${e(error)}</div>` : ''}
<form method="post" action="${e(base)}/login">
${csrfField(loginToken)}
<label for="jid">Address</label><input type="text" id="jid" name="jid" value="${e(jid)}" autocomplete="username" placeholder="admin@example.org" required autofocus>
<label for="password">Password</label><input type="password" id="password" name="password" autocomplete="current-password" required>
<button type="submit">Log in</button>
</form></div>`,
  );
}

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return 'unknown';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : formatNumber(value)} ${units[unit]}`;
}

function duration(seconds: number): string {
  const d = Math.floor(seconds / 86400);
  const h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  if (d > 0) return `${d} d ${h} h`;
  if (h > 0) return `${h} h ${m} min`;
  return m > 0 ? `${m} min ${seconds % 60} s` : `${seconds} s`;
}

function fact(label: string, value: string, id?: string): string {
  return `<div class="fact"${id ? ` id="${e(id)}"` : ''}><div class="label">${e(label)}</div><div class="value">${value}</div></div>`;
}

export function chartsFragment(points: Point[], now: number, intervalSeconds: number): string {
  const common = { points, now, intervalSeconds };
  return [
    lineChart({
      ...common,
      id: 'chart-messages',
      title: 'Messages',
      unit: 'per second',
      series: [
        { name: 'received', className: 's1', value: (p) => p.messagesInPerSecond },
        { name: 'delivered', className: 's2 dashed', value: (p) => p.messagesOutPerSecond },
      ],
    }),
    lineChart({ ...common, id: 'chart-latency', title: 'Delivery latency (mean)', unit: 'ms', series: [{ name: 'latency', className: 's3', value: (p) => p.latencyMs }] }),
    lineChart({ ...common, id: 'chart-connections', title: 'Client connections', unit: 'connections', series: [{ name: 'open', className: 's2', value: (p) => p.connections }] }),
  ].join('\n');
}

export function overviewPage(base: string, status: ServerStatus, charts: string, intervalSeconds: number): string {
  const c = status.connections;
  return `<h1>Overview</h1>
<div class="facts">
${fact('Version', `xmppd ${e(status.version)}`)}
${fact('Uptime', e(duration(status.uptimeSeconds)))}
${fact('Node.js', e(status.node))}
${fact('Database', `${e(status.database.driver)} <span class="muted">${e(status.database.version)}</span>`)}
${fact('TCP clients', String(c.c2s), 'connections-c2s')}
${fact('WebSocket clients', String(c.websocket), 'connections-websocket')}
${fact('Servers (s2s)', String(c.s2s), 'connections-s2s')}
</div>
<h2>The last hour <span class="muted">(a sample every ${intervalSeconds} s)</span></h2>
<div class="charts" id="charts" data-refresh="${intervalSeconds}" data-src="${e(base)}/charts">
${charts}
</div>
<h2>Hosts</h2>
<table><thead><tr><th>Host</th><th class="num">Sessions</th><th>Modules</th></tr></thead><tbody>
${status.hosts.map((h) => `<tr><td><b>${e(h.domain)}</b></td><td class="num">${h.sessions}</td><td class="muted">${e(h.modules.join(', '))}</td></tr>`).join('\n')}
</tbody></table>`;
}

export function sessionsPage(base: string, csrf: string, sessions: SessionInfo[]): string {
  const rows = sessions
    .sort((a, b) => a.jid.localeCompare(b.jid))
    .map(
      (s) => `<tr>
<td><code>${e(s.jid)}</code>${s.client ? `<div class="muted">${e(s.client)}</div>` : ''}</td>
<td class="mono">${e(s.ip)}</td>
<td>${e(s.transport)} ${s.secure ? '<span class="badge ok">TLS</span>' : '<span class="badge warn">plain</span>'}</td>
<td class="when">${e(s.since.replace('T', ' ').replace(/\.\d+Z$/, ' UTC'))}</td>
<td>${s.available ? `<span class="badge ok">available</span>` : '<span class="badge">unavailable</span>'}${s.inactive ? ' <span class="badge">inactive</span>' : ''}${s.sm ? ' <span class="badge">SM</span>' : ''}${s.node ? ` <span class="badge">node ${e(s.node)}</span>` : ''}</td>
<td><form method="post" action="${e(base)}/sessions/kick" class="inline" data-confirm="${e(`Disconnect ${s.jid}?`)}">${csrfField(csrf)}<input type="hidden" name="jid" value="${e(s.jid)}"><button type="submit" class="danger">Kick</button></form></td>
</tr>`,
    )
    .join('\n');
  return `<h1>Sessions <span class="muted">(${sessions.length})</span></h1>
${sessions.length === 0 ? '<p class="muted">Nobody is online.</p>' : `<table id="sessions"><thead><tr><th>Session</th><th>Address</th><th>Transport</th><th>Since</th><th>State</th><th></th></tr></thead><tbody>
${rows}
</tbody></table>`}`;
}

export interface UserRow {
  jid: string;
  created: string;
  disabled: boolean;
  reason: string | null;
  online: number;
}

export function usersPage(base: string, csrf: string, hosts: readonly string[], users: UserRow[], total: number, query: string): string {
  const rows = users
    .map(
      (u) => `<tr>
<td><code>${e(u.jid)}</code></td>
<td class="when">${e(u.created.replace('T', ' ').replace(/Z$/, ' UTC'))}</td>
<td>${u.disabled ? `<span class="badge bad">disabled</span>${u.reason ? ` <span class="muted">${e(u.reason)}</span>` : ''}` : u.online > 0 ? `<span class="badge ok">online (${u.online})</span>` : '<span class="badge">offline</span>'}</td>
<td>${
        u.disabled
          ? `<form method="post" action="${e(base)}/users/enable" class="inline">${csrfField(csrf)}<input type="hidden" name="jid" value="${e(u.jid)}"><button type="submit">Enable</button></form>`
          : `<form method="post" action="${e(base)}/users/disable" class="inline" data-confirm="${e(`Disable ${u.jid}? Its sessions are ended.`)}">${csrfField(csrf)}<input type="hidden" name="jid" value="${e(u.jid)}"><input type="text" name="reason" placeholder="reason (optional)" aria-label="${e(`reason for disabling ${u.jid}`)}"><button type="submit" class="danger">Disable</button></form>`
      }</td>
<td><form method="post" action="${e(base)}/users/password" class="inline">${csrfField(csrf)}<input type="hidden" name="jid" value="${e(u.jid)}"><input type="password" name="password" placeholder="new password" autocomplete="new-password" aria-label="${e(`new password for ${u.jid}`)}" required><button type="submit" class="quiet">Reset password</button></form></td>
</tr>`,
    )
    .join('\n');
  return `<h1>Users <span class="muted">(${total})</span></h1>
<section class="card"><h2>Add a user</h2>
<form method="post" action="${e(base)}/users/add" class="row" id="add-user">${csrfField(csrf)}
<label>Address<input type="text" name="jid" placeholder="${e(`alice@${hosts[0] ?? 'example.org'}`)}" required></label>
<label>Password<input type="password" name="password" autocomplete="new-password" required></label>
<button type="submit">Add</button></form></section>
<form method="get" action="${e(base)}/users" class="row"><label>Search<input type="search" name="q" value="${e(query)}" placeholder="part of an address"></label><button type="submit" class="quiet">Search</button></form>
<p class="muted">${users.length < total ? `Showing ${users.length} of ${total}; search to narrow the list.` : ''}</p>
${users.length === 0 ? '<p class="muted">No accounts.</p>' : `<table id="users"><thead><tr><th>Account</th><th>Created</th><th>State</th><th></th><th></th></tr></thead><tbody>
${rows}
</tbody></table>`}`;
}

export function roomsPage(base: string, csrf: string, rooms: RoomInfo[]): string {
  const rows = rooms
    .sort((a, b) => a.jid.localeCompare(b.jid))
    .map(
      (r) => `<tr><td><code>${e(r.jid)}</code></td><td>${e(r.name)}</td><td class="num">${r.occupants}</td><td>${r.persistent ? '<span class="badge">persistent</span>' : '<span class="badge">temporary</span>'}</td>
<td><form method="post" action="${e(base)}/rooms/destroy" class="inline" data-confirm="${e(`Destroy ${r.jid} with its history?`)}">${csrfField(csrf)}<input type="hidden" name="room" value="${e(r.jid)}"><input type="text" name="reason" placeholder="reason (optional)" aria-label="${e(`reason for destroying ${r.jid}`)}"><button type="submit" class="danger">Destroy</button></form></td></tr>`,
    )
    .join('\n');
  return `<h1>Rooms <span class="muted">(${rooms.length})</span></h1>
${rooms.length === 0 ? '<p class="muted">No group chat rooms.</p>' : `<table id="rooms"><thead><tr><th>Room</th><th>Name</th><th class="num">Occupants</th><th>Kind</th><th></th></tr></thead><tbody>
${rows}
</tbody></table>`}`;
}

function meter(used: number, total: number): string {
  const share = total > 0 ? Math.min(1, used / total) : 0;
  return `<svg class="meter" viewBox="0 0 100 6" preserveAspectRatio="none" role="img" aria-label="${Math.round(share * 100)}% used"><rect class="track" width="100" height="6" rx="3"/><rect class="used${share > 0.9 ? ' warn' : ''}" width="${(share * 100).toFixed(1)}" height="6" rx="3"/></svg>`;
}

export function storagePage(usage: StorageUsage): string {
  const disk = usage.disk;
  const uploads = usage.uploads;
  return `<h1>Storage</h1>
<div class="facts">
${fact('Disk free', disk === null ? 'unknown' : `${e(bytes(disk.freeBytes))} <span class="muted">of ${e(bytes(disk.totalBytes))}</span>${meter(disk.totalBytes - disk.freeBytes, disk.totalBytes)}`, 'disk')}
${fact('Database', `${e(bytes(usage.database.bytes))} <span class="muted">${e(usage.database.driver)}</span>`, 'database-size')}
${fact('Shared files on disk', uploads === null ? '<span class="muted">upload is off</span>' : e(bytes(uploads.storedBytes)), 'uploads-stored')}
${uploads === null ? '' : fact('Uploaded since start', `${uploads.sinceStart.files} files <span class="muted">${e(bytes(uploads.sinceStart.bytesReceived))}</span>`, 'uploads-since-start')}
</div>
<p class="muted">Data directory: <code>${e(usage.dataDir)}</code></p>
${
  uploads === null
    ? ''
    : `<h2>Files shared (HTTP upload) by host</h2>
${uploads.hosts.length === 0 ? '<p class="muted">No files are kept.</p>' : `<table id="uploads"><thead><tr><th>Host</th><th class="num">Files</th><th class="num">Size</th></tr></thead><tbody>
${uploads.hosts.map((h) => `<tr><td>${e(h.host)}</td><td class="num">${h.files}</td><td class="num">${e(bytes(h.bytes))}</td></tr>`).join('\n')}
</tbody></table>`}`
}`;
}

export function certificatesPage(certificates: CertificateStatus[]): string {
  const rows = certificates
    .map((c) => {
      const state =
        c.daysLeft === null || c.problems.length > 0
          ? '<span class="badge bad">problem</span>'
          : c.daysLeft < 14
            ? `<span class="badge warn">${c.daysLeft} days left</span>`
            : `<span class="badge ok">${c.daysLeft} days left</span>`;
      return `<tr><td><b>${e(c.host)}</b></td><td>${state}</td><td class="when">${c.notAfter === null ? '-' : e(c.notAfter.replace('T', ' ').replace(/\.\d+Z$/, ' UTC'))}</td>
<td class="mono">${e(c.names.join(', '))}</td><td><code>${e(c.file)}</code>${c.generated ? ' <span class="badge warn">self-signed</span>' : ''}${c.problems.map((p) => `<div class="muted">${e(p)}</div>`).join('')}</td></tr>`;
    })
    .join('\n');
  return `<h1>Certificates</h1>
<table id="certificates"><thead><tr><th>Host</th><th>State</th><th>Expires</th><th>Names</th><th>File</th></tr></thead><tbody>
${rows}
</tbody></table>
<p class="muted">Renewed files are used by new connections after <code>xmppd reload</code> (or SIGHUP); nobody is disconnected.</p>`;
}
