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
import { StringDecoder } from 'node:string_decoder';
import Element from 'ltx/lib/Element.js';

export type ParseErrorCondition = 'not-well-formed' | 'restricted-xml' | 'policy-violation';

export interface StreamParserHandler {
  /** The stream root opened (`<stream:stream ...>`). */
  onStreamStart(name: string, attrs: Record<string, string>): void;
  /** A complete first-level child of the stream root. */
  onStanza(stanza: Element): void;
  /** The stream root was closed by the peer. */
  onStreamEnd(): void;
  /** Fatal: the stream must be closed with this stream error. The parser ignores input afterwards. */
  onParseError(condition: ParseErrorCondition, text: string): void;
}

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
const ILLEGAL_CHARS = /[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]/;
const WHITESPACE_ONLY = /^[ \t\r\n]*$/;
const NAME = /^[A-Za-z_:\u00c0-\uffff][A-Za-z0-9_:.\-\u00b7\u00c0-\uffff]*$/;

function isWhitespace(c: number): boolean {
  return c === 32 || c === 10 || c === 9 || c === 13;
}

function byteLength(data: string, start: number, end: number, ascii: boolean): number {
  return ascii ? end - start : Buffer.byteLength(data.slice(start, end));
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

export class StreamParser {
  private decoder: StringDecoder | null = null;
  /** Unparsed input carried over from the previous write: always starts at a token boundary. */
  private rest = '';
  private depth = 0;
  private cursor: Element | null = null;
  /** Bytes of the current stanza consumed in earlier writes. */
  private stanzaBytes = 0;
  private failed = false;
  private sawDeclaration = false;

  constructor(
    private readonly handler: StreamParserHandler,
    public maxStanzaSize: number,
  ) {}

  /** Forget everything: used for stream restarts after STARTTLS and SASL (RFC 6120 §4.3.3). */
  reset(): void {
    this.decoder = null;
    this.rest = '';
    this.depth = 0;
    this.cursor = null;
    this.stanzaBytes = 0;
    this.sawDeclaration = false;
  }

  /** Start as if the stream root were already open (RFC 7395 WebSocket framing has no root). */
  startFramed(): void {
    this.reset();
    this.depth = 1;
  }

  write(chunk: Buffer | string): void {
    if (this.failed) return;
    let text: string;
    if (typeof chunk === 'string') text = chunk;
    else {
      this.decoder ??= new StringDecoder('utf8');
      text = this.decoder.write(chunk);
    }
    const data = this.rest.length === 0 ? text : this.rest + text;
    this.rest = '';
    try {
      this.parse(data, !NON_ASCII.test(data));
    } catch (err) {
      if (!(err instanceof ParseError)) throw err;
      this.fail(err.condition, err.message);
    }
  }

  private fail(condition: ParseErrorCondition, message: string): void {
    if (this.failed) return;
    this.failed = true;
    this.rest = '';
    this.cursor = null;
    this.handler.onParseError(condition, message);
  }

  private parse(data: string, ascii: boolean): void {
    const len = data.length;
    let pos = 0;
    // Where the stanza being parsed begins in `data` (0 when it began in an earlier write).
    let stanzaStart = 0;
    while (pos < len && !this.failed) {
      if (data.charCodeAt(pos) !== LT) {
        const lt = data.indexOf('<', pos);
        if (lt === -1) {
          // between stanzas (keepalive whitespace) nothing is kept: a long run of it must not
          // pile up as "unfinished markup"; inside one, text may end in a split entity
          if (this.cursor === null) {
            this.text(data, pos, len);
            pos = len;
          }
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
        if (gt === -1) break;
        const name = data.slice(pos + 2, gt).trimEnd();
        pos = gt + 1;
        if (this.endTag(name)) {
          const size = this.stanzaBytes + byteLength(data, stanzaStart, pos, ascii);
          this.stanzaBytes = 0;
          const stanza = this.cursor!;
          this.cursor = null;
          if (size > this.maxStanzaSize) {
            throw new ParseError('policy-violation', `stanza of ${size} bytes exceeds the limit of ${this.maxStanzaSize}`);
          }
          this.handler.onStanza(stanza);
        } else if (this.cursor !== null) {
          this.cursor = this.cursor.parent;
        }
        continue;
      }
      if (next === BANG) {
        const end = this.markup(data, pos);
        if (end === -1) break;
        pos = end;
        continue;
      }
      if (next === QUESTION) {
        const end = this.processingInstruction(data, pos);
        if (end === -1) break;
        pos = end;
        continue;
      }
      const gt = findTagEnd(data, pos + 1);
      if (gt === -1) break;
      if (this.depth === 1) stanzaStart = pos;
      this.startTag(data, pos + 1, gt);
      pos = gt + 1;
      if (this.depth === 1 && this.cursor !== null) {
        // a self-closed stanza (`<presence/>`) is complete right away
        const stanza = this.cursor;
        this.cursor = null;
        const size = byteLength(data, stanzaStart, pos, ascii);
        if (size > this.maxStanzaSize) {
          throw new ParseError('policy-violation', `stanza of ${size} bytes exceeds the limit of ${this.maxStanzaSize}`);
        }
        this.handler.onStanza(stanza);
      }
    }
    if (this.failed) return;
    if (pos < len) this.rest = pos === 0 ? data : data.slice(pos);
    // XEP-0478: count what has arrived of an unfinished stanza, so an oversized one is cut off
    // before it is complete rather than buffered to the end.
    if (this.depth >= 2) {
      this.stanzaBytes += byteLength(data, stanzaStart, pos, ascii);
      if (this.stanzaBytes + byteLength(data, pos, len, ascii) > this.maxStanzaSize) {
        throw new ParseError('policy-violation', `stanza exceeds the limit of ${this.maxStanzaSize} bytes`);
      }
    } else if (this.rest.length > this.maxStanzaSize) {
      throw new ParseError('policy-violation', `unfinished markup exceeds the limit of ${this.maxStanzaSize} bytes`);
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
    if (ILLEGAL_CHARS.test(raw)) throw new ParseError('not-well-formed', 'illegal character in text');
    this.appendText(unescapeXml(raw));
  }

  private appendText(text: string): void {
    const children = this.cursor!.children;
    const last = children.length - 1;
    if (last >= 0 && typeof children[last] === 'string') children[last] += text;
    else children.push(text);
  }

  /** `<!...`: CDATA is allowed inside stanzas; comments and DTDs are restricted XML. Returns the next position or -1 for more input. */
  private markup(data: string, pos: number): number {
    const available = data.length - pos;
    if (data.startsWith('<![CDATA[', pos)) {
      if (this.cursor === null) throw new ParseError('not-well-formed', 'CDATA outside a stanza');
      const end = data.indexOf(']]>', pos + 9);
      if (end === -1) return -1;
      const raw = data.slice(pos + 9, end);
      if (ILLEGAL_CHARS.test(raw)) throw new ParseError('not-well-formed', 'illegal character in CDATA');
      this.appendText(raw);
      return end + 3;
    }
    if (available < 9 && '<![CDATA['.startsWith(data.slice(pos))) return -1;
    if (available < 4) return -1;
    // RFC 6120 §11.1: no comments, no internal or external DTD subsets.
    throw new ParseError('restricted-xml', data.startsWith('<!--', pos) ? 'XML comments are not allowed' : 'DTDs are not allowed');
  }

  /** `<?...`: only the XML declaration, once, before the root (RFC 6120 §11.1, §11.5). */
  private processingInstruction(data: string, pos: number): number {
    if (data.length - pos < 6) return -1;
    if (this.depth === 0 && !this.sawDeclaration && data.startsWith('<?xml', pos) && isWhitespace(data.charCodeAt(pos + 5))) {
      const end = data.indexOf('?>', pos + 5);
      if (end === -1) return -1;
      this.sawDeclaration = true;
      return end + 2;
    }
    throw new ParseError('restricted-xml', 'processing instructions are not allowed');
  }

  /** Parses `name attr='v' ...` between `<` (exclusive, at `start`) and `>` (at `gt`). */
  private startTag(data: string, start: number, gt: number): void {
    let end = gt;
    const selfClosing = data.charCodeAt(gt - 1) === SLASH;
    if (selfClosing) end--;
    let i = start;
    while (i < end && !isWhitespace(data.charCodeAt(i))) i++;
    const name = data.slice(start, i);
    if (!NAME.test(name)) throw new ParseError('not-well-formed', `invalid element name "${name}"`);
    const attrs: Record<string, string> = {};
    for (;;) {
      while (i < end && isWhitespace(data.charCodeAt(i))) i++;
      if (i >= end) break;
      const nameStart = i;
      while (i < end) {
        const c = data.charCodeAt(i);
        if (c === EQUALS || isWhitespace(c)) break;
        i++;
      }
      const attrName = data.slice(nameStart, i);
      while (i < end && isWhitespace(data.charCodeAt(i))) i++;
      if (data.charCodeAt(i) !== EQUALS || !NAME.test(attrName)) {
        throw new ParseError('not-well-formed', `malformed attribute in <${name}>`);
      }
      i++;
      while (i < end && isWhitespace(data.charCodeAt(i))) i++;
      const quote = data.charCodeAt(i);
      if (quote !== DQUOTE && quote !== SQUOTE) throw new ParseError('not-well-formed', `unquoted attribute ${attrName}`);
      const close = data.indexOf(quote === DQUOTE ? '"' : "'", i + 1);
      if (close === -1 || close >= gt) throw new ParseError('not-well-formed', `unterminated attribute ${attrName}`);
      const raw = data.slice(i + 1, close);
      if (raw.indexOf('<') !== -1 || ILLEGAL_CHARS.test(raw)) {
        throw new ParseError('not-well-formed', `illegal character in attribute ${attrName}`);
      }
      if (attrName in attrs) throw new ParseError('not-well-formed', `duplicate attribute ${attrName}`);
      attrs[attrName] = unescapeXml(raw);
      i = close + 1;
      if (i < end && !isWhitespace(data.charCodeAt(i))) throw new ParseError('not-well-formed', `missing space after attribute ${attrName}`);
    }

    if (this.depth === 0) {
      if (selfClosing) throw new ParseError('not-well-formed', 'self-closed stream root');
      this.depth = 1;
      this.handler.onStreamStart(name, attrs);
      return;
    }
    const element = new Element(name);
    element.attrs = attrs;
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
    if (this.depth === 1 && this.cursor === null) {
      // the stream root itself: `</stream:stream>` (RFC 6120 §4.4)
      this.depth = 0;
      this.handler.onStreamEnd();
      return false;
    }
    const open = this.cursor;
    if (open === null || open.name !== name) {
      throw new ParseError('not-well-formed', `</${name}> does not close <${open?.name ?? 'nothing'}>`);
    }
    this.depth--;
    return this.depth === 1;
  }
}

/** Index of the `>` that ends a start tag beginning at `from`, skipping quoted attribute values; -1 if incomplete. */
function findTagEnd(data: string, from: number): number {
  const len = data.length;
  for (let i = from; i < len; i++) {
    const c = data.charCodeAt(i);
    if (c === GT) return i;
    if (c === DQUOTE || c === SQUOTE) {
      const close = data.indexOf(c === DQUOTE ? '"' : "'", i + 1);
      if (close === -1) return -1;
      i = close;
    } else if (c === LT) {
      throw new ParseError('not-well-formed', 'unexpected < inside a tag');
    }
  }
  return -1;
}
