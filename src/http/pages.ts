// Small server-rendered pages (invitations, password reset): an HTML answer under a strict
// Content-Security-Policy, never cached or leaked in a Referer, and a form body read whole.
import type { HttpRequest } from './router.js';
import { HttpError } from './service.js';

export function sendPage(request: HttpRequest, status: number, html: string, policy: string): void {
  const body = Buffer.from(html, 'utf8');
  request.res.writeHead(status, {
    'Content-Type': 'text/html; charset=utf-8',
    'Content-Length': body.length,
    'Content-Security-Policy': policy,
    'Cache-Control': 'no-store',
    'Referrer-Policy': 'no-referrer',
    'X-Content-Type-Options': 'nosniff',
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
