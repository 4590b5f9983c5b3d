// A reader for the Lua data files Prosody's internal storage writes (util.serialization): table
// literals after `return`, or a list of `item({...});` calls in `.list` files. It reads only
// that subset of Lua — tables, strings, numbers, booleans, nil and comments — and never runs
// anything: a file holding any other expression is refused with its line and column.

/** A Lua string is bytes: kept as a latin1 string (one character per byte); see `luaText`. */
export type LuaValue = string | number | boolean | null | LuaTable;
export type LuaTable = Map<string | number | boolean, LuaValue>;

export class LuaSyntaxError extends Error {
  constructor(
    message: string,
    readonly line: number,
    readonly column: number,
  ) {
    super(`${message} at line ${line}, column ${column}`);
  }
}

/** A Lua string's bytes read as UTF-8 text (Prosody stores text as UTF-8 bytes). */
export function luaText(value: LuaValue | undefined): string | undefined {
  return typeof value === 'string' ? Buffer.from(value, 'latin1').toString('utf8') : undefined;
}

/** A Lua string's raw bytes. */
export function luaBytes(value: LuaValue | undefined): Buffer | undefined {
  return typeof value === 'string' ? Buffer.from(value, 'latin1') : undefined;
}

export function isTable(value: LuaValue | undefined): value is LuaTable {
  return value instanceof Map;
}

/** Deeper tables than this are refused: Prosody's data nests a stanza's depth plus a few. */
const MAX_DEPTH = 100;

class Reader {
  private pos = 0;
  constructor(
    private readonly src: string,
    /** The line of the source's first character in its file (for messages). */
    private readonly firstLine = 1,
  ) {}

  fail(message: string, at = this.pos): never {
    let line = this.firstLine;
    let lineStart = 0;
    for (let i = 0; i < at && i < this.src.length; i++) {
      if (this.src.charCodeAt(i) === 10) {
        line++;
        lineStart = i + 1;
      }
    }
    throw new LuaSyntaxError(message, line, at - lineStart + 1);
  }

  atEnd(): boolean {
    this.skip();
    return this.pos >= this.src.length;
  }

  /** Whitespace and comments (`-- ...` and `--[[ ... ]]`). */
  skip(): void {
    const s = this.src;
    for (;;) {
      while (this.pos < s.length && /\s/.test(s[this.pos]!)) this.pos++;
      if (!s.startsWith('--', this.pos)) return;
      this.pos += 2;
      const level = this.longBracket();
      if (level >= 0) {
        this.longString(level);
        continue;
      }
      const nl = s.indexOf('\n', this.pos);
      this.pos = nl === -1 ? s.length : nl + 1;
    }
  }

  expect(text: string): void {
    this.skip();
    if (!this.src.startsWith(text, this.pos)) this.fail(`expected "${text}"`);
    this.pos += text.length;
  }

  accept(text: string): boolean {
    this.skip();
    if (!this.src.startsWith(text, this.pos)) return false;
    this.pos += text.length;
    return true;
  }

  word(): string | null {
    this.skip();
    const match = /^[A-Za-z_][A-Za-z0-9_]*/.exec(this.src.slice(this.pos, this.pos + 256));
    return match === null ? null : match[0];
  }

  value(depth = 0): LuaValue {
    this.skip();
    const s = this.src;
    const c = s[this.pos];
    if (c === '{') return this.table(depth + 1);
    if (c === '"' || c === "'") return this.quoted();
    if (c === '[') {
      const level = this.longBracket();
      if (level >= 0) return this.longString(level);
    }
    if (c === '-' || c === '.' || (c !== undefined && c >= '0' && c <= '9')) return this.number();
    const word = this.word();
    if (word === 'true' || word === 'false' || word === 'nil') {
      this.pos += word.length;
      return word === 'nil' ? null : word === 'true';
    }
    return this.fail(word === null ? 'expected a value' : `"${word}" is not a value this reader accepts`);
  }

  private table(depth: number): LuaTable {
    if (depth > MAX_DEPTH) this.fail('tables nested too deeply');
    this.expect('{');
    const table: LuaTable = new Map();
    let index = 1;
    for (;;) {
      if (this.accept('}')) return table;
      this.skip();
      const start = this.pos;
      let key: string | number | boolean | null;
      if (this.src[this.pos] === '[' && this.src[this.pos + 1] !== '[' && this.src[this.pos + 1] !== '=') {
        this.pos++;
        const k = this.value(depth);
        if (isTable(k)) this.fail('a table as a key', start);
        key = k;
        this.expect(']');
        this.expect('=');
        const v = this.value(depth);
        if (key === null) this.fail('nil as a key', start);
        if (v !== null) table.set(key, v);
      } else {
        const word = this.word();
        const after = word === null ? -1 : this.pos + word.length;
        if (word !== null && word !== 'true' && word !== 'false' && word !== 'nil' && /^\s*=(?!=)/.test(this.src.slice(after, after + 64))) {
          this.pos = after;
          this.expect('=');
          const v = this.value(depth);
          if (v !== null) table.set(word, v);
        } else {
          const v = this.value(depth);
          if (v !== null) table.set(index, v);
          index++;
        }
      }
      if (this.accept(',') || this.accept(';')) continue;
      this.expect('}');
      return table;
    }
  }

  /** At `[[` or `[==[`: consumes it and returns its level; else -1 (nothing consumed). */
  private longBracket(): number {
    const match = /^\[(=*)\[/.exec(this.src.slice(this.pos, this.pos + 64));
    if (match === null) return -1;
    this.pos += match[0].length;
    return match[1]!.length;
  }

  private longString(level: number): string {
    const close = `]${'='.repeat(level)}]`;
    const end = this.src.indexOf(close, this.pos);
    if (end === -1) this.fail('unfinished long string');
    let text = this.src.slice(this.pos, end);
    if (text.startsWith('\r\n')) text = text.slice(2);
    else if (text.startsWith('\n')) text = text.slice(1);
    this.pos = end + close.length;
    return text;
  }

  private quoted(): string {
    const s = this.src;
    const quote = s[this.pos]!;
    const start = this.pos;
    this.pos++;
    let out = '';
    for (;;) {
      const c = s[this.pos];
      if (c === undefined || c === '\n') this.fail('unfinished string', start);
      this.pos++;
      if (c === quote) return out;
      if (c !== '\\') {
        out += c;
        continue;
      }
      const e = s[this.pos++];
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'a': out += '\x07'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'v': out += '\v'; break;
        case '\\': out += '\\'; break;
        case '"': out += '"'; break;
        case "'": out += "'"; break;
        case '\n': out += '\n'; break;
        case 'z': while (this.pos < s.length && /\s/.test(s[this.pos]!)) this.pos++; break;
        case 'x': {
          const hex = s.slice(this.pos, this.pos + 2);
          if (!/^[0-9a-fA-F]{2}$/.test(hex)) this.fail('bad \\x escape');
          out += String.fromCharCode(parseInt(hex, 16));
          this.pos += 2;
          break;
        }
        case 'u': {
          const match = /^\{([0-9a-fA-F]{1,6})\}/.exec(s.slice(this.pos, this.pos + 9));
          if (match === null) this.fail('bad \\u escape');
          out += Buffer.from(String.fromCodePoint(parseInt(match[1]!, 16)), 'utf8').toString('latin1');
          this.pos += match[0].length;
          break;
        }
        default: {
          const match = e === undefined ? null : /^[0-9]{1,3}/.exec(e + s.slice(this.pos, this.pos + 2));
          if (match === null || Number(match[0]) > 255) this.fail('bad escape in string', this.pos - 2);
          out += String.fromCharCode(Number(match[0]));
          this.pos += match[0].length - 1;
        }
      }
    }
  }

  private number(): number {
    const match = /^-?\s*(0[xX][0-9a-fA-F]+|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)/.exec(this.src.slice(this.pos, this.pos + 64));
    if (match === null) return this.fail('bad number');
    this.pos += match[0].length;
    const text = match[0].replace(/\s+/g, '');
    const negative = text.startsWith('-');
    const body = negative ? text.slice(1) : text;
    const value = /^0[xX]/.test(body) ? parseInt(body, 16) : Number(body);
    if (Number.isNaN(value)) this.fail('bad number');
    return negative ? -value : value;
  }
}

/** A `.dat` file: `return <value>;` (a file holding nothing at all is nil). */
export function parseLuaReturn(source: string, firstLine = 1): LuaValue {
  const reader = new Reader(source, firstLine);
  if (reader.atEnd()) return null;
  if (reader.word() !== 'return') reader.fail('expected "return"');
  reader.expect('return');
  const value = reader.value();
  reader.accept(';');
  if (!reader.atEnd()) reader.fail('unexpected text after the value');
  return value;
}

/** One or more `item(<value>);` calls of a `.list` file (a piece of it: see prosody.ts). */
export function parseLuaItems(source: string, firstLine = 1): LuaValue[] {
  const reader = new Reader(source, firstLine);
  const items: LuaValue[] = [];
  while (!reader.atEnd()) {
    if (reader.word() !== 'item') reader.fail('expected item(...)');
    reader.expect('item');
    reader.expect('(');
    items.push(reader.value());
    reader.expect(')');
    reader.accept(';');
  }
  return items;
}
