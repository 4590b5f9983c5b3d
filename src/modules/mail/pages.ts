// The password reset pages: ask for the account, then (from the mailed link) the new password.
// Plain HTML, no script, in the pages' common style and policy (src/http/pages.ts).
import { escapeHtml, pageLayout } from '../../http/pages.js';

export function requestPage(host: string, message?: string): string {
  return pageLayout('Reset your password', `<h1>Forgot your password?</h1>
${message === undefined ? '' : `<p role="status">${escapeHtml(message)}</p>`}
<p>Give your address on ${escapeHtml(host)}. If the account has an email address, a link to choose a new password is sent to it.</p>
<form method="post">
<label for="account">Your address</label>
<input id="account" name="account" placeholder="alice@${escapeHtml(host)}" autocomplete="username" required>
<p><button type="submit">Send the link</button></p>
</form>`);
}

export function newPasswordPage(jid: string, error?: string): string {
  return pageLayout('Choose a new password', `<h1>A new password for ${escapeHtml(jid)}</h1>
${error === undefined ? '' : `<p class="error" role="alert">${escapeHtml(error)}</p>`}
<form method="post">
<label for="password">New password</label>
<input id="password" name="password" type="password" autocomplete="new-password" required>
<label for="confirm">New password again</label>
<input id="confirm" name="confirm" type="password" autocomplete="new-password" required>
<p><button type="submit">Set the password</button></p>
</form>`);
}

export function donePage(jid: string): string {
  return pageLayout('Password changed', `<h1>Password changed</h1><p>Log in as ${escapeHtml(jid)} with your new password.</p>`);
}

export function invalidLinkPage(): string {
  return pageLayout('Link not valid', `<h1>This link is not valid</h1><p>It was used already or has expired. Ask for a new one.</p>`);
}

export function unavailablePage(): string {
  return pageLayout('Not available', `<h1>Password reset is not available</h1><p>This server does not send mail. Ask its administrator.</p>`);
}
