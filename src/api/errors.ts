// Rendering every error as `{code, message}` with the right status: the agent's errors (their
// kind mapped to a status here, and only here), the validator's (naming the field), and the body
// parser's (malformed JSON, too large).
import type { ErrorRequestHandler, Request, RequestHandler } from 'express';
import type { Logger } from 'pino';
import { AgentError, type ErrorKind } from '../model/errors.js';
import { noRouteMessage, ValidationError } from './validate.js';

export const STATUS: Record<ErrorKind, number> = {
  INVALID: 400,
  NOT_FOUND: 404,
  ALREADY_EXISTS: 409,
  IN_USE: 409,
  FAILED_PRECONDITION: 409,
  UNSUPPORTED: 501,
  TIMEOUT: 504,
  UPSTREAM: 502,
  INSUFFICIENT_STORAGE: 507,
  INTERNAL: 500,
};


interface ValidatorIssue {
  path?: string;
  message?: string;
}

function fieldName(path: string | undefined): string {
  return (path ?? '').replace(/^\//, '').replace(/\//g, '.').replace(/\.(\d+)(?=\.|$)/g, '[$1]');
}


export interface Described {
  status: number;
  message: string;
  headers?: Record<string, string>;
}

export function describeError(err: unknown, req?: Request): Described {
  if (err instanceof AgentError) return { status: STATUS[err.kind], message: err.message };
  // The validator's own answers: no such route (404), a method the route lacks (405, with
  // Allow), a body that is not JSON (415), and bad fields (400, each named by its place).
  if (err instanceof ValidationError) {
    const parts = err.errors.map((i) => `${fieldName(i.path)}: ${i.message}`);
    return { status: err.status, message: parts.length ? [...new Set(parts)].join('; ') : err.message, ...(err.headers ? { headers: err.headers } : {}) };
  }
  const e = err as { status?: number; statusCode?: number; type?: string; message?: string; errors?: ValidatorIssue[]; limit?: number };
  const status = e.status ?? e.statusCode;
  if (e.type === 'entity.parse.failed') return { status: 400, message: `malformed JSON in the request body: ${e.message}` };
  if (e.type === 'entity.too.large') return { status: 413, message: `the request body is larger than the limit of ${e.limit} bytes` };
  if (typeof status === 'number' && status >= 400 && status < 500) {
    if (Array.isArray(e.errors) && e.errors.length) {
      const parts = e.errors.map((i) => {
        const f = fieldName(i.path);
        const m = i.message ?? 'is invalid';
        return f ? `${f}: ${m}` : m;
      });
      return { status, message: [...new Set(parts)].join('; ') };
    }
    return { status, message: e.message ?? 'bad request' };
  }
  return { status: 500, message: `internal error: ${e.message ?? String(err)}` };
}

export function errorHandler(log: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => {
    const { status, message, headers } = describeError(err, req);
    const reqLog = (req as { log?: Logger }).log ?? log;
    if (status >= 500) reqLog.error({ err, status }, message);
    else reqLog.info({ status }, message);
    if (res.headersSent) {
      res.end();
      return;
    }
    if (headers) res.set(headers);
    res.status(status).json({ code: status, message });
  };
}

export const notFoundHandler: RequestHandler = (req, res) => {
  res.status(404).json({ code: 404, message: noRouteMessage(req) });
};
