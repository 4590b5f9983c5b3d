// Stream negotiation as a list of features (RFC 6120 §4.3): each feature says what it puts in
// <stream:features/> at this point of the stream, and which top-level elements are its to
// handle. The stream (../stream.ts) keeps the connection, the parser and the state; a feature
// sees it through NegotiatingStream and changes it only through the methods there. New ways to
// log in or bind (SASL2, Bind2, FAST) are new entries in ./index.ts, not edits of the stream.
//
// This folder imports nothing from ../stream.ts, ../session.ts or ../listener.ts (types
// included): the stream imports the list, so an import back would be a cycle across folders.
import type Element from 'ltx/lib/Element.js';
import type { Kernel } from '../../core/kernel.js';
import type { Jid } from '../../core/jid.js';
import type { SessionRef } from '../../core/ports.js';
import type { StreamErrorCondition } from '../../core/stanza.js';
import type { ChannelBinding } from '../sasl/channel-binding.js';
import type { AuthThrottle } from '../sasl/throttle.js';
import type { C2SSettings } from '../settings.js';
import type { StreamManagement } from '../sm.js';
import type { C2STransport } from '../transport.js';

export type StreamState = 'connected' | 'authenticated' | 'bound' | 'closed';

/** Why another node did not hand a session over (src/core/ports.ts HandOffAnswer). */
export type TakeOverRefusal = { failed: 'item-not-found' } | { failed: 'handled-count-too-high'; sent: number };

/** What a feature needs of the session a stream has bound or resumed. */
export interface NegotiatedSession extends SessionRef {
  readonly jid: Jid;
  readonly ended: boolean;
  sm: StreamManagement | null;
  setInactive(inactive: boolean): void;
}

/** The stream as its features see it. */
export interface NegotiatingStream {
  readonly state: StreamState;
  readonly secure: boolean;
  /** The virtual host named in the stream header. */
  readonly host: string;
  /** The authenticated username ('' before SASL success). */
  readonly username: string;
  readonly remoteAddress: string;
  readonly server: Kernel;
  /** Throttling of password guessers, shared by every stream (../sasl/throttle.ts). */
  readonly authThrottle: AuthThrottle;
  readonly settings: C2SSettings;
  readonly transport: C2STransport;
  readonly session: NegotiatedSession | null;
  /** Queue XML for the client (batched per event-loop turn). */
  write(xml: string): void;
  /** Queue a stanza for the client. */
  send(stanza: Element): void;
  /** XEP-0198 §4: an <r/> now, when stanzas are unacknowledged and none is on its way. */
  requestAck(): void;
  close(condition?: StreamErrorCondition, text?: string, resumable?: boolean, detail?: string): void;
  /** The TLS channel bindings of this connection (null before TLS, or where the TLS is not ours). */
  channelBinding(): ChannelBinding | null;
  /** RFC 6120 §5.4.3.3: TLS on this connection; what was pipelined after <starttls/> is dropped. */
  upgradeToTls(): void;
  /**
   * SASL succeeded: the client opens a new stream (RFC 6120 §6.4.6), or, after SASL2
   * (XEP-0388 §2.6.1, `restart` false), goes on in this one.
   */
  authenticated(username: string, restart?: boolean): void;
  /** <stream:features/> for the stream's state now, without a restart (XEP-0388 §2.6.1). */
  sendFeatures(): void;
  /** A new session for `jid` on this stream (RFC 6120 §7). */
  bindSession(jid: Jid): void;
  /** A session waiting for its client (XEP-0198 §5) that this stream may take over, if any. */
  resumableSession(previd: string): NegotiatedSession | undefined;
  /**
   * In a cluster: the session `previd` names, handed over by `node`, which issued the id; or why
   * not; or null when this connection went meanwhile (the session then waits to be resumed here).
   */
  takeOverSession(node: string, previd: string, h: number): Promise<NegotiatedSession | TakeOverRefusal | null>;
  /**
   * Take over a session found by resumableSession; it is bound to this stream afterwards.
   * `inline`: resumed inside SASL2 (XEP-0198 §5 inline, XEP-0388): this <success/> (which
   * holds the <resumed/>) and the stream features go out instead of a <resumed/> of their own.
   */
  resumeSession(session: NegotiatedSession, previd: string, inline?: { success: string }): void;
  /** Keep the session resumable under its stream management id until it ends. */
  makeResumable(session: NegotiatedSession): void;
}

export interface StreamFeature {
  /** For logs and tests. */
  readonly name: string;
  /**
   * Handled even on a stream that still needs TLS first (STARTTLS itself, and SASL, which answers
   * <encryption-required/>); everything else waits for TLS where encryption is required.
   */
  readonly beforeTls?: boolean;
  /** Its XML in <stream:features/> on this stream now; '' when not offered here. */
  advertise?(stream: NegotiatingStream): string;
  /** Whether this top-level element (not a stanza of a bound stream) is this feature's to handle now. */
  accepts(element: Element, stream: NegotiatingStream): boolean;
  handle(element: Element, stream: NegotiatingStream): void;
}

/** Whether an element is a stanza (message, presence, iq) of the client namespace. */
export function isStanza(element: Element): boolean {
  const name = element.name;
  const xmlns = element.attrs.xmlns;
  return (name === 'message' || name === 'presence' || name === 'iq') && (xmlns === undefined || xmlns === 'jabber:client');
}
