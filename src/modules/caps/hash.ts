// XEP-0115 §5.1: the verification string of a disco#info result, hashed.
import { createHash } from 'node:crypto';
import type Element from 'ltx/lib/Element.js';

const NS_DATA = 'jabber:x:data';
const HASHES: Record<string, string> = { 'sha-1': 'sha1', 'sha-224': 'sha224', 'sha-256': 'sha256', 'sha-384': 'sha384', 'sha-512': 'sha512' };

const byOctets = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** The §5.1 input string S for a disco#info `<query/>`; undefined when it is ill-formed (§5.4 step 3). */
export function verificationString(query: Element): string | undefined {
  const identities = query.getChildren('identity').map((i) => `${i.attrs.category ?? ''}/${i.attrs.type ?? ''}/${i.attrs['xml:lang'] ?? ''}/${i.attrs.name ?? ''}`);
  const features = query.getChildren('feature').map((f) => f.attrs.var ?? '');
  // §5.4 3.c/3.d: duplicate identities or features make the result invalid
  if (new Set(identities).size !== identities.length || new Set(features).size !== features.length) return undefined;
  let s = identities.sort(byOctets).map((i) => `${i}<`).join('') + features.sort(byOctets).map((f) => `${f}<`).join('');
  const forms: Array<{ type: string; text: string }> = [];
  for (const form of query.getChildren('x', NS_DATA)) {
    const fields = form.getChildren('field');
    const formType = fields.find((f) => f.attrs.var === 'FORM_TYPE');
    if (formType === undefined) continue; // §5.4 3.f: forms without FORM_TYPE are ignored
    const type = formType.getChildText('value') ?? '';
    const rest = fields
      .filter((f) => f.attrs.var !== 'FORM_TYPE')
      .map((f) => ({ name: f.attrs.var ?? '', values: f.getChildren('value').map((v) => v.getText()).sort(byOctets) }))
      .sort((a, b) => byOctets(a.name, b.name));
    forms.push({ type, text: `${type}<` + rest.map((f) => `${f.name}<` + f.values.map((v) => `${v}<`).join('')).join('') });
  }
  if (new Set(forms.map((f) => f.type)).size !== forms.length) return undefined; // §5.4 3.e
  s += forms.sort((a, b) => byOctets(a.type, b.type)).map((f) => f.text).join('');
  return s;
}

/** The ver attribute for `query` with the named hash ('sha-1'...), undefined for an unknown hash or a bad query. */
export function capsHash(query: Element, hash: string): string | undefined {
  const algorithm = HASHES[hash];
  const s = verificationString(query);
  if (algorithm === undefined || s === undefined) return undefined;
  return createHash(algorithm).update(s, 'utf8').digest('base64');
}
