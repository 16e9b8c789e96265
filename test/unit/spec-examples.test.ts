// Every example in swagger.yaml is valid against its own schema, checked by the validator the
// agent runs (express-openapi-validator, with the agent's options): request bodies are sent
// through request validation, response examples answered through response validation, with the
// operation's parameter examples in the URL. Schema-level examples no response uses are checked
// with ajv. And every operation documents itself: summary, description, an example of each body.
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createRequire } from 'node:module';
import express from 'express';
import * as OpenApiValidator from 'express-openapi-validator';
import { loadSpec } from '../../src/api/spec.js';

type Obj = Record<string, any>;
interface AjvLike {
  addSchema(schema: object, key: string): void;
  addFormat(name: string, format: object): void;
  compile(schema: object): ((data: unknown) => boolean) & { errors?: unknown };
}
const require = createRequire(import.meta.url);
const Ajv = require('ajv').default as new (opts: object) => AjvLike;
const addFormats = require('ajv-formats').default as (ajv: AjvLike) => void;
const METHODS = ['get', 'put', 'post', 'delete', 'patch'] as const;

const spec = loadSpec().doc as Obj;

function deref(o: Obj | undefined): Obj | undefined {
  let cur = o;
  for (let i = 0; cur && typeof cur.$ref === 'string' && i < 10; i++) {
    cur = cur.$ref
      .replace(/^#\//, '')
      .split('/')
      .reduce((acc: Obj | undefined, k: string) => acc?.[k.replace(/~1/g, '/').replace(/~0/g, '~')], spec);
  }
  return cur;
}

interface Op {
  path: string;
  method: (typeof METHODS)[number];
  op: Obj;
  params: Obj[];
  label: string;
}

const ops: Op[] = [];
for (const [path, item] of Object.entries(spec.paths as Obj)) {
  for (const method of METHODS) {
    const op = (item as Obj)[method] as Obj | undefined;
    if (!op) continue;
    const params = [...((item as Obj).parameters ?? []), ...(op.parameters ?? [])].map((p: Obj) => deref(p)!);
    ops.push({ path, method, op, params, label: `${method.toUpperCase()} ${path}` });
  }
}

/** Examples of a media type object: `example`, each of `examples`, else the schema's own `example`. */
function mediaExamples(media: Obj): { name: string; value: unknown }[] {
  const out: { name: string; value: unknown }[] = [];
  if ('example' in media) out.push({ name: 'example', value: media.example });
  for (const [name, ex] of Object.entries((media.examples ?? {}) as Obj)) out.push({ name, value: deref(ex as Obj)!.value });
  const schema = deref(media.schema);
  if (out.length === 0 && schema && 'example' in schema) out.push({ name: 'schema example', value: schema.example });
  return out;
}

/** The URL of an operation, path and required query parameters filled from their examples. */
function urlOf(o: Op): string {
  let url = o.path;
  const query: string[] = [];
  for (const p of o.params) {
    if (p.in === 'path') url = url.replace(`{${p.name}}`, encodeURIComponent(String(p.example)));
    else if (p.in === 'query' && p.required) query.push(`${p.name}=${encodeURIComponent(String(p.example))}`);
  }
  return `/imageapi/v1${url}${query.length ? `?${query.join('&')}` : ''}`;
}

/** A request that passes the operation's request validation: parameter examples, the first body example. */
function requestOf(o: Op): { url: string; init: RequestInit } {
  const body = o.op.requestBody ? deref(o.op.requestBody) : undefined;
  const json = body?.content?.['application/json'];
  const first = json ? mediaExamples(json)[0] : undefined;
  return {
    url: urlOf(o),
    init: {
      method: o.method.toUpperCase(),
      ...(first ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(first.value) } : {}),
    },
  };
}

/** The agent's validator (src/api/app.ts options) in front of a handler that answers what the test asks. */
function validatingApp(validateResponses: boolean): express.Express {
  const app = express();
  app.set('query parser', 'simple');
  app.use(express.json({ limit: '1mb', strict: true }));
  app.use(
    OpenApiValidator.middleware({
      apiSpec: structuredClone(spec) as never,
      validateRequests: { allowUnknownQueryParameters: false, coerceTypes: false, allErrors: true },
      validateResponses: validateResponses ? { onError: undefined } : false,
      validateSecurity: false,
      ignoreUndocumented: false,
    }),
  );
  app.use((req, res) => {
    const want = req.headers['x-example'];
    if (typeof want !== 'string') return void res.status(299).end();
    const { status, type, body } = JSON.parse(Buffer.from(want, 'base64').toString()) as { status: number; type: string; body: unknown };
    if (type === 'application/json') res.status(status).json(body);
    else res.status(status).type(type).send(body);
  });
  app.use((err: Obj, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    // A request the validator refuses keeps its status (400, 415…); a response it refuses (500) is 598.
    const status = typeof err.status === 'number' && err.status !== 500 ? err.status : 598;
    res.status(status).json({ status: err.status, message: err.message, errors: err.errors });
  });
  return app;
}

async function serve(app: express.Express): Promise<{ url: string; close: () => Promise<void> }> {
  const srv = app.listen(0, '127.0.0.1');
  await new Promise((r) => srv.once('listening', r));
  return { url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`, close: () => new Promise((r) => srv.close(() => r())) };
}

describe('swagger.yaml documents itself', () => {
  let reqSrv: Awaited<ReturnType<typeof serve>>;
  let resSrv: Awaited<ReturnType<typeof serve>>;
  before(async () => {
    reqSrv = await serve(validatingApp(false));
    resSrv = await serve(validatingApp(true));
  });
  after(async () => {
    await reqSrv.close();
    await resSrv.close();
  });

  it('every operation has a summary and a description', () => {
    assert.ok(ops.length >= 29, `${ops.length} operations`);
    const missing = ops.filter((o) => !o.op.summary?.trim() || !o.op.description?.trim()).map((o) => o.label);
    assert.deepEqual(missing, [], 'operations without a summary or a description');
  });

  it('every body has an example: each request body, each 2xx answer with content, each required parameter', () => {
    const missing: string[] = [];
    for (const o of ops) {
      const body = o.op.requestBody ? deref(o.op.requestBody)! : undefined;
      for (const [type, media] of Object.entries((body?.content ?? {}) as Obj)) {
        if (mediaExamples(media).length === 0) missing.push(`${o.label} request ${type}`);
      }
      for (const [status, r] of Object.entries(o.op.responses as Obj)) {
        if (!/^2/.test(status)) continue;
        for (const [type, media] of Object.entries((deref(r)!.content ?? {}) as Obj)) {
          if (type === 'text/event-stream') continue; // the same events as the NDJSON example, framed for SSE
          if (mediaExamples(media).length === 0) missing.push(`${o.label} ${status} ${type}`);
        }
      }
      for (const p of o.params) if (p.required && !('example' in p)) missing.push(`${o.label} parameter ${p.name}`);
    }
    assert.deepEqual(missing, []);
  });

  it('the typed v0.1 routes are deprecated and tagged apart from the v0.2 ones', () => {
    const v01 = new Set(['/attach/rbd', '/attach/rbd/{id}', '/mount/rbd', '/mount/rbd/{id}', '/mount/overlay', '/mount/overlay/{id}', '/container/{id}', '/container/{id}/{state}', '/container/byname/{name}', '/container/byname/{name}/{state}']);
    const wrong: string[] = [];
    for (const o of ops) {
      const typed = v01.has(o.path);
      const tags = (o.op.tags ?? []) as string[];
      if (tags.length === 0) wrong.push(`${o.label}: no tag`);
      if (typed !== (o.op.deprecated === true)) wrong.push(`${o.label}: deprecated ${o.op.deprecated}`);
      if (tags.some((t) => t.startsWith('v0.1 ') !== typed)) wrong.push(`${o.label}: tags ${tags.join(', ')}`);
      if (typed && !/\/(attach|mount|container)\b/.test(o.op.description ?? '')) wrong.push(`${o.label}: does not name the v0.2 route to use`);
    }
    assert.deepEqual(wrong, []);
    const declared = new Set(((spec.tags ?? []) as Obj[]).map((t) => t.name as string));
    for (const o of ops) for (const t of o.op.tags ?? []) assert.ok(declared.has(t), `tag ${t} of ${o.label} is declared`);
    for (const p of ['/container/{id}/{state}', '/container/byname/{name}/{state}']) {
      const op = (spec.paths as Obj)[p].get as Obj;
      assert.match(`${op.summary} ${op.description}`, /changes? (the )?state/i, `${p} says that this GET changes state`);
    }
  });

  it('every request body example passes the agent\'s request validation', async () => {
    let n = 0;
    for (const o of ops) {
      const body = o.op.requestBody ? deref(o.op.requestBody)! : undefined;
      const media = body?.content?.['application/json'];
      if (!media) continue;
      for (const ex of mediaExamples(media)) {
        const res = await fetch(reqSrv.url + urlOf(o), { method: o.method.toUpperCase(), headers: { 'content-type': 'application/json' }, body: JSON.stringify(ex.value) });
        const text = await res.text();
        assert.equal(res.status, 299, `${o.label} request example ${ex.name}: ${text}`);
        n++;
      }
    }
    assert.ok(n >= 10, `${n} request examples`);
  });

  it('every response example passes the agent\'s response validation', async () => {
    let n = 0;
    for (const o of ops) {
      if (o.op.requestBody && !mediaExamples(deref(o.op.requestBody)!.content?.['application/json'] ?? {}).length) continue; // reported above
      const { url, init } = requestOf(o);
      const probe = await fetch(reqSrv.url + url, init);
      assert.equal(probe.status, 299, `${o.label}: the request made from the examples is valid: ${await probe.text()}`);
      for (const [status, r] of Object.entries(o.op.responses as Obj)) {
        for (const [type, media] of Object.entries((deref(r)!.content ?? {}) as Obj)) {
          for (const ex of mediaExamples(media)) {
            const code = status === 'default' ? Number((ex.value as Obj)?.code ?? 500) : Number(status);
            if (type !== 'application/json') {
              assert.equal(typeof ex.value, 'string', `${o.label} ${status} ${type} ${ex.name} is text`);
              assert.equal(deref(media.schema)?.type, 'string', `${o.label} ${status} ${type}: a text schema`);
              n++;
              continue;
            }
            const header = Buffer.from(JSON.stringify({ status: code, type, body: ex.value })).toString('base64');
            const res = await fetch(resSrv.url + url, { ...init, headers: { ...(init.headers as Obj), 'x-example': header } });
            const text = await res.text();
            assert.equal(res.status, code, `${o.label} ${status} example ${ex.name}: ${text}`);
            if (status === 'default' || /^[45]/.test(status)) assert.equal((ex.value as Obj).code, code, `${o.label} ${status}: code matches the status`);
            n++;
          }
        }
      }
    }
    assert.ok(n >= 40, `${n} response examples`);
  });

  it('the checks can fail: a wrong example is refused by each', async () => {
    const post = ops.find((o) => o.label === 'POST /attach')!;
    const bad = await fetch(reqSrv.url + urlOf(post), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'loopback', loopback: { path: 5 } }) });
    assert.equal(bad.status, 400, await bad.text());
    const readOnly = await fetch(reqSrv.url + urlOf(post), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'loopback', device_file: '/dev/loop0', loopback: { path: '/x' } }) });
    assert.equal(readOnly.status, 400, `a read-only field in a request example is refused: ${await readOnly.text()}`);
    const { url, init } = requestOf(post);
    const header = Buffer.from(JSON.stringify({ status: 201, type: 'application/json', body: { id: 'zero', kind: 'loopback' } })).toString('base64');
    const res = await fetch(resSrv.url + url, { ...init, headers: { ...(init.headers as Obj), 'x-example': header } });
    assert.equal(res.status, 598, await res.text());
  });

  it('schema-level examples are valid against their schema (ajv, OpenAPI 3.0 nullable)', () => {
    const ajv = new Ajv({ strict: false, allErrors: true });
    addFormats(ajv);
    ajv.addFormat('int64', { type: 'number', validate: (n: number) => Number.isInteger(n) });
    ajv.addFormat('int32', { type: 'number', validate: (n: number) => Number.isInteger(n) });
    const nullable = (v: unknown): unknown => {
      if (Array.isArray(v)) return v.map(nullable);
      if (!v || typeof v !== 'object') return v;
      const o = Object.fromEntries(Object.entries(v as Obj).filter(([k]) => k !== 'example').map(([k, x]) => [k, nullable(x)])) as Obj;
      if (o.nullable === true && typeof o.type === 'string') o.type = [o.type, 'null'];
      return o;
    };
    ajv.addSchema({ $id: 'spec', components: nullable(spec.components) }, 'spec');
    let n = 0;
    for (const [name, schema] of Object.entries(spec.components.schemas as Obj)) {
      if (!('example' in (schema as Obj))) continue;
      const validate = ajv.compile({ $ref: `spec#/components/schemas/${name}` });
      assert.ok(validate((schema as Obj).example), `components.schemas.${name}.example: ${JSON.stringify(validate.errors)}`);
      n++;
    }
    const wrong = ajv.compile({ $ref: 'spec#/components/schemas/error' });
    assert.equal(wrong({ code: 'x' }), false, 'the ajv check can fail');
    assert.ok(n >= 0);
  });
});
