// Typings for ltx's one-shot parser, used by the wire helpers to read what the server sent.
declare module 'ltx/lib/parse.js' {
  import Element = require('ltx/lib/Element.js');
  function parse(data: string): Element;
  export = parse;
}
