// The express app: JSON body parsing, a request id and log line per request, the OpenAPI
// validator on every request, Swagger UI, both base paths, and one error renderer. What only some
// requests need (the spec document, Swagger UI) is loaded by the first of them, not at start.
import type { Server } from 'node:net';
import type { Duplex } from 'node:stream';
import { randomUUID } from 'node:crypto';
import express from 'express';
import type { Logger } from 'pino';
import { pinoHttp } from 'pino-http';
import { normalizeBody } from './body.js';
import { errorHandler, notFoundHandler } from './errors.js';
import { createMetrics, routeOf } from './metrics.js';
import { genericV02Routes } from './routes/generic-v02.js';
import { imageRoutes } from './routes/images.js';
import { opsRoutes } from './routes/ops.js';
import { typedV01Routes } from './routes/typed-v01.js';
import type { Services } from './services.js';
import { loadSpec, type LoadedSpec } from './spec.js';
import { type Checks, SpecValidator } from './validate.js';

export const BASE = '/imageapi/v1';
const BODY_LIMIT = '1mb';
const BODY_LIMIT_BYTES = 1024 * 1024;
/** JSON nesting deeper than this is refused before anything recursive (the validator) sees it. */
export const MAX_DEPTH = 100;
/** Request line and headers together (node's maxHeaderSize). */
export const MAX_HEAD_BYTES = 16 * 1024;

/** Depth of a parsed JSON value, without recursion (so no depth can overflow the stack). */
export function jsonDepth(value: unknown, limit: number): number {
  let max = 0;
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length) {
    const [v, d] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (d > max) max = d;
    if (max > limit) return max;
    for (const c of Object.values(v)) if (c !== null && typeof c === 'object') stack.push([c, d + 1]);
  }
  return max;
}

const refuse = (res: express.Response, status: number, message: string) => {
  res.status(status).json({ code: status, message });
};

/** Past this much of a refused body, its connection is closed rather than read on. */
const DRAIN_LIMIT_BYTES = 64 * 1024 * 1024;

/** Bodies announced over the limit are refused at once, before a byte of them is parsed. */
const announcedTooLarge: express.RequestHandler = (req, res, next) => {
  const len = Number(req.headers['content-length']);
  if (!Number.isFinite(len) || len <= BODY_LIMIT_BYTES) return next();
  // The body is read and thrown away (bounded), not cut off: a client still sending it would see
  // a broken pipe instead of this answer.
  let drained = 0;
  req.on('data', (chunk: Buffer) => {
    drained += chunk.length;
    if (drained > DRAIN_LIMIT_BYTES) req.socket.destroy();
  });
  req.resume();
  refuse(res, 413, `the request body (${len} bytes announced) is larger than the limit of ${BODY_LIMIT_BYTES} bytes`);
};

const tooDeep: express.RequestHandler = (req, res, next) => {
  if (req.body === undefined || jsonDepth(req.body, MAX_DEPTH) <= MAX_DEPTH) return next();
  refuse(res, 400, `body: nested deeper than ${MAX_DEPTH} levels`);
};

/**
 * What node answers by itself on a request it cannot parse (a 70 KB URL, a malformed head) is a
 * bare status or a reset connection: answer `{code, message}` instead, then let the client finish
 * sending (its unread bytes would turn our close into a reset that hides the answer).
 */
export function guardServer<S extends Server>(srv: S, log: Logger): S {
  srv.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (!socket.writable || (err.code === 'ECONNRESET' && !(err as { bytesParsed?: number }).bytesParsed)) {
      socket.destroy();
      return;
    }
    const [status, text, message] =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'Request Header Fields Too Large', `the request line and headers are larger than the limit of ${MAX_HEAD_BYTES} bytes (a URL that long is refused; send long data in a body)`]
        : err.code === 'HPE_HEADERS_TIMEOUT' || err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? [408, 'Request Timeout', 'the request was not received in time']
          : [400, 'Bad Request', `malformed HTTP request: ${err.message}`];
    log.info({ status, err: err.code }, message);
    const body = JSON.stringify({ code: status, message });
    socket.end(`HTTP/1.1 ${status} ${text}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
    socket.on('data', () => {}); // drain what the client still sends
    socket.resume();
    setTimeout(() => socket.destroy(), 5000).unref();
  });
  return srv;
}

export interface AppOptions {
  log: Logger;
  /** The spec document (read from swagger.yaml at its first use when not given). */
  spec?: LoadedSpec;
  /** The spec's checks (validate.ts loadChecks; with response checks, answers are validated too: the tests). */
  checks: Checks;
  /** Validate requests (default). Off only to measure the validator's cost: it guards every path. */
  validateRequests?: boolean;
  /** For GET /info. */
  runDir?: string;
}

/** A client's X-Request-Id is kept when it is a sane token; otherwise the agent makes one. */
const REQUEST_ID = /^[A-Za-z0-9._:@/+=-]{1,128}$/;

const requestLine = (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse, ms?: number) => ({
  method: req.method,
  url: (req as express.Request).originalUrl ?? req.url,
  route: routeOf(req as express.Request),
  status: res.statusCode,
  ms,
});

export function createApp(services: Services, opts: AppOptions): express.Express {
  const app = express();
  app.disable('x-powered-by');
  // No ETag: nothing asks for it, and it hashed every answer (a list at 1,000 objects is ~0.5 MB).
  app.set('etag', false);
  app.set('query parser', 'simple');
  const metrics = createMetrics(services.store, services.engine.events);
  app.use(metrics.middleware);
  // One line per request at info: method, route, status, duration, request id (X-Request-Id,
  // the client's or ours, answered in the same header); req.log carries the id for later lines.
  app.use(
    pinoHttp({
      logger: opts.log,
      quietReqLogger: true,
      quietResLogger: true,
      customAttributeKeys: { reqId: 'req_id', responseTime: 'ms' },
      genReqId(req, res) {
        const given = req.headers['x-request-id'];
        const id = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
        res.setHeader('x-request-id', id);
        return id;
      },
      customLogLevel: (_req, res, err) => (err || res.statusCode >= 500 ? 'error' : 'info'),
      customSuccessMessage: () => 'request',
      customErrorMessage: () => 'request failed',
      customSuccessObject: (req, res, val: { ms?: number }) => requestLine(req, res, val.ms),
      customErrorObject: (req, res, err, val: { ms?: number }) => ({ ...requestLine(req, res, val.ms), err }),
    }),
  );

  // The document is parsed (YAML, ~0.1 s) and Swagger UI loaded when first asked for.
  let spec = opts.spec;
  const specNow = () => (spec ??= loadSpec());
  let specJson: string | undefined;
  for (const base of [BASE, '']) {
    app.get(`${base}/swagger.yaml`, (_req, res) => void res.type('application/yaml').send(specNow().text));
    app.get(`${base}/swagger.json`, (_req, res) => void res.type('application/json').send((specJson ??= JSON.stringify(specNow().doc))));
  }
  let docs: Promise<express.RequestHandler> | undefined;
  app.use('/docs', async (req, res, next) => {
    docs ??= import('swagger-ui-express').then(({ default: ui }) => {
      const r = express.Router();
      r.use(ui.serve, ui.setup(specNow().doc));
      return r;
    });
    (await docs)(req, res, next);
  });

  app.use(announcedTooLarge);
  app.use(express.json({ limit: BODY_LIMIT, strict: true }));
  app.use(tooDeep);
  app.use(normalizeBody);
  if (opts.validateRequests !== false) app.use(new SpecValidator({ base: BASE, checks: opts.checks }).middleware);
  const routes = express.Router();
  // First: /container/wait must win over v0.1's /container/{id}.
  routes.use(opsRoutes(services, { events: services.engine.events, metrics, runDir: opts.runDir ?? '', startedAt: new Date() }));
  // v0.2 first: its /container/log must win over v0.1's /container/{id}.
  routes.use(genericV02Routes(services));
  routes.use(imageRoutes(services));
  routes.use(typedV01Routes(services));
  app.use(BASE, routes);
  app.use('/', routes);
  app.use(notFoundHandler);
  app.use(errorHandler(opts.log));
  return app;
}
