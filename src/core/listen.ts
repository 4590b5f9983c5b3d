// Binding a listening socket, with an error that says which listener and address failed.
import type net from 'node:net';

/** `host:port`, with an IPv6 address in brackets. */
export function formatAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** A listening socket that could not be opened, with the address the configuration gave. */
export class ListenError extends Error {
  constructor(
    message: string,
    readonly host: string,
    readonly port: number,
    options: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'ListenError';
  }
}

/**
 * Binds `server` to host:port; rejects with e.g. "cannot listen for HTTP on 127.0.0.1:5280:
 * address already in use". Later listener errors are the caller's to log.
 */
export function listenOn(server: net.Server, address: { host: string; port: number; backlog?: number }, what: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const failed = (err: NodeJS.ErrnoException) => {
      const reason = err.code === 'EADDRINUSE' ? 'address already in use' : err.code === 'EACCES' ? 'permission denied' : err.message;
      reject(new ListenError(`cannot listen for ${what} on ${formatAddress(address.host, address.port)}: ${reason}`, address.host, address.port, { cause: err }));
    };
    server.once('error', failed);
    server.listen({ host: address.host, port: address.port, backlog: address.backlog ?? 511 }, () => {
      server.off('error', failed);
      resolve();
    });
  });
}
