// The c2s section of the configuration as the client streams use it (src/app.ts maps the YAML).
import type { AuthThrottleSettings } from './sasl/throttle.js';
import type { OverloadSettings } from './overload.js';

export interface C2SListen {
  host: string;
  port: number;
  tls: 'starttls' | 'direct';
}

export interface C2SSettings {
  listen: C2SListen[];
  requireEncryption: boolean;
  maxStanzaSize: number;
  /** bytes per second a client may send on average (bursts of 4x), or null for no limit */
  maxReceiveRate: number | null;
  /** share of one core a connection may use to parse and handle its input (bursts of 200 ms), or null for no limit */
  maxCpuShare: number | null;
  /** seconds an unauthenticated connection may stay open */
  authTimeout: number;
  /** seconds a new connection may take to send its stream header */
  streamOpenTimeout: number;
  /** seconds of silence before the server pings a client (XEP-0199 §4.1), or null */
  pingInterval: number | null;
  /** seconds to wait for any data after that ping */
  pingTimeout: number;
  /** seconds of our silence before a whitespace keepalive, or null */
  whitespaceKeepalive: number | null;
  authThrottle: AuthThrottleSettings;
  /**
   * seconds an XEP-0198 <r/> may go unanswered before the kernel's `session/ack-delayed` tells
   * modules (push notifications) that the client may not be reading (Prosody's smacks_max_ack_delay)
   */
  ackDelay: number;
  /** seconds a session with XEP-0198 resumption waits for its client to come back; 0 disables resumption */
  resumeTimeout: number;
  /** the same for a session whose device registered for push notifications (0: resumeTimeout) */
  resumeTimeoutPush: number;
  /** sessions (resources) one account may have bound at once, resumable ones included */
  maxSessionsPerAccount: number;
  /** what gives way first when the server or a recipient cannot keep up (src/c2s/overload.ts) */
  overload: OverloadSettings;
}
