// The XMPP stream parser: one instance per connection, fed raw socket bytes.
//
// Why our own and not ltx's SaxLtx: XMPP restricts XML (RFC 6120 §11.1: no comments, processing
// instructions, DTDs or entity references beyond the five predefined ones) and a server must
// refuse those with `restricted-xml`, refuse malformed input with `not-well-formed`, and stop a
// stanza that grows past the size limit *while* it is arriving (XEP-0478). SaxLtx silently skips
// comments, PIs and DTDs and checks nothing, so wrapping it would mean scanning every byte twice.
// This parser builds the same ltx `Element` objects that @xmpp/xml uses, so modules see the usual
// element API. It keeps its state in a handful of fields (no closures) to stay small per
// connection, and scans with indexOf so the common path touches each byte about once.
import { isUtf8 } from 'node:buffer';
import Element from 'ltx/lib/Element.js';

export type ParseErrorCondition = 'not-well-formed' | 'restricted-xml' | 'policy-violation';

export interface StreamParserHandler {
  /** The stream root opened (`<stream:stream ...>`). */
  onStreamStart(name: string, attrs: Record<string, string>): void;
  /** A complete first-level child of the stream root. */
  onStanza(stanza: Element): void;
  /** The stream root was closed by the peer. */
  onStreamEnd(): void;
  /**
   * Optional, for documents read element by element below the root (XEP-0227 files: host, then
   * user, then each piece of a user's data): true makes an element opening where a stanza would
   * begin a container instead, whose children are delivered one by one as stanzas are, so that
   * a whole host never has to be in memory.
   */
  openContainer?(name: string, attrs: Record<string, string>): boolean;
  /** A container opened by `openContainer` closed. */
  closeContainer?(name: string): void;
  /** Fatal: the stream must be closed with this stream error. The parser ignores input afterwards. */
  onParseError(condition: ParseErrorCondition, text: string): void;
}

/**
 * The elements the parser builds: ltx's, made without ltx's constructor (which allocates an
 * attributes object only to copy the parser's into it) and with a child lookup that allocates
 * nothing. The routing path asks a stanza for a child (a body, a receipt request, a carbon) a
 * dozen times, and ltx's `getChild` builds the array of every match to return the first (its
 * `getChildText` goes through this one). An ltx Element in every other way (its prototype).
 */
// (declaration merging: the class's type has ltx's methods, which it inherits below)
export interface ParsedElement extends Element {}
export class ParsedElement {
  name: string;
  attrs: Record<string, string>;
  parent: Element | null = null;
  children: Array<Element | string> = [];

  /** As ltx's (a copy of `attrs`: ltx's clone() calls it so), unless the parser hands over its own. */
  constructor(name: string, attrs?: Record<string, string> | string, adopt = false) {
    this.name = name;
    if (adopt && typeof attrs === 'object') this.attrs = attrs;
    else {
      this.attrs = {};
      this.setAttrs(attrs);
    }
  }

  getChild(name: string, xmlns?: string): Element | undefined {
    const children = this.children;
    for (let i = 0; i < children.length; i++) {
      const child = children[i]!;
      if (typeof child === 'string' || typeof child.getName !== 'function') continue;
      if (child.getName() === name && (!xmlns || child.getNS() === xmlns)) return child;
    }
    return undefined;
  }
}
Object.setPrototypeOf(ParsedElement.prototype, Element.prototype);

class ParseError extends Error {
  constructor(readonly condition: ParseErrorCondition, message: string) {
    super(message);
  }
}

const LT = 60; // <
const GT = 62; // >
const SLASH = 47; // /
const BANG = 33; // !
const QUESTION = 63; // ?
const EQUALS = 61; // =
const DQUOTE = 34;
const SQUOTE = 39;

/** Deeper nesting than this is refused: no real stanza needs it and it guards recursive code. */
export const MAX_ELEMENT_DEPTH = 64;

const NON_ASCII = /[^\x00-\x7f]/;
// XML 1.0 §2.2: characters that may never appear in a document, even escaped.
/** Characters XML 1.0 cannot carry, even escaped (§2.2). */
export const ILLEGAL_CHARS = /[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]/;
const WHITESPACE_ONLY = /^[ \t\r\n]*$/;
const NAME = /^[A-Za-z_:\u00c0-\uffff][A-Za-z0-9_:.\-\u00b7\u00c0-\uffff]*$/;

function isWhitespace(c: number): boolean {
  return c === 32 || c === 10 || c === 9 || c === 13;
}

const PREDEFINED_ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

/** Replaces the five predefined entities and character references (XML 1.0 §4.1, §4.6). */
export function unescapeXml(s: string): string {
  let amp = s.indexOf('&');
  if (amp === -1) return s;
  let out = '';
  let from = 0;
  while (amp !== -1) {
    const semi = s.indexOf(';', amp + 1);
    if (semi === -1 || semi - amp > 12) throw new ParseError('not-well-formed', 'unterminated entity reference');
    const ref = s.slice(amp + 1, semi);
    let replacement: string | undefined;
    if (ref.charCodeAt(0) === 35 /* # */) {
      const code = ref.charCodeAt(1) === 120 /* x */ ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
      if (
        !(code === 9 || code === 10 || code === 13 || (code >= 0x20 && code <= 0xd7ff) ||
          (code >= 0xe000 && code <= 0xfffd) || (code >= 0x10000 && code <= 0x10ffff))
      ) {
        throw new ParseError('not-well-formed', `illegal character reference &${ref};`);
      }
      replacement = String.fromCodePoint(code);
    } else {
      replacement = PREDEFINED_ENTITIES[ref];
      // RFC 6120 §11.1: entity references other than the predefined ones are restricted XML.
      if (replacement === undefined) throw new ParseError('restricted-xml', `entity reference &${ref}; is not allowed`);
    }
    out += s.slice(from, amp) + replacement;
    from = semi + 1;
    amp = s.indexOf('&', from);
  }
  return out + s.slice(from);
}

/** What kind of token `pending` holds the beginning of, and so what ends it. */
const enum Pending {
  None,
  /** `<name attr='...'`: ends at a `>` outside quotes */
  StartTag,
  /** `</name`: ends at `>` */
  EndTag,
  /** `<![CDATA[...`: ends at `]]>` */
  CData,
  /** `<?xml ...`: ends at `?>` */
  Declaration,
}

export class StreamParser {
  /** The first bytes of a UTF-8 character split by the previous write (at most 3). */
  private carry: Buffer | null = null;
  /**
   * A few characters carried over to the next write (at most a dozen: `<` or `<![CDA` not yet
   * telling what they begin, or a split entity reference), so they are re-read once.
   */
  private rest = '';
  /**
   * The unfinished token that began in an earlier write, in pieces. Its end is looked for in each
   * new piece only, and the whole is read once it is complete: each byte is examined a bounded
   * number of times, however finely the token is split (a token re-scanned from its start on
   * every TCP segment made one connection's slow stanza cost O(n²)).
   */
  private pending: string[] = [];
  private pendingKind = Pending.None;
  /** For a pending start tag: the quote (" or ') a value is open with, 0 outside values. */
  private pendingQuote = 0;
  /** The last characters of the pending token, for an end marker (`]]>`, `?>`) split across writes. */
  private pendingTail = '';
  private pendingBytes = 0;
  private depth = 0;
  /** The stream root's name, for its end tag (none in framed mode: there is no root to close). */
  private rootName = '';
  /** The depth at which stanzas begin: 1 under the root, deeper inside open containers. */
  private base = 1;
  /** Names of the containers open (see StreamParserHandler.openContainer), innermost last. */
  private containers: string[] = [];
  private cursor: Element | null = null;
  /** Bytes consumed since the stream (re)started, up to `counted` in the data being parsed. */
  private bytes = 0;
  private counted = 0;
  private ascii = true;
  /** Whether the data being parsed has no character XML cannot carry (§2.2): nothing to check in its pieces. */
  private clean = true;
  /** Whether the last `decode` gave one character per byte. */
  private decodedAscii = true;
  /** `bytes` where the top-level element being read began; -1 between elements. */
  private stanzaStart = -1;
  private failed = false;
  /** The handler reset the stream while a write was being parsed: the rest of it is dropped. */
  private discarding = false;
  private sawDeclaration = false;
  /** Characters examined by the scanning loops, for tests that check parsing stays linear. */
  examined = 0;

  constructor(
    private readonly handler: StreamParserHandler,
    public maxStanzaSize: number,
  ) {}

  /** Forget everything: used for stream restarts after STARTTLS and SASL (RFC 6120 §4.3.3). */
  reset(): void {
    this.carry = null;
    this.rest = '';
    this.pending = [];
    this.pendingKind = Pending.None;
    this.pendingTail = '';
    this.pendingBytes = 0;
    this.depth = 0;
    this.rootName = '';
    this.base = 1;
    this.containers = [];
    this.cursor = null;
    this.bytes = 0;
    this.counted = 0;
    this.stanzaStart = -1;
    this.sawDeclaration = false;
  }

  /**
   * Drop whatever else the current write holds, and forget the stream. RFC 6120 §5.4.3.3: the
   * client must send nothing after <starttls/> until TLS is up; plaintext pipelined after it
   * (which an attacker on the path could have injected) is discarded, never processed.
   */
  discardInput(): void {
    this.reset();
    this.discarding = true;
  }

  /**
   * Start as if the stream root were already open (RFC 7395 WebSocket framing has no root). A new
   * framed document: an earlier one's parse error does not carry over (the cluster's link parses
   * each batch from another node this way; one bad batch must not stop the next).
   */
  startFramed(): void {
    this.reset();
    this.failed = false;
    this.depth = 1;
  }

  /** Between elements (nothing half-read): a WebSocket message must end here (RFC 7395 §3.3.3). */
  atElementBoundary(): boolean {
    return this.failed || (this.cursor === null && this.pendingKind === Pending.None && WHITESPACE_ONLY.test(this.rest));
  }

  write(chunk: Buffer | string): void {
    if (this.failed) return;
    let text: string;
    // all ASCII (one byte per character, counted without encoding): from the decode, for bytes
    let ascii: boolean;
    if (typeof chunk === 'string') {
      text = chunk;
      ascii = !NON_ASCII.test(text);
    } else {
      const decoded = this.decode(chunk);
      if (decoded === null) return this.fail('not-well-formed', 'invalid UTF-8');
      text = decoded;
      ascii = this.decodedAscii;
    }
    try {
      if (this.pendingKind !== Pending.None) {
        const end = this.continuePending(text);
        if (end === -1) return;
        const token = this.pending.join('');
        const tokenAscii = this.pendingBytes === token.length;
        this.pending = [];
        this.pendingKind = Pending.None;
        this.pendingBytes = 0;
        this.parse(token, tokenAscii);
        if (this.failed || this.consumeDiscard()) return;
        text = end === text.length ? '' : text.slice(end);
      }
      const rest = this.rest;
      this.rest = '';
      if (rest.length === 0) {
        if (text.length > 0) this.parse(text, ascii);
      } else {
        this.parse(rest + text, ascii && !NON_ASCII.test(rest));
      }
      this.consumeDiscard();
    } catch (err) {
      if (!(err instanceof ParseError)) throw err;
      this.fail(err.condition, err.message);
    }
  }

  /**
   * Bytes to text, refusing invalid UTF-8 (RFC 6120 §11.6: a `not-well-formed` stream error, not
   * U+FFFD in a message): simdutf's validation and a plain decode, with a character split at the
   * end of the write kept for the next one. (TextDecoder's fatal streaming mode does the same at
   * three times the cost per write.)
   */
  private decode(chunk: Buffer): string | null {
    let bytes = chunk;
    if (this.carry !== null) {
      bytes = Buffer.concat([this.carry, chunk]);
      this.carry = null;
    }
    if (isUtf8(bytes)) {
      const text = bytes.toString('utf8');
      this.decodedAscii = text.length === bytes.length;
      return text;
    }
    const cut = splitCharacterStart(bytes);
    if (cut === bytes.length || !isUtf8(bytes.subarray(0, cut))) return null;
    this.carry = Buffer.from(bytes.subarray(cut));
    this.decodedAscii = false;
    return bytes.toString('utf8', 0, cut);
  }

  private consumeDiscard(): boolean {
    if (!this.discarding) return false;
    this.discarding = false;
    return true;
  }

  /**
   * Looks for the end of the pending token in the next piece of input, examining only that
   * piece. Returns where the token ends in `text` (it is then complete in `pending`), or -1 when
   * all of `text` belongs to it.
   */
  private continuePending(text: string): number {
    let end = -1;
    switch (this.pendingKind) {
      case Pending.StartTag: {
        let quote = this.pendingQuote;
        const len = text.length;
        let i = 0;
        for (; i < len; i++) {
          const c = text.charCodeAt(i);
          if (quote !== 0) {
            const close = text.indexOf(quote === DQUOTE ? '"' : "'", i);
            if (close === -1) {
              i = len;
              break;
            }
            i = close;
            quote = 0;
          } else if (c === GT) {
            end = i + 1;
            break;
          } else if (c === DQUOTE || c === SQUOTE) quote = c;
          else if (c === LT) throw new ParseError('not-well-formed', 'unexpected < inside a tag');
        }
        this.examined += end === -1 ? len : end;
        this.pendingQuote = quote;
        break;
      }
      case Pending.EndTag: {
        const gt = text.indexOf('>');
        this.examined += gt === -1 ? text.length : gt + 1;
        if (gt !== -1) end = gt + 1;
        break;
      }
      default: {
        // `]]>` or `?>`, which may straddle the previous piece: look in its last characters too
        const marker = this.pendingKind === Pending.CData ? ']]>' : '?>';
        const tail = this.pendingTail;
        const found = (tail + text).indexOf(marker);
        this.examined += tail.length + (found === -1 ? text.length : found - tail.length + marker.length);
        if (found !== -1) end = found - tail.length + marker.length;
        else this.pendingTail = (tail + text).slice(-(marker.length - 1));
      }
    }
    const piece = end === -1 ? text : text.slice(0, end);
    this.pending.push(piece);
    this.pendingBytes += Buffer.byteLength(piece);
    if (end === -1) this.checkPendingSize();
    return end;
  }

  /** XEP-0478: an unfinished stanza (or stream header) is cut off as soon as it is too big, not buffered to its end. */
  private checkPendingSize(): void {
    const sofar = this.stanzaStart === -1 ? this.pendingBytes : this.bytes - this.stanzaStart + this.pendingBytes;
    if (sofar > this.maxStanzaSize) {
      throw new ParseError('policy-violation', this.stanzaStart === -1 ? `unfinished markup exceeds the limit of ${this.maxStanzaSize} bytes` : `stanza exceeds the limit of ${this.maxStanzaSize} bytes`);
    }
  }

  /** Keeps `data` from `pos` (an unfinished token of `kind`) for the next writes. */
  private suspend(data: string, pos: number, kind: Pending, quote = 0): void {
    this.count(data, pos);
    const piece = pos === 0 ? data : data.slice(pos);
    this.pending = [piece];
    this.pendingKind = kind;
    this.pendingQuote = quote;
    this.pendingTail = kind === Pending.CData ? piece.slice(-2) : kind === Pending.Declaration ? piece.slice(-1) : '';
    this.pendingBytes = this.ascii ? piece.length : Buffer.byteLength(piece);
    this.counted = data.length;
    this.checkPendingSize();
  }

  /** Adds the bytes of `data` up to `pos` to the stream's count (each character counted once). */
  private count(data: string, pos: number): number {
    if (pos > this.counted) {
      this.bytes += this.ascii ? pos - this.counted : Buffer.byteLength(data.slice(this.counted, pos));
      this.counted = pos;
    }
    return this.bytes;
  }

  private fail(condition: ParseErrorCondition, message: string): void {
    if (this.failed) return;
    this.failed = true;
    this.rest = '';
    this.pending = [];
    this.pendingKind = Pending.None;
    this.cursor = null;
    this.handler.onParseError(condition, message);
  }

  /** A top-level element is complete: within the size limit, it goes to the handler. */
  private stanzaDone(data: string, pos: number): void {
    const stanza = this.cursor!;
    this.cursor = null;
    const size = this.count(data, pos) - this.stanzaStart;
    this.stanzaStart = -1;
    if (size > this.maxStanzaSize) {
      throw new ParseError('policy-violation', `stanza of ${size} bytes exceeds the limit of ${this.maxStanzaSize}`);
    }
    this.handler.onStanza(stanza);
  }

  /** `ascii`: whether `data` is known to be all ASCII (else it is looked at). */
  private parse(data: string, ascii: boolean): void {
    const len = data.length;
    this.counted = 0;
    this.ascii = ascii || !NON_ASCII.test(data);
    // one look at the whole input for characters XML cannot carry, rather than one per text and value
    this.clean = !ILLEGAL_CHARS.test(data);
    this.examined += len;
    let pos = 0;
    while (pos < len) {
      if (this.failed || this.discarding) return;
      if (data.charCodeAt(pos) !== LT) {
        const lt = data.indexOf('<', pos);
        if (lt === -1) {
          if (this.cursor === null) {
            // Between stanzas (whitespace keepalives) there is nothing to keep: checked and dropped
            // now, or a long run of keepalives would pile up as "unfinished markup".
            this.text(data, pos, len);
            pos = len;
            break;
          }
          // Inside a stanza: the text so far is taken now, except a reference split by the write
          const amp = data.lastIndexOf('&', len - 1);
          const cut = amp >= pos && data.indexOf(';', amp) === -1 ? amp : len;
          if (len - cut > 12) throw new ParseError('not-well-formed', 'unterminated entity reference');
          if (cut > pos) this.text(data, pos, cut);
          pos = cut;
          break;
        }
        this.text(data, pos, lt);
        pos = lt;
        continue;
      }
      if (pos + 1 >= len) break;
      const next = data.charCodeAt(pos + 1);
      if (next === SLASH) {
        const gt = data.indexOf('>', pos + 2);
        if (gt === -1) return this.suspend(data, pos, Pending.EndTag);
        const open = this.cursor;
        // the usual case, the end tag of the open element: compared in place, nothing sliced
        const matches = open !== null && data.startsWith(open.name, pos + 2) && isSpaceOnly(data, pos + 2 + open.name.length, gt);
        const closesStanza = matches ? --this.depth === this.base : this.endTag(data.slice(pos + 2, gt).trimEnd());
        pos = gt + 1;
        if (closesStanza) this.stanzaDone(data, pos);
        else if (this.cursor !== null) this.cursor = this.cursor.parent;
        continue;
      }
      if (next === BANG) {
        const end = this.markup(data, pos);
        if (end === -1) break;
        if (end === -2) return this.suspend(data, pos, Pending.CData);
        pos = end;
        continue;
      }
      if (next === QUESTION) {
        const end = this.processingInstruction(data, pos);
        if (end === -1) break;
        if (end === -2) return this.suspend(data, pos, Pending.Declaration);
        pos = end;
        continue;
      }
      if (this.depth === this.base && this.stanzaStart === -1) this.stanzaStart = this.count(data, pos);
      const gt = this.startTag(data, pos + 1);
      // unfinished: kept whole for the next writes (with the quote a value is open with, if any)
      if (gt < 0) return this.suspend(data, pos, Pending.StartTag, -gt - 1);
      pos = gt + 1;
      // a self-closed stanza (`<presence/>`) is complete right away
      if (this.depth === this.base && this.cursor !== null) this.stanzaDone(data, pos);
    }
    if (this.failed || this.discarding) return;
    this.count(data, pos);
    if (pos < len) this.rest = data.slice(pos);
    if (this.stanzaStart !== -1 && this.bytes + (len - pos) - this.stanzaStart > this.maxStanzaSize) {
      throw new ParseError('policy-violation', `stanza exceeds the limit of ${this.maxStanzaSize} bytes`);
    }
  }

  private text(data: string, start: number, end: number): void {
    if (this.cursor === null) {
      // Between stanzas only whitespace (keepalives) is meaningful; before the root nothing else is allowed.
      if (this.depth === 0 && !WHITESPACE_ONLY.test(data.slice(start, end))) {
        throw new ParseError('not-well-formed', 'text before the stream root');
      }
      return;
    }
    const raw = data.slice(start, end);
    if (!this.clean && ILLEGAL_CHARS.test(raw)) throw new ParseError('not-well-formed', 'illegal character in text');
    this.appendText(unescapeXml(raw));
  }

  private appendText(text: string): void {
    const children = this.cursor!.children;
    const last = children.length - 1;
    if (last >= 0 && typeof children[last] === 'string') children[last] += text;
    else children.push(text);
  }

  /**
   * `<!...`: CDATA is allowed inside stanzas; comments and DTDs are restricted XML. Returns the
   * next position, -1 when too little has arrived to tell, -2 for a CDATA section not ended yet.
   */
  private markup(data: string, pos: number): number {
    const available = data.length - pos;
    if (data.startsWith('<![CDATA[', pos)) {
      if (this.cursor === null) throw new ParseError('not-well-formed', 'CDATA outside a stanza');
      const end = data.indexOf(']]>', pos + 9);
      if (end === -1) return -2;
      const raw = data.slice(pos + 9, end);
      if (!this.clean && ILLEGAL_CHARS.test(raw)) throw new ParseError('not-well-formed', 'illegal character in CDATA');
      this.appendText(raw);
      return end + 3;
    }
    if (available < 9 && '<![CDATA['.startsWith(data.slice(pos))) return -1;
    if (available < 4) return -1;
    // RFC 6120 §11.1: no comments, no internal or external DTD subsets.
    throw new ParseError('restricted-xml', data.startsWith('<!--', pos) ? 'XML comments are not allowed' : 'DTDs are not allowed');
  }

  /** `<?...`: only the XML declaration, once, before the root (RFC 6120 §11.1, §11.5). -1: too little to tell; -2: not ended yet. */
  private processingInstruction(data: string, pos: number): number {
    if (data.length - pos < 6) return -1;
    if (this.depth === 0 && !this.sawDeclaration && data.startsWith('<?xml', pos) && isWhitespace(data.charCodeAt(pos + 5))) {
      const end = data.indexOf('?>', pos + 5);
      if (end === -1) return -2;
      this.sawDeclaration = true;
      return end + 2;
    }
    throw new ParseError('restricted-xml', 'processing instructions are not allowed');
  }

  /**
   * Reads a start tag from after its `<` (at `start`) to its `>`, in one pass: its name and
   * attributes, then the element. Returns the index of the `>`, or, when the tag has not fully
   * arrived, -1 - (the quote a value is still open with, or 0): nothing is built then, and the
   * whole tag is read again once it has. Names the
   * client streams are made of (`message`, `to`, `xmlns`...) are recognised in place and used
   * as constants: no slice, no name pattern, and a property key V8 already has interned (a
   * sliced name had to be hashed and looked up for every attribute set).
   */
  private startTag(data: string, start: number): number {
    const len = data.length;
    let i = start;
    let c = 0;
    while (i < len) {
      c = data.charCodeAt(i);
      if (c === GT || c === SLASH || isWhitespace(c)) break;
      if (c === LT) throw new ParseError('not-well-formed', 'unexpected < inside a tag');
      i++;
    }
    if (i >= len) return -1;
    const knownElement = knownName(data, start, i);
    const name = knownElement ?? data.slice(start, i);
    if (knownElement === undefined && !NAME.test(name)) throw new ParseError('not-well-formed', `invalid element name "${name}"`);
    // A plain object, not a null-prototype one: V8 keeps those in dictionary mode, a third of the
    // speed for every attribute read on the way. So `hasOwn` tells duplicates (an attribute called
    // `constructor` is an attribute like any other), and `__proto__` is defined, not assigned.
    const attrs: Record<string, string> = {};
    let selfClosing = false;
    for (;;) {
      while (i < len && isWhitespace(data.charCodeAt(i))) i++;
      if (i >= len) return -1;
      c = data.charCodeAt(i);
      if (c === GT) break;
      if (c === SLASH) {
        if (i + 1 >= len) return -1;
        if (data.charCodeAt(i + 1) !== GT) throw new ParseError('not-well-formed', `malformed tag <${name}>`);
        selfClosing = true;
        i++;
        break;
      }
      const nameStart = i;
      while (i < len) {
        c = data.charCodeAt(i);
        if (c === EQUALS || isWhitespace(c) || c === GT || c === SLASH) break;
        if (c === LT) throw new ParseError('not-well-formed', 'unexpected < inside a tag');
        i++;
      }
      if (i >= len) return -1;
      const known = knownName(data, nameStart, i);
      const attrName = known ?? data.slice(nameStart, i);
      while (i < len && isWhitespace(data.charCodeAt(i))) i++;
      if (i >= len) return -1;
      if (data.charCodeAt(i) !== EQUALS || (known === undefined && !NAME.test(attrName))) {
        throw new ParseError('not-well-formed', `malformed attribute in <${name}>`);
      }
      i++;
      while (i < len && isWhitespace(data.charCodeAt(i))) i++;
      if (i >= len) return -1;
      const quote = data.charCodeAt(i);
      if (quote !== DQUOTE && quote !== SQUOTE) throw new ParseError('not-well-formed', `unquoted attribute ${attrName}`);
      const close = data.indexOf(quote === DQUOTE ? '"' : "'", i + 1);
      if (close === -1) return -1 - quote;
      const raw = data.slice(i + 1, close);
      if (raw.indexOf('<') !== -1 || (!this.clean && ILLEGAL_CHARS.test(raw))) {
        throw new ParseError('not-well-formed', `illegal character in attribute ${attrName}`);
      }
      if (Object.hasOwn(attrs, attrName)) throw new ParseError('not-well-formed', `duplicate attribute ${attrName}`);
      if (attrName === '__proto__') Object.defineProperty(attrs, attrName, { value: unescapeXml(raw), enumerable: true, writable: true, configurable: true });
      else attrs[attrName] = unescapeXml(raw);
      i = close + 1;
      if (i >= len) return -1;
      c = data.charCodeAt(i);
      if (c !== GT && c !== SLASH && !isWhitespace(c)) throw new ParseError('not-well-formed', `missing space after attribute ${attrName}`);
    }
    this.element(name, attrs, selfClosing);
    return i;
  }

  /** A start tag has been read: the stream root, a container, or an element of a stanza. */
  private element(name: string, attrs: Record<string, string>, selfClosing: boolean): void {
    if (this.depth === 0) {
      if (selfClosing) throw new ParseError('not-well-formed', 'self-closed stream root');
      this.depth = 1;
      this.rootName = name;
      this.stanzaStart = -1; // the stream header is not a stanza
      this.handler.onStreamStart(name, attrs);
      return;
    }
    if (this.cursor === null && this.handler.openContainer?.(name, attrs) === true) {
      this.stanzaStart = -1; // a container's size is not a stanza's: its children are counted one by one
      if (selfClosing) return void this.handler.closeContainer?.(name);
      if (++this.depth > MAX_ELEMENT_DEPTH) throw new ParseError('policy-violation', 'elements nested too deeply');
      this.containers.push(name);
      this.base = this.depth;
      return;
    }
    const element: Element = new ParsedElement(name, attrs, true);
    if (this.cursor !== null) {
      element.parent = this.cursor;
      this.cursor.children.push(element);
    }
    if (!selfClosing) {
      if (++this.depth > MAX_ELEMENT_DEPTH) throw new ParseError('policy-violation', 'elements nested too deeply');
      this.cursor = element;
    } else if (this.cursor === null) {
      this.cursor = element; // a complete self-closed stanza, picked up by parse()
    }
  }

  /** Returns true when this end tag completes a stanza (the cursor then holds it). */
  private endTag(name: string): boolean {
    if (this.cursor === null && this.containers.length > 0) {
      const container = this.containers.pop()!;
      if (container !== name) throw new ParseError('not-well-formed', `</${name}> does not close <${container}>`);
      this.depth--;
      this.base = this.depth;
      this.handler.closeContainer?.(name);
      return false;
    }
    if (this.depth === 1 && this.cursor === null) {
      // the stream root itself: `</stream:stream>` (RFC 6120 §4.4), and nothing else
      if (name !== this.rootName) throw new ParseError('not-well-formed', `</${name}> does not close <${this.rootName || 'nothing'}>`);
      this.depth = 0;
      this.stanzaStart = -1;
      this.handler.onStreamEnd();
      return false;
    }
    const open = this.cursor;
    if (open === null || open.name !== name) {
      throw new ParseError('not-well-formed', `</${name}> does not close <${open?.name ?? 'nothing'}>`);
    }
    this.depth--;
    return this.depth === this.base;
  }
}

/**
 * Element and attribute names that make up most of what clients send (RFC 6120, the XEPs every
 * chat client uses). Recognised in place by `knownName`; which names are listed changes speed,
 * never what is accepted (a name not listed is sliced and checked against NAME).
 */
const KNOWN_NAMES = [
  // elements
  'message', 'presence', 'iq', 'body', 'subject', 'thread', 'error', 'text', 'show', 'status', 'priority',
  'request', 'received', 'active', 'composing', 'paused', 'inactive', 'gone', 'markable', 'displayed',
  'acknowledged', 'delay', 'x', 'c', 'query', 'item', 'r', 'a', 'enable', 'resume', 'bind', 'resource',
  'session', 'ping', 'stanza-id', 'origin-id', 'store', 'no-store', 'no-permanent-store', 'encrypted',
  'header', 'key', 'payload', 'replace', 'reference', 'stream:stream', 'starttls', 'auth', 'response',
  'authenticate', 'set', 'max', 'before', 'after', 'pubsub', 'publish', 'items', 'retract', 'nick',
  // attributes
  'to', 'from', 'id', 'type', 'xmlns', 'xml:lang', 'h', 'by', 'stamp', 'jid', 'node', 'name', 'var',
  'ver', 'hash', 'code', 'subscription', 'ask', 'role', 'affiliation', 'queryid', 'version',
  'xmlns:stream', 'mechanism', 'sid', 'rid', 'previd', 'with', 'start', 'end',
];
const MAX_KNOWN_LENGTH = Math.max(...KNOWN_NAMES.map((known) => known.length));
/** KNOWN_NAMES by length and first character (ASCII): `length * 128 + code`. */
const knownNames: Array<string[] | undefined> = [];
for (const known of KNOWN_NAMES) (knownNames[known.length * 128 + known.charCodeAt(0)] ??= []).push(known);

/** The constant from KNOWN_NAMES that `data` holds from `start` to `end`, if any. */
function knownName(data: string, start: number, end: number): string | undefined {
  const length = end - start;
  const first = data.charCodeAt(start);
  if (length > MAX_KNOWN_LENGTH || first >= 128) return undefined;
  const candidates = knownNames[length * 128 + first];
  if (candidates === undefined) return undefined;
  for (let k = 0; k < candidates.length; k++) {
    const candidate = candidates[k]!;
    let j = 1;
    while (j < length && candidate.charCodeAt(j) === data.charCodeAt(start + j)) j++;
    if (j === length) return candidate;
  }
  return undefined;
}

/** Whether `data` has only whitespace from `start` to `end`. */
function isSpaceOnly(data: string, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (!isWhitespace(data.charCodeAt(i))) return false;
  return true;
}

/** Where a UTF-8 character cut off by the end of `bytes` begins (bytes.length when none is). */
function splitCharacterStart(bytes: Buffer): number {
  const len = bytes.length;
  for (let i = len - 1; i >= 0 && i >= len - 3; i--) {
    const b = bytes[i]!;
    if ((b & 0xc0) === 0x80) continue; // a continuation byte: look further back
    if (b >= 0xf5 || (b >= 0x80 && b < 0xc2)) return len; // never the start of a character
    const needed = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    return len - i < needed ? i : len;
  }
  return len;
}
