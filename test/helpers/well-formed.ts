// A strict XML well-formedness checker for everything the server writes to a test client
// (DESIGN.md, Tests: "every byte the server writes in an integration test passes a strict XML
// well-formedness check"). Client libraries are lenient or give up with a vague error; this one
// names the offending bytes. It checks XML 1.0 and Namespaces in XML 1.0 as far as a server may
// use them in XMPP (RFC 6120 §11): legal characters (XML §2.2), names, quoted attributes without
// `<` and with valid references, no duplicate attribute (XML §3.1, by name and by expanded name,
// Namespaces §6.3), every prefix bound (Namespaces §5), balanced tags, and nothing XMPP forbids
// (comments, processing instructions, DTDs; RFC 6120 §11.1).
//
// It understands the two framings of a client stream:
//   'stream'   TCP/TLS: `<?xml?>` then `<stream:stream>` opened and not closed while stanzas flow,
//              restarted after STARTTLS and SASL by a new declaration and header (RFC 6120 §4.3.3);
//   'message'  WebSocket (RFC 7395 §3.3.3): every message one complete document (`<open/>`,
//              `<stream:features xmlns:stream=...>`, each stanza with its own namespace).
//
// A test fails when any checker saw a problem: the ava hooks registered here (afterEach and
// after) and TestServer.stop() throw with the problem and the bytes around it.
import { StringDecoder } from 'node:string_decoder';
import test from 'ava';

const XML_NS = 'http://www.w3.org/XML/1998/namespace';
const XMLNS_NS = 'http://www.w3.org/2000/xmlns/';

// XML 1.0 §2.2 Char; with the `u` flag a lone surrogate is a code point of its own and fails too
const ILLEGAL_CHAR = /[^\t\n\r\x20-\ud7ff\ue000-\ufffd\u{10000}-\u{10ffff}]/u;
const NAME_START = 'A-Za-z_\\u00c0-\\u00d6\\u00d8-\\u00f6\\u00f8-\\u02ff\\u0370-\\u037d\\u037f-\\u1fff\\u200c\\u200d\\u2070-\\u218f\\u2c00-\\u2fef\\u3001-\\ud7ff\\uf900-\\ufdcf\\ufdf0-\\ufffd';
const NAME_CHAR = `${NAME_START}\\-.0-9\\u00b7\\u0300-\\u036f\\u203f\\u2040`;
const NCNAME = `[${NAME_START}][${NAME_CHAR}]*`;
const QNAME = new RegExp(`^${NCNAME}(?::${NCNAME})?$`);
const WHITESPACE = /^[ \t\r\n]*$/;
const PREDEFINED = new Set(['amp', 'lt', 'gt', 'quot', 'apos']);

interface Frame {
  name: string;
  /** prefix ('' for the default namespace) → namespace name, declared on this element */
  declared: Map<string, string> | null;
}

class Malformed extends Error {}

/** Problems found by every checker in this process (one ava worker runs one test file). */
const problems: string[] = [];

/** Takes the problems found since the last call (each reported once). */
export function takeWireProblems(): string[] {
  return problems.splice(0, problems.length);
}

/** Throws when any checker saw malformed XML since the last call. */
export function assertWireWellFormed(): void {
  const found = takeWireProblems();
  if (found.length > 0) throw new Error(`the server wrote malformed XML to a client:\n${found.join('\n')}`);
}

// Every test file that uses the test clients gets these hooks (a failing hook fails the test run).
test.afterEach.always(assertWireWellFormed);
test.after.always(assertWireWellFormed);

export class WellFormedChecker {
  /** The first problem found; the checker stops at it. */
  problem: string | undefined;
  private pending = '';
  /** Characters checked before `pending`, for the offset in reports. */
  private offset = 0;
  private stack: Frame[] = [];
  private closed = false;
  /** A stream restart's declaration was read: the next thing must be the new stream header. */
  private expectHeader = false;
  private sawRoot = false;
  private decoder = new StringDecoder('utf8');

  constructor(
    readonly label: string,
    readonly framing: 'stream' | 'message',
    private readonly onProblem?: (problem: string) => void,
  ) {}

  /** Bytes of a TCP/TLS stream, decoded, in any split. */
  write(chunk: string | Buffer): void {
    if (this.problem !== undefined) return;
    this.pending += typeof chunk === 'string' ? chunk : this.decoder.write(chunk);
    this.run(false);
  }

  /** A new connection (a client reconnecting): a new stream from its first byte. */
  reset(): void {
    if (this.problem !== undefined) return;
    this.pending = '';
    this.stack = [];
    this.closed = false;
    this.expectHeader = false;
    this.sawRoot = false;
    this.decoder = new StringDecoder('utf8');
  }

  /** One WebSocket message: a complete document of its own. */
  message(text: string | Buffer): void {
    if (this.problem !== undefined) return;
    this.pending = typeof text === 'string' ? text : text.toString('utf8');
    this.stack = [];
    this.sawRoot = false;
    this.closed = false;
    this.run(true);
  }

  private run(complete: boolean): void {
    const data = this.pending;
    let pos = 0;
    try {
      for (;;) {
        const end = this.token(data, pos, complete);
        if (end === -1) break;
        pos = end;
      }
      if (complete) {
        if (pos < data.length) throw new Malformed('incomplete markup at the end of the message');
        if (!this.sawRoot) throw new Malformed('a message without an element');
        if (this.stack.length > 0) throw new Malformed(`<${this.stack[this.stack.length - 1]!.name}> not closed at the end of the message`);
      }
      this.offset += pos;
      this.pending = data.slice(pos);
    } catch (err) {
      if (!(err instanceof Malformed)) throw err;
      const at = this.offset + pos;
      this.problem = `${this.label}: ${err.message} at character ${at}: ${JSON.stringify(data.slice(Math.max(0, pos - 200), pos + 300))}`;
      this.onProblem?.(this.problem);
      this.pending = '';
    }
  }

  /** Checks the token at `pos`; returns the position after it, or -1 when more input is needed. */
  private token(data: string, pos: number, complete: boolean): number {
    if (pos >= data.length) return -1;
    if (data.charCodeAt(pos) !== 60 /* < */) {
      const lt = data.indexOf('<', pos);
      // text may end in a split reference: wait for the rest
      if (lt === -1 && !complete && this.stack.length > 0) return -1;
      const end = lt === -1 ? data.length : lt;
      this.text(data.slice(pos, end));
      return end;
    }
    const c = data[pos + 1];
    if (c === undefined) return complete ? this.fail('a lone <') : -1;
    if (c === '/') {
      const gt = data.indexOf('>', pos);
      if (gt === -1) return complete ? this.fail('unterminated end tag') : -1;
      this.endTag(data.slice(pos + 2, gt));
      return gt + 1;
    }
    if (c === '?') {
      const end = data.indexOf('?>', pos);
      if (end === -1) return complete ? this.fail('unterminated declaration') : -1;
      this.declaration(data.slice(pos, end + 2));
      return end + 2;
    }
    if (c === '!') {
      if (data.length - pos < 9 && !complete) return -1;
      if (data.startsWith('<![CDATA[', pos)) {
        const end = data.indexOf(']]>', pos);
        if (end === -1) return complete ? this.fail('unterminated CDATA section') : -1;
        if (this.stack.length < (this.framing === 'stream' ? 2 : 1)) this.fail('CDATA outside an element');
        this.chars(data.slice(pos + 9, end));
        return end + 3;
      }
      return this.fail('comment or DTD (restricted XML, RFC 6120 §11.1)');
    }
    // a start tag: find its `>` outside quoted values
    let quote = '';
    for (let i = pos + 1; i < data.length; i++) {
      const ch = data[i];
      if (quote !== '') {
        if (ch === quote) quote = '';
      } else if (ch === '"' || ch === "'") quote = ch;
      else if (ch === '<') return this.fail('< inside a tag');
      else if (ch === '>') {
        this.startTag(data.slice(pos + 1, i));
        return i + 1;
      }
    }
    return complete ? this.fail('unterminated start tag') : -1;
  }

  private fail(message: string): never {
    throw new Malformed(message);
  }

  private chars(s: string): void {
    const bad = ILLEGAL_CHAR.exec(s);
    if (bad) this.fail(`illegal character U+${bad[0].codePointAt(0)!.toString(16).padStart(4, '0')}`);
  }

  /** Text with its references checked (XML §4.1: only the predefined entities and legal character references). */
  private references(s: string): void {
    this.chars(s);
    let amp = s.indexOf('&');
    while (amp !== -1) {
      const semi = s.indexOf(';', amp);
      const ref = semi === -1 ? '' : s.slice(amp + 1, semi);
      if (ref.startsWith('#')) {
        const hex = ref.startsWith('#x');
        const digits = ref.slice(hex ? 2 : 1);
        if (!(hex ? /^[0-9a-fA-F]+$/ : /^[0-9]+$/).test(digits)) this.fail(`bad character reference &${ref};`);
        const code = parseInt(digits, hex ? 16 : 10);
        if (code > 0x10ffff || ILLEGAL_CHAR.test(String.fromCodePoint(code))) this.fail(`reference to an illegal character &${ref};`);
      } else if (!PREDEFINED.has(ref)) {
        this.fail(semi === -1 ? 'a bare &' : `undeclared entity &${ref};`);
      }
      amp = s.indexOf('&', semi);
    }
  }

  private text(s: string): void {
    const inStanza = this.stack.length >= (this.framing === 'stream' ? 2 : 1);
    if (!inStanza) {
      if (!WHITESPACE.test(s)) this.fail(this.closed ? 'text after the end of the stream' : 'text outside an element');
      return;
    }
    if (s.includes(']]>')) this.fail(']]> in text');
    this.references(s);
  }

  private declaration(s: string): void {
    this.chars(s);
    const isXmlDecl = /^<\?xml[ \t\r\n]/.test(s);
    if (!isXmlDecl) this.fail('processing instruction (restricted XML, RFC 6120 §11.1)');
    if (!/^<\?xml[ \t\r\n]+version=(['"])1\.0\1([ \t\r\n]+encoding=(['"])[Uu][Tt][Ff]-8\3)?[ \t\r\n]*\?>$/.test(s)) this.fail('malformed XML declaration');
    if (this.framing === 'stream' && this.stack.length === 1 && !this.expectHeader) {
      this.expectHeader = true; // a stream restart (RFC 6120 §4.3.3)
      return;
    }
    if (this.stack.length > 0 || this.sawRoot) this.fail('XML declaration not at the start of the document');
  }

  private lookup(prefix: string, own: Map<string, string> | null): string | undefined {
    if (prefix === 'xml') return XML_NS;
    const mine = own?.get(prefix);
    if (mine !== undefined) return mine;
    for (let i = this.stack.length - 1; i >= 0; i--) {
      const ns = this.stack[i]!.declared?.get(prefix);
      if (ns !== undefined) return ns;
    }
    return undefined;
  }

  private startTag(inner: string): void {
    this.chars(inner);
    const selfClosing = inner.endsWith('/');
    const body = selfClosing ? inner.slice(0, -1) : inner;
    const nameEnd = body.search(/[ \t\r\n]|$/);
    const name = body.slice(0, nameEnd);
    if (!QNAME.test(name)) this.fail(`bad element name "${name}"`);
    const attrs = new Map<string, string>();
    let i = nameEnd;
    const attribute = /[ \t\r\n]+([^\s=]+)[ \t\r\n]*=[ \t\r\n]*(?:"([^"]*)"|'([^']*)')/y;
    for (;;) {
      if (/^[ \t\r\n]*$/.test(body.slice(i))) break;
      attribute.lastIndex = i;
      const m = attribute.exec(body);
      if (m === null) this.fail(`malformed attribute in <${name}>`);
      const [, attrName, dq, sq] = m;
      const value = (dq ?? sq)!;
      if (!QNAME.test(attrName!)) this.fail(`bad attribute name "${attrName}" in <${name}>`);
      if (attrs.has(attrName!)) this.fail(`duplicate attribute ${attrName} in <${name}>`);
      if (value.includes('<')) this.fail(`< in the value of ${attrName} in <${name}>`);
      this.references(value);
      attrs.set(attrName!, value);
      i = attribute.lastIndex;
      const next = body[i];
      if (next !== undefined && !/[ \t\r\n]/.test(next)) this.fail(`no space after attribute ${attrName} in <${name}>`);
    }

    // Namespaces in XML 1.0: declarations first, then every prefix must resolve
    let declared: Map<string, string> | null = null;
    for (const [attrName, value] of attrs) {
      if (attrName === 'xmlns') (declared ??= new Map()).set('', value);
      else if (attrName.startsWith('xmlns:')) {
        const prefix = attrName.slice(6);
        if (value === '') this.fail(`empty namespace for prefix ${prefix} (Namespaces §5)`);
        if (prefix === 'xmlns' || (prefix === 'xml' && value !== XML_NS) || value === XMLNS_NS) this.fail(`reserved prefix or namespace in ${attrName}`);
        (declared ??= new Map()).set(prefix, value);
      }
    }
    const colon = name.indexOf(':');
    if (colon !== -1 && this.lookup(name.slice(0, colon), declared) === undefined) this.fail(`unbound prefix in <${name}>`);
    const expanded = new Set<string>();
    for (const attrName of attrs.keys()) {
      const c = attrName.indexOf(':');
      if (c === -1 || attrName.startsWith('xmlns:')) continue;
      const ns = this.lookup(attrName.slice(0, c), declared);
      if (ns === undefined) this.fail(`unbound prefix in attribute ${attrName} of <${name}>`);
      const key = `{${ns}}${attrName.slice(c + 1)}`;
      if (expanded.has(key)) this.fail(`two attributes named ${key} in <${name}>`);
      expanded.add(key);
    }

    const frame: Frame = { name, declared };
    if (this.framing === 'message') {
      if (this.stack.length === 0 && this.sawRoot) this.fail('a second element in one message');
      this.sawRoot = true;
      if (!selfClosing) this.stack.push(frame);
      return;
    }
    // stream framing
    if (this.closed) this.fail('an element after the end of the stream');
    if (this.stack.length === 0 || (this.stack.length === 1 && name === 'stream:stream')) {
      if (name !== 'stream:stream') this.fail(`<${name}> where the stream header belongs`);
      if (selfClosing) this.fail('a self-closed stream header');
      this.stack = [frame]; // a new stream (or a restart) replaces the old root
      this.expectHeader = false;
      this.sawRoot = true;
      return;
    }
    if (this.expectHeader) this.fail(`<${name}> after an XML declaration, where a stream header belongs`);
    if (!selfClosing) this.stack.push(frame);
  }

  private endTag(inner: string): void {
    const name = inner.trimEnd();
    const open = this.stack.pop();
    if (open === undefined) this.fail(`</${name}> with no open element`);
    if (open.name !== name) this.fail(`</${name}> closes <${open.name}>`);
    if (this.framing === 'stream' && this.stack.length === 0) this.closed = true;
  }
}

/** A checker for a connection, in this process's registry (its problems fail the test). */
export function checkWire(label: string, framing: 'stream' | 'message'): WellFormedChecker {
  return new WellFormedChecker(label, framing, (problem) => problems.push(problem));
}
