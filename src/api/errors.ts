// Rendering every error as `{code, message}` with the right status: our ApiErrors, the
// validator's (naming the field), and the body parser's (malformed JSON, too large).
import type { ErrorRequestHandler, RequestHandler } from 'express';
import type { Logger } from 'pino';
import { ApiError } from '../errors.js';

interface ValidatorIssue {
  path?: string;
  message?: string;
}

function fieldName(path: string | undefined): string {
  return (path ?? '').replace(/^\//, '').replace(/\//g, '.').replace(/\.(\d+)(?=\.|$)/g, '[$1]');
}

export function describeError(err: unknown): { status: number; message: string } {
  if (err instanceof ApiError) return { status: err.status, message: err.message };
  const e = err as { status?: number; statusCode?: number; type?: string; message?: string; errors?: ValidatorIssue[]; limit?: number };
  const status = e.status ?? e.statusCode;
  if (e.type === 'entity.parse.failed') return { status: 400, message: `malformed JSON in the request body: ${e.message}` };
  if (e.type === 'entity.too.large') return { status: 413, message: `the request body is larger than the limit of ${e.limit} bytes` };
  if (typeof status === 'number' && status >= 400 && status < 500) {
    if (Array.isArray(e.errors) && e.errors.length) {
      const parts = e.errors.map((i) => {
        const f = fieldName(i.path);
        const m = (i.message ?? 'is invalid').replace(/^must/, 'must');
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
    const { status, message } = describeError(err);
    const reqLog = (req as { log?: Logger }).log ?? log;
    if (status >= 500) reqLog.error({ err, status }, message);
    else reqLog.info({ status }, message);
    if (res.headersSent) {
      res.end();
      return;
    }
    res.status(status).json({ code: status, message });
  };
}

export const notFoundHandler: RequestHandler = (req, res) => {
  res.status(404).json({ code: 404, message: `no route ${req.method} ${req.path}` });
};
