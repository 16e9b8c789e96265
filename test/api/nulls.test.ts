// `null` for an optional field means the field is absent, at every depth of every request body of
// swagger.yaml (go-swagger clients send it for unset slices and pointers). And whatever a client
// posts as a body to a POST or PATCH route, it gets a 4xx with a message, and nothing is created.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { ROOT } from '../helpers/agent.js';
import { loopsOver, mountsUnder } from '../helpers/leaks.js';
import { agentSuite } from '../helpers/suite.js';

type Schema = { $ref?: string; type?: string; properties?: Record<string, Schema>; required?: string[]; items?: Schema; oneOf?: Schema[]; readOnly?: boolean };
const spec = parse(readFileSync(join(ROOT, 'swagger.yaml'), 'utf8')) as {
  paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: Schema }> } }>>;
  components: { schemas: Record<string, Schema> };
};
const deref = (s: Schema): [string | undefined, Schema] => {
  if (!s.$ref) return [undefined, s];
  const name = s.$ref.replace('#/components/schemas/', '');
  return [name, spec.components.schemas[name]!];
};
const isContainer = (s: Schema) => {
  const [, r] = deref(s);
  return r.type === 'array' || r.type === 'object' || !!r.properties;
};

/** Every optional array or object property of a schema reachable from a request body: `schema.prop`. */
function optionalContainers(): Set<string> {
  const out = new Set<string>();
  const seen = new Set<string>();
  const visit = (s: Schema) => {
    const [name, r] = deref(s);
    if (name) {
      if (seen.has(name)) return;
      seen.add(name);
    }
    for (const [p, ps] of Object.entries(r.properties ?? {})) {
      const [, pr] = deref(ps);
      if (pr.readOnly || ps.readOnly) continue;
      if (!r.required?.includes(p) && isContainer(ps)) out.add(`${name}.${p}`);
      visit(ps);
    }
    if (r.items) visit(r.items);
    for (const o of r.oneOf ?? []) visit(o);
  };
  for (const ops of Object.values(spec.paths)) {
    for (const op of Object.values(ops)) {
      const body = op.requestBody?.content['application/json']?.schema;
      if (body) visit(body);
    }
  }
  return out;
}

// Bodies that carry every optional object and array, and fail before any kernel work (kinds that
// contradict each other, an RBD image name the agent refuses), so no variant creates anything.
const RBD = { monitors: ['127.0.0.1'], pool: 'rbd', image: '-refused', options: { ro: true } };
const ATTACH = { kind: 'loopback', loopback: { path: 'x', base: 'root', mount: { id: 0 } }, rbd: RBD, local: { path: '/dev/null' }, iscsi: { host: 'h', target: 't' } };
const LEAF = { kind: 'attach', attach: { fs_type: 'squashfs', mount_options: ['ro'], attach: ATTACH } };
const MOUNT = {
  kind: 'overlay',
  overlay: { lower: [LEAF], mount_options: ['index=off'] },
  attach: LEAF.attach,
  bind: { path: 'p', base: 'mount', mount: LEAF },
  nfs: { host: 'h', path: '/p', options: ['vers=4'] },
  uri: { uri: 'http://127.0.0.1/x.tar' },
  rbd: { fs_type: 'squashfs', mount_options: ['ro'], rbd: RBD },
};
const BODIES: Array<[string, string, unknown]> = [
  ['POST', '/attach', ATTACH],
  ['POST', '/mount', MOUNT],
  ['POST', '/container', { command: '/bin/true', mount: MOUNT, namespaces: ['mnt'], env: ['A=b'], name: 'nulls' }],
  ['POST', '/attach/rbd', RBD],
  ['POST', '/mount/rbd', MOUNT.rbd],
  ['POST', '/mount/overlay', { lower: [MOUNT] }],
  // Two image requests at once: refused before anything is fetched.
  ['POST', '/image', { uri: 'http://127.0.0.1/x.sqsh', simplestreams: { alias: 'a' }, imgapi: { name: 'n' } }],
];
const ROUTE_SCHEMA: Record<string, string> = {
  '/attach': 'attach', '/mount': 'mount', '/container': 'container', '/attach/rbd': 'rbd', '/mount/rbd': 'mount_rbd', '/mount/overlay': 'mount_overlay_v1', '/image': 'image',
};

/** Every (path in the body, schema.prop) where an optional object or array may stand. */
function slots(body: unknown, schema: Schema, at: (string | number)[] = []): Array<{ path: (string | number)[]; key: string; label: string }> {
  const [name, r] = deref(schema);
  const out: Array<{ path: (string | number)[]; key: string; label: string }> = [];
  if (Array.isArray(body)) {
    if (r.items) body.forEach((b, i) => out.push(...slots(b, r.items!, [...at, i])));
    return out;
  }
  if (body === null || typeof body !== 'object') return out;
  if (r.oneOf) return slots(body, r.oneOf.find((o) => isContainer(o))!, at);
  for (const [p, ps] of Object.entries(r.properties ?? {})) {
    if (!r.required?.includes(p) && isContainer(ps) && !deref(ps)[1].readOnly) out.push({ path: at, key: p, label: `${name}.${p}` });
    const v = (body as Record<string, unknown>)[p];
    if (v !== undefined) out.push(...slots(v, ps, [...at, p]));
  }
  return out;
}

function variant(body: unknown, path: (string | number)[], key: string, value: 'null' | 'absent'): unknown {
  const copy = structuredClone(body) as Record<string | number, unknown>;
  let node = copy;
  for (const p of path) node = node[p] as Record<string | number, unknown>;
  if (value === 'null') node[key] = null;
  else delete node[key];
  return copy;
}

describe('null means absent, and any body gets a clear 4xx', () => {
  const ctx = agentSuite();

  async function nothingCreated() {
    for (const p of ['/attach', '/mount', '/container']) assert.deepEqual((await ctx.agent.get(p)).body, [], p);
    assert.deepEqual(mountsUnder(ctx.runDir), []);
    assert.deepEqual(loopsOver(ctx.image, ctx.runDir), []);
  }

  it('every optional object and array of every request schema, posted as null, answers as if absent', async () => {
    const covered = new Set<string>();
    for (const [method, route, body] of BODIES) {
      for (const s of slots(body, { $ref: `#/components/schemas/${ROUTE_SCHEMA[route]}` })) {
        covered.add(s.label);
        const asNull = await ctx.agent.req(method, route, variant(body, s.path, s.key, 'null'));
        const absent = await ctx.agent.req(method, route, variant(body, s.path, s.key, 'absent'));
        const where = `${route} ${[...s.path, s.key].join('.')}`;
        assert.ok(asNull.status >= 400 && asNull.status < 500, `${where}: ${asNull.status} ${asNull.text}`);
        assert.deepEqual({ status: asNull.status, message: asNull.body.message }, { status: absent.status, message: absent.body.message }, where);
        assert.doesNotMatch(asNull.body.message, /must be (array|object)|null/, where);
      }
    }
    // The bodies above must reach every optional object and array the spec has: a new one needs a body here.
    assert.deepEqual([...optionalContainers()].filter((c) => !covered.has(c)).sort(), []);
    await nothingCreated();
  });

  for (const route of Object.keys(spec.paths)) {
    for (const method of Object.keys(spec.paths[route]!).filter((m) => m === 'post' || m === 'patch')) {
      it(`${method.toUpperCase()} ${route}: no body, {}, [], null and a string all answer 4xx with a message`, async () => {
        const url = method === 'patch' ? `${route}?name=nobody&state=exited` : route;
        for (const body of [undefined, '{}', '[]', 'null', '"a string"', '42']) {
          for (const base of ['', '/imageapi/v1']) {
            const r = await ctx.agent.req(method.toUpperCase(), base + url, body);
            assert.ok(r.status >= 400 && r.status < 500, `${body}: ${r.status} ${r.text}`);
            assert.equal(r.body.code, r.status);
            assert.ok(typeof r.body.message === 'string' && r.body.message.length > 10, r.text);
          }
        }
        await nothingCreated();
      });
    }
  }
});
