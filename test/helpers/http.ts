// A plain HTTP(S) request to a test server's listeners, read whole (node:http: no connection reuse,
// any certificate accepted), for tests that check status, headers and body.
import http from 'node:http';
import https from 'node:https';
import type { TestServer } from './server.js';

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface RequestOptions {
  /** The HTTPS listener (TLS), else the plain one. */
  secure?: boolean;
  /** Another port than the server's listener. */
  port?: number;
  /** The Host header (and TLS server name); default `localhost`. */
  host?: string;
  headers?: http.OutgoingHttpHeaders;
  body?: string;
}

export function httpRequest(server: TestServer, method: string, path: string, options: RequestOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const transport = options.secure ? https : http;
    const req = transport.request(
      {
        host: '127.0.0.1',
        port: options.port ?? (options.secure ? server.httpsPort : server.httpPort),
        method,
        path,
        headers: { Host: options.host ?? 'localhost', ...options.headers },
        agent: false,
        rejectUnauthorized: false,
        servername: options.secure ? options.host?.replace(/:\d+$/, '') : undefined,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}
