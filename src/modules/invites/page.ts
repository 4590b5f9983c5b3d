// The invitation landing page (XEP-0401 §5): what the invitation is, the xmpp: link that a
// client installed on this device opens, clients to install, and a form to create the account
// in the browser. Plain HTML with inline styles and no script, under a strict policy.
import type { Invite } from './store.js';

export const PAGE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const escape = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** Clients that handle invitation links, by platform (as modernxmpp.org recommends). */
const CLIENTS: Array<{ name: string; platform: string; url: string }> = [
  { name: 'Conversations', platform: 'Android', url: 'https://conversations.im/' },
  { name: 'Monal', platform: 'iOS and macOS', url: 'https://monal-im.org/' },
  { name: 'Gajim', platform: 'Windows and Linux', url: 'https://gajim.org/' },
  { name: 'Dino', platform: 'Linux', url: 'https://dino.im/' },
];

function layout(title: string, body: string): string {
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escape(title)}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem;color:#1d2a33;background:#f4f6f8}
main{background:#fff;border-radius:12px;padding:1.5rem 2rem;box-shadow:0 1px 4px rgba(0,0,0,.12)}
h1{font-size:1.5rem;margin-top:0}
a.button,button{display:inline-block;background:#0b7a55;color:#fff;border:0;border-radius:8px;padding:.7rem 1.2rem;font-size:1rem;text-decoration:none;cursor:pointer}
label{display:block;margin:.8rem 0 .2rem;font-weight:600}
input{width:100%;box-sizing:border-box;padding:.6rem;font-size:1rem;border:1px solid #b8c4cc;border-radius:6px}
.suffix{color:#556;font-size:.9rem}
.error{background:#fde8e8;color:#8a1c1c;padding:.6rem 1rem;border-radius:6px}
ul{padding-left:1.2rem}
code{background:#eef1f3;padding:.1rem .3rem;border-radius:4px;word-break:break-all}
</style></head><body><main>${body}</main></body></html>`;
}

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
  const who = invite.inviter === null ? '' : `${escape(invite.inviter)}@${escape(invite.host)}`;
  const heading = invite.kind === 'contact' ? `${who} invites you to chat` : `You are invited to ${escape(invite.host)}`;
  const form = canRegister
    ? `<h2>Create your account here</h2>
${error === undefined ? '' : `<p class="error" role="alert">${escape(error)}</p>`}
<form method="post">
<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" required value="${escape(invite.username ?? username ?? '')}"${invite.username === null ? '' : ' readonly'}>
<span class="suffix">@${escape(invite.host)}</span>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="new-password" required>
<label for="confirm">Password again</label>
<input id="confirm" name="confirm" type="password" autocomplete="new-password" required>
<p><button type="submit">Create account</button></p>
</form>`
    : '';
  return layout(heading, `<h1>${heading}</h1>
<p>Open the invitation in a chat app on this device:</p>
<p><a class="button" href="${escape(uri)}">Open in your app</a></p>
<p>No app yet? Install one, then come back and open the invitation:</p>
<ul>${CLIENTS.map((c) => `<li><a href="${c.url}">${c.name}</a> (${c.platform})</li>`).join('')}</ul>
${form}
<p class="suffix">This invitation works once and expires ${new Date(invite.expiresAt).toUTCString()}.</p>`);
}

export function registeredPage(jid: string, inviter: string | null, webchat: string | null): string {
  return layout('Account created', `<h1>Welcome, ${escape(jid)}</h1>
<p>Your account is ready. Log in with <code>${escape(jid)}</code> and your password in any chat app.</p>
${inviter === null ? '' : `<p><strong>${escape(inviter)}</strong> is already in your contacts.</p>`}
${webchat === null ? '' : `<p><a class="button" href="${escape(webchat)}">Open the web chat</a></p>`}`);
}

export function goneInvitePage(): string {
  return layout('Invitation not valid', `<h1>This invitation is not valid</h1>
<p>It was used already, was revoked, or has expired. Ask the person who sent it for a new one.</p>`);
}
