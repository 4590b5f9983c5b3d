// Reads XEP-0227 (Portable Import/Export, 1.1) files into the import sink, streaming: the file is
// fed to our stream parser piece by piece, with <host/>, <user/>, <offline-messages/>, the MAM
// <archive/> and PEP's <pubsub/> and <items/> read as containers (their children come one at a
// time), so memory holds one piece of a user's data, never a host. XInclude'd files (§5, what
// `ejabberdctl export_piefxis` writes) are read where they are included.
import fs from 'node:fs';
import path from 'node:path';
import type Element from 'ltx/lib/Element.js';
import { StreamParser } from '../xml/parser.js';
import type { ImportedCredentials } from '../accounts/store.js';
import type { RosterItem } from '../modules/roster/store.js';
import { NS_PUBSUB, NS_PUBSUB_OWNER } from '../modules/pubsub/ns.js';
import { ImportError, scramFromBase64, type AccountSecret, type ImportSink } from './sink.js';

export const NS_PIE = 'urn:xmpp:pie:0';
/** The namespace of XEP-0227 before 1.0, still in older exports. */
export const NS_PIE_OLD = 'http://www.xmpp.org/extensions/xep-0227.html#ns';
export const NS_PIE_SCRAM = 'urn:xmpp:pie:0#scram';
export const NS_PIE_MAM = 'urn:xmpp:pie:0#mam';
export const NS_XINCLUDE = 'http://www.w3.org/2001/XInclude';
const NS_MAM = 'urn:xmpp:mam:2';
const NS_FORWARD = 'urn:xmpp:forward:0';
const NS_DELAY = 'urn:xmpp:delay';

/** A user's data can hold a vCard with a photo: pieces up to this size are read whole. */
const MAX_PIECE_BYTES = 64 * 1024 * 1024;
const MAX_INCLUDE_DEPTH = 8;
const READ_CHUNK = 64 * 1024;

type Kind = 'server-data' | 'host' | 'user' | 'offline' | 'archive' | 'pubsub' | 'pubsub-owner' | 'items';

interface Frame {
  kind: Kind;
  /** host: its JID; null when this server does not serve it (its users are skipped) */
  host?: string | null;
  /** user: the account's name; null when it is not imported (exists already, bad name) */
  username?: string | null;
  credentials?: ImportedCredentials;
  /** items: the PEP node */
  node?: string;
}

type Event =
  | { type: 'open'; kind: Kind; attrs: Record<string, string>; line: number }
  | { type: 'close'; line: number }
  | { type: 'piece'; element: Element; line: number };

const localName = (name: string) => name.slice(name.indexOf(':') + 1);

/** Which container an element opening under `parent` is, if it is one. */
function containerKind(parent: Kind | undefined, name: string, attrs: Record<string, string>): Kind | null {
  const local = localName(name);
  if (parent === 'server-data' && local === 'host') return 'host';
  if (parent === 'host' && local === 'user') return 'user';
  if (parent === 'user') {
    if (local === 'offline-messages') return 'offline';
    if (local === 'archive' && attrs.xmlns === NS_PIE_MAM) return 'archive';
    if (local === 'pubsub' && attrs.xmlns === NS_PUBSUB) return 'pubsub';
    if (local === 'pubsub' && attrs.xmlns === NS_PUBSUB_OWNER) return 'pubsub-owner';
  }
  if (parent === 'pubsub' && local === 'items') return 'items';
  return null;
}

/** What a file's root may be where it is read: the top file a <server-data/>, an included one what fits. */
function rootKind(parent: Kind | undefined, name: string): Kind | null {
  const local = localName(name);
  if (parent === undefined) return local === 'server-data' ? 'server-data' : null;
  return containerKind(parent, local, {}) ?? null;
}

export class Xep227Reader {
  private readonly stack: Frame[] = [];

  constructor(private readonly sink: ImportSink) {}

  /** Reads a whole export (its main file, and what it includes). */
  async read(file: string): Promise<void> {
    await this.readFile(file, 0);
  }

  private async readFile(file: string, depth: number): Promise<void> {
    const events: Event[] = [];
    let line = 1;
    let failure: string | null = null;
    let ended = false;
    const kinds: Kind[] = this.stack.map((f) => f.kind);
    const baseDepth = kinds.length;
    const parser = new StreamParser(
      {
        onStreamStart: (name, attrs) => {
          const kind = rootKind(kinds.at(-1), name);
          if (kind === null) {
            failure = baseDepth === 0 ? `the root element is <${name}>, not XEP-0227's <server-data/>` : `<${name}> cannot be included here`;
            return;
          }
          if (kind === 'server-data' && attrs.xmlns !== NS_PIE && attrs.xmlns !== NS_PIE_OLD) {
            failure = `<server-data/> is in namespace "${attrs.xmlns ?? ''}", not XEP-0227's ${NS_PIE}`;
            return;
          }
          kinds.push(kind);
          events.push({ type: 'open', kind, attrs, line });
        },
        openContainer: (name, attrs) => {
          const kind = containerKind(kinds.at(-1), name, attrs);
          if (kind === null) return false;
          kinds.push(kind);
          events.push({ type: 'open', kind, attrs, line });
          return true;
        },
        closeContainer: () => {
          kinds.pop();
          events.push({ type: 'close', line });
        },
        onStanza: (element) => events.push({ type: 'piece', element, line }),
        onStreamEnd: () => {
          ended = true;
          kinds.pop();
          events.push({ type: 'close', line });
        },
        onParseError: (condition, text) => {
          failure = `${condition === 'restricted-xml' ? 'XML this reader refuses' : 'not well-formed XML'}: ${text}`;
        },
      },
      MAX_PIECE_BYTES,
    );
    const where = () => `${file}:${line}`;
    let handle: fs.promises.FileHandle;
    try {
      handle = await fs.promises.open(file, 'r');
    } catch (err) {
      throw new ImportError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    try {
      const decoder = new TextDecoder('utf-8', { fatal: true });
      const buffer = Buffer.alloc(READ_CHUNK);
      for (;;) {
        const { bytesRead } = await handle.read(buffer, 0, READ_CHUNK, null);
        let text: string;
        try {
          text = decoder.decode(buffer.subarray(0, bytesRead), { stream: bytesRead > 0 });
        } catch {
          throw new ImportError(`${where()}: invalid UTF-8`);
        }
        // fed line by line, so that a problem is told with its line
        let from = 0;
        while (from < text.length) {
          const nl = text.indexOf('\n', from);
          const end = nl === -1 ? text.length : nl + 1;
          parser.write(text.slice(from, end));
          if (failure !== null) throw new ImportError(`${where()}: ${failure}`);
          if (nl !== -1) line++;
          from = end;
        }
        for (const event of events.splice(0)) await this.handle(event, file, depth);
        if (bytesRead === 0) break;
      }
    } finally {
      await handle.close();
    }
    if (!ended) throw new ImportError(`${where()}: the file ends before its root element is closed (cut short?)`);
  }

  private async handle(event: Event, file: string, depth: number): Promise<void> {
    const at = `${file}:${event.line}`;
    if (event.type === 'close') {
      this.stack.pop();
      return;
    }
    const parent = this.stack.at(-1);
    if (event.type === 'open') {
      this.stack.push(await this.open(event.kind, event.attrs, parent, at));
      return;
    }
    const element = event.element;
    if (localName(element.name) === 'include' && (element.attrs.xmlns === NS_XINCLUDE || element.name.includes(':'))) {
      return this.include(element, file, depth, at);
    }
    if (parent === undefined || parent.username === null || parent.host === null) return; // a skipped host or user
    try {
      await this.piece(parent, element);
    } catch (err) {
      if (err instanceof ImportError) throw new ImportError(`${at}: ${err.message}`);
      throw err;
    }
  }

  private async include(element: Element, file: string, depth: number, at: string): Promise<void> {
    const href = element.attrs.href;
    // §5: relative references, no 'parse' or 'xpointer'
    if (href === undefined || element.attrs.parse !== undefined || element.attrs.xpointer !== undefined || /^[a-z][a-z0-9+.-]*:/i.test(href) || path.isAbsolute(href)) {
      throw new ImportError(`${at}: only XInclude with a relative href (and no parse or xpointer) is supported`);
    }
    if (depth >= MAX_INCLUDE_DEPTH) throw new ImportError(`${at}: includes nested more than ${MAX_INCLUDE_DEPTH} deep`);
    await this.readFile(path.resolve(path.dirname(file), decodeURIComponent(href)), depth + 1);
  }

  private async open(kind: Kind, attrs: Record<string, string>, parent: Frame | undefined, at: string): Promise<Frame> {
    const host = parent?.host;
    const username = parent?.username;
    switch (kind) {
      case 'host': {
        const jid = attrs.jid;
        if (jid === undefined || jid === '') throw new ImportError(`${at}: <host/> without a jid`);
        return { kind, host: this.sink.servesHost(jid) ? jid : null };
      }
      case 'user': {
        if (host === null || host === undefined) return { kind, host: null };
        const name = attrs.name;
        if (name === undefined || name === '') throw new ImportError(`${at}: <user/> without a name`);
        const secret: AccountSecret = attrs.password !== undefined && attrs.password !== '' ? passwordSecret(attrs.password) : { kind: 'none' };
        return { kind, host, username: await this.sink.account(host, name, secret), credentials: {} };
      }
      case 'items':
        return { kind, host, username, node: attrs.node ?? '' };
      default:
        return { kind, host, username };
    }
  }

  private async piece(frame: Frame, element: Element): Promise<void> {
    const host = frame.host!;
    const username = frame.username;
    if (username === undefined || username === null) {
      this.sink.ignored(`<${element.name}/> outside a user`);
      return;
    }
    const xmlns = element.attrs.xmlns;
    switch (frame.kind) {
      case 'user':
        if (element.name === 'scram-credentials' && xmlns === NS_PIE_SCRAM) {
          const parsed = scramElement(element);
          if (parsed === null) throw new ImportError(`<scram-credentials mechanism='${element.attrs.mechanism ?? ''}'/> is not usable SCRAM data`);
          if (parsed !== undefined) {
            frame.credentials = { ...frame.credentials, ...parsed };
            await this.sink.credentials(host, username, frame.credentials);
          } else this.sink.ignored(`scram-credentials for ${element.attrs.mechanism ?? '?'} (only SCRAM-SHA-1, SCRAM-SHA-256 and SCRAM-SHA-512 are kept)`);
        } else if (element.name === 'query' && xmlns === 'jabber:iq:roster') {
          await this.sink.roster(host, username, rosterItems(element), []);
        } else if (element.name === 'presence' && element.attrs.type === 'subscribe' && element.attrs.from !== undefined) {
          // an incoming subscription request not answered yet (how Prosody and ejabberd export it)
          await this.sink.roster(host, username, [], [{ jid: element.attrs.from, status: element.getChildText('status') }]);
        } else if (element.name === 'vCard' && xmlns === 'vcard-temp') {
          await this.sink.vcard(host, username, element);
        } else if (element.name === 'query' && xmlns === 'jabber:iq:private') {
          await this.sink.privateXml(host, username, element.getChildElements());
        } else {
          this.sink.ignored(`<${element.name} xmlns='${xmlns ?? ''}'/> in a user (not something this server stores)`);
        }
        return;
      case 'offline':
        if (element.name !== 'message') return this.sink.ignored(`<${element.name}/> among offline messages`);
        {
          const stamp = delayStamp(element) ?? Date.now(); // before its <delay/> goes
          return this.sink.offline(host, username, withoutStorageDelay(element, host), stamp);
        }
      case 'archive': {
        const forwarded = element.name === 'result' && xmlns === NS_MAM ? element.getChild('forwarded', NS_FORWARD) : undefined;
        const message = forwarded?.getChild('message');
        const time = forwarded === undefined ? undefined : delayStamp(forwarded);
        if (message === undefined || time === undefined) throw new ImportError('an archived <result/> without <forwarded/> holding a <delay/> and a <message/>');
        return this.sink.archive(host, username, message, time);
      }
      case 'pubsub-owner': {
        const node = element.attrs.node;
        if (element.name === 'configure' && node !== undefined) {
          await this.sink.pepNode(host, username, node, element.getChild('x', 'jabber:x:data') ?? undefined);
        } else this.sink.ignored(`PEP <${element.name}/> (affiliations and subscriptions follow from the roster)`);
        return;
      }
      case 'items': {
        const payload = element.getChildElements()[0];
        const id = element.attrs.id;
        if (element.name !== 'item' || id === undefined || payload === undefined) return this.sink.ignored(`a PEP <${element.name}/> without an id or a payload`);
        return this.sink.pepItem(host, username, frame.node!, id, payload);
      }
      default:
        this.sink.ignored(`<${element.name}/> in <${frame.kind}/>`);
    }
  }
}

function passwordSecret(password: string): AccountSecret {
  return { kind: 'password', password };
}

function rosterItems(query: Element): RosterItem[] {
  return query.getChildren('item').map((item) => ({
    jid: item.attrs.jid ?? '',
    name: item.attrs.name || null,
    subscription: (item.attrs.subscription ?? 'none') as RosterItem['subscription'],
    ask: item.attrs.ask === 'subscribe',
    groups: [...new Set(item.getChildren('group').map((g) => g.getText()).filter((g) => g !== ''))],
  }));
}

const HASHES = { 'SCRAM-SHA-1': ['sha1', 20], 'SCRAM-SHA-256': ['sha256', 32], 'SCRAM-SHA-512': ['sha512', 64] } as const;

/**
 * XEP-0227 §4 `<scram-credentials/>`: undefined for a hash we do not keep, null when unusable.
 * ejabberd 23.01 writes the salt and keys base64-encoded twice (it keeps them as base64 and
 * encodes that again); such values are recognised by their length and decoded once more.
 */
function scramElement(element: Element): ImportedCredentials | null | undefined {
  const spec = HASHES[element.attrs.mechanism as keyof typeof HASHES];
  if (spec === undefined) return undefined;
  const [hash, length] = spec;
  const text = (name: string) => element.getChildText(name)?.trim() ?? '';
  let fields = { salt: text('salt'), iterations: text('iter-count'), storedKey: text('stored-key'), serverKey: text('server-key') };
  const once = (b64: string) => Buffer.from(b64, 'base64').toString('latin1');
  if (Buffer.from(fields.storedKey, 'base64').length !== length && Buffer.from(once(fields.storedKey), 'base64').length === length) {
    fields = { ...fields, salt: once(fields.salt), storedKey: once(fields.storedKey), serverKey: once(fields.serverKey) };
  }
  const credentials = scramFromBase64(fields);
  if (credentials === undefined || Buffer.from(credentials.storedKey, 'base64').length !== length) return null;
  return { [hash]: credentials };
}

/** XEP-0203 stamp of a <delay/> child, in ms. */
function delayStamp(element: Element): number | undefined {
  const stamp = element.getChild('delay', NS_DELAY)?.attrs.stamp;
  const time = stamp === undefined ? NaN : Date.parse(stamp);
  return Number.isNaN(time) ? undefined : time;
}

/** The offline store's own <delay/> (from the host) goes: xmppd adds its own when it delivers. */
function withoutStorageDelay(message: Element, host: string): Element {
  message.children = message.children.filter((c) => typeof c === 'string' || !(c.name === 'delay' && c.attrs.xmlns === NS_DELAY && (c.attrs.from === host || c.attrs.from === undefined)));
  return message;
}

