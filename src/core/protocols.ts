// What the core itself implements (the modules declare their own in their definitions).
// Together they generate docs/xmppd.doap and docs/standards.md (`npm run doap`).
import type { ProtocolSupport } from './module.js';

export const coreProtocols: ProtocolSupport[] = [
  { spec: 'RFC 6120', status: 'complete', note: 'client streams: STARTTLS, SASL, resource binding, stream and stanza errors (src/c2s, src/xml)' },
  { spec: 'RFC 6121', status: 'complete', note: 'delivery rules of §8 (src/core/router.ts)' },
  { spec: 'RFC 7622', status: 'partial', note: 'JID validation and case folding of the characters real addresses use, without full PRECIS tables' },
  { spec: 'RFC 5802', status: 'complete', note: 'SCRAM-SHA-1 and SCRAM-SHA-1-PLUS (channel binding on TLS we terminate; src/c2s/sasl)' },
  { spec: 'RFC 7677', status: 'complete', note: 'SCRAM-SHA-256 and SCRAM-SHA-256-PLUS; also SCRAM-SHA-512(-PLUS), the same with SHA-512 (draft-melnikov-scram-sha-512); a host offers only the SCRAM hashes every account has keys for' },
  { spec: 'RFC 9266', status: 'complete', note: 'tls-exporter channel binding on TLS 1.3' },
  { spec: 'RFC 5929', status: 'complete', note: 'tls-server-end-point (TLS 1.2 and 1.3) and tls-unique (TLS 1.2; accepted unannounced on 1.3 for clients that send it)' },
  { spec: 'XEP-0440', version: '1.0.0', status: 'complete', note: 'the channel binding types announced in the stream features' },
  { spec: 'XEP-0474', version: '0.5.0', status: 'complete', note: 'd= downgrade protection hash in the SCRAM server-first-message' },
  { spec: 'XEP-0388', version: '1.0.4', status: 'complete', note: 'SASL2 beside SASL, offered only where channel binding is (TLS we terminate); user agent recorded; <continue/> tasks: XEP-0480 upgrades (src/c2s/features/sasl2.ts)' },
  { spec: 'XEP-0480', version: '0.2.0', status: 'complete', note: 'UPGR-SCRAM-SHA-256 and UPGR-SCRAM-SHA-512, offered while some account of the host lacks those keys, after a password login (not a FAST token) (src/c2s/sasl/upgrade.ts)' },
  { spec: 'XEP-0386', version: '1.0.0', status: 'complete', note: 'Bind2 inline in SASL2: resource from the tag, stream management, CSI and carbons enabled in the same round trip (src/c2s/features/bind2.ts)' },
  { spec: 'RFC 4616', status: 'complete', note: 'SASL PLAIN, only inside TLS' },
  { spec: 'XEP-0368', version: '1.1.0', status: 'complete', note: 'direct TLS listener (ALPN xmpp-client)' },
  { spec: 'XEP-0198', version: '1.6.1', status: 'complete', note: 'acks, resumption (c2s.resume_timeout), unacked stanzas re-routed to other resources or offline storage when the window ends; enable inline in Bind2 and resume inline in SASL2 (src/c2s/sm.ts)' },
  { spec: 'XEP-0352', version: '1.0.0', status: 'complete', note: 'presence updates and chat states held for inactive clients (src/c2s/csi.ts)' },
  { spec: 'RFC 7395', status: 'complete', note: 'XMPP over WebSocket at /xmpp-websocket on the HTTP listeners, same stream logic as TCP (src/c2s/websocket.ts)' },
  { spec: 'XEP-0156', status: 'partial', note: 'HTTP lookup (/.well-known/host-meta and host-meta.json) of the WebSocket endpoint; no DNS TXT records' },
  { spec: 'RFC 6120', status: 'complete', note: 'server streams: STARTTLS, SASL EXTERNAL, SRV lookup, stream errors, one stream per domain pair (src/s2s)' },
  { spec: 'RFC 6125', status: 'partial', note: 'peer certificates checked against DNS-IDs (subjectAltName dNSName, CN fallback); no SRV-ID or XmppAddr' },
  { spec: 'XEP-0220', version: '1.1.1', status: 'complete', note: 'Server Dialback, verification over our own stream to the authoritative server; several domains on one incoming stream (piggybacking) refused' },
  { spec: 'XEP-0185', version: '1.0', status: 'complete', note: 'dialback keys: HMAC-SHA256 of receiving, originating and stream id under a per-server secret' },
  { spec: 'XEP-0178', status: 'complete', note: 'SASL EXTERNAL between servers with certificates valid for the domain (s2s.ca_file)' },
  { spec: 'XEP-0368', version: '1.1.0', status: 'complete', note: 'server-to-server: _xmpps-server._tcp SRV records and direct TLS listeners (ALPN xmpp-server)' },
  { spec: 'XEP-0478', version: '0.2.0', status: 'complete', note: 'max-bytes and idle-seconds advertised, size enforced while parsing' },
];
