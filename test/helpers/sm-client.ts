// A raw XEP-0198 client for stream-management and CSI tests. It counts the stanzas the server
// sends (its 'h') and acknowledges exactly what a test tells it to, so a test can leave stanzas
// unacknowledged, cut the TCP connection and resume on a new one — and see every <enabled/>, <r/>,
// <a/>, <resumed/> and <failed/> the server sends. What arrives is split into top-level elements
// by @xmpp/xml's streaming parser (the one @xmpp/client uses), not by the server's own.
import Parser from '@xmpp/xml/lib/Parser.js';
import type Element from 'ltx/lib/Element.js';
import { RawClient } from './clients.js';
import type { TestServer } from './server.js';
import { NS_BIND, NS_STREAMS, NS_STREAM_ERRORS, authenticatePlain, loginRaw, openStream } from './wire.js';

export const NS_SM = 'urn:xmpp:sm:3';
export const NS_CSI = 'urn:xmpp:csi:0';
export const NS_CHATSTATES = 'http://jabber.org/protocol/chatstates';
const NS_PING = 'urn:xmpp:ping';
const NS_STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';

let nextId = 0;

function isStanza(element: Element): boolean {
  const ns = element.attrs.xmlns;
  return (element.name === 'message' || element.name === 'presence' || element.name === 'iq') && (ns === undefined || ns === 'jabber:client');
}

function escapeXml(text: string): string {
  return text.replace(/[&<>'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A TLS connection authenticated as `username`, on the restarted stream (ready to bind or resume). */
export async function authenticated(server: TestServer, username: string): Promise<{ wire: RawClient; features: Element }> {
  const wire = await RawClient.open(server);
  await openStream(wire, server.domain);
  const result = await authenticatePlain(wire, username);
  if (result.outcome !== 'success') throw new Error(`login as ${username} failed: ${result.condition}`);
  const features = await openStream(wire, server.domain);
  return { wire, features };
}

export class SmClient {
  /** Stanzas received since <enable/> (continuing from the 'h' sent in <resume/>): our 'h'. */
  handled = 0;
  /** Stanzas sent since <enable/> (or before the cut, after a resume): the server's 'h' should be this. */
  sent = 0;
  /** Everything the server sent on this connection after binding (or authenticating), in order. */
  readonly received: Element[] = [];
  closed = false;
  /** The stream features offered after authentication (when made by authenticate()). */
  features: Element | undefined;
  private counting = false;
  /** The 'h' this client sent in <resume/>: counting continues from it once <resumed/> arrives. */
  private resumeFrom: number | undefined;
  private readonly countAt = new Map<Element, number>();
  private readonly consumed = new Set<Element>();
  private waiters: Array<{ predicate: (e: Element) => boolean; resolve: (e: Element) => void; reject: (err: Error) => void }> = [];

  private constructor(
    readonly wire: RawClient,
    public jid: string,
  ) {
    const parser = new Parser();
    parser.on('element', (element) => this.receive(element));
    parser.on('error', (err) => this.fail(new Error(`unparsable data from the server: ${err.message}`)));
    // the server's stream header was consumed by the login helpers; give the parser a root
    parser.write(`<stream:stream xmlns='jabber:client' xmlns:stream='${NS_STREAMS}'>`);
    const pending = wire.data;
    wire.data = '';
    if (pending !== '') parser.write(pending);
    wire.socket.on('data', (chunk: string) => parser.write(chunk));
    wire.socket.on('close', () => {
      this.closed = true;
      this.fail(new Error(`${this.jid || 'the client'}: connection closed`));
    });
  }

  /** Logs in over STARTTLS with PLAIN and binds `resource`; stream management is not enabled yet. */
  static async login(server: TestServer, username: string, resource: string): Promise<SmClient> {
    const { wire, jid } = await loginRaw(server, username, resource);
    return new SmClient(wire, jid);
  }

  /** Authenticates on a new connection, ready to resume() or bind() (nothing bound yet). */
  static async authenticate(server: TestServer, username: string): Promise<SmClient> {
    const { wire, features } = await authenticated(server, username);
    const client = new SmClient(wire, '');
    client.features = features;
    return client;
  }

  /**
   * XEP-0198 §5: asks to resume `previd`, acknowledging `h` stanzas; resolves with <resumed/> or
   * <failed/>. Once resumed, `jid` is that session's, and counting goes on from `h`.
   */
  resume(previd: string, h: number, jid = ''): Promise<Element> {
    this.resumeFrom = h;
    this.jid ||= jid;
    this.nonza(`<resume xmlns='${NS_SM}' previd='${escapeXml(previd)}' h='${h}'/>`);
    return this.next((e) => e.is('resumed', NS_SM) || e.is('failed', NS_SM));
  }

  /** Authenticates as `username` on a new connection and resumes; see resume(). */
  static async resume(server: TestServer, username: string, previd: string, h: number, jid = ''): Promise<{ client: SmClient; answer: Element }> {
    const client = await SmClient.authenticate(server, username);
    const answer = await client.resume(previd, h, jid);
    return { client, answer };
  }

  /** Binds a resource on this stream (after a failed resume); returns the full JID. */
  async bind(resource: string): Promise<string> {
    const id = `bind-${++nextId}`;
    this.wire.write(`<iq type='set' id='${id}'><bind xmlns='${NS_BIND}'><resource>${escapeXml(resource)}</resource></bind></iq>`);
    const result = await this.next((e) => e.is('iq') && e.attrs.id === id);
    const jid = result.getChild('bind', NS_BIND)?.getChildText('jid');
    if (result.attrs.type !== 'result' || !jid) throw new Error(`binding failed: ${result.toString()}`);
    this.jid = jid;
    return jid;
  }

  private receive(element: Element): void {
    if (element.is('resumed', NS_SM) && this.resumeFrom !== undefined) {
      // counting goes on from our <resume h/>; resent stanzas may follow in the same packet
      this.counting = true;
      this.handled = this.resumeFrom;
    }
    if (isStanza(element) && this.counting) {
      this.handled = (this.handled + 1) % 2 ** 32;
      this.countAt.set(element, this.handled);
    }
    this.received.push(element);
    const index = this.waiters.findIndex((w) => w.predicate(element));
    if (index !== -1) {
      this.consumed.add(element);
      this.waiters.splice(index, 1)[0]!.resolve(element);
    }
  }

  private fail(err: Error): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.reject(err);
  }

  /** The next received element matching `predicate` that no earlier next() returned. */
  next(predicate: (e: Element) => boolean, timeoutMs = 5000): Promise<Element> {
    const already = this.received.find((e) => !this.consumed.has(e) && predicate(e));
    if (already) {
      this.consumed.add(already);
      return Promise.resolve(already);
    }
    if (this.closed) return Promise.reject(new Error(`${this.jid || 'the client'}: connection closed`));
    return new Promise((resolve, reject) => {
      const waiter = {
        predicate,
        resolve: (e: Element) => {
          clearTimeout(timer);
          resolve(e);
        },
        reject: (err: Error) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`${this.jid || 'the client'} timed out waiting; received: ${this.received.map((e) => e.toString()).join('\n').slice(-1500)}`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /** Our 'h' right after `stanza` arrived: acknowledging this much acknowledges it and all before it. */
  handledThrough(stanza: Element): number {
    const h = this.countAt.get(stanza);
    if (h === undefined) throw new Error(`not a counted stanza: ${stanza.toString()}`);
    return h;
  }

  // --- sending ---------------------------------------------------------------------------------

  /** Sends a stanza (counted in `sent`). */
  stanza(xml: string): void {
    this.sent++;
    this.wire.write(xml);
  }

  /** Sends a top-level element that is not a stanza (not counted). */
  nonza(xml: string): void {
    this.wire.write(xml);
  }

  chat(to: string, body: string): void {
    this.stanza(`<message to='${escapeXml(to)}' type='chat' id='m${++nextId}'><body>${escapeXml(body)}</body></message>`);
  }

  presence(children = ''): void {
    this.stanza(`<presence>${children}</presence>`);
  }

  /** Sends initial presence and waits for the server to reflect it back (RFC 6121 §4.2.2). */
  async online(): Promise<Element> {
    this.presence();
    return this.next((e) => e.is('presence') && e.attrs.from === this.jid && e.attrs.type === undefined);
  }

  /** XEP-0198 §3: <enable/>, with resumption unless told otherwise; resolves with <enabled/> or <failed/>. */
  enable(resume = true): Promise<Element> {
    this.counting = true;
    this.handled = 0;
    this.sent = 0;
    this.nonza(resume ? `<enable xmlns='${NS_SM}' resume='true'/>` : `<enable xmlns='${NS_SM}'/>`);
    return this.next((e) => e.is('enabled', NS_SM) || e.is('failed', NS_SM));
  }

  /** Acknowledges `h` stanzas (all received so far unless told otherwise). */
  ack(h = this.handled): void {
    this.nonza(`<a xmlns='${NS_SM}' h='${h}'/>`);
  }

  /** Sends <r/> and resolves with the 'h' of the server's answer. Not a stanza: it wakes no CSI buffer. */
  async requestAck(): Promise<number> {
    this.nonza(`<r xmlns='${NS_SM}'/>`);
    const a = await this.next((e) => e.is('a', NS_SM));
    return Number(a.attrs.h);
  }

  /** A ping to the server and its answer: everything the server sent before it has arrived. */
  async settle(): Promise<void> {
    const id = `ping-${++nextId}`;
    const domain = this.jid.split('@')[1]!.split('/')[0]!;
    this.stanza(`<iq type='get' id='${id}' to='${domain}'><ping xmlns='${NS_PING}'/></iq>`);
    await this.next((e) => e.is('iq') && e.attrs.id === id);
  }

  /** Answers an IQ get/set with an empty result. */
  answer(iq: Element): void {
    this.stanza(`<iq type='result' id='${escapeXml(iq.attrs.id ?? '')}' to='${escapeXml(iq.attrs.from ?? '')}'/>`);
  }

  /** Cuts the TCP connection without a closing stream, as a phone losing its network does. */
  cut(): void {
    this.wire.socket.destroy();
  }

  /** Closes the stream gracefully (</stream:stream>) and waits for the server to close the connection. */
  async closeStream(): Promise<void> {
    this.nonza('</stream:stream>');
    await this.wire.waitClosed();
  }

  /** The stream error the server sent, with its application-specific condition if any. */
  async streamError(timeoutMs?: number): Promise<{ condition: string; details: Element[] }> {
    const error = await this.next((e) => e.name === 'stream:error', timeoutMs);
    const children = error.getChildElements();
    const condition = children.find((c) => c.attrs.xmlns === NS_STREAM_ERRORS && c.name !== 'text')?.name ?? '(none)';
    return { condition, details: children.filter((c) => c.attrs.xmlns !== NS_STREAM_ERRORS) };
  }

  // --- reading ---------------------------------------------------------------------------------

  /** Bodies of the chat messages received so far, in order (optionally only those from `from`'s account). */
  bodies(from?: string): string[] {
    return this.received
      .filter((e) => e.is('message') && e.getChild('body') !== undefined && (from === undefined || e.attrs.from?.split('/')[0] === from))
      .map((e) => e.getChildText('body')!);
  }
}

/** The defined condition inside <failed/> (XEP-0198 §3, §5): 'item-not-found', 'unexpected-request'... */
export function failedCondition(failed: Element): string | undefined {
  return failed.getChildElements().find((c) => c.attrs.xmlns === NS_STANZAS && c.name !== 'text')?.name;
}
