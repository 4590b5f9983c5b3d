// The invitation landing page (XEP-0401 §5): what the invitation is, the xmpp: link that a
// client installed on this device opens, clients to install, and a form to create the account
// in the browser. Plain HTML with inline styles and no script, under a strict policy.
import { escapeHtml, pageLayout } from '../../http/pages.js';
import type { Invite } from './store.js';

/** Clients that handle invitation links, by platform (as modernxmpp.org recommends). */
const CLIENTS: Array<{ name: string; platform: string; url: string }> = [
  { name: 'Conversations', platform: 'Android', url: 'https://conversations.im/' },
  { name: 'Monal', platform: 'iOS and macOS', url: 'https://monal-im.org/' },
  { name: 'Gajim', platform: 'Windows and Linux', url: 'https://gajim.org/' },
  { name: 'Dino', platform: 'Linux', url: 'https://dino.im/' },
];


export interface LandingView {
  invite: Invite;
  /** The xmpp: URI a client opens (XEP-0401 §4). */
  uri: string;
  /** Whether the form to create an account is offered. */
  canRegister: boolean;
  error?: string;
  username?: string;
}

export function landingPage({ invite, uri, canRegister, error, username }: LandingView): string {
  const who = invite.inviter === null ? '' : `${escapeHtml(invite.inviter)}@${escapeHtml(invite.host)}`;
  const heading = invite.kind === 'contact' ? `${who} invites you to chat` : `You are invited to ${escapeHtml(invite.host)}`;
  const form = canRegister
    ? `<h2>Create your account here</h2>
${error === undefined ? '' : `<p class="error" role="alert">${escapeHtml(error)}</p>`}
<form method="post">
<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" required value="${escapeHtml(invite.username ?? username ?? '')}"${invite.username === null ? '' : ' readonly'}>
<span class="suffix">@${escapeHtml(invite.host)}</span>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="new-password" required>
<label for="confirm">Password again</label>
<input id="confirm" name="confirm" type="password" autocomplete="new-password" required>
<p><button type="submit">Create account</button></p>
</form>`
    : '';
  return pageLayout(heading, `<h1>${heading}</h1>
<p>Open the invitation in a chat app on this device:</p>
<p><a class="button" href="${escapeHtml(uri)}">Open in your app</a></p>
<p>No app yet? Install one, then come back and open the invitation:</p>
<ul>${CLIENTS.map((c) => `<li><a href="${c.url}">${c.name}</a> (${c.platform})</li>`).join('')}</ul>
${form}
<p class="suffix">This invitation works once and expires ${new Date(invite.expiresAt).toUTCString()}.</p>`);
}

export function registeredPage(jid: string, inviter: string | null, webchat: string | null): string {
  return pageLayout('Account created', `<h1>Welcome, ${escapeHtml(jid)}</h1>
<p>Your account is ready. Log in with <code>${escapeHtml(jid)}</code> and your password in any chat app.</p>
${inviter === null ? '' : `<p><strong>${escapeHtml(inviter)}</strong> is already in your contacts.</p>`}
${webchat === null ? '' : `<p><a class="button" href="${escapeHtml(webchat)}">Open the web chat</a></p>`}`);
}

export function goneInvitePage(): string {
  return pageLayout('Invitation not valid', `<h1>This invitation is not valid</h1>
<p>It was used already, was revoked, or has expired. Ask the person who sent it for a new one.</p>`);
}
