// Hand-made XMPP for tests that need to see the bytes: stream headers, reading one element or
// stream error at a time, SASL PLAIN and a raw SCRAM client (independent of the server's code,
// straight from RFC 5802 §3) that checks the server's signature, resource binding, and a raw
// direct-TLS connections come from RawClient.openDirect.
import crypto from 'node:crypto';
import type Element from 'ltx/lib/Element.js';
import parse from 'ltx/lib/parse.js';
import { RawClient } from './clients.js';
import { PASSWORD, type TestServer } from './server.js';

export const NS_STREAMS = 'http://etherx.jabber.org/streams';
export const NS_STREAM_ERRORS = 'urn:ietf:params:xml:ns:xmpp-streams';
export const NS_SASL = 'urn:ietf:params:xml:ns:xmpp-sasl';
export const NS_BIND = 'urn:ietf:params:xml:ns:xmpp-bind';

/** What the helpers need of a raw connection (RawClient, over STARTTLS or direct TLS, has it). */
export interface Wire {
  data: string;
  closed: boolean;
  write(data: string | Buffer): void;
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  waitClosed(timeoutMs?: number): Promise<void>;
  close(): void;
}


/** Waits for `pattern` and consumes the received data up to the end of the match. */
export async function read(wire: Wire, pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray> {
  const match = await wire.waitFor(pattern, timeoutMs);
  wire.data = wire.data.slice((match.index ?? 0) + match[0].length);
  return match;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Waits for the next complete `<name>` element (with attribute id=`id` when given), consumes it and
 * returns it parsed. Good for the server's stanzas and nonzas, which never nest an element of their own name.
 */
export async function readElement(wire: Wire, name: string, id?: string, timeoutMs?: number): Promise<Element> {
  const n = escapeRegExp(name);
  const idPart = id === undefined ? '' : `(?=[^>]*\\sid=['"]${escapeRegExp(id)}['"])`;
  const match = await read(wire, new RegExp(`<${n}${idPart}(?:\\s[^>]*)?(?:/>|>[\\s\\S]*?</${n}>)`), timeoutMs);
  // stream-level prefixes (stream:features, stream:error) need their namespace declared to parse cleanly
  const text = name.startsWith('stream:') ? match[0].replace(/^<stream:(\w+)/, `<stream:$1 xmlns:stream='${NS_STREAMS}'`) : match[0];
  return parse(text);
}

export function streamHeader(attrs: { to?: string | null; xmlns?: string; streamNs?: string; version?: string | null } = {}): string {
  const to = attrs.to === undefined ? 'localhost' : attrs.to;
  const version = attrs.version === undefined ? '1.0' : attrs.version;
  return `<?xml version='1.0'?><stream:stream${to === null ? '' : ` to='${to}'`} xmlns='${attrs.xmlns ?? 'jabber:client'}' xmlns:stream='${
    attrs.streamNs ?? NS_STREAMS
  }'${version === null ? '' : ` version='${version}'`}>`;
}

/** Opens (or restarts) the stream and returns the features the server offers. */
export async function openStream(wire: Wire, to = 'localhost'): Promise<Element> {
  wire.write(streamHeader({ to }));
  await read(wire, /<stream:stream\s[^>]*>/);
  return readElement(wire, 'stream:features');
}

/**
 * Reads the stream error the server sends and waits for it to close the connection.
 * Returns the defined condition's element name (RFC 6120 §4.9.3).
 */
export async function readStreamError(wire: Wire, timeoutMs?: number): Promise<string> {
  const error = await readElement(wire, 'stream:error', undefined, timeoutMs);
  const condition = error.getChildElements().find((child) => child.attrs.xmlns === NS_STREAM_ERRORS && child.name !== 'text');
  await read(wire, /<\/stream:stream>/);
  await wire.waitClosed();
  return condition?.name ?? '(none)';
}

export type SaslResult = { outcome: 'success'; serverSignatureVerified: boolean } | { outcome: 'failure'; condition: string };

async function readSaslOutcome(wire: Wire): Promise<{ name: string; element: Element }> {
  const match = await wire.waitFor(/<(success|failure|challenge)[\s/>]/);
  const element = await readElement(wire, match[1]!);
  return { name: match[1]!, element };
}

function failureCondition(failure: Element): string {
  return failure.getChildElements().find((c) => c.name !== 'text')?.name ?? '(none)';
}

/** SASL PLAIN (RFC 4616): `\0username\0password`. */
export async function authenticatePlain(wire: Wire, username: string, password = PASSWORD): Promise<SaslResult> {
  const message = Buffer.from(`\0${username}\0${password}`, 'utf8').toString('base64');
  wire.write(`<auth xmlns='${NS_SASL}' mechanism='PLAIN'>${message}</auth>`);
  const { name, element } = await readSaslOutcome(wire);
  if (name === 'success') return { outcome: 'success', serverSignatureVerified: false };
  return { outcome: 'failure', condition: failureCondition(element) };
}

/**
 * A SCRAM client (RFC 5802 §3, RFC 7677), computed here with node:crypto:
 *   SaltedPassword  := PBKDF2(HMAC-H, password, salt, i)
 *   ClientKey       := HMAC(SaltedPassword, "Client Key");  StoredKey := H(ClientKey)
 *   AuthMessage     := client-first-bare "," server-first "," client-final-without-proof
 *   ClientProof     := ClientKey XOR HMAC(StoredKey, AuthMessage)
 *   ServerSignature := HMAC(HMAC(SaltedPassword, "Server Key"), AuthMessage)
 * The password must be ASCII without '=' or ',' (no SASLprep or saslname escaping here).
 */
export async function authenticateScram(
  wire: Wire,
  hash: ScramHash,
  username: string,
  password = PASSWORD,
  options: ScramClientOptions = {},
): Promise<SaslResult> {
  const scram = scramClient(hash, username, password, options);
  wire.write(`<auth xmlns='${NS_SASL}' mechanism='${scram.mechanism}'>${Buffer.from(scram.clientFirst).toString('base64')}</auth>`);

  const first = await readSaslOutcome(wire);
  if (first.name === 'failure') return { outcome: 'failure', condition: failureCondition(first.element) };
  if (first.name !== 'challenge') throw new Error(`expected a challenge, got <${first.name}/>`);
  const serverFirst = Buffer.from(first.element.getText(), 'base64').toString('utf8');
  const { clientFinal, serverFinal: expectedServerFinal } = scram.answer(serverFirst);
  wire.write(`<response xmlns='${NS_SASL}'>${Buffer.from(clientFinal).toString('base64')}</response>`);
  const final = await readSaslOutcome(wire);
  if (options.seen !== undefined) options.seen.serverFirst = serverFirst;
  if (final.name === 'failure') return { outcome: 'failure', condition: failureCondition(final.element) };
  if (final.name !== 'success') throw new Error(`expected success or failure, got <${final.name}/>`);
  const serverFinal = Buffer.from(final.element.getText(), 'base64').toString('utf8');
  return { outcome: 'success', serverSignatureVerified: serverFinal === expectedServerFinal };
}

/** The client side of one SCRAM exchange, whatever carries it (SASL, SASL2): see authenticateScram. */
export function scramClient(hash: ScramHash, username: string, password: string, options: Pick<ScramClientOptions, 'binding' | 'flag'> = {}) {
  const binding = options.binding;
  const mechanism = `SCRAM-${hash.toUpperCase().replace('SHA', 'SHA-')}${binding === undefined ? '' : '-PLUS'}`;
  const keyLength = SCRAM_KEY_LENGTH[hash];
  const clientNonce = crypto.randomBytes(18).toString('base64');
  const clientFirstBare = `n=${username},r=${clientNonce}`;
  // RFC 5802 §6 gs2-cbind-flag: p=type to bind; y = could bind but the server seems unable to; n = cannot
  const gs2Header = `${binding === undefined ? (options.flag ?? 'n') : `p=${binding.type}`},,`;
  return {
    mechanism,
    clientFirst: `${gs2Header}${clientFirstBare}`,
    /** The client-final-message for the server-first-message, and the server-final-message to expect. */
    answer(serverFirst: string): { clientFinal: string; serverFinal: string } {
      const fields = new Map(serverFirst.split(',').map((f) => [f.slice(0, 1), f.slice(2)] as [string, string]));
      const nonce = fields.get('r') ?? '';
      if (!nonce.startsWith(clientNonce) || nonce.length === clientNonce.length) throw new Error(`the server nonce does not extend ours: ${serverFirst}`);
      const salt = Buffer.from(fields.get('s') ?? '', 'base64');
      const salted = saltedPassword(hash, password, salt, Number(fields.get('i')));
      const hmac = (key: Buffer, data: string) => crypto.createHmac(hash, key).update(data).digest();
      const clientKey = hmac(salted, 'Client Key');
      const storedKey = crypto.createHash(hash).update(clientKey).digest();
      const cbindInput = binding === undefined ? Buffer.from(gs2Header) : Buffer.concat([Buffer.from(gs2Header), binding.data]);
      const clientFinalWithoutProof = `c=${cbindInput.toString('base64')},r=${nonce}`;
      const authMessage = `${clientFirstBare},${serverFirst},${clientFinalWithoutProof}`;
      const clientSignature = hmac(storedKey, authMessage);
      const proof = Buffer.alloc(keyLength);
      for (let i = 0; i < keyLength; i++) proof[i] = clientKey[i]! ^ clientSignature[i]!;
      return {
        clientFinal: `${clientFinalWithoutProof},p=${proof.toString('base64')}`,
        serverFinal: `v=${hmac(hmac(salted, 'Server Key'), authMessage).toString('base64')}`,
      };
    },
  };
}

/** The hashes of SCRAM-SHA-1, -256 (RFC 7677) and -512 (draft-melnikov-scram-sha-512). */
export type ScramHash = 'sha1' | 'sha256' | 'sha512';
export const SCRAM_KEY_LENGTH: Record<ScramHash, number> = { sha1: 20, sha256: 32, sha512: 64 };

/** RFC 5802 §3 SaltedPassword := Hi(password, salt, i): what a XEP-0480 SCRAM upgrade task sends. */
export function saltedPassword(hash: ScramHash, password: string, salt: Buffer, iterations: number): Buffer {
  return crypto.pbkdf2Sync(Buffer.from(password, 'utf8'), salt, iterations, SCRAM_KEY_LENGTH[hash], hash);
}

export interface ScramClientOptions {
  /** Bind to the channel (the -PLUS mechanism): the type and the data the client computed on its side. */
  binding?: { type: string; data: Buffer };
  /** Without binding: the gs2-cbind-flag to send ('n' by default). */
  flag?: 'n' | 'y';
  /** Filled in with the server-first-message, for tests of its attributes. */
  seen?: { serverFirst?: string };
}

/** After SASL success: restart the stream and bind `resource`; returns the bound full JID. */
export async function bind(wire: Wire, resource: string, to = 'localhost'): Promise<string> {
  const features = await openStream(wire, to);
  if (!features.getChild('bind', NS_BIND)) throw new Error(`no resource binding offered: ${features.toString()}`);
  wire.write(`<iq type='set' id='bind-1'><bind xmlns='${NS_BIND}'><resource>${resource}</resource></bind></iq>`);
  const result = await readElement(wire, 'iq', 'bind-1');
  const jid = result.getChild('bind', NS_BIND)?.getChildText('jid');
  if (result.attrs.type !== 'result' || !jid) throw new Error(`binding failed: ${result.toString()}`);
  return jid;
}

/** A raw client over STARTTLS, logged in with PLAIN and bound to `resource`. */
export async function loginRaw(server: TestServer, username: string, resource: string, password = PASSWORD): Promise<{ wire: RawClient; jid: string }> {
  const wire = await RawClient.open(server);
  await openStream(wire, server.domain);
  const result = await authenticatePlain(wire, username, password);
  if (result.outcome !== 'success') throw new Error(`login as ${username} failed: ${result.condition}`);
  const jid = await bind(wire, resource, server.domain);
  return { wire, jid };
}
