// XEP-0363: HTTP File Upload — how clients share pictures and files. A service on its own domain
// (upload.<host>), listed in the host's disco#items, hands out slots: a PUT URL with a one-time
// authorisation and a GET URL to put in the message. The bytes are stored once per content
// (SHA-256, reference-counted), so a picture forwarded to fifty chats costs one copy on disk.
// The HTTP side (PUT/GET) is http.ts, served by the HTTP listener; storage is blobs.ts/store.ts.
import { randomBytes } from 'node:crypto';
import Element from 'ltx/lib/Element.js';
import { z } from 'zod';
import { byteSize, byteSizeOrNever, duration, durationOrNever } from '../../config/units.js';
import type { Jid } from '../../core/jid.js';
import { defineModule } from '../../core/module.js';
import type { Kernel } from '../../core/kernel.js';
import { StanzaError } from '../../core/stanza.js';
import { LocalDiskBlobStore } from './blobs.js';
import { UploadHttpHandler, isValidContentType, tokenHash } from './http.js';
import { UploadStore, uploadMigrations, type Slot } from './store.js';

export const NS_UPLOAD = 'urn:xmpp:http:upload:0';
const NS_DATA = 'jabber:x:data';
/** Where the HTTP listener serves uploads: PUT and GET `/upload/<slot id>/<filename>`. */
const HTTP_PREFIX = '/upload';

/** The uploads of one server process: one store and one HTTP handler for all its hosts. */
export interface UploadService {
  store: UploadStore;
  http: UploadHttpHandler;
  /** Per host: how long files are kept, in ms (null: forever). */
  lifetimes: Map<string, number | null>;
  /** Listeners told of every completed upload (bytes newly stored: 0 when deduplicated). */
  onUpload: Set<(slot: Slot, bytesStored: number) => void>;
  /** Totals since start: uploads, bytes received (also xmppd_upload_bytes_total), bytes new to the store. */
  counters: { files: number; bytesReceived: number; bytesStored: number };
  /** The start-up search for stored files without a database row (see UploadStore.removeOrphans). */
  orphanSweep: Promise<void>;
}

/** What the module offers other modules of its host (the web chat's CSP): where slots point. */
declare module '../../core/module.js' {
  interface Services {
    upload: UploadHostService;
  }
}

export interface UploadHostService {
  /** The base URL of this host's slots (PUT and GET), no trailing slash. */
  baseUrl(): string;
}

const services = new WeakMap<Kernel, Promise<UploadService>>();

/** The server's upload service, if the upload module is enabled on any host (for the HTTP listener). */
export function uploadServiceOf(server: Kernel): Promise<UploadService> | undefined {
  return services.get(server);
}

function sharedService(server: Kernel): Promise<UploadService> {
  let service = services.get(server);
  if (service === undefined) {
    service = (async () => {
      const blobs = new LocalDiskBlobStore(server.settings.uploadsDir);
      await blobs.init();
      const store = new UploadStore(server.db, blobs);
      const log = server.log.child({ module: 'upload' });
      const lifetimes = new Map<string, number | null>();
      const onUpload = new Set<(slot: Slot, bytesStored: number) => void>();
      const counters = { files: 0, bytesReceived: 0, bytesStored: 0 };
      const http = new UploadHttpHandler({
        store,
        log,
        fileLifetime: (host) => lifetimes.get(host) ?? null,
        uploaded: (slot, bytes) => {
          counters.files++;
          counters.bytesReceived += slot.size;
          counters.bytesStored += bytes;
          server.metrics.uploadBytes.inc(slot.size);
          for (const listener of onUpload) listener(slot, bytes);
        },
      });
      // in the background: the server need not wait for a walk over every stored file
      const orphanSweep = store.removeOrphans().then(
        (removed) => void (removed > 0 && log.warn({ removed }, 'deleted stored files no upload referred to (left by a crash)')),
        (err: unknown) => log.error({ err }, 'looking for unreferenced stored files failed'),
      );
      return { store, http, lifetimes, onUpload, counters, orphanSweep };
    })();
    services.set(server, service);
  }
  return service;
}

// Filenames end up in URLs and Content-Disposition headers, never in paths on disk.
const CONTROL_CHARACTERS = /[\x00-\x1f\x7f]/;

/** XEP-0082 date-time in UTC, whole seconds. */
function stamp(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export default defineModule({
  name: 'upload',
  description: 'File sharing: HTTP File Upload (upload.<host>), each content stored once',
  implements: [
    { spec: 'XEP-0363', version: '1.1.0', status: 'complete', note: 'identical files are stored once (SHA-256, reference-counted)' },
    { spec: 'XEP-0128', version: '1.0.1', status: 'complete', note: 'max-file-size in the disco#info of the upload service' },
  ],
  options: z.strictObject({
    /** The service's domain; default upload.<host>. */
    service_domain: z.string().min(1).optional(),
    /** Name shown in service discovery. */
    name: z.string().default('HTTP File Upload'),
    /**
     * The URL files are PUT to and served from, if not the HTTP listener's own /upload at
     * http.public_url (or its TLS listener; plain HTTP for localhost): e.g. a download domain.
     */
    base_url: z.url({ protocol: /^https?$/ }).optional(),
    /** The largest file accepted (announced in disco#info as max-file-size). */
    max_file_size: byteSize().prefault('100MiB'),
    /** What one account's files may take in total, or never (no quota). */
    quota_per_account: byteSizeOrNever().prefault('1GiB'),
    /** All files on the server together (each content counted once), or never (no limit). */
    max_storage: byteSizeOrNever().prefault('never'),
    /** How long a file is kept after its upload, or never (kept until its account is removed). */
    expire_after: durationOrNever().prefault('30d'),
    /** How long a slot's PUT authorisation lasts (XEP-0363 §7 recommends about a minute). */
    slot_lifetime: duration().prefault('5m'),
  }),
  migrations: uploadMigrations,
  // A removed account's files go with it (a stored copy stays while another upload uses it).
  async removeAccountData({ db, host, bareJid, uploadsDir }) {
    await new UploadStore(db, new LocalDiskBlobStore(uploadsDir)).removeOwner(host, bareJid);
  },
  async setup(m) {
    const options = m.options;
    const domain = (options.service_domain ?? `upload.${m.host.domain}`).toLowerCase();
    if (!m.server.http.settings.enabled) {
      // http.enabled: false turns off every HTTP service, this one included (example config)
      m.log.warn({ host: m.host.domain }, 'file upload is off: the HTTP listener is disabled (http.enabled: false)');
      return;
    }
    // the listeners are bound after the modules are set up: ask for their address when needed
    const baseUrl = () => options.base_url?.replace(/\/+$/, '') ?? defaultBaseUrl();
    /**
     * http.public_url, else the TLS listener. On a dev box (the host is localhost) the plain
     * listener instead: clients check the HTTPS certificate (slixmpp's aiohttp, Gajim) and
     * refuse the self-signed one, and a localhost URL never leaves the machine anyway.
     */
    const defaultBaseUrl = (): string => {
      if (m.server.http.settings.publicUrl === undefined && m.host.domain === 'localhost') {
        const plain = m.server.http.addresses().find((listener) => listener.tls === 'none');
        if (plain !== undefined) return `http://localhost:${plain.port}${HTTP_PREFIX}`;
      }
      return m.httpUrl(HTTP_PREFIX);
    };
    m.provide('upload', { baseUrl });
    const service = await sharedService(m.server);
    const { store } = service;
    const fileLifetime = options.expire_after === null ? null : options.expire_after * 1000;
    service.lifetimes.set(m.host.domain, fileLifetime);

    // XEP-0363 §3: identity store/file, the feature, and max-file-size in a XEP-0128 form
    const component = m.component(domain, options.name);
    component.identity('store', 'file', options.name);
    component.feature(NS_UPLOAD);
    component.infoExtension(() => {
      const form = new Element('x', { xmlns: NS_DATA, type: 'result' });
      form.c('field', { var: 'FORM_TYPE', type: 'hidden' }).c('value').t(NS_UPLOAD);
      form.c('field', { var: 'max-file-size' }).c('value').t(String(options.max_file_size));
      return form;
    });
    component.messageRefusal = 'This is a file upload service';

    /** XEP-0363 §4-5: a slot for the file described in `request`, or the error why not. */
    async function requestSlot(request: Element, from: Jid): Promise<Element> {
      // only this host's accounts may upload
      if (from.domain !== m.host.domain || from.local === '') throw new StanzaError('not-allowed', `Only users of ${m.host.domain} may upload files here`);
      const filename = request.attrs.filename ?? '';
      const sizeText = request.attrs.size ?? '';
      const contentType = (request.attrs['content-type'] ?? '').trim();
      if (filename === '' || filename.length > 255 || /[/\\]/.test(filename) || CONTROL_CHARACTERS.test(filename) || filename === '.' || filename === '..') {
        throw new StanzaError('bad-request', 'Invalid filename');
      }
      // an empty file is refused too: it shares nothing, and free slots would cost no quota
      if (!/^\d{1,15}$/.test(sizeText) || Number(sizeText) === 0) throw new StanzaError('bad-request', 'Invalid size: expected a number of bytes');
      if (contentType !== '' && !isValidContentType(contentType)) throw new StanzaError('bad-request', 'Invalid content-type');
      const size = Number(sizeText);
      if (size > options.max_file_size) {
        const tooLarge = new Element('file-too-large', { xmlns: NS_UPLOAD });
        tooLarge.c('max-file-size').t(String(options.max_file_size));
        throw new StanzaError('not-acceptable', `File too large. The maximum file size is ${options.max_file_size} bytes`, 'modify', tooLarge);
      }
      const now = Date.now();
      if (options.quota_per_account !== null) {
        const usage = await store.usage(m.host.domain, from.bare, now);
        if (usage.bytes + size > options.quota_per_account) {
          const text = `Quota reached: your files take ${usage.bytes} of your ${options.quota_per_account} bytes`;
          // a retry time only when some of the account's files will expire and free space
          if (usage.nextExpiry === null || size > options.quota_per_account) throw new StanzaError('resource-constraint', text, 'cancel');
          throw new StanzaError('resource-constraint', text, 'wait', new Element('retry', { xmlns: NS_UPLOAD, stamp: stamp(usage.nextExpiry) }));
        }
      }
      if (options.max_storage !== null && (await store.storageUsed(now)) + size > options.max_storage) {
        m.log.warn({ max_storage: options.max_storage }, 'file storage is full (modules.upload.max_storage)');
        throw new StanzaError('resource-constraint', 'The file storage of this server is full', 'wait');
      }
      const id = randomBytes(18).toString('base64url');
      const token = randomBytes(24).toString('base64url');
      await store.createSlot({
        id,
        host: m.host.domain,
        owner: from.bare,
        filename,
        contentType,
        size,
        tokenHash: tokenHash(token),
        createdAt: now,
        sha256: null,
        uploadedAt: null,
        expiresAt: now + options.slot_lifetime * 1000,
      });
      m.log.info({ slot: id, owner: from.bare, size, contentType }, 'upload slot granted');
      const url = `${baseUrl()}/${id}/${encodeURIComponent(filename)}`;
      const slot = new Element('slot', { xmlns: NS_UPLOAD });
      slot.c('put', { url }).c('header', { name: 'Authorization' }).t(`Bearer ${token}`);
      slot.c('get', { url });
      return slot;
    }

    component.iq('get', NS_UPLOAD, async ({ payload, from }) => {
      if (payload.name !== 'request') throw new StanzaError('service-unavailable');
      try {
        return await requestSlot(payload, from);
      } catch (err) {
        if (err instanceof StanzaError) m.log.info({ from: from.toString(), condition: err.condition, reason: err.text }, 'upload slot refused');
        throw err; // a StanzaError is the answer; anything else is logged and answered internal-server-error
      }
    });
    m.gauge('xmppd_upload_files', 'Uploaded files kept (each upload; identical ones are stored once)', () => store.fileCount(m.host.domain));
    m.http({ prefix: HTTP_PREFIX, methods: ['GET', 'PUT', 'OPTIONS'], maxBodySize: options.max_file_size }, ({ req, res, subpath }) =>
      service.http.handle(req, res, subpath),
    );

    // Expired files and unused slots go in batches; a blob goes with the last file using it.
    let sweeping: Promise<void> | undefined;
    const sweep = async () => {
      for (;;) {
        const { slots, blobsDeleted } = await store.expire(m.host.domain, Date.now());
        if (slots > 0) m.log.info({ slots, blobsDeleted }, 'expired uploads removed');
        if (slots < 500) break;
      }
    };
    const runSweep = () => {
      sweeping ??= sweep()
        .catch((err: unknown) => m.log.error({ err }, 'removing expired uploads failed'))
        .finally(() => (sweeping = undefined));
    };
    // often enough that a file does not outlive its time by much more than a quarter of it
    const period = Math.min(Math.max((options.expire_after ?? options.slot_lifetime) / 4, 1), 600) * 1000;
    const timer = setInterval(runSweep, period);
    timer.unref();
    runSweep();

    m.onStop(async () => {
      clearInterval(timer);
      await service.orphanSweep;
      await sweeping;
      await store.settled();
    });
  },
});
