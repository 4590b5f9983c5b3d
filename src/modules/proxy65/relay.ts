// The SOCKS5 side of the bytestreams proxy (XEP-0065 §6, RFC 1928): a TCP listener where the
// target and the requester of a file transfer each connect, say which transfer they belong to
// (CONNECT to the domain name SHA1(SID + Requester JID + Target JID), XEP-0065 §5.3.2), and
// wait. When the requester activates the transfer over XMPP (index.ts), the two connections are
// piped into each other, with backpressure: a slow reader slows the sender down instead of the
// file piling up here. Only the no-authentication method and CONNECT are spoken; anything else
// closes that one socket, with a log line.
import net from 'node:net';
import { Transform, pipeline, type TransformCallback } from 'node:stream';
import type { Logger } from 'pino';
import { listenOn } from '../../core/listen.js';

export interface RelayLimits {
  /** Sockets open at once, pending and relaying, all users together. */
  maxConnections: number;
  /** Sockets open at once from one IP address (a socket carries no JID until it is activated). */
  maxConnectionsPerAddress: number;
  /** Transfers one account (the requester's bare JID) may have running at once. */
  maxTransfersPerUser: number;
  /** Bytes one transfer may carry, both ways together; null: no limit. */
  maxTransferSize: number | null;
  /** How long a socket may wait for its partner and the activation, in ms. */
  pendingTimeoutMs: number;
  /** How long an activated transfer may carry no byte, in ms; null: no limit. */
  idleTimeoutMs: number | null;
}

/** What an activation request came to (index.ts turns each into the XEP-0065 §6.3.3 error). */
export type Activation = 'activated' | 'unknown' | 'one-side' | 'already-active' | 'too-many';

interface Transfer {
  hash: string;
  /** The first connection (the target's, in XEP-0065's order) and the second (the requester's). */
  sockets: net.Socket[];
  active: boolean;
  /** The activating account (bare JID), counted against maxTransfersPerUser while it runs. */
  user: string | undefined;
  bytes: number;
  /** Set when the transfer was cut (limit or error): both sockets are being destroyed. */
  cut: boolean;
}

// RFC 1928 §3-6
const SOCKS_VERSION = 5;
const METHOD_NO_AUTH = 0x00;
const METHOD_NONE_ACCEPTABLE = 0xff;
const COMMAND_CONNECT = 0x01;
const ADDRESS_DOMAIN = 0x03;
const REPLY_SUCCEEDED = 0x00;
const REPLY_NOT_ALLOWED = 0x02;
const REPLY_COMMAND_NOT_SUPPORTED = 0x07;
const REPLY_ADDRESS_TYPE_NOT_SUPPORTED = 0x08;
/** XEP-0065 §5.3.2: the domain name is the hex SHA-1, 40 characters. */
const HASH = /^[0-9a-f]{40}$/;

class TransferTooLarge extends Error {}

export class Socks5Relay {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private readonly perAddress = new Map<string, number>();
  private readonly transfers = new Map<string, Transfer>();
  private readonly activePerUser = new Map<string, number>();

  constructor(
    private readonly limits: RelayLimits,
    private readonly log: Logger,
  ) {
    // half-open: when the sender is done, its end reaches the receiver while the other way stays open
    this.server = net.createServer({ allowHalfOpen: true }, (socket) => this.accept(socket));
    this.server.on('error', (err) => this.log.error({ err }, 'SOCKS5 listener error'));
  }

  async listen(host: string, port: number): Promise<void> {
    await listenOn(this.server, { host, port }, 'SOCKS5 bytestreams (proxy65)');
    this.log.info({ host, port: this.port }, 'SOCKS5 bytestreams proxy listening');
  }

  /** The port the listener is bound to (the configured one, or the one the system chose for 0). */
  get port(): number {
    const address = this.server.address();
    return address !== null && typeof address === 'object' ? address.port : 0;
  }

  /** Sockets open now, and transfers relaying now (for tests and logs). */
  get counts(): { sockets: number; active: number } {
    let active = 0;
    for (const transfer of this.transfers.values()) if (transfer.active) active++;
    return { sockets: this.sockets.size, active };
  }

  /**
   * XEP-0065 §6.3.2: the requester (`user`, its bare JID) asks to relay the transfer `hash`.
   * Both parties must be connected and the transfer not yet running.
   */
  activate(hash: string, user: string): Activation {
    const transfer = this.transfers.get(hash);
    if (transfer === undefined) return 'unknown';
    if (transfer.active) return 'already-active';
    if (transfer.sockets.length < 2) return 'one-side';
    if ((this.activePerUser.get(user) ?? 0) >= this.limits.maxTransfersPerUser) return 'too-many';
    transfer.active = true;
    transfer.user = user;
    this.activePerUser.set(user, (this.activePerUser.get(user) ?? 0) + 1);
    const [first, second] = transfer.sockets as [net.Socket, net.Socket];
    this.relay(transfer, second, first);
    this.relay(transfer, first, second);
    this.log.info({ hash, user }, 'bytestream activated');
    return 'activated';
  }

  /** Stops listening and ends every connection (the module stops). */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }

  private accept(socket: net.Socket): void {
    const address = socket.remoteAddress ?? '';
    if (this.sockets.size >= this.limits.maxConnections) {
      this.log.warn({ address, max: this.limits.maxConnections }, 'SOCKS5 connection refused: too many connections (max_connections)');
      socket.destroy();
      return;
    }
    const fromAddress = this.perAddress.get(address) ?? 0;
    if (fromAddress >= this.limits.maxConnectionsPerAddress) {
      this.log.warn({ address, max: this.limits.maxConnectionsPerAddress }, 'SOCKS5 connection refused: too many connections from this address (max_connections_per_address)');
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    this.perAddress.set(address, fromAddress + 1);
    let transfer: Transfer | undefined;
    socket.on('error', (err) => this.log.debug({ err, address }, 'SOCKS5 socket error'));
    socket.on('close', () => {
      this.sockets.delete(socket);
      const left = (this.perAddress.get(address) ?? 1) - 1;
      if (left === 0) this.perAddress.delete(address);
      else this.perAddress.set(address, left);
      if (transfer !== undefined) this.leave(transfer, socket);
    });
    socket.setTimeout(this.limits.pendingTimeoutMs);
    socket.on('timeout', () => {
      if (transfer?.active === true) this.log.info({ hash: transfer.hash }, 'bytestream closed: idle (idle_timeout)');
      else this.log.info({ address, hash: transfer?.hash }, 'SOCKS5 connection closed: not activated in time (pending_timeout)');
      socket.destroy();
    });

    // RFC 1928 §3 greeting, then §4 request; bytes are collected until each is complete
    let buffer: Buffer = Buffer.alloc(0);
    let state: 'greeting' | 'request' = 'greeting';
    const refuse = (why: string) => {
      this.log.info({ address, why }, 'SOCKS5 connection closed: bad handshake');
      socket.removeListener('data', onData);
      socket.destroy();
    };
    const reply = (code: number, hash: string) => {
      // RFC 1928 §6, with the domain name echoed as XEP-0065 §6.3.1 shows (DST.PORT 0)
      const name = Buffer.from(hash, 'latin1');
      socket.write(Buffer.concat([Buffer.from([SOCKS_VERSION, code, 0, ADDRESS_DOMAIN, name.length]), name, Buffer.from([0, 0])]));
    };
    const onData = (chunk: Buffer) => {
      buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk]);
      if (state === 'greeting') {
        if (buffer.length < 2) return;
        if (buffer[0] !== SOCKS_VERSION) return refuse('not SOCKS version 5');
        const methods = buffer[1]!;
        if (methods === 0) return refuse('no authentication method offered');
        if (buffer.length < 2 + methods) return;
        if (!buffer.subarray(2, 2 + methods).includes(METHOD_NO_AUTH)) {
          // XEP-0065 §5.3.2: only "no authentication" is used
          this.log.info({ address }, 'SOCKS5 connection closed: the client does not offer the no-authentication method');
          socket.removeListener('data', onData);
          socket.end(Buffer.from([SOCKS_VERSION, METHOD_NONE_ACCEPTABLE]));
          return;
        }
        socket.write(Buffer.from([SOCKS_VERSION, METHOD_NO_AUTH]));
        buffer = buffer.subarray(2 + methods);
        state = 'request';
      }
      if (buffer.length < 5) return;
      if (buffer[0] !== SOCKS_VERSION || buffer[2] !== 0) return refuse('malformed SOCKS5 request');
      if (buffer[1] !== COMMAND_CONNECT || buffer[3] !== ADDRESS_DOMAIN) {
        const code = buffer[1] !== COMMAND_CONNECT ? REPLY_COMMAND_NOT_SUPPORTED : REPLY_ADDRESS_TYPE_NOT_SUPPORTED;
        this.log.info({ address, command: buffer[1], addressType: buffer[3] }, 'SOCKS5 connection closed: only CONNECT to a domain name is relayed');
        socket.removeListener('data', onData);
        socket.end(Buffer.from([SOCKS_VERSION, code, 0, 1, 0, 0, 0, 0, 0, 0]));
        return;
      }
      const length = buffer[4]!;
      if (buffer.length < 5 + length + 2) return;
      const hash = buffer.subarray(5, 5 + length).toString('latin1').toLowerCase();
      const early = buffer.subarray(5 + length + 2);
      socket.removeListener('data', onData);
      if (!HASH.test(hash)) return refuse('the address is not a SHA-1 in hex (XEP-0065 §5.3.2)');
      let joined = this.transfers.get(hash);
      if (joined !== undefined && (joined.active || joined.sockets.length >= 2)) {
        this.log.info({ address, hash }, 'SOCKS5 connection closed: the transfer has both its parties already');
        reply(REPLY_NOT_ALLOWED, hash);
        socket.end();
        return;
      }
      if (joined === undefined) {
        joined = { hash, sockets: [], active: false, user: undefined, bytes: 0, cut: false };
        this.transfers.set(hash, joined);
      }
      joined.sockets.push(socket);
      transfer = joined;
      // nothing is read until the activation: whatever came early waits for the partner
      socket.pause();
      if (early.length > 0) socket.unshift(early);
      reply(REPLY_SUCCEEDED, hash);
    };
    socket.on('data', onData);
  }

  /** Relays `from` into `to`, counting against the transfer's byte limit. */
  private relay(transfer: Transfer, from: net.Socket, to: net.Socket): void {
    from.setTimeout(this.limits.idleTimeoutMs ?? 0);
    const limit = this.limits.maxTransferSize;
    const counter = new Transform({
      transform(chunk: Buffer, _encoding, done: TransformCallback) {
        transfer.bytes += chunk.length;
        if (limit !== null && transfer.bytes > limit) return done(new TransferTooLarge());
        done(null, chunk);
      },
    });
    pipeline(from, counter, to, (err) => {
      if (err === null || err === undefined || transfer.cut) return;
      transfer.cut = true;
      if (err instanceof TransferTooLarge) {
        this.log.info({ hash: transfer.hash, user: transfer.user, max: limit }, 'bytestream cut: too many bytes (max_transfer_size)');
        for (const socket of transfer.sockets) socket.destroy();
      } else {
        this.log.debug({ err, hash: transfer.hash }, 'bytestream ended with an error');
        for (const socket of transfer.sockets) socket.destroy();
      }
    });
  }

  private leave(transfer: Transfer, socket: net.Socket): void {
    const index = transfer.sockets.indexOf(socket);
    if (index === -1) return;
    if (!transfer.active) {
      // a pending party left: its partner may still be joined by a new connection
      transfer.sockets.splice(index, 1);
      if (transfer.sockets.length === 0) this.transfers.delete(transfer.hash);
      return;
    }
    if (transfer.user === undefined || transfer.sockets.some((s) => !s.destroyed)) return;
    // both sockets of a relayed transfer are closed: it is over
    if (this.transfers.get(transfer.hash) === transfer) this.transfers.delete(transfer.hash);
    const user = transfer.user ?? '';
    const running = (this.activePerUser.get(user) ?? 1) - 1;
    if (running === 0) this.activePerUser.delete(user);
    else this.activePerUser.set(user, running);
    transfer.user = undefined; // counted down once
    this.log.info({ hash: transfer.hash, bytes: transfer.bytes }, 'bytestream finished');
  }
}
