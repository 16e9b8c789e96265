// Request (and, for tests, response) validation against swagger.yaml, compiled once per
// operation at start: the route is found by a table lookup on its path segments, its query, path
// parameters and body checked by ajv functions built from the spec, each compiled on its first use.
// No per-request route regexes, no schema work after the first request of an operation. The spec stays the only source of the rules.
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';

/** Where a client that took a wrong turn can read what exists. */
const SEE_DOCS = 'see /docs (Swagger UI) or /imageapi/v1/swagger.yaml for the routes';
export const noRouteMessage = (req: Request) => `no route ${req.method} ${req.path}: ${SEE_DOCS}`;

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'] as const;
type Schema = Record<string, unknown>;

interface Param {
  name: string;
  in: 'query' | 'path';
  required?: boolean;
  schema?: Schema;
}
interface Operation {
  parameters?: Param[];
  requestBody?: { required?: boolean; content?: Record<string, { schema?: Schema }> };
  responses?: Record<string, { content?: Record<string, { schema?: Schema }> }>;
}

/** A failed check, rendered by api/errors.ts like every other error (fields named by path). */
export class ValidationError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly errors: Array<{ path: string; message: string }> = [],
    readonly headers?: Record<string, string>,
  ) {
    super(message);
  }
}

interface Compiled {
  path: string;
  method: string;
  params: Param[];
  query: LazyCheck;
  pathParams: LazyCheck;
  body?: LazyCheck;
  bodyRequired: boolean;
  responses: Map<string, LazyCheck>;
}

/** A check compiled on its first use (or by warm()): start-up compiles nothing. */
type LazyCheck = ValidateFunction & { compile(): void };
function lazy(ajv: () => Ajv, schema: Schema): LazyCheck {
  let fn: ValidateFunction | undefined;
  const check = ((data: unknown) => {
    fn ??= ajv().compile(schema);
    const ok = fn(data) as boolean;
    check.errors = fn.errors;
    return ok;
  }) as LazyCheck;
  check.compile = () => void (fn ??= ajv().compile(schema));
  return check;
}

/** `#/components/…` inside an operation means the spec document's components. */
function rebase(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(rebase);
  if (v === null || typeof v !== 'object') return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[k] = k === '$ref' && typeof x === 'string' && x.startsWith('#/') ? `spec${x}` : rebase(x);
  return out;
}

function ajvFor(doc: Schema, requests: boolean, coerce: boolean): Ajv {
  const ajv = new Ajv({ strict: false, allErrors: true, coerceTypes: coerce, formats: { int64: true, 'date-time': true } });
  if (requests) {
    // A read-only field (an id, a device file) may not be sent: the agent sets it.
    ajv.removeKeyword('readOnly');
    ajv.addKeyword({
      keyword: 'readOnly',
      schemaType: 'boolean',
      error: { message: 'is read-only: the agent sets it' },
      validate: (ro: boolean) => !ro,
    });
  }
  ajv.addSchema({ $id: 'spec', components: (doc as { components?: unknown }).components });
  return ajv;
}

/** The issues of a failed ajv check, with the field's place (`/body/loopback/path`). */
function issues(where: string, errors: ErrorObject[] | null | undefined): Array<{ path: string; message: string }> {
  return (errors ?? []).map((e) => {
    const extra = e.keyword === 'additionalProperties' ? ` (unknown field "${(e.params as { additionalProperty: string }).additionalProperty}")` : '';
    return { path: `/${where}${e.instancePath}`, message: `${e.message ?? 'is invalid'}${extra}` };
  });
}

export class SpecValidator {
  /** Routes by segment count; a literal segment beats a `{param}` at the same place. */
  private readonly routes = new Map<number, Array<{ segs: string[]; ops: Map<string, Compiled> }>>();
  private readonly base: string;

  constructor(doc: Schema, opts: { base: string; responses: boolean }) {
    this.base = opts.base;
    const once = (make: () => Ajv) => {
      let ajv: Ajv | undefined;
      return () => (ajv ??= make());
    };
    const reqAjv = once(() => ajvFor(doc, true, false));
    const queryAjv = once(() => ajvFor(doc, true, true));
    const resAjv = opts.responses ? once(() => ajvFor(doc, false, false)) : null;
    const paths = (doc.paths ?? {}) as Record<string, Record<string, unknown>>;
    for (const [path, item] of Object.entries(paths)) {
      const shared = (item.parameters ?? []) as Param[];
      const ops = new Map<string, Compiled>();
      for (const m of METHODS) {
        const op = item[m] as Operation | undefined;
        if (!op) continue;
        const params = [...shared, ...(op.parameters ?? [])].map((p) => this.deref(doc, p));
        const group = (where: 'query' | 'path') => {
          const ps = params.filter((p) => p.in === where);
          return {
            type: 'object',
            properties: Object.fromEntries(ps.map((p) => [p.name, rebase(p.schema ?? {})])),
            required: ps.filter((p) => p.required).map((p) => p.name),
            additionalProperties: where === 'path',
          };
        };
        const bodySchema = op.requestBody?.content?.['application/json']?.schema;
        const responses = new Map<string, LazyCheck>();
        if (resAjv) {
          for (const [code, r] of Object.entries(op.responses ?? {})) {
            const s = r.content?.['application/json']?.schema;
            if (s) responses.set(code, lazy(resAjv, rebase(s) as Schema));
          }
        }
        ops.set(m.toUpperCase(), {
          path,
          method: m.toUpperCase(),
          params,
          query: lazy(queryAjv, group('query')),
          pathParams: lazy(queryAjv, group('path')),
          body: bodySchema ? lazy(reqAjv, rebase(bodySchema) as Schema) : undefined,
          bodyRequired: op.requestBody?.required === true,
          responses,
        });
      }
      const segs = path.split('/').filter(Boolean);
      const list = this.routes.get(segs.length) ?? [];
      list.push({ segs, ops });
      this.routes.set(segs.length, list);
    }
    // Most literal segments first, leftmost first: /container/log before /container/{id}.
    for (const list of this.routes.values()) {
      const rank = (s: string[]) => s.map((x) => (x.startsWith('{') ? '1' : '0')).join('');
      list.sort((a, b) => rank(a.segs).localeCompare(rank(b.segs)));
    }
  }

  private deref(doc: Schema, p: Param | { $ref: string }): Param {
    if ('$ref' in p) {
      const parts = p.$ref.replace(/^#\//, '').split('/');
      let v: unknown = doc;
      for (const k of parts) v = (v as Record<string, unknown>)[k];
      return v as Param;
    }
    return p;
  }

  /**
   * Compile every check in the background, one at a time between requests, so the first request
   * of each operation does not pay for it (an orchestrator's first create, say).
   */
  warm(): void {
    const checks = [...this.routes.values()].flat().flatMap((r) => [...r.ops.values()]).flatMap((op) => [op.body, op.query, op.pathParams, ...op.responses.values()]).filter((c): c is LazyCheck => c !== undefined);
    const next = () => {
      const c = checks.shift();
      if (!c) return;
      c.compile();
      setImmediate(next).unref();
    };
    setImmediate(next).unref();
  }

  /** The route of a request path (without the base) and its path parameters. */
  private match(path: string): { ops: Map<string, Compiled>; params: Record<string, string> } | undefined {
    const segs = path.split('/').filter(Boolean);
    for (const r of this.routes.get(segs.length) ?? []) {
      const params: Record<string, string> = {};
      let ok = true;
      for (let i = 0; i < segs.length && ok; i++) {
        const want = r.segs[i]!;
        if (want.startsWith('{')) params[want.slice(1, -1)] = decodeURIComponent(segs[i]!);
        else ok = want === segs[i];
      }
      if (ok) return { ops: r.ops, params };
    }
    return undefined;
  }

  readonly middleware: RequestHandler = (req: Request, res: Response, next: NextFunction) => {
    const path = req.path.startsWith(this.base + '/') || req.path === this.base ? req.path.slice(this.base.length) || '/' : req.path;
    const found = this.match(path);
    if (!found) return next(new ValidationError(404, noRouteMessage(req)));
    const op = found.ops.get(req.method === 'HEAD' ? 'GET' : req.method);
    if (!op) {
      const allow = [...found.ops.keys()].join(', ');
      return next(new ValidationError(405, `${req.method} is not allowed on ${req.path} (allowed: ${allow})`, [], { Allow: allow }));
    }
    const problems: Array<{ path: string; message: string }> = [];
    const query = { ...(req.query as Record<string, unknown>) };
    if (!op.query(query)) problems.push(...issues('query', op.query.errors));
    const known = new Set(op.params.filter((p) => p.in === 'query').map((p) => p.name));
    for (const k of Object.keys(req.query as object)) if (!known.has(k)) problems.push({ path: `/query/${k}`, message: `is not a parameter of ${op.method} ${op.path}` });
    const params = { ...found.params };
    if (!op.pathParams(params)) problems.push(...issues('path', op.pathParams.errors));
    if (op.body) {
      if (req.body === undefined) {
        if (op.bodyRequired && !req.is('application/json')) {
          const got = req.headers['content-type'] ? `content-type ${req.headers['content-type']}` : 'no body';
          return next(new ValidationError(415, `${req.method} ${req.path} takes a JSON object as its body (content-type: application/json); got ${got}`));
        }
      } else if (!op.body(req.body)) problems.push(...issues('body', op.body.errors));
    }
    if (problems.length) return next(new ValidationError(400, problems.map((p) => p.message).join('; '), problems));
    if (op.responses.size) this.checkResponses(op, res);
    next();
  };

  /** Tests: an answer that breaks the spec becomes a 500 naming what is wrong. */
  private checkResponses(op: Compiled, res: Response): void {
    const json = res.json.bind(res);
    res.json = (body: unknown) => {
      const check = op.responses.get(String(res.statusCode)) ?? op.responses.get('default');
      if (check && !check(body)) {
        const why = issues('response', check.errors).map((i) => `${i.path}: ${i.message}`).join('; ');
        res.status(500);
        return json({ code: 500, message: `internal error: the answer of ${op.method} ${op.path} does not match the spec: ${why}` });
      }
      return json(body);
    };
  }
}
