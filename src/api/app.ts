// The express app: JSON body parsing, a request id and log line per request, the OpenAPI
// validator on every request, Swagger UI, both base paths, and one error renderer.
import express from 'express';
import * as OpenApiValidator from 'express-openapi-validator';
import type { Logger } from 'pino';
import swaggerUi from 'swagger-ui-express';
import { normalizeBody } from './body.js';
import { errorHandler, notFoundHandler } from './errors.js';
import { genericV02Routes } from './routes/generic-v02.js';
import { typedV01Routes } from './routes/typed-v01.js';
import type { Services } from './services.js';
import type { LoadedSpec } from './spec.js';

export const BASE = '/imageapi/v1';
const BODY_LIMIT = '1mb';

export interface AppOptions {
  log: Logger;
  spec: LoadedSpec;
  /** Validate every response against the spec too (tests turn this on). */
  validateResponses?: boolean;
  /** Validate requests (default). Off only to measure the validator's cost: it guards every path. */
  validateRequests?: boolean;
}

export function createApp(services: Services, opts: AppOptions): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple');
  let seq = 0;
  app.use((req, res, next) => {
    const started = process.hrtime.bigint();
    const reqLog = opts.log.child({ req_id: ++seq });
    (req as unknown as { log: Logger }).log = reqLog;
    res.on('finish', () => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      reqLog.debug({ method: req.method, url: req.originalUrl, status: res.statusCode, ms: Math.round(ms * 10) / 10 }, 'request');
    });
    next();
  });

  const specJson = JSON.stringify(opts.spec.doc);
  for (const base of [BASE, '']) {
    app.get(`${base}/swagger.yaml`, (_req, res) => void res.type('application/yaml').send(opts.spec.text));
    app.get(`${base}/swagger.json`, (_req, res) => void res.type('application/json').send(specJson));
  }
  app.use('/docs', swaggerUi.serve, swaggerUi.setup(opts.spec.doc));

  app.use(express.json({ limit: BODY_LIMIT, strict: true }));
  app.use(normalizeBody);
  if (opts.validateRequests !== false) app.use(
    OpenApiValidator.middleware({
      apiSpec: structuredClone(opts.spec.doc) as never,
      validateRequests: { allowUnknownQueryParameters: false, coerceTypes: false, allErrors: true },
      validateResponses: opts.validateResponses ? { onError: undefined } : false,
      validateSecurity: false,
      ignoreUndocumented: false,
      ignorePaths: /^\/(docs|swagger\.(yaml|json)|imageapi\/v1\/swagger\.(yaml|json))/,
    }),
  );
  const routes = express.Router();
  // v0.2 first: its /container/log must win over v0.1's /container/{id}.
  routes.use(genericV02Routes(services));
  routes.use(typedV01Routes(services));
  app.use(BASE, routes);
  app.use('/', routes);
  app.use(notFoundHandler);
  app.use(errorHandler(opts.log));
  return app;
}
