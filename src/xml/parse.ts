// Parse one serialised element (e.g. a stanza read back from storage) with the same parser the
// streams use, so stored XML gets the same restrictions as XML off the wire.
import type Element from 'ltx/lib/Element.js';
import { StreamParser } from './parser.js';

export function parseElement(xml: string): Element {
  let result: Element | undefined;
  let problem: string | undefined;
  const parser = new StreamParser(
    {
      onStreamStart() {},
      onStreamEnd() {},
      onStanza(stanza) {
        result ??= stanza;
      },
      onParseError(condition, text) {
        problem = `${condition}: ${text}`;
      },
    },
    Number.MAX_SAFE_INTEGER,
  );
  parser.startFramed();
  parser.write(xml);
  if (problem !== undefined || result === undefined) throw new Error(`not a single XML element (${problem ?? 'incomplete'})`);
  return result;
}
