// Pieces shared by the SASL mechanisms (RFC 6120 §6, RFC 4422).
import saslprep from 'saslprep';

/** A SASL failure as the XMPP <failure/> element names it (RFC 6120 §6.5). */
export type SaslFailure = {
  condition:
    | 'not-authorized'
    | 'account-disabled'
    | 'malformed-request'
    | 'invalid-authzid'
    | 'encryption-required'
    | 'temporary-auth-failure'
    | 'invalid-mechanism';
  text?: string;
};

export function saslFailure(condition: SaslFailure['condition'], text?: string): { failure: SaslFailure } {
  return { failure: text === undefined ? { condition } : { condition, text } };
}

/**
 * SASLprep (RFC 4013) for a string the client sent. RFC 3454 §7: a "query" may contain unassigned
 * code points, whereas strings we store (see deriveScramCredentials) may not. Returns null when the
 * string holds prohibited characters (controls, bidi violations, ...) or maps to nothing.
 */
export function saslprepQuery(input: string): string | null {
  try {
    const prepared = saslprep(input, { allowUnassigned: true });
    return prepared === '' ? null : prepared;
  } catch {
    return null;
  }
}

/**
 * Decodes SASL bytes as UTF-8, refusing invalid sequences and NUL (RFC 4422 §3.4.1 and the
 * mechanisms' grammars only allow UTF-8).
 */
export function decodeUtf8(message: Buffer, allowNul = false): string | null {
  const text = message.toString('utf8');
  if (!Buffer.from(text, 'utf8').equals(message)) return null;
  if (!allowNul && text.includes('\0')) return null;
  return text;
}

/**
 * RFC 6120 §6.3.8: an authorization identity other than the user's own bare JID would mean
 * acting as someone else, which this server does not allow. Absent ('') is always fine.
 */
export function authzidIsOwnBareJid(authzid: string, username: string, domain: string): boolean {
  // JID localparts and domains are case-insensitive (RFC 7622 §3.2, §3.3), so compare folded.
  return authzid === '' || authzid.toLowerCase() === `${username}@${domain}`.toLowerCase();
}
