// Request (and, for tests, response) validation against swagger.yaml. The checks are ajv code
// generated from the spec at build time (scripts/gen-checks.mjs, `npm run gen` → checks.gen.ts):
// the agent compiles no schema and parses no YAML at start. On a spec they were not generated
// from (swagger.yaml edited, `npm run gen` not run yet) the agent generates them itself at start,
// from the spec beside it, and says so. The route is found by a table lookup on its path
// segments, its query, path parameters and body checked by the operation's own functions; no
// per-request route regexes. The spec stays the only source of the rules.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { Logger } from 'pino';
import * as generated from './checks.gen.js';
import { specPath } from './spec.js';

/** Where a client that took a wrong turn can read what exists. */
const SEE_DOCS = 'see /docs (Swagger UI) or /imageapi/v1/swagger.yaml for the routes';
export const noRouteMessage = (req: Request) => `no route ${req.method} ${req.path}: ${SEE_DOCS}`;

interface ErrorObject {
  keyword: string;
  instancePath: string;
  message?: string;
  params: Record<string, unknown>;
}
/** A generated check: true when the data is valid, else its `errors` say why (ajv's shape). */
export type Check = ((data: unknown) => boolean) & { errors?: ErrorObject[] | null };
/** The response checks of each operation (`"GET /attach"`), by status code. */
export type ResponseChecks = Record<string, Record<string, Check>>;

interface Param {
  name: string;
  in: string;
  required?: boolean;
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
  /** Names of the query parameters the operation has. */
  known: ReadonlySet<string>;
  query: Check;
  pathParams: Check;
  body?: Check;
  bodyRequired: boolean;
  responses?: Record<string, Check>;
}

/** One operation of the spec and its checks, as checks.gen.ts lists them. */
export interface Operation {
  path: string;
  method: string;
  params: Param[];
  query: Check;
  pathParams: Check;
  body?: Check;
  bodyRequired: boolean;
}

/** What the validator checks with: every operation, and (tests) the answers. */
export interface Checks {
  operations: readonly Operation[];
  responses?: ResponseChecks;
}

/** The generator, where the agent runs from a checkout (an installed package's checks are always its spec's). */
const GENERATOR = fileURLToPath(new URL('../../../scripts/gen-checks.mjs', import.meta.url));

const importText = (text: string) => import(`data:text/javascript;base64,${Buffer.from(text).toString('base64')}`);

/**
 * The checks of the swagger.yaml beside the agent: the generated ones when they were generated
 * from it (the sha256 they carry), else generated now (a checkout whose spec was edited: slower
 * start, and a warning). `responses`: also the response checks (tests).
 */
export async function loadChecks(opts: { responses?: boolean; log?: Logger } = {}): Promise<Checks> {
  const file = specPath();
  const text = readFileSync(file, 'utf8');
  const sha = createHash('sha256').update(text).digest('hex');
  if (sha === generated.SPEC_SHA256) {
    const responses = opts.responses ? ((await import('./checks-responses.gen.js')).RESPONSES as ResponseChecks) : undefined;
    return { operations: generated.OPERATIONS as readonly Operation[], responses };
  }
  if (!existsSync(GENERATOR)) throw new Error(`${file} is not the spec the request checks were generated from, and ${GENERATOR} is missing: rebuild the package`);
  opts.log?.warn({ spec: file }, 'swagger.yaml changed since its checks were generated (src/api/checks.gen.ts): generating them at start; run npm run gen');
  const { generate } = (await import(pathToFileURL(GENERATOR).href)) as { generate: (t: string, o: { requireFrom: string }) => { main: string; responses: string } };
  const out = generate(text, { requireFrom: import.meta.url });
  const main = (await importText(out.main)) as { OPERATIONS: readonly Operation[] };
  const responses = opts.responses ? ((await importText(out.responses)) as { RESPONSES: ResponseChecks }).RESPONSES : undefined;
  return { operations: main.OPERATIONS, responses };
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

  constructor(opts: { base: string; checks: Checks }) {
    this.base = opts.base;
    const byPath = new Map<string, Map<string, Compiled>>();
    const responses = opts.checks.responses;
    for (const o of opts.checks.operations) {
      let ops = byPath.get(o.path);
      if (!ops) byPath.set(o.path, (ops = new Map()));
      const known = new Set(o.params.filter((p) => p.in === 'query').map((p) => p.name));
      ops.set(o.method, { ...o, known, responses: responses?.[`${o.method} ${o.path}`] });
    }
    for (const [path, ops] of byPath) {
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
    for (const k of Object.keys(req.query as object)) if (!op.known.has(k)) problems.push({ path: `/query/${k}`, message: `is not a parameter of ${op.method} ${op.path}` });
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
    if (op.responses) this.checkResponses(op, op.responses, res);
    next();
  };

  /**
   * Tests: an answer that breaks the spec becomes a 500 naming what is wrong. Answers sent as
   * ready JSON text (respond.ts) go through res.json too while this is on.
   */
  private checkResponses(op: Compiled, checks: Record<string, Check>, res: Response): void {
    const json = res.json.bind(res);
    res.locals.checkedJson = true;
    res.json = (body: unknown) => {
      const check = checks[String(res.statusCode)] ?? checks.default;
      if (check && !check(body)) {
        const why = issues('response', check.errors).map((i) => `${i.path}: ${i.message}`).join('; ');
        res.status(500);
        return json({ code: 500, message: `internal error: the answer of ${op.method} ${op.path} does not match the spec: ${why}` });
      }
      return json(body);
    };
  }
}
