// A web chat for the host's users: the Converse.js client (npm package converse.js), served from
// this server at /chat and set up for its WebSocket endpoint, so a browser is all a user needs.
// Everything is served locally (no CDN); the page's Content-Security-Policy keeps it that way.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { z } from 'zod';
import { defineModule } from '../../core/module.js';
import { websocketUrl } from '../../http/endpoints.js';
import { HttpError } from '../../http/service.js';
import type { HttpRequest } from '../../http/router.js';

const gzip = promisify(zlib.gzip);

const CONTENT_TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.ttf': 'font/ttf',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.mp3': 'audio/mpeg',
  '.ogg': 'audio/ogg',
};
const COMPRESSIBLE = new Set(['.js', '.css', '.json', '.map', '.svg', '.wasm']);

/**
 * Scripts only from here; the socket to our own endpoint (ws:/wss: may differ in host behind a
 * proxy); images and media from https too, for files other servers' users share. `uploads` is
 * the origin of this host's upload slots when it is not the page's (the TLS listener, a download
 * domain): Converse PUTs files there and shows them from there.
 */
export function contentSecurityPolicy(uploads?: string): string {
  const extra = uploads === undefined ? '' : ` ${uploads}`;
  return [
    "default-src 'self'",
    "script-src 'self' 'wasm-unsafe-eval'",
    "style-src 'self' 'unsafe-inline'",
    `img-src 'self' data: blob: https:${extra}`,
    `media-src 'self' blob: https:${extra}`,
    `connect-src 'self' ws: wss:${extra}`,
    "font-src 'self'",
    "worker-src 'self' blob:",
    "frame-ancestors 'self'",
    "base-uri 'self'",
  ].join('; ');
}

/** The dist/ folder of the installed converse.js package. */
function converseDist(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = path.join(dir, 'node_modules', 'converse.js', 'dist');
    if (fs.existsSync(path.join(candidate, 'converse.min.js'))) return candidate;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('the converse.js package is not installed (npm install converse.js)');
    dir = parent;
  }
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** JSON that is safe inside a <script> element and a JavaScript file alike. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c');
}

export default defineModule({
  name: 'webchat',
  description: 'Serves the Converse.js web client at /chat, set up for this server',
  implements: [],
  options: z.strictObject({
    /** The page title; default: "Chat on <host>". */
    title: z.string().min(1).optional(),
    /** The WebSocket URL the page connects to; default: the server's own, as the browser reached it. */
    websocket_url: z.string().regex(/^wss?:\/\/\S+$/, { error: 'expected a ws:// or wss:// URL' }).optional(),
  }),
  setup(m) {
    const dist = converseDist();
    const domain = m.host.domain;
    const title = m.options.title ?? `Chat on ${domain}`;
    const gzipped = new Map<string, Promise<Buffer>>();

    const page = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<link rel="icon" href="dist/images/favicon.ico">
<link rel="stylesheet" href="dist/converse.min.css">
<script type="module" src="dist/converse.min.js"></script>
<script type="module" src="init.js"></script>
</head>
<body class="converse-fullscreen">
<noscript>This chat needs JavaScript. Any XMPP app works too: sign in as you@${escapeHtml(domain)}.</noscript>
</body>
</html>
`;

    /** The page's CSP, with the origin upload slots point at (the upload module sets up after us: asked per page). */
    const pagePolicy = (): string => {
      const uploads = m.optional('upload');
      return contentSecurityPolicy(uploads === undefined ? undefined : new URL(uploads.baseUrl()).origin);
    };

    const initScript = (request: HttpRequest) => {
      const settings = {
        websocket_url: m.options.websocket_url ?? websocketUrl(request.baseUrl),
        discover_connection_methods: false,
        view_mode: 'fullscreen',
        // users of this server log in with their user name alone
        locked_domain: domain,
        default_domain: domain,
        allow_registration: m.host.settings.registration === 'open',
        registration_domain: domain,
        ...(m.host.settings.modules.includes('muc') ? { muc_domain: `conference.${domain}` } : {}),
        allow_non_roster_messaging: true,
        // nothing fetched from elsewhere: native emoji, no twemoji CDN
        use_system_emojis: true,
        i18n: 'en',
        show_client_info: false,
        auto_reconnect: true,
      };
      // Converse's own fullscreen footer shows sponsor logos from conversejs.org; a footer of ours
      // defined first takes its place (Converse defines an element only if it is not defined yet)
      const footer =
        "customElements.define('converse-footer', class extends HTMLElement { connectedCallback() { " +
        "this.innerHTML = '<p class=\"text-center subdued py-3\">Web chat by <a href=\"https://conversejs.org\" rel=\"nofollow noopener\" target=\"_blank\">Converse.js</a>, served by xmppd</p>'; } });\n";
      return `// generated by xmppd for ${domain}\n${footer}converse.initialize(Object.assign(${scriptJson(settings)}, { assets_path: new URL('dist/', document.baseURI).href }));\n`;
    };

    const sendText = (request: HttpRequest, type: string, body: string, headers: Record<string, string> = {}) => {
      request.res.writeHead(200, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-cache', ...headers });
      request.res.end(body);
    };

    const sendFile = async (request: HttpRequest, relative: string) => {
      const { req, res } = request;
      // never outside dist/, whatever the path says
      let decoded: string;
      try {
        decoded = decodeURIComponent(relative);
      } catch {
        throw new HttpError(400, 'Bad path');
      }
      const file = path.resolve(dist, decoded);
      if (decoded.includes('\0') || !file.startsWith(dist + path.sep)) throw new HttpError(404, 'Not found');
      const stat = await fs.promises.stat(file).catch(() => null);
      if (stat === null || !stat.isFile()) throw new HttpError(404, 'Not found');
      const ext = path.extname(file).toLowerCase();
      const etag = `"${stat.size.toString(36)}-${Math.floor(stat.mtimeMs).toString(36)}"`;
      res.setHeader('ETag', etag);
      res.setHeader('Cache-Control', 'public, max-age=3600');
      res.setHeader('Content-Type', CONTENT_TYPES[ext] ?? 'application/octet-stream');
      if (req.headers['if-none-match'] === etag) {
        res.writeHead(304).end();
        return;
      }
      const acceptsGzip = /\bgzip\b/.test(req.headers['accept-encoding'] ?? '');
      if (acceptsGzip && COMPRESSIBLE.has(ext) && stat.size > 1024) {
        // compressed once, on first use, and kept: converse.min.js goes from 1.3 MB to ~0.4 MB
        let compressed = gzipped.get(file);
        if (compressed === undefined) {
          compressed = fs.promises.readFile(file).then((data) => gzip(data, { level: 9 }));
          gzipped.set(file, compressed);
          compressed.catch(() => gzipped.delete(file));
        }
        const body = await compressed;
        res.writeHead(200, { 'Content-Encoding': 'gzip', 'Content-Length': body.length, Vary: 'Accept-Encoding' });
        res.end(req.method === 'HEAD' ? undefined : body);
        return;
      }
      res.writeHead(200, { 'Content-Length': stat.size, Vary: 'Accept-Encoding' });
      if (req.method === 'HEAD') {
        res.end();
        return;
      }
      const stream = fs.createReadStream(file);
      stream.on('error', (err) => {
        request.log.error({ err, file }, 'reading a web chat file failed');
        res.destroy();
      });
      stream.pipe(res);
    };

    m.http('/chat', async (request) => {
      const sub = request.subpath;
      if (request.path === '/chat') {
        // relative, so that it also works under a reverse proxy's path prefix
        request.res.writeHead(301, { Location: 'chat/', 'Content-Length': 0 }).end();
        return;
      }
      if (sub === '' || sub === 'index.html') return sendText(request, 'text/html; charset=utf-8', page, { 'Content-Security-Policy': pagePolicy() });
      if (sub === 'init.js') return sendText(request, 'text/javascript; charset=utf-8', initScript(request));
      if (sub.startsWith('dist/')) return sendFile(request, sub.slice('dist/'.length));
      throw new HttpError(404, 'Not found');
    });
  },
});
