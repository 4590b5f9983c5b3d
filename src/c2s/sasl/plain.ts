// SASL PLAIN (RFC 4616): the message's wire format. The offered password is checked against the
// stored SCRAM credentials by src/accounts/credentials.ts (verifyPassword).
// PLAIN is only offered inside TLS (RFC 6120 §6.4.1 / our security defaults); that is the
// caller's decision, not this file's.
import { type SaslFailure, decodeUtf8, saslprepQuery } from './common.js';

export interface PlainCredentials {
  authzid: string;
  username: string;
  password: string;
}

/**
 * RFC 4616 §2: message = [authzid] UTF8NUL authcid UTF8NUL passwd, authcid and passwd non-empty.
 * The username and password are SASLprepped (RFC 4616 §2, RFC 4013) with the "query" profile.
 */
export function parsePlain(message: Buffer): PlainCredentials | SaslFailure {
  const text = decodeUtf8(message, true);
  if (text === null) return { condition: 'malformed-request', text: 'not UTF-8' };
  const parts = text.split('\0');
  if (parts.length !== 3) return { condition: 'malformed-request', text: 'expected authzid NUL authcid NUL password' };
  const [authzid, rawUsername, rawPassword] = parts as [string, string, string];
  const username = saslprepQuery(rawUsername);
  const password = saslprepQuery(rawPassword);
  if (username === null || password === null) {
    return { condition: 'malformed-request', text: 'empty or prohibited characters in username or password' };
  }
  return { authzid, username, password };
}
