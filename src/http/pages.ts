// Small server-rendered pages (invitations, password reset): an HTML answer under a strict
// Content-Security-Policy, never cached or leaked in a Referer, and a form body read whole.
import type { HttpRequest } from './router.js';
import { HttpError } from './service.js';

/** `headers`: more, or other, headers (the dashboard's framing and referrer rules). */
export function sendPage(request: HttpRequest, status: number, html: string, policy: string, headers: Record<string, string> = {}): void {
  const body = Buffer.from(html, 'utf8');
  request.res.writeHead(status, {
    'Content-Type': 'text/html; charset=utf-8',
    'Content-Length': body.length,
    'Content-Security-Policy': policy,
    'Cache-Control': 'no-store',
    'Referrer-Policy': 'no-referrer',
    'X-Content-Type-Options': 'nosniff',
    ...headers,
  });
  request.res.end(request.req.method === 'HEAD' ? undefined : body);
}

/** An application/x-www-form-urlencoded body of at most `maxBytes`. */
export async function readForm(request: HttpRequest, maxBytes: number): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request.req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) throw new HttpError(413, 'Form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

/** The policy of these pages: inline styles, images from here, forms posting here, nothing else. */
export const PAGE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** A whole page: `title` (escaped here) and `body` (HTML the caller escaped), in the common card style. */
export function pageLayout(title: string, body: string): string {
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
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
