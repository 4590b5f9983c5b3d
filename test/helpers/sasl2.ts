// A raw SASL2 client (XEP-0388) for tests that need to see the bytes: SCRAM (RFC 5802, with
// channel binding for -PLUS) and the HT token mechanisms of FAST (XEP-0484,
// draft-schmaus-kitten-sasl-ht), computed here with node:crypto, independently of the server's
// code. Inline requests (Bind2, stream management, FAST) are XML the test writes itself.
import crypto from 'node:crypto';
import type tls from 'node:tls';
import type Element from 'ltx/lib/Element.js';
import { RawClient } from './clients.js';
import { PASSWORD, type TestServer } from './server.js';
import { openStream, readElement, scramClient, type ScramHash, type Wire } from './wire.js';

export const NS_SASL2 = 'urn:xmpp:sasl:2';
export const NS_BIND2 = 'urn:xmpp:bind:0';
export const NS_FAST = 'urn:xmpp:fast:0';
export const NS_SM = 'urn:xmpp:sm:3';
export const NS_CARBONS = 'urn:xmpp:carbons:2';
export const NS_CSI = 'urn:xmpp:csi:0';

export type Sasl2Result =
  | { outcome: 'success'; success: Element; /** the server proved itself (SCRAM signature, HT responder hash) */ serverVerified: boolean; challenges: number }
  | { outcome: 'failure'; condition: string; failure: Element; challenges: number };

/** A raw STARTTLS connection (TLS 1.3 unless told), its stream open and features read. */
export async function secured(server: TestServer, options: tls.ConnectionOptions = {}): Promise<{ wire: RawClient; socket: tls.TLSSocket; features: Element }> {
  const wire = await RawClient.open(server, { tls: false });
  await openStream(wire, server.domain);
  wire.write(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`);
  await wire.waitFor(/<proceed/);
  await wire.upgradeToTls(server.domain, options);
  const features = await openStream(wire, server.domain);
  return { wire, socket: wire.socket as tls.TLSSocket, features };
}

/** RFC 9266 from the client's side of the connection. */
export function tlsExporter(socket: tls.TLSSocket): Buffer {
  return socket.exportKeyingMaterial(32, 'EXPORTER-Channel-Binding', Buffer.alloc(0));
}

export function userAgent(id: string, software = 'xmppd tests'): string {
  return `<user-agent id='${id}'><software>${software}</software><device>test machine</device></user-agent>`;
}

async function outcome(wire: Wire): Promise<{ name: string; element: Element }> {
  const match = await wire.waitFor(/<(success|failure|challenge)[\s/>]/);
  return { name: match[1]!, element: await readElement(wire, match[1]!) };
}

function failed(element: Element, challenges: number): Sasl2Result {
  const condition = element.getChildElements().find((c) => c.attrs.xmlns === 'urn:ietf:params:xml:ns:xmpp-sasl')?.name ?? '(none)';
  return { outcome: 'failure', condition, failure: element, challenges };
}

function additionalData(success: Element): Buffer {
  return Buffer.from(success.getChildText('additional-data') ?? '', 'base64');
}

export interface ScramOptions {
  password?: string;
  binding?: { type: string; data: Buffer };
  /** Without binding: the gs2-cbind-flag ('n' by default). */
  flag?: 'n' | 'y';
  /** XML inside <authenticate/> after the initial response: user agent, <bind/>, <resume/>, <request-token/>. */
  inline?: string;
}

/** SCRAM-SHA-1/256/512(-PLUS) through SASL2 (RFC 5802 §3, as in ./wire.ts). */
export async function sasl2Scram(wire: Wire, hash: ScramHash, username: string, options: ScramOptions = {}): Promise<Sasl2Result> {
  const scram = scramClient(hash, username, options.password ?? PASSWORD, options);
  const initial = Buffer.from(scram.clientFirst).toString('base64');
  wire.write(`<authenticate xmlns='${NS_SASL2}' mechanism='${scram.mechanism}'><initial-response>${initial}</initial-response>${options.inline ?? ''}</authenticate>`);

  const first = await outcome(wire);
  if (first.name === 'failure') return failed(first.element, 0);
  if (first.name !== 'challenge') throw new Error(`expected a challenge, got <${first.name}/>`);
  const { clientFinal, serverFinal } = scram.answer(Buffer.from(first.element.getText(), 'base64').toString('utf8'));
  wire.write(`<response xmlns='${NS_SASL2}'>${Buffer.from(clientFinal).toString('base64')}</response>`);

  const final = await outcome(wire);
  if (final.name === 'failure') return failed(final.element, 1);
  if (final.name !== 'success') throw new Error(`expected success or failure, got <${final.name}/>`);
  return { outcome: 'success', success: final.element, serverVerified: additionalData(final.element).toString('utf8') === serverFinal, challenges: 1 };
}

/**
 * FAST: HT-SHA-256-NONE or -EXPR with `token` (draft-schmaus-kitten-sasl-ht §3): the initial
 * response is username NUL HMAC-SHA-256(token, "Initiator" || cb-data); the server answers
 * with HMAC-SHA-256(token, "Responder" || cb-data).
 */
export async function sasl2Token(
  wire: Wire,
  username: string,
  token: string,
  options: { mechanism?: 'HT-SHA-256-NONE' | 'HT-SHA-256-EXPR'; cbData?: Buffer; inline?: string; fast?: string } = {},
): Promise<Sasl2Result> {
  const mechanism = options.mechanism ?? 'HT-SHA-256-NONE';
  const cbData = options.cbData ?? Buffer.alloc(0);
  const hmac = (label: string) => crypto.createHmac('sha256', Buffer.from(token, 'utf8')).update(label).update(cbData).digest();
  const initial = Buffer.concat([Buffer.from(`${username}\0`), hmac('Initiator')]).toString('base64');
  const fast = options.fast ?? `<fast xmlns='${NS_FAST}'/>`;
  wire.write(`<authenticate xmlns='${NS_SASL2}' mechanism='${mechanism}'><initial-response>${initial}</initial-response>${options.inline ?? ''}${fast}</authenticate>`);
  const result = await outcome(wire);
  if (result.name === 'failure') return failed(result.element, 0);
  if (result.name !== 'success') throw new Error(`expected success or failure in one round trip, got <${result.name}/>`);
  return { outcome: 'success', success: result.element, serverVerified: additionalData(result.element).equals(hmac('Responder')), challenges: 0 };
}

/** The <token/> of a FAST success, if any. */
export function issuedToken(success: Element): { token: string; expiry: string } | undefined {
  const token = success.getChild('token', NS_FAST);
  return token === undefined ? undefined : { token: token.attrs.token!, expiry: token.attrs.expiry! };
}
