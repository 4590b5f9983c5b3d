// XMPP addresses (RFC 7622). Parsed on every routed stanza, so parsing is a few indexOf calls;
// the localpart and domainpart are case-folded (the PRECIS UsernameCaseMapped / IDNA mapping for
// the characters real addresses use) and checked for the characters RFC 7622 §3.3.1 forbids.

const MAX_PART_BYTES = 1023; // RFC 7622 §3.2-3.4
// RFC 7622 §3.3.1 (and XEP-0106): characters never allowed in a localpart
const FORBIDDEN_LOCAL = /["&'/:<>@\s\x00-\x1f\x7f]/;
const FORBIDDEN_DOMAIN = /[\s\x00-\x1f\x7f/@"&'<>]/;
const FORBIDDEN_RESOURCE = /[\x00-\x1f\x7f]/;

export class Jid {
  private bareString: string | undefined;
  private fullString: string | undefined;

  constructor(
    readonly local: string,
    readonly domain: string,
    readonly resource: string = '',
  ) {}

  /** `local@domain` (or `domain`), the account or service address. */
  get bare(): string {
    return (this.bareString ??= this.local ? `${this.local}@${this.domain}` : this.domain);
  }

  get isBare(): boolean {
    return this.resource === '';
  }

  toBare(): Jid {
    return this.resource === '' ? this : new Jid(this.local, this.domain);
  }

  withResource(resource: string): Jid {
    return new Jid(this.local, this.domain, resource);
  }

  toString(): string {
    return (this.fullString ??= this.resource ? `${this.bare}/${this.resource}` : this.bare);
  }

  equals(other: Jid): boolean {
    return this.local === other.local && this.domain === other.domain && this.resource === other.resource;
  }
}

const NON_ASCII = /[^\x00-\x7f]/;
/** Over the 1023-byte limit; an ASCII part (nearly every one) counts a byte per character. */
const tooLong = (part: string, ascii: boolean): boolean => (ascii ? part.length : Buffer.byteLength(part)) > MAX_PART_BYTES;

function normalizeLocal(local: string): string | null {
  if (local.length === 0) return null;
  // ASCII (nearly every address): NFC changes nothing and a character is a byte
  const ascii = !NON_ASCII.test(local);
  const folded = (ascii ? local : local.normalize('NFC')).toLowerCase();
  if (FORBIDDEN_LOCAL.test(folded) || tooLong(folded, ascii)) return null;
  return folded;
}

export function normalizeDomain(domain: string): string | null {
  let d = domain.toLowerCase();
  if (d.endsWith('.')) d = d.slice(0, -1); // RFC 7622 §3.2: a trailing dot is stripped
  if (d.length === 0 || FORBIDDEN_DOMAIN.test(d) || Buffer.byteLength(d) > MAX_PART_BYTES) return null;
  return d;
}

/** Validates a resourcepart (RFC 7622 §3.4, OpaqueString): NFC, no controls, 1..1023 bytes. */
export function normalizeResource(resource: string): string | null {
  const ascii = !NON_ASCII.test(resource);
  const r = ascii ? resource : resource.normalize('NFC');
  if (r.length === 0 || FORBIDDEN_RESOURCE.test(r) || tooLong(r, ascii)) return null;
  return r;
}

/** Returns null for a malformed address (the caller answers `jid-malformed`). */
export function parseJid(s: string): Jid | null {
  // RFC 7622 §3.1: the first '/' starts the resource; '@' before it ends the localpart.
  const slash = s.indexOf('/');
  const bareEnd = slash === -1 ? s.length : slash;
  const at = s.indexOf('@');
  const hasLocal = at !== -1 && at < bareEnd;
  let local = '';
  if (hasLocal) {
    const l = normalizeLocal(s.slice(0, at));
    if (l === null) return null;
    local = l;
  }
  const domain = normalizeDomain(s.slice(hasLocal ? at + 1 : 0, bareEnd));
  if (domain === null) return null;
  let resource = '';
  if (slash !== -1) {
    const r = normalizeResource(s.slice(slash + 1));
    if (r === null) return null;
    resource = r;
  }
  return new Jid(local, domain, resource);
}

/** Validates and case-folds a username as typed by a user or an admin (registration, CLI). */
export function normalizeUsername(username: string): string | null {
  return normalizeLocal(username);
}
