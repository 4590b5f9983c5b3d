// What a client stream (src/c2s/stream.ts) runs over: a TCP socket (with STARTTLS, or TLS from
// the first byte) or a WebSocket (RFC 7395, src/c2s/websocket.ts). The stream logic (SASL, bind,
// stream management, limits) is the same; only bytes in and out, framing and TLS differ.
import type net from 'node:net';
import tls from 'node:tls';
import { tlsChannelBinding, type ChannelBinding } from './sasl/channel-binding.js';

/** What a transport tells its stream. */
export interface TransportEvents {
  /** Input arrived: raw bytes (TCP) or one whole message (WebSocket). */
  received(data: Buffer | string): void;
  /** The peer shut its sending side without closing the XML stream (TCP half-close). */
  peerEnded(): void;
  /** The connection is gone. */
  lost(): void;
  /** A transport-level error (logged; 'lost' follows). */
  failed(err: Error): void;
}

export interface C2STransport {
  readonly kind: 'tcp' | 'websocket';
  readonly remoteAddress: string;
  /** Encrypted, or as good as (see WebSocketTransport), so SASL PLAIN may be offered. */
  readonly secure: boolean;
  /**
   * RFC 7395 framing: each top-level element travels as its own message, the stream is opened
   * and closed with <open/> and <close/>, and there is no STARTTLS.
   */
  readonly framed: boolean;
  /** Output handed over but not yet sent: a client that does not read makes this grow. */
  readonly pendingOutput: number;
  attach(events: TransportEvents): void;
  /**
   * Send a batch: one string for a byte stream, or one message per element when framed. `done`
   * runs once the batch was handed to the operating system (or failed).
   */
  send(data: string | readonly string[], done?: (err?: Error | null) => void): void;
  /** Stop and restart reading; the stream nests its reasons with ReadHolds. */
  pause(): void;
  resume(): void;
  /** Keep an idle connection open through NATs: a space (TCP) or a WebSocket ping. */
  keepalive(): void;
  /** Close gracefully after the output already sent. */
  end(): void;
  destroy(): void;
  /** RFC 6120 §5.4: TLS over the connection; only plain TCP can. */
  startTls?(options: tls.TlsOptions, secured: () => void): void;
  /**
   * What SCRAM-*-PLUS can bind to, once TLS is up; null without TLS. Only where we terminate the
   * TLS ourselves: behind a proxy (WebSocket) the client's channel is not ours to bind to.
   */
  channelBinding?(): ChannelBinding | null;
}

/**
 * Reading stops while anyone holds it (a rate limit's pause, stanzas still being stored) and
 * resumes only when every holder has let go, so one reason's resume cannot cut another's pause.
 */
export class ReadHolds {
  private holds = 0;

  constructor(private readonly target: { pause(): void; resume(): void }) {}

  hold(): void {
    if (this.holds++ === 0) this.target.pause();
  }

  release(): void {
    if (--this.holds === 0) this.target.resume();
  }

  holdFor(ms: number): void {
    this.hold();
    setTimeout(() => this.release(), ms).unref();
  }
}

/**
 * The most plaintext a TLS record may carry and still fit Node's first 1 KiB output buffer, with
 * its framing to spare: 22 bytes in TLS 1.3 (header, content type, AEAD tag), 29 with TLS 1.2's
 * AES-GCM (header, explicit nonce, tag).
 */
const SMALL_RECORD = 990;

/** A TCP connection: plain (STARTTLS offered) or TLS from the first byte (XEP-0368). */
export class TcpTransport implements C2STransport {
  readonly kind = 'tcp';
  readonly framed = false;
  readonly remoteAddress: string;
  secure: boolean;
  private events: TransportEvents | undefined;
  /** No batch too big for two small TLS records has been written yet (see inSmallRecords). */
  private smallOutput = true;

  constructor(
    private socket: net.Socket,
    directTls: boolean,
  ) {
    this.secure = directTls;
    this.remoteAddress = socket.remoteAddress ?? 'unknown';
  }

  get pendingOutput(): number {
    return this.socket.writableLength;
  }

  attach(events: TransportEvents): void {
    this.events = events;
    const socket = this.socket;
    socket.on('data', (chunk: Buffer) => events.received(chunk));
    socket.on('error', (err) => events.failed(err));
    socket.on('close', () => events.lost());
    socket.on('end', () => events.peerEnded());
  }

  send(data: string | readonly string[], done?: (err?: Error | null) => void): void {
    const out = typeof data === 'string' ? data : data.join('');
    if (this.smallOutput && out.length > SMALL_RECORD / 3 && this.socket instanceof tls.TLSSocket) {
      const pieces = this.inSmallRecords(out);
      if (pieces !== null) {
        this.socket.write(pieces[0]);
        this.socket.write(pieces[1], done);
        return;
      }
    }
    this.socket.write(out, done);
  }

  /**
   * Node's TLS output buffer (NodeBIO, src/crypto/crypto_bio.h) starts at 1 KiB; the first time
   * more than that waits in it at once, it adds a 16 KiB buffer that the connection keeps until
   * it closes. Logging in writes one such batch, the stream features after TLS (about 1.8 KiB:
   * SASL2 and SASL mechanisms, Bind2, FAST, limits), and nothing else that large: written as two
   * records, each flushed before the next is encrypted (the socket writes the second once the
   * first is done), an idle connection stays a third smaller. Once a batch too big for two
   * records has gone out the buffer exists, and batches go whole again.
   */
  private inSmallRecords(out: string): [Buffer, Buffer] | null {
    const bytes = Buffer.byteLength(out);
    if (bytes <= SMALL_RECORD) return null;
    // only a socket with nothing queued writes the first piece at once and the second alone
    if (bytes > 2 * SMALL_RECORD || this.socket.writableLength > 0) {
      this.smallOutput = false;
      return null;
    }
    // a byte stream: a UTF-8 sequence cut between two records is whole again for the reader
    const buffer = Buffer.from(out);
    const half = bytes >> 1;
    return [buffer.subarray(0, half), buffer.subarray(half)];
  }

  // the socket changes at STARTTLS: these act on whichever is current
  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  keepalive(): void {
    this.socket.write(' ');
  }

  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  channelBinding(): ChannelBinding | null {
    return this.socket instanceof tls.TLSSocket && this.secure ? tlsChannelBinding(this.socket) : null;
  }

  startTls(options: tls.TlsOptions, secured: () => void): void {
    const raw = this.socket;
    raw.removeAllListeners('data');
    raw.removeAllListeners('close');
    raw.removeAllListeners('end');
    raw.removeAllListeners('error');
    const secureSocket = new tls.TLSSocket(raw, { isServer: true, ...options });
    this.socket = secureSocket;
    this.attach(this.events!);
    secureSocket.once('secure', () => {
      this.secure = true;
      secured();
    });
  }
}
