// Who a request is really from, for the admin surfaces (/metrics): a loopback peer may be a
// reverse proxy on this machine relaying someone else (README's nginx config adds
// X-Forwarded-For), so a loopback peer is the local admin only when it forwards nobody else.
import type { IncomingMessage } from 'node:http';

export function isLoopbackAddress(address: string | undefined): boolean {
  return address !== undefined && (address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.'));
}

/**
 * The request comes from this machine and not on behalf of another: the peer is a loopback
 * address, and every client named in X-Forwarded-For or Forwarded (RFC 7239 `for=`) is one
 * too. Any other name (a public address, `unknown`, an obfuscated identifier) is someone else.
 */
export function fromLocalAdmin(req: IncomingMessage): boolean {
  if (!isLoopbackAddress(req.socket.remoteAddress)) return false;
  for (const value of headerValues(req.headers['x-forwarded-for'])) {
    for (const address of value.split(',')) {
      if (!isLoopbackAddress(stripPort(address.trim()))) return false;
    }
  }
  for (const value of headerValues(req.headers.forwarded)) {
    for (const match of value.matchAll(/(?:^|[;,\s])for\s*=\s*("[^"]*"|[^;,\s]*)/gi)) {
      if (!isLoopbackAddress(stripPort(match[1]!.replace(/^"|"$/g, '')))) return false;
    }
  }
  return true;
}

function headerValues(header: string | string[] | undefined): string[] {
  return header === undefined ? [] : Array.isArray(header) ? header : [header];
}

/** `[::1]:8080` → `::1`, `127.0.0.1:8080` → `127.0.0.1`, `::1` stays. */
function stripPort(address: string): string {
  if (address.startsWith('[')) {
    const end = address.indexOf(']');
    return end === -1 ? address : address.slice(1, end);
  }
  const colon = address.indexOf(':');
  return colon !== -1 && colon === address.lastIndexOf(':') ? address.slice(0, colon) : address;
}
