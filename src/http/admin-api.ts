// The HTTP admin API: every command of the admin registry (src/control) as
// POST /admin/api/<command> with its arguments as a JSON object, and an OpenAPI 3.1 description
// generated from the same registry at GET /admin/api/openapi.json. A bearer token from the
// configuration; loopback listeners and clients on this machine only, unless configured otherwise.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { LiveAdminContext } from '../control/registry.js';
import type { AdminApiSettings } from './settings.js';
import type { HttpService } from './service.js';
import type { Logger } from 'pino';

export type { AdminApiSettings } from './settings.js';

/** What the admin API needs of the running server (src/app/server.ts has it). */
export interface AdminApiServer {
  log: Logger;
  http: HttpService;
  settings: { version: string };
  admin: ((hosts?: readonly string[]) => LiveAdminContext) | undefined;
}
import { commandList, commands } from '../control/commands.js';
import { CommandError, parseArgs, type ArgSpec, type AnyCommand } from '../control/registry.js';
import { fromLocalAdmin } from './forwarded.js';
import type { HttpListenerInfo, HttpRequest } from './router.js';


export const ADMIN_API_PREFIX = '/admin/api';

function jsonSchema(spec: ArgSpec): Record<string, unknown> {
  switch (spec.type) {
    case 'boolean':
      return { type: 'boolean', description: spec.description };
    case 'integer':
      return { type: 'integer', description: spec.description };
    case 'jids':
      return { type: 'array', items: { type: 'string' }, description: spec.description };
    case 'password':
      return { type: 'string', format: 'password', description: spec.description };
    default:
      return { type: 'string', description: spec.description };
  }
}

/** The OpenAPI 3.1 description of the registry's commands. */
export function openApiDocument(version: string): Record<string, unknown> {
  const paths: Record<string, unknown> = {};
  for (const command of commandList) {
    const required = Object.entries(command.args).filter(([, s]) => !s.optional).map(([n]) => n);
    paths[`${ADMIN_API_PREFIX}/${command.name}`] = {
      post: {
        operationId: command.name.replace(/\.(\w)/g, (_m, c: string) => c.toUpperCase()),
        summary: command.description,
        requestBody: {
          required: required.length > 0,
          content: {
            'application/json': {
              schema: {
                type: 'object',
                additionalProperties: false,
                properties: Object.fromEntries(Object.entries(command.args).map(([n, s]) => [n, jsonSchema(s)])),
                ...(required.length > 0 ? { required } : {}),
              },
            },
          },
        },
        responses: {
          200: { description: 'done', content: { 'application/json': { schema: { type: 'object', properties: { result: {} } } } } },
          400: { description: 'refused (bad arguments, no such account...)', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } },
          401: { description: 'no or wrong token' },
        },
      },
    };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'xmppd admin API', version },
    security: [{ bearer: [] }],
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: { Error: { type: 'object', properties: { error: { type: 'string' } }, required: ['error'] } },
    },
    paths,
  };
}

function reply(request: HttpRequest, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = `${JSON.stringify(body)}\n`;
  request.res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store', ...headers });
  request.res.end(text);
}

const digest = (value: string) => createHash('sha256').update(value).digest();

export function serveAdminApi(server: AdminApiServer, settings: AdminApiSettings | undefined): void {
  if (settings === undefined || !settings.enabled || settings.token === undefined) return;
  const expected = digest(settings.token);
  const onListener = settings.listeners === 'all' ? undefined : (l: HttpListenerInfo) => l.loopback;
  const log = server.log.child({ component: 'admin-api' });

  server.http.route({ prefix: ADMIN_API_PREFIX, methods: ['GET', 'POST'], listeners: onListener }, async (request) => {
    // a loopback listener is reached by a local reverse proxy too: refuse what it relays
    if (settings.listeners === 'loopback' && !fromLocalAdmin(request.req)) {
      log.warn({ peer: request.req.socket.remoteAddress }, 'admin API refused: request relayed for a client elsewhere');
      return reply(request, 403, { error: 'the admin API is for this machine only' });
    }
    const header = request.req.headers.authorization ?? '';
    const given = header.startsWith('Bearer ') ? header.slice(7) : '';
    // compared as digests: constant time whatever the lengths
    if (!timingSafeEqual(digest(given), expected)) {
      log.warn({ peer: request.req.socket.remoteAddress }, 'admin API refused: no or wrong token');
      return reply(request, 401, { error: 'a valid bearer token is needed' }, { 'WWW-Authenticate': 'Bearer' });
    }
    if (request.subpath === 'openapi.json' && request.req.method === 'GET') return reply(request, 200, openApiDocument(server.settings.version));
    const command: AnyCommand | undefined = commands.get(request.subpath);
    if (command === undefined) return reply(request, 404, { error: `no command ${request.subpath}` });
    if (request.req.method !== 'POST') return reply(request, 405, { error: 'commands are run with POST' }, { Allow: 'POST' });
    const context = server.admin?.();
    if (context === undefined) return reply(request, 503, { error: 'admin commands are not available on this server' });
    let args: unknown;
    try {
      const body = (await request.body()).toString('utf8');
      args = body.trim() === '' ? {} : JSON.parse(body);
    } catch {
      return reply(request, 400, { error: 'the body is not JSON' });
    }
    try {
      const result = await command.run(context, parseArgs(command, args));
      log.info({ command: command.name }, 'admin API command done');
      return reply(request, 200, { result });
    } catch (err) {
      if (err instanceof CommandError) return reply(request, 400, { error: err.message });
      log.error({ err, command: command.name }, 'admin API command failed');
      return reply(request, 500, { error: 'internal error (see the log)' });
    }
  });
}
