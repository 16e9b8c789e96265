#!/usr/bin/env node
// The request (and, for tests, response) checks of every operation in swagger.yaml, compiled by
// ajv at build time into plain JavaScript (ajv's standalone code), so that the agent compiles no
// schema and parses no YAML when it starts: `npm run gen` runs this after openapi-typescript.
//   node scripts/gen-checks.mjs            writes src/api/checks.gen.ts and src/api/checks-responses.gen.ts
//   node scripts/gen-checks.mjs --check    exits 1 if either file is not what swagger.yaml gives now
// The spec stays the only source of the rules: both files carry swagger.yaml's sha256; an agent
// started on a spec the checks were not generated from generates them again itself, at start
// (src/api/validate.ts loadChecks, through generate() here), and says so. The files are plain
// JavaScript (ES modules) in .ts files, so that tsc builds them and the agent can also import them
// from text.
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

const require = createRequire(import.meta.url);
const { Ajv } = require('ajv');
const standaloneCode = require('ajv/dist/standalone').default;

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const SPEC = `${ROOT}swagger.yaml`;
const OUT = `${ROOT}src/api/checks.gen.ts`;
const OUT_RESPONSES = `${ROOT}src/api/checks-responses.gen.ts`;
const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'];

/** `#/components/…` inside an operation means the spec document's components. */
function rebase(v) {
  if (Array.isArray(v)) return v.map(rebase);
  if (v === null || typeof v !== 'object') return v;
  const out = {};
  for (const [k, x] of Object.entries(v)) out[k] = k === '$ref' && typeof x === 'string' && x.startsWith('#/') ? `spec${x}` : rebase(x);
  return out;
}

function deref(doc, p) {
  if (!('$ref' in p)) return p;
  let v = doc;
  for (const k of p.$ref.replace(/^#\//, '').split('/')) v = v[k];
  return v;
}

function ajvFor(doc, requests, coerce) {
  const ajv = new Ajv({ strict: false, allErrors: true, coerceTypes: coerce, formats: { int64: true, 'date-time': true }, code: { source: true, optimize: true } });
  if (requests) {
    // A read-only field (an id, a device file) may not be sent: the agent sets it. Code, not a
    // function, so that the standalone module carries it.
    ajv.removeKeyword('readOnly');
    ajv.addKeyword({
      keyword: 'readOnly',
      schemaType: 'boolean',
      error: { message: 'is read-only: the agent sets it' },
      code(cxt) {
        if (cxt.schema === true) cxt.fail();
      },
    });
  }
  ajv.addSchema({ $id: 'spec', components: doc.components });
  return ajv;
}

/** One ajv instance's checks as a module scope: the exported functions by name. */
class Checks {
  constructor(ajv, prefix) {
    this.ajv = ajv;
    this.prefix = prefix;
    this.byText = new Map();
    this.names = {};
  }
  /** The name of the check of `schema` (the same schema twice is one check). */
  add(schema) {
    const text = JSON.stringify(schema);
    let name = this.byText.get(text);
    if (!name) {
      name = `${this.prefix}${this.byText.size}`;
      this.byText.set(text, name);
      this.ajv.addSchema(schema, name);
      this.names[name] = name;
    }
    return name;
  }
  /** The standalone code, wrapped so that its names stay its own: `const X = (() => {…})();`. */
  code(variable) {
    if (!Object.keys(this.names).length) return `const ${variable} = {};`;
    const src = standaloneCode(this.ajv, this.names);
    return `const ${variable} = (() => {\nconst exports = {};\n${src}\nreturn exports;\n})();`;
  }
}

/**
 * The two modules' text from swagger.yaml's text. `requireFrom`: where ajv's runtime helpers are
 * resolved from (a file URL; default: the module's own place).
 */
export function generate(specText, { requireFrom } = {}) {
  const doc = parse(specText);
  const sha = createHash('sha256').update(specText).digest('hex');
  const query = new Checks(ajvFor(doc, true, true), 'q');
  const body = new Checks(ajvFor(doc, true, false), 'b');
  const responses = new Checks(ajvFor(doc, false, false), 'r');
  const ops = [];
  const res = [];
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    const shared = item.parameters ?? [];
    for (const m of METHODS) {
      const op = item[m];
      if (!op) continue;
      const params = [...shared, ...(op.parameters ?? [])].map((p) => deref(doc, p));
      const group = (where) => {
        const ps = params.filter((p) => p.in === where);
        return {
          type: 'object',
          properties: Object.fromEntries(ps.map((p) => [p.name, rebase(p.schema ?? {})])),
          required: ps.filter((p) => p.required).map((p) => p.name),
          additionalProperties: where === 'path',
        };
      };
      const bodySchema = op.requestBody?.content?.['application/json']?.schema;
      const method = m.toUpperCase();
      ops.push({
        path,
        method,
        params: params.map((p) => ({ name: p.name, in: p.in, ...(p.required ? { required: true } : {}) })),
        query: query.add(group('query')),
        pathParams: query.add(group('path')),
        body: bodySchema ? body.add(rebase(bodySchema)) : null,
        bodyRequired: op.requestBody?.required === true,
      });
      const codes = {};
      for (const [code, r] of Object.entries(op.responses ?? {})) {
        const s = r.content?.['application/json']?.schema;
        if (s) codes[code] = responses.add(rebase(s));
      }
      if (Object.keys(codes).length) res.push({ key: `${method} ${path}`, codes });
    }
  }
  const head = (what) =>
    [
      '// @ts-nocheck',
      `// GENERATED by scripts/gen-checks.mjs from swagger.yaml (npm run gen): do not edit. ${what}`,
      '/* eslint-disable */',
      "import { createRequire } from 'node:module';",
      `const require = createRequire(${requireFrom ? JSON.stringify(requireFrom) : 'import.meta.url'});`,
      `/** sha256 of the swagger.yaml these checks were generated from. */`,
      `export const SPEC_SHA256 = '${sha}';`,
    ].join('\n');
  const opLines = ops.map(
    (o) =>
      `  { path: ${JSON.stringify(o.path)}, method: ${JSON.stringify(o.method)}, params: ${JSON.stringify(o.params)}, query: Q.${o.query}, pathParams: Q.${o.pathParams}, body: ${o.body ? `B.${o.body}` : 'undefined'}, bodyRequired: ${o.bodyRequired} },`,
  );
  const main = [
    head('The request checks of every operation (query, path parameters, body).'),
    query.code('Q'),
    body.code('B'),
    '/** Every operation of the spec, in its order, with its checks. */',
    'export const OPERATIONS = [',
    ...opLines,
    '];',
    '',
  ].join('\n');
  const resLines = res.map((r) => `  ${JSON.stringify(r.key)}: { ${Object.entries(r.codes).map(([c, n]) => `${JSON.stringify(c)}: R.${n}`).join(', ')} },`);
  const resp = [
    head('The response checks (loaded only when responses are validated: the tests).'),
    responses.code('R'),
    '/** By "METHOD /path": the check of each status code that has a JSON schema. */',
    'export const RESPONSES = {',
    ...resLines,
    '};',
    '',
  ].join('\n');
  return { main, responses: resp, sha };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const out = generate(readFileSync(SPEC, 'utf8'));
  if (process.argv.includes('--check')) {
    const stale = [[OUT, out.main], [OUT_RESPONSES, out.responses]].filter(([f, text]) => {
      try {
        return readFileSync(f, 'utf8') !== text;
      } catch {
        return true;
      }
    });
    for (const [f] of stale) process.stderr.write(`gen-checks: ${f} is not what swagger.yaml gives: run npm run gen\n`);
    process.exit(stale.length ? 1 : 0);
  }
  writeFileSync(OUT, out.main);
  writeFileSync(OUT_RESPONSES, out.responses);
  process.stdout.write(`gen-checks: ${OUT} and ${OUT_RESPONSES} (swagger.yaml sha256 ${out.sha.slice(0, 12)}…; commit them with the spec)\n`);
}
