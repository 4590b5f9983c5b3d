// Minimal typings for the parts of ltx / @xmpp/xml / @xmpp/jid this project uses
// (neither package ships declarations).
declare module 'ltx/lib/Element.js' {
  type Node = Element | string;
  class Element {
    constructor(name: string, attrs?: Record<string, string> | string);
    name: string;
    attrs: Record<string, string>;
    children: Node[];
    parent: Element | null;
    is(name: string, xmlns?: string): boolean;
    getName(): string;
    getNS(): string | undefined;
    setAttrs(attrs?: Record<string, string> | string): void;
    attr(name: string): string | undefined;
    attr(name: string, value: string | null | undefined): this;
    getAttr(name: string): string | undefined;
    getChild(name: string, xmlns?: string): Element | undefined;
    getChildren(name: string, xmlns?: string): Element[];
    getChildElements(): Element[];
    getChildText(name: string, xmlns?: string): string | null;
    getText(): string;
    text(): string;
    text(value: string): this;
    c(name: string, attrs?: Record<string, string> | string): Element;
    t(text: string): this;
    up(): Element;
    root(): Element;
    append(...nodes: Node[]): this;
    remove(el: Element | string, xmlns?: string): this;
    toString(): string;
  }
  export = Element;
}
declare module '@xmpp/xml' {
  import Element = require('ltx/lib/Element.js');
  type Child = Element | string | number | null | undefined | false | Child[];
  export function xml(name: string, attrs?: Record<string, string | number | undefined | null> | null, ...children: Child[]): Element;
  export default xml;
  export { Element };
}
declare module 'saslprep' {
  function saslprep(input: string, opts?: { allowUnassigned?: boolean }): string;
  export = saslprep;
}
