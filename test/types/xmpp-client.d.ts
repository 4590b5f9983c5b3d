// Minimal typings for @xmpp/client as the tests use it (the package ships none).
declare module '@xmpp/client' {
  import Element = require('ltx/lib/Element.js');
  import { xml } from '@xmpp/xml';
  export interface Client {
    jid: { toString(): string; local: string; domain: string; resource: string } | null;
    status: string;
    start(): Promise<unknown>;
    stop(): Promise<unknown>;
    /** @xmpp/reconnect: stop() cancels a scheduled reconnect and stops scheduling new ones */
    reconnect: { stop(): void };
    send(element: Element): Promise<void>;
    on(event: 'stanza', listener: (stanza: Element) => void): this;
    on(event: 'error' | 'offline' | 'online' | 'status' | string, listener: (...args: unknown[]) => void): this;
    iqCaller: { request(element: Element, timeout?: number): Promise<Element> };
    socket?: { destroy(): void } | null;
  }
  export function client(options: Record<string, unknown>): Client;
  export { xml };
}
