// A raw RFC 7395 client for tests that need to see each WebSocket message the server sends:
// every message is parsed on its own (as a browser's DOMParser would), which also checks that
// each one is a complete XML document with its namespaces declared.
import type Element from 'ltx/lib/Element.js';
import parse from 'ltx/lib/parse.js';
import { WebSocket } from 'ws';
import { PASSWORD, type TestServer } from './server.js';
import { checkWire } from './well-formed.js';

export const NS_FRAMING = 'urn:ietf:params:xml:ns:xmpp-framing';
export const NS_STREAM_ERRORS = 'urn:ietf:params:xml:ns:xmpp-streams';
const NS_SASL = 'urn:ietf:params:xml:ns:xmpp-sasl';
const NS_BIND = 'urn:ietf:params:xml:ns:xmpp-bind';

export class WsWire {
  /** Every message received, parsed, in order. */
  readonly received: Element[] = [];
  /** Messages that did not parse on their own. */
  readonly unparsable: string[] = [];
  closed = false;
  closeCode = 0;
  private readonly consumed = new Set<Element>();
  private waiters: Array<() => void> = [];
  private readonly checker = checkWire('a raw WebSocket client', 'message');

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const text = data.toString();
      this.checker.message(text);
      try {
        this.received.push(parse(text));
      } catch {
        this.unparsable.push(text);
      }
      this.wake();
    });
    ws.on('close', (code) => {
      this.closed = true;
      this.closeCode = code;
      this.wake();
    });
    ws.on('error', () => undefined);
  }

  static async open(url: string, options: { protocols?: string[]; headers?: Record<string, string> } = {}): Promise<WsWire> {
    const ws = new WebSocket(url, options.protocols ?? ['xmpp'], { headers: options.headers, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return new WsWire(ws);
  }

  static plainUrl(server: TestServer): string {
    return `ws://127.0.0.1:${server.httpPort}/xmpp-websocket`;
  }

  private wake(): void {
    for (const waiter of this.waiters) waiter();
  }

  send(xml: string): void {
    this.ws.send(xml);
  }

  /** The next message matching `predicate` not returned before. */
  next(predicate: (e: Element) => boolean, timeoutMs = 5000): Promise<Element> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.received.find((e) => !this.consumed.has(e) && predicate(e));
        if (found) {
          done();
          this.consumed.add(found);
          resolve(found);
        } else if (this.closed) {
          done();
          reject(new Error(`closed (${this.closeCode}) before the expected message; received: ${this.received.map(String).join('\n')}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out; received: ${this.received.map(String).join('\n')}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
      };
      this.waiters.push(check);
      check();
    });
  }

  waitClosed(timeoutMs = 5000): Promise<number> {
    return new Promise((resolve, reject) => {
      if (this.closed) return resolve(this.closeCode);
      const timer = setTimeout(() => reject(new Error('the server did not close the WebSocket')), timeoutMs);
      this.ws.once('close', (code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
  }

  /** <open/>, answered by <open/> and then the features in a message of their own. */
  async open(to = 'localhost'): Promise<{ open: Element; features: Element }> {
    this.send(`<open xmlns='${NS_FRAMING}' to='${to}' version='1.0'/>`);
    const open = await this.next((e) => e.is('open', NS_FRAMING));
    const features = await this.next((e) => e.name === 'stream:features');
    return { open, features };
  }

  /** Opens, authenticates with PLAIN and opens again: ready to bind or resume. */
  async authenticate(username: string, to = 'localhost', password = PASSWORD): Promise<Element> {
    await this.open(to);
    this.send(`<auth xmlns='${NS_SASL}' mechanism='PLAIN'>${Buffer.from(`\0${username}\0${password}`).toString('base64')}</auth>`);
    const outcome = await this.next((e) => e.attrs.xmlns === NS_SASL && (e.name === 'success' || e.name === 'failure'));
    if (outcome.name !== 'success') throw new Error(`authentication failed: ${outcome.toString()}`);
    return (await this.open(to)).features;
  }

  async bind(resource: string): Promise<string> {
    this.send(`<iq xmlns='jabber:client' type='set' id='bind'><bind xmlns='${NS_BIND}'><resource>${resource}</resource></bind></iq>`);
    const result = await this.next((e) => e.is('iq') && e.attrs.id === 'bind');
    return result.getChild('bind', NS_BIND)!.getChildText('jid')!;
  }

  /** The condition of the stream error the server sent, if any. */
  async streamError(): Promise<string | undefined> {
    const error = await this.next((e) => e.name === 'stream:error');
    return error.getChildElements().find((c) => c.attrs.xmlns === NS_STREAM_ERRORS && c.name !== 'text')?.name;
  }

  close(): void {
    this.ws.terminate();
  }
}
