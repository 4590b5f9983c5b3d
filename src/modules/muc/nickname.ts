// Room nicknames as PRECIS nicknames (RFC 8266), so that two occupants cannot look alike.
//
// A nick arrives as a JID resourcepart (NFC only). Here it is *enforced* (RFC 8266 §2.2: non-ASCII
// spaces to ASCII, leading/trailing spaces removed and runs collapsed, NFKC; then the code points
// must be valid in the PRECIS FreeformClass, RFC 8264 §4.3), and two nicks collide when their
// *comparison* forms are equal (§2.4: enforcement, then toLowerCase and NFKC again). On top of
// that, the comparison maps the Cyrillic and Greek letters that are drawn like Latin ones to
// those (a subset of the Unicode confusables skeleton, UTS #39 §4), as RFC 8266 §7.5 asks
// applications to guard against confusable nicknames: "Аlice" with a Cyrillic А is Alice's nick.

// FreeformClass (RFC 8264 §9): controls, default-ignorable code points (zero-width spaces and
// joiners, bidi overrides, the BOM...), unassigned and private-use code points, surrogates and
// noncharacters are disallowed; so are line and paragraph separators, which are no spaces.
const DISALLOWED = /[\p{Cc}\p{Cn}\p{Co}\p{Cs}\p{Zl}\p{Zp}\p{Default_Ignorable_Code_Point}\p{Noncharacter_Code_Point}]/u;
const SPACES = /\p{Zs}/gu;
const RUNS_OF_SPACES = / {2,}/g;

/**
 * The nickname a room uses for `nick` (RFC 8266 §2.2 enforcement), or null when it is not a
 * valid nickname (empty, or with a disallowed code point).
 */
export function enforceNickname(nick: string): string | null {
  const mapped = nick.replace(SPACES, ' ').trim().replace(RUNS_OF_SPACES, ' ');
  const enforced = mapped.normalize('NFKC');
  if (enforced.length === 0 || DISALLOWED.test(enforced)) return null;
  return enforced;
}

// Cyrillic and Greek letters drawn like Latin ones, upper and lower case apart (Greek Η is H, η
// looks like n), mapped before case mapping, as the UTS #39 skeleton is.
const LOOKALIKES: Record<string, string> = {
  А: 'A', В: 'B', Е: 'E', Ѕ: 'S', І: 'I', Ј: 'J', К: 'K', М: 'M', Н: 'H', О: 'O', Р: 'P', С: 'C', Т: 'T', У: 'Y', Х: 'X', Ԛ: 'Q', Ԝ: 'W', Ү: 'Y',
  а: 'a', е: 'e', о: 'o', р: 'p', с: 'c', у: 'y', х: 'x', ѕ: 's', і: 'i', ј: 'j', һ: 'h', ԁ: 'd', ԛ: 'q', ԝ: 'w', ӏ: 'l', ү: 'y',
  Α: 'A', Β: 'B', Ε: 'E', Ζ: 'Z', Η: 'H', Ι: 'I', Κ: 'K', Μ: 'M', Ν: 'N', Ο: 'O', Ρ: 'P', Τ: 'T', Υ: 'Y', Χ: 'X',
  α: 'a', ι: 'i', κ: 'k', ν: 'v', ο: 'o', ρ: 'p', υ: 'u', χ: 'x',
};
const LOOKALIKE = new RegExp(`[${Object.keys(LOOKALIKES).join('')}]`, 'gu');

/** The form two nicknames are compared in (RFC 8266 §2.4, look-alike letters first): equal forms collide. */
export function nicknameKey(enforced: string): string {
  return enforced.replace(LOOKALIKE, (c) => LOOKALIKES[c]!).toLowerCase().normalize('NFKC');
}
