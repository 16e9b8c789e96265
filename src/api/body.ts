// Request bodies as clients send them, made into what the spec describes. go-swagger clients
// marshal an unset slice or pointer without `omitempty` as `null` (Kraken sends
// `"namespaces": null` on every create); upstream's server read that as "absent", and so does
// this agent: a `null` object property is dropped before validation, so defaults apply and a
// required field is still reported missing by name.
import type { Request, RequestHandler } from 'express';
import { invalid } from '../model/errors.js';

/** A copy of `value` without its `null` object properties, at every depth (array items stay). */
export function dropNulls(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(dropNulls);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) if (v !== null) out[k] = dropNulls(v);
  return out;
}

export const normalizeBody: RequestHandler = (req, _res, next) => {
  if (req.body !== undefined) req.body = dropNulls(req.body);
  next();
};

/** The JSON object a create route needs; anything else is the client's mistake, said plainly. */
export function jsonBody<T>(req: Request): T {
  const b = req.body as unknown;
  if (b === undefined) throw invalid('the request needs a JSON object as its body (with content-type: application/json)');
  if (b === null || typeof b !== 'object' || Array.isArray(b)) throw invalid('body: must be a JSON object');
  return b as T;
}
