// Stream framing for the load generator: cut a client's incoming character stream into
// top-level stanzas without an XML parser.
//
// The generator only ever sees traffic it provoked itself (stream features, SASL and IQ
// answers, its own chat messages), so an indexOf-based splitter is enough and keeps the
// generator far cheaper than the server it measures. Known limits, acceptable here:
// a literal '>' inside an attribute value and prefixed stanza names (<client:message>)
// are not understood.

/** One complete top-level element, e.g. name 'message' or 'stream:features'. */
export interface Stanza {
  readonly name: string;
  readonly xml: string;
}

export interface FrameSink {
  /** `<stream:stream ...>` opened (the header is not a complete element). */
  streamHeader(header: string): void;
  stanza(stanza: Stanza): void;
  /** `</stream:stream>` received: the peer closed the stream. */
  streamEnd(): void;
}

/** Index just past the end of an element name starting at `from`, or -1 if incomplete. */
function nameEnd(buf: string, from: number): number {
  for (let i = from; i < buf.length; i++) {
    const c = buf.charCodeAt(i);
    // space, tab, CR, LF, '/', '>'
    if (c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0a || c === 0x2f || c === 0x3e) return i;
  }
  return -1;
}

/**
 * Find the end (exclusive) of the element `name` whose start tag ends at `from`,
 * counting nested elements of the same name. Returns -1 while incomplete.
 */
function closeEnd(buf: string, name: string, from: number): number {
  const open = '<' + name;
  const close = '</' + name + '>';
  let depth = 1;
  let pos = from;
  for (;;) {
    const c = buf.indexOf(close, pos);
    if (c < 0) return -1;
    let o = buf.indexOf(open, pos);
    while (o >= 0 && o < c) {
      const after = buf.charCodeAt(o + open.length);
      const gt = buf.indexOf('>', o);
      // '<messageX' is another element; only '<message' followed by a delimiter counts
      if ((after === 0x20 || after === 0x3e || after === 0x2f || after === 0x09 || after === 0x0a || after === 0x0d)
        && gt >= 0 && buf.charCodeAt(gt - 1) !== 0x2f) {
        depth++;
      }
      o = buf.indexOf(open, o + open.length);
    }
    depth--;
    if (depth === 0) return c + close.length;
    pos = c + close.length;
  }
}

/**
 * Incremental splitter. Feed it decoded text chunks; it calls the sink for every complete
 * stanza and keeps the incomplete tail for the next chunk.
 */
export class StanzaSplitter {
  private buf = '';
  private resetRequested = false;

  constructor(private readonly sink: FrameSink) {}

  /** Drop buffered text (after STARTTLS or a stream restart the old framing is void). */
  reset(): void {
    this.buf = '';
  }

  get buffered(): number {
    return this.buf.length;
  }

  push(chunk: string): void {
    const buf = this.buf.length === 0 ? chunk : this.buf + chunk;
    let pos = 0;
    for (;;) {
      const lt = buf.indexOf('<', pos);
      if (lt < 0) {
        pos = buf.length; // only whitespace keepalives left
        break;
      }
      const second = buf.charCodeAt(lt + 1);
      if (Number.isNaN(second)) {
        pos = lt;
        break;
      }
      if (second === 0x3f /* '?' */) {
        const end = buf.indexOf('?>', lt);
        if (end < 0) { pos = lt; break; }
        pos = end + 2;
        continue;
      }
      if (second === 0x2f /* '/' */) {
        const gt = buf.indexOf('>', lt);
        if (gt < 0) { pos = lt; break; }
        pos = gt + 1;
        if (buf.startsWith('</stream:stream', lt)) {
          this.buf = '';
          this.sink.streamEnd();
          return;
        }
        continue; // a stray end tag: ignore
      }
      const ne = nameEnd(buf, lt + 1);
      if (ne < 0) { pos = lt; break; }
      const gt = buf.indexOf('>', ne);
      if (gt < 0) { pos = lt; break; }
      const name = buf.slice(lt + 1, ne);
      if (name === 'stream:stream') {
        pos = gt + 1;
        this.sink.streamHeader(buf.slice(lt, pos));
        continue;
      }
      let end: number;
      if (buf.charCodeAt(gt - 1) === 0x2f /* '/' */) {
        end = gt + 1;
      } else {
        end = closeEnd(buf, name, gt + 1);
        if (end < 0) { pos = lt; break; }
      }
      pos = end;
      this.sink.stanza({ name, xml: buf.slice(lt, end) });
      // the sink may have reset us (STARTTLS proceed): stop using the old buffer
      if (this.resetRequested) {
        this.resetRequested = false;
        this.buf = '';
        return;
      }
    }
    this.buf = pos >= buf.length ? '' : buf.slice(pos);
  }

  /** Called from inside a sink callback: discard everything after the current stanza. */
  discardRest(): void {
    this.resetRequested = true;
  }
}

/** Value of attribute `name` on the start tag of `xml` (quotes either way), or undefined. */
export function startTagAttr(xml: string, name: string): string | undefined {
  const gt = xml.indexOf('>');
  const tag = gt < 0 ? xml : xml.slice(0, gt);
  let i = tag.indexOf(' ' + name + '=');
  if (i < 0) {
    const m = new RegExp(`\\s${name}\\s*=`).exec(tag);
    if (!m) return undefined;
    i = m.index;
  }
  const eq = tag.indexOf('=', i);
  let q = eq + 1;
  while (tag[q] === ' ') q++;
  const quote = tag[q];
  if (quote !== "'" && quote !== '"') return undefined;
  const end = tag.indexOf(quote, q + 1);
  return end < 0 ? undefined : tag.slice(q + 1, end);
}

/** Text content of the first `<tag>...</tag>` child (no attributes on it), or undefined. */
export function childText(xml: string, tag: string): string | undefined {
  const open = '<' + tag + '>';
  const s = xml.indexOf(open);
  if (s < 0) return undefined;
  const e = xml.indexOf('</' + tag + '>', s + open.length);
  return e < 0 ? undefined : xml.slice(s + open.length, e);
}

/**
 * The defined condition of an error: the first child of <error/> (stanza errors), or of the
 * element itself for <stream:error/> and SASL <failure/>; <text/> is skipped.
 */
export function errorCondition(xml: string): string {
  const errorAt = xml.indexOf('<error');
  const re = /<([a-z][a-z-]*)(?=[\s/>])/g;
  re.lastIndex = xml.indexOf('>', errorAt < 0 ? 0 : errorAt) + 1;
  for (let m = re.exec(xml); m; m = re.exec(xml)) {
    if (m[1] !== 'text') return m[1]!;
  }
  return 'undefined-condition';
}

export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
    .replace(/'/g, '&apos;').replace(/"/g, '&quot;');
}
