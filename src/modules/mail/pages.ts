// The password reset pages: ask for the account, then (from the mailed link) the new password.
// Plain HTML, no script, under a strict policy (as the invitation pages).
export const PAGE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const escape = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

function layout(title: string, body: string): string {
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escape(title)}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem;color:#1d2a33;background:#f4f6f8}
main{background:#fff;border-radius:12px;padding:1.5rem 2rem;box-shadow:0 1px 4px rgba(0,0,0,.12)}
h1{font-size:1.5rem;margin-top:0}
button{background:#0b7a55;color:#fff;border:0;border-radius:8px;padding:.7rem 1.2rem;font-size:1rem;cursor:pointer}
label{display:block;margin:.8rem 0 .2rem;font-weight:600}
input{width:100%;box-sizing:border-box;padding:.6rem;font-size:1rem;border:1px solid #b8c4cc;border-radius:6px}
.error{background:#fde8e8;color:#8a1c1c;padding:.6rem 1rem;border-radius:6px}
</style></head><body><main>${body}</main></body></html>`;
}

export function requestPage(host: string, message?: string): string {
  return layout('Reset your password', `<h1>Forgot your password?</h1>
${message === undefined ? '' : `<p role="status">${escape(message)}</p>`}
<p>Give your address on ${escape(host)}. If the account has an email address, a link to choose a new password is sent to it.</p>
<form method="post">
<label for="account">Your address</label>
<input id="account" name="account" placeholder="alice@${escape(host)}" autocomplete="username" required>
<p><button type="submit">Send the link</button></p>
</form>`);
}

export function newPasswordPage(jid: string, error?: string): string {
  return layout('Choose a new password', `<h1>A new password for ${escape(jid)}</h1>
${error === undefined ? '' : `<p class="error" role="alert">${escape(error)}</p>`}
<form method="post">
<label for="password">New password</label>
<input id="password" name="password" type="password" autocomplete="new-password" required>
<label for="confirm">New password again</label>
<input id="confirm" name="confirm" type="password" autocomplete="new-password" required>
<p><button type="submit">Set the password</button></p>
</form>`);
}

export function donePage(jid: string): string {
  return layout('Password changed', `<h1>Password changed</h1><p>Log in as ${escape(jid)} with your new password.</p>`);
}

export function invalidLinkPage(): string {
  return layout('Link not valid', `<h1>This link is not valid</h1><p>It was used already or has expired. Ask for a new one.</p>`);
}

export function unavailablePage(): string {
  return layout('Not available', `<h1>Password reset is not available</h1><p>This server does not send mail. Ask its administrator.</p>`);
}
