// TLS channel binding for SCRAM-*-PLUS (RFC 5802 §6, RFC 5056): the client proves that the TLS
// connection it authenticates over is the one the server terminates, so a man in the middle who
// holds another certificate cannot relay the exchange. Three types:
//   tls-exporter          RFC 9266: 32 bytes exported with the label "EXPORTER-Channel-Binding"
//                         and an empty context; defined for TLS 1.3 (1.2 only with the extended
//                         master secret, which Node cannot tell us, so not offered there)
//   tls-server-end-point  RFC 5929 §4.1: a hash of the server's certificate, with the hash of the
//                         certificate's signature algorithm (SHA-256 where that is MD5 or SHA-1);
//                         XEP-0440 makes it mandatory to implement for servers
//   tls-unique            RFC 5929 §3.1: the first Finished message of the handshake; offered on
//                         TLS 1.2 only (RFC 9266: not defined for TLS 1.3). On TLS 1.3 it is still
//                         accepted, unannounced, from clients that ask for it anyway: Debian's
//                         slixmpp 1.8 (poezio) sends p=tls-unique whenever -PLUS is offered, and
//                         would be locked out. The client's TLS 1.3 Finished is a MAC over that
//                         connection's transcript, so a relay on another connection still fails.
import { createHash } from 'node:crypto';
import type tls from 'node:tls';

export type ChannelBindingType = 'tls-exporter' | 'tls-server-end-point' | 'tls-unique';

/** What a secured connection can bind to: the types it supports, in order of preference, and their data. */
export interface ChannelBinding {
  readonly types: readonly ChannelBindingType[];
  /** The channel binding data of a type, or null when it is not available on this connection. */
  data(type: string): Buffer | null;
}

export function isChannelBindingType(type: string): type is ChannelBindingType {
  return type === 'tls-exporter' || type === 'tls-server-end-point' || type === 'tls-unique';
}

/**
 * The channel bindings of a server-side TLS socket once its handshake is done. Nothing is
 * computed until a client binds: most logins do not, and every stream offers the types.
 * tls-server-end-point is always offered (XEP-0440 makes it mandatory); with a certificate whose
 * signature has no single hash (Ed25519, RSASSA-PSS) its data is null and a -PLUS login with it
 * is refused as an unsupported type.
 */
export function tlsChannelBinding(socket: tls.TLSSocket): ChannelBinding {
  const protocol = socket.getProtocol();
  const types: ChannelBindingType[] = protocol === 'TLSv1.3' ? TLS13_TYPES : protocol === 'TLSv1.2' ? TLS12_TYPES : OTHER_TYPES;
  return {
    types,
    data(type) {
      switch (type) {
        case 'tls-exporter':
          return protocol === 'TLSv1.3' ? socket.exportKeyingMaterial(32, 'EXPORTER-Channel-Binding', Buffer.alloc(0)) : null;
        case 'tls-server-end-point':
          return serverEndPoint(socket);
        case 'tls-unique':
          // TLS 1.2; on 1.3 only for clients that ask anyway (see the top of this file).
          // The first Finished of the handshake: the client's in a full handshake, ours in a resumed one.
          if (protocol !== 'TLSv1.2' && protocol !== 'TLSv1.3') return null;
          return (socket.isSessionReused() ? socket.getFinished() : socket.getPeerFinished()) ?? null;
        default:
          return null;
      }
    },
  };
}

// shared by every stream: the lists are never changed
const TLS13_TYPES: ChannelBindingType[] = ['tls-exporter', 'tls-server-end-point'];
const TLS12_TYPES: ChannelBindingType[] = ['tls-server-end-point', 'tls-unique'];
const OTHER_TYPES: ChannelBindingType[] = ['tls-server-end-point'];

/** RFC 5929 §4.1: the hash of our certificate, or null if its signature algorithm has no hash we know. */
function serverEndPoint(socket: tls.TLSSocket): Buffer | null {
  const certificate = socket.getCertificate();
  const der = certificate !== null && 'raw' in certificate ? (certificate.raw as Buffer | undefined) : undefined;
  if (der === undefined) return null;
  const hash = endPointHash(der);
  return hash === null ? null : createHash(hash).update(der).digest();
}

// Signature algorithm OIDs (RFC 3279, RFC 4055, RFC 5758) and the hash RFC 5929 §4.1 picks for them.
const SIGNATURE_HASHES: Record<string, string> = {
  '1.2.840.113549.1.1.4': 'sha256', // md5WithRSAEncryption: MD5 is replaced by SHA-256
  '1.2.840.113549.1.1.5': 'sha256', // sha1WithRSAEncryption: SHA-1 is replaced by SHA-256
  '1.2.840.113549.1.1.11': 'sha256',
  '1.2.840.113549.1.1.12': 'sha384',
  '1.2.840.113549.1.1.13': 'sha512',
  '1.2.840.10045.4.1': 'sha256', // ecdsa-with-SHA1
  '1.2.840.10045.4.3.2': 'sha256',
  '1.2.840.10045.4.3.3': 'sha384',
  '1.2.840.10045.4.3.4': 'sha512',
};

/**
 * The hash for tls-server-end-point from a DER certificate:
 *   Certificate ::= SEQUENCE { tbsCertificate SEQUENCE, signatureAlgorithm SEQUENCE { OID, ... }, ... }
 * Null for algorithms without a single hash (RSASSA-PSS carries its own, Ed25519 has none).
 */
export function endPointHash(der: Buffer): string | null {
  try {
    const certificate = readHeader(der, 0, 0x30);
    const tbs = readHeader(der, certificate.contentStart, 0x30);
    const algorithm = readHeader(der, tbs.contentStart + tbs.length, 0x30);
    const oid = readHeader(der, algorithm.contentStart, 0x06);
    return SIGNATURE_HASHES[decodeOid(der.subarray(oid.contentStart, oid.contentStart + oid.length))] ?? null;
  } catch {
    return null;
  }
}

/** One DER tag and length (X.690 §8.1): where its content starts and how long it is. */
function readHeader(der: Buffer, at: number, tag: number): { contentStart: number; length: number } {
  if (der[at] !== tag) throw new Error(`expected tag ${tag} at ${at}`);
  const first = der[at + 1];
  if (first === undefined) throw new Error('truncated');
  if (first < 0x80) return { contentStart: at + 2, length: first };
  const octets = first & 0x7f;
  if (octets === 0 || octets > 4) throw new Error('unsupported length');
  let length = 0;
  for (let i = 0; i < octets; i++) length = length * 256 + der[at + 2 + i]!;
  return { contentStart: at + 2 + octets, length };
}

function decodeOid(bytes: Buffer): string {
  const parts: number[] = [Math.floor(bytes[0]! / 40), bytes[0]! % 40];
  let value = 0;
  for (let i = 1; i < bytes.length; i++) {
    value = value * 128 + (bytes[i]! & 0x7f);
    if ((bytes[i]! & 0x80) === 0) {
      parts.push(value);
      value = 0;
    }
  }
  return parts.join('.');
}
