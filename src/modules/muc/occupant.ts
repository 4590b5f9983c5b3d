// An occupant of a room (XEP-0045 §7): its nick, role and clients, and the presence others see
// of it, prepared once per variant (with or without its real JID) until it changes.
import Element from 'ltx/lib/Element.js';
import type { Jid } from '../../core/jid.js';
import type { BlockingService } from '../blocking/index.js';
import { serialize } from '../../xml/serialize.js';
import { NS_MUC, NS_MUC_USER, NS_OCCUPANT_ID } from './ns.js';

export type Role = 'moderator' | 'participant' | 'visitor' | 'none';

/** One client (full JID) of an occupant: several when a user joins under one nick from several devices. */
export interface OccupantSession {
  readonly jid: Jid;
  /** The full JID escaped for an attribute value, concatenated into pre-serialised stanzas. */
  readonly toAttr: string;
  readonly local: boolean;
  /** The block list service of a local client's host (XEP-0191), when it runs one. */
  readonly blocking?: BlockingService | undefined;
  /** The presence this client last sent to the room, without the MUC payloads. */
  presence: Element;
}

/** A stanza serialised once without `to`, in two halves around where `to` goes. */
export interface Prepared {
  stanza: Element;
  xml: string;
  head: string;
  tail: string;
  /** The parsed `from`, for block lists: parsed once, for the first recipient that blocks anyone (undefined until then). */
  from: Jid | null | undefined;
}

export function prepare(stanza: Element): Prepared {
  const xml = serialize(stanza);
  const cut = stanza.name.length + 1;
  return { stanza, xml, head: xml.slice(0, cut) + ' to="', tail: '"' + xml.slice(cut), from: undefined };
}

export class Occupant {
  role: Role;
  readonly sessions: OccupantSession[] = [];
  /** Presence of this occupant as others see it, prepared once: [with real JID, without]. */
  private views: [Prepared | undefined, Prepared | undefined] = [undefined, undefined];

  constructor(
    public nick: string,
    public roomJid: string,
    readonly bare: string,
    role: Role,
    /** XEP-0421: the same for this user in this room whatever its nick, revealing nothing of its JID */
    readonly occupantId: Element,
  ) {
    this.role = role;
  }

  /** The client whose presence others see: the latest one to speak. */
  get current(): OccupantSession {
    return this.sessions[this.sessions.length - 1]!;
  }

  changed(): void {
    this.views = [undefined, undefined];
  }

  view(withJid: boolean, build: () => Element): Prepared {
    const i = withJid ? 0 : 1;
    return (this.views[i] ??= prepare(build()));
  }
}

/** The presence content others see: everything but the MUC join and user payloads. */
export function presenceContent(stanza: Element): Element {
  const content = new Element('presence');
  for (const child of stanza.children) {
    if (typeof child === 'string') continue;
    const xmlns = child.attrs.xmlns;
    if (child.name === 'x' && (xmlns === NS_MUC || xmlns === NS_MUC_USER)) continue;
    if (xmlns === NS_OCCUPANT_ID) continue; // XEP-0421 §4: only the room says who is who
    content.children.push(child);
  }
  return content;
}
