// The HTTP side of XEP-0363: PUT stores the bytes of a slot, GET/HEAD serve them. Plain
// node:http `(req, res)` handlers over the UploadStore, mounted by the HTTP listener under the
// upload path. Everything a browser could be tricked into running is served so that it cannot
// run: only media and plain text are shown inline, everything else is an attachment, and every
// response forbids scripts (CSP sandbox) and content sniffing.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { BlobTooLarge, type ByteRange } from './blobs.js';
import { SlotAlreadyUsed, type Slot, type UploadStore } from './store.js';

/** What the handlers need from the module (per host options live on the slot's host). */
export interface UploadHttpContext {
  store: UploadStore;
  log: Logger;
  /** How long a file is kept after its upload, in ms, for the slot's host; null: forever. */
  fileLifetime(host: string): number | null;
  /** Called after each completed upload, e.g. for a bytes counter on /metrics. */
  uploaded?(slot: Slot, bytesStored: number): void;
}

/** Slot ids are ours (base64url of 18 random bytes); anything else is not a slot. */
const SLOT_ID = /^[A-Za-z0-9_-]{16,64}$/;

// Types a browser shows inline without running anything in them (no HTML, SVG, XML, PDF...).
// XEP-0363 §8 leaves serving to the implementation; Prosody's mod_http_file_share does the same.
const INLINE_TYPES = new Set([
  'image/png', 'image/jpeg', 'image/gif', 'image/webp', 'image/avif', 'image/bmp', 'image/heic', 'image/heif', 'image/apng',
  'video/mp4', 'video/webm', 'video/ogg', 'video/quicktime', 'video/3gpp', 'video/x-matroska',
  'audio/mpeg', 'audio/mp4', 'audio/ogg', 'audio/opus', 'audio/aac', 'audio/webm', 'audio/wav', 'audio/x-wav', 'audio/flac', 'audio/x-m4a', 'audio/3gpp',
  'text/plain',
]);

// On every response: nothing from this origin may run script, be framed, or be sniffed into
// another type (an "image" that is really HTML stays an image).
const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'; sandbox",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  // a web client on another site shows the pictures (the listener's default is same-site)
  'cross-origin-resource-policy': 'cross-origin',
};

// Web clients (Converse.js) upload and download from another origin (XEP-0363 §4 headers).
const CORS_HEADERS: Readonly<Record<string, string>> = {
  'access-control-allow-origin': '*',
  'access-control-allow-methods': 'GET, HEAD, PUT, OPTIONS',
  'access-control-allow-headers': 'Authorization, Content-Type',
  'access-control-expose-headers': 'Content-Length, Content-Range, Content-Disposition, ETag',
  'access-control-max-age': '86400',
};

// RFC 9110 §8.3.1: type/subtype and optional parameters; nothing that could split a header
const CONTENT_TYPE = /^[\w!#$&^.+-]+\/[\w!#$&^.+-]+(\s*;\s*[\w!#$&^.+-]+=([\w!#$&^.+-]+|"[^"\\\x00-\x1f\x7f]*"))*$/;

export function isValidContentType(contentType: string): boolean {
  return contentType.length <= 255 && CONTENT_TYPE.test(contentType);
}

/** The media type without parameters, lower-cased: `Image/PNG; x=y` → `image/png`. */
export function mediaType(contentType: string): string {
  return contentType.split(';', 1)[0]!.trim().toLowerCase();
}

/** A content type in one canonical spelling, for comparing what was announced with what is PUT. */
export function normaliseContentType(contentType: string): string {
  return contentType
    .split(';')
    .map((part) => part.trim())
    .filter((part) => part !== '')
    .map((part, i) => (i === 0 ? part.toLowerCase() : part.replace(/^([^=]+)=/, (_, name: string) => `${name.toLowerCase()}=`)))
    .join(';');
}

export function isInlineSafe(contentType: string): boolean {
  return INLINE_TYPES.has(mediaType(contentType));
}

/** RFC 6266 `Content-Disposition` with an ASCII fallback and the UTF-8 name (RFC 8187). */
export function contentDisposition(kind: 'inline' | 'attachment', filename: string): string {
  const fallback = filename.replace(/[^\x20-\x7e]|["\\%]/gu, '_');
  const encoded = encodeURIComponent(filename).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `${kind}; filename="${fallback}"; filename*=UTF-8''${encoded}`;
}

/**
 * A single byte range of `size` bytes (RFC 9110 §14.1.2): the range, 'unsatisfiable' (416), or
 * undefined to ignore the header and send everything (absent, malformed or several ranges).
 */
export function parseRange(header: string | undefined, size: number): ByteRange | 'unsatisfiable' | undefined {
  if (header === undefined) return undefined;
  const match = /^bytes=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (match === null) return undefined;
  const [, first, last] = match;
  if (first === '' && last === '') return undefined;
  if (first === '') {
    // suffix range: the last N bytes
    const length = Number(last);
    if (length === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - length), end: size - 1 };
  }
  const start = Number(first);
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  if (last !== '' && Number(last) < start) return undefined; // invalid: ignore it
  if (start >= size) return 'unsatisfiable';
  return { start, end };
}

export function tokenHash(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

function sameHash(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}

export class UploadHttpHandler {
  /** Slots being uploaded to right now: a second PUT meanwhile is a conflict. */
  private readonly uploading = new Set<string>();

  constructor(private readonly context: UploadHttpContext) {}

  /**
   * Handles a request for `<slot id>/<filename>` (the path under the upload mount point, with
   * or without its leading slash). Never throws: failures become HTTP errors and log lines.
   */
  async handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    try {
      for (const [name, value] of Object.entries(CORS_HEADERS)) res.setHeader(name, value);
      for (const [name, value] of Object.entries(SECURITY_HEADERS)) res.setHeader(name, value);
      const id = path.replace(/^\/+/, '').split('/', 1)[0] ?? '';
      switch (req.method) {
        case 'OPTIONS':
          return this.finish(res, 204);
        case 'PUT':
          return await this.put(req, res, id);
        case 'GET':
        case 'HEAD':
          return await this.get(req, res, id);
        default:
          res.setHeader('allow', 'GET, HEAD, PUT, OPTIONS');
          return this.finish(res, 405, 'Method not allowed');
      }
    } catch (err) {
      this.context.log.error({ err, method: req.method, path }, 'upload request failed');
      if (!res.headersSent) this.finish(res, 500, 'Internal server error');
      else res.destroy();
    }
  }

  private finish(res: ServerResponse, status: number, message?: string, close = false): void {
    if (close) res.setHeader('connection', 'close');
    if (message === undefined) {
      res.writeHead(status).end();
      return;
    }
    const body = `${message}\n`;
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) }).end(body);
  }

  /**
   * The disk (or the account's file system quota) is full: RFC 4918 §11.5 507 Insufficient
   * Storage, not a client error, and a log line naming the file that could not be written.
   * The blob store has already removed the partial file.
   */
  private outOfSpace(req: IncomingMessage, res: ServerResponse, slot: Slot, err: NodeJS.ErrnoException): void {
    this.context.log.error({ slot: slot.id, owner: slot.owner, code: err.code, path: err.path, err: err.message }, `upload refused: no space left for ${err.path ?? 'the upload store'}`);
    if (!res.headersSent && !res.destroyed) this.finish(res, 507, 'Insufficient storage on the server; try again later', true);
    req.resume();
  }

  /** A PUT refused before its body is read: answered at once, and the connection closed. */
  private refuse(req: IncomingMessage, res: ServerResponse, status: number, message: string, slot?: Slot): void {
    this.context.log.info({ slot: slot?.id, owner: slot?.owner, status, reason: message }, 'upload refused');
    // Whatever body is still coming is not read: close the connection instead of draining it.
    this.finish(res, status, message, true);
    req.resume();
  }

  private async put(req: IncomingMessage, res: ServerResponse, id: string): Promise<void> {
    const slot = SLOT_ID.test(id) ? await this.context.store.slot(id) : undefined;
    if (slot === undefined) return this.refuse(req, res, 404, 'No such upload slot');
    if (slot.sha256 !== null || this.uploading.has(slot.id)) return this.refuse(req, res, 409, 'This slot has been uploaded to already', slot);

    // The Authorization header the slot told the client to send (XEP-0363 §4)
    const authorization = req.headers.authorization;
    if (authorization === undefined) {
      res.setHeader('www-authenticate', 'Bearer');
      return this.refuse(req, res, 401, 'Authorization required', slot);
    }
    const token = /^Bearer\s+(\S+)$/i.exec(authorization)?.[1] ?? '';
    if (!sameHash(tokenHash(token), slot.tokenHash)) return this.refuse(req, res, 403, 'Invalid upload authorization', slot);
    if (slot.expiresAt !== null && slot.expiresAt <= Date.now()) return this.refuse(req, res, 403, 'Upload authorization expired', slot);

    // XEP-0363 §6: the Content-Length must be the size requested, the Content-Type the one announced
    const lengthHeader = req.headers['content-length'];
    if (lengthHeader === undefined) return this.refuse(req, res, 411, 'Content-Length required', slot);
    const length = /^\d+$/.test(lengthHeader) ? Number(lengthHeader) : NaN;
    if (Number.isNaN(length)) return this.refuse(req, res, 400, 'Bad Content-Length', slot);
    if (length > slot.size) return this.refuse(req, res, 413, `Content-Length ${length} exceeds the slot's ${slot.size} bytes`, slot);
    if (length !== slot.size) return this.refuse(req, res, 400, `Content-Length ${length} is not the slot's ${slot.size} bytes`, slot);
    // Announced: it must be that. Not announced: whatever the PUT says (valid) is kept, or none.
    const sentType = req.headers['content-type']?.trim();
    let contentType = slot.contentType;
    if (slot.contentType !== '') {
      if (sentType === undefined || normaliseContentType(sentType) !== normaliseContentType(slot.contentType)) {
        return this.refuse(req, res, 415, `Content-Type must be ${slot.contentType}, as announced`, slot);
      }
    } else if (sentType !== undefined && sentType !== '') {
      if (!isValidContentType(sentType)) return this.refuse(req, res, 415, 'Invalid Content-Type', slot);
      contentType = sentType;
    }

    this.uploading.add(slot.id);
    try {
      let staged;
      try {
        staged = await this.context.store.blobs.stage(req, slot.size);
      } catch (err) {
        if (err instanceof BlobTooLarge) return this.refuse(req, res, 413, `More than the slot's ${slot.size} bytes`, slot);
        if (isOutOfSpace(err)) return this.outOfSpace(req, res, slot, err);
        // the client went away mid-upload: nothing to answer, nothing kept
        this.context.log.info({ slot: slot.id, owner: slot.owner, err: (err as Error).message }, 'upload interrupted');
        if (!res.headersSent && !res.destroyed) this.finish(res, 400, 'Upload incomplete', true);
        return;
      }
      if (staged.size !== slot.size) {
        await staged.discard();
        return this.refuse(req, res, 400, `Received ${staged.size} of ${slot.size} bytes`, slot);
      }
      const now = Date.now();
      const lifetime = this.context.fileLifetime(slot.host);
      let isNew: boolean;
      try {
        isNew = await this.context.store.completeUpload(slot.id, staged, now, lifetime === null ? null : now + lifetime, contentType);
      } catch (err) {
        if (err instanceof SlotAlreadyUsed) return this.refuse(req, res, 409, 'This slot has been uploaded to already', slot);
        if (isOutOfSpace(err)) {
          await staged.discard();
          return this.outOfSpace(req, res, slot, err);
        }
        throw err;
      }
      this.context.log.info({ slot: slot.id, owner: slot.owner, size: staged.size, sha256: staged.sha256, deduplicated: !isNew }, 'file uploaded');
      this.context.uploaded?.(slot, isNew ? staged.size : 0);
      this.finish(res, 201, 'Created');
    } finally {
      this.uploading.delete(slot.id);
    }
  }

  private async get(req: IncomingMessage, res: ServerResponse, id: string): Promise<void> {
    const slot = SLOT_ID.test(id) ? await this.context.store.slot(id) : undefined;
    const now = Date.now();
    if (slot === undefined || slot.sha256 === null || (slot.expiresAt !== null && slot.expiresAt <= now)) {
      return this.finish(res, 404, 'Not found');
    }
    const sha256 = slot.sha256;
    const etag = `"${sha256}"`;
    const contentType = slot.contentType || 'application/octet-stream';
    const maxAge = slot.expiresAt === null ? 31_536_000 : Math.max(0, Math.floor((slot.expiresAt - now) / 1000));
    res.setHeader('content-type', contentType);
    res.setHeader('content-disposition', contentDisposition(isInlineSafe(contentType) ? 'inline' : 'attachment', slot.filename));
    res.setHeader('etag', etag);
    res.setHeader('last-modified', new Date(slot.uploadedAt ?? slot.createdAt).toUTCString());
    res.setHeader('cache-control', `public, max-age=${maxAge}, immutable`);
    res.setHeader('accept-ranges', 'bytes');

    // RFC 9110 §13.1.2: the content never changes, so a matching ETag is always "not modified"
    const ifNoneMatch = req.headers['if-none-match'];
    if (ifNoneMatch !== undefined && (ifNoneMatch.trim() === '*' || ifNoneMatch.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag))) {
      return this.finish(res, 304);
    }
    // RFC 9110 §13.1.5: a Range with an If-Range that does not match gets the whole file
    const ifRange = req.headers['if-range'];
    const range = ifRange === undefined || String(ifRange).trim() === etag ? parseRange(req.headers.range, slot.size) : undefined;
    if (range === 'unsatisfiable') {
      res.setHeader('content-range', `bytes */${slot.size}`);
      return this.finish(res, 416, 'Range not satisfiable');
    }
    const status = range === undefined ? 200 : 206;
    if (range !== undefined) res.setHeader('content-range', `bytes ${range.start}-${range.end}/${slot.size}`);
    res.setHeader('content-length', range === undefined ? slot.size : range.end - range.start + 1);
    if (req.method === 'HEAD' || slot.size === 0) {
      res.writeHead(status).end();
      return;
    }
    const body = this.context.store.blobs.open(sha256, range);
    await new Promise<void>((resolve) => {
      body.once('open', () => {
        res.writeHead(status);
        body.pipe(res);
      });
      body.once('error', (err) => {
        this.context.log.error({ err, slot: slot.id, sha256 }, 'stored file could not be read');
        if (!res.headersSent) {
          res.removeHeader('content-length');
          res.removeHeader('content-range');
          this.finish(res, 500, 'Stored file unavailable');
        } else res.destroy();
        resolve();
      });
      res.once('close', () => {
        body.destroy();
        resolve();
      });
    });
  }
}

/** No space left on the device, or the file system's quota is used up. */
function isOutOfSpace(err: unknown): err is NodeJS.ErrnoException {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}
