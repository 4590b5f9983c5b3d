// Typings for @xmpp/xml's streaming parser (the one @xmpp/client reads its streams with), used by
// the raw stream-management client to split what the server sends into top-level elements.
declare module '@xmpp/xml/lib/Parser.js' {
  import Element = require('ltx/lib/Element.js');
  class Parser {
    on(event: 'element' | 'start' | 'end', listener: (element: Element) => void): this;
    on(event: 'error', listener: (error: Error) => void): this;
    write(data: string): void;
  }
  export = Parser;
}
