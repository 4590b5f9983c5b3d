// IQ handlers as modules declare them (m.iq) and the router calls them (RFC 6120 §8.2.3).
import type Element from 'ltx/lib/Element.js';
import type { Jid } from './jid.js';
import type { SessionRef } from './ports.js';

export type IqType = 'get' | 'set';
/** `host`: the IQ is addressed to the server itself; `account`: to a user's bare JID (or none). */
export type IqTarget = 'host' | 'account';

export interface IqRequest {
  iq: Element;
  /** The payload element (the single child of a get/set IQ). */
  payload: Element;
  from: Jid;
  /** The addressed entity: the host, or the account's bare JID. */
  to: Jid;
  /** The local client session the IQ came from, if it came from one. */
  session: SessionRef | undefined;
}

/** Returns the result payload (or nothing for an empty result); throws a StanzaError to fail. */
export type IqHandler = (request: IqRequest) => Element | null | void | Promise<Element | null | void>;

