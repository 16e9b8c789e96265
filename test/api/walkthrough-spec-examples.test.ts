// The examples in swagger.yaml are real: the walkthrough's steps sent to a live agent as the
// spec's request examples (the image path swapped for the test image), and each answer compared
// with the spec's example answer of that operation: every field the example shows is there with
// the same value, but for what differs on every run (loop device numbers, run-dir paths, PIDs,
// times). RBD examples are not sent (they name a cluster that is not here).
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadSpec } from '../../src/api/spec.js';
import { loopsOver, mountsUnder } from '../helpers/leaks.js';
import { agentSuite } from '../helpers/suite.js';

type Obj = Record<string, any>;
const spec = loadSpec().doc as Obj;
const IMG = '/var/lib/imageapi/images/image.sqsh';
const DATA = '/var/lib/imageapi/data';
const RD = '/var/run/imageapi';

function deref(o: Obj): Obj {
  let cur = o;
  while (cur && typeof cur.$ref === 'string') cur = cur.$ref.slice(2).split('/').reduce((a: Obj, k: string) => a[k.replace(/~1/g, '/')], spec);
  return cur;
}
/** The example answer of an operation for a status. */
function answer(path: string, method: string, status: string): unknown {
  const media = deref(spec.paths[path][method].responses[status]).content['application/json'];
  return 'example' in media ? media.example : (Object.values(media.examples)[0] as Obj).value;
}
/** A named request example of an operation (or its only one). */
function request(path: string, method: string, name?: string): unknown {
  const media = deref(spec.paths[path][method].requestBody).content['application/json'];
  return name ? media.examples[name].value : 'example' in media ? media.example : (Object.values(media.examples)[0] as Obj).value;
}
function param(path: string, method: string, name: string): unknown {
  const params = [...(spec.paths[path].parameters ?? []), ...(spec.paths[path][method].parameters ?? [])].map(deref);
  return params.find((p) => p.name === name)!.example;
}

/** Where the live answer differs from the example in a field the example shows (volatile fields by their form). */
export function differences(example: unknown, live: unknown, ctx: { runDir: string; image: string; data: string }, at = ''): string[] {
  const key = at.split('.').pop() ?? '';
  if (Array.isArray(example)) {
    if (!Array.isArray(live) || live.length !== example.length) return [`${at}: ${JSON.stringify(live)} is not an array of ${example.length}`];
    return example.flatMap((e, i) => differences(e, live[i], ctx, `${at}[${i}]`));
  }
  if (example && typeof example === 'object') {
    if (!live || typeof live !== 'object') return [`${at}: ${JSON.stringify(live)} is not an object`];
    return Object.entries(example).flatMap(([k, v]) =>
      k in (live as Obj) ? differences(v, (live as Obj)[k], ctx, at ? `${at}.${k}` : k) : [`${at ? `${at}.` : ''}${k}: missing`],
    );
  }
  const ok = (() => {
    if (key === 'device_file') return typeof live === 'string' && /^\/dev\/loop\d+$/.test(live);
    if (key === 'pid') return (example === null) === (live === null) && (live === null || typeof live === 'number');
    if (key.endsWith('_at')) return (example === null) === (live === null);
    if (key === 'logfile') return typeof live === 'string' && live.startsWith(`${ctx.runDir}/logs/`) && String(example).startsWith(`${RD}/logs/`);
    if (typeof example === 'string') return live === example.replace(RD, ctx.runDir).replace(IMG, ctx.image).replace(DATA, ctx.data);
    return live === example;
  })();
  return ok ? [] : [`${at}: ${JSON.stringify(live)}, the example says ${JSON.stringify(example)}`];
}

describe("swagger.yaml's examples against a live agent", { timeout: 180_000 }, () => {
  const s = agentSuite();
  const ctx = () => ({ runDir: s.runDir, image: s.image, data: join(s.runDir, 'data') });
  const send = (body: unknown) => JSON.parse(JSON.stringify(body).replaceAll(IMG, s.image).replaceAll(DATA, ctx().data));
  const same = (what: string, example: unknown, live: unknown) =>
    assert.deepEqual(differences(example, live, ctx()), [], `${what}: the live answer differs from the spec's example\nlive: ${JSON.stringify(live)}`);

  it('the comparison can fail', () => {
    const c = { runDir: '/tmp/r', image: '/tmp/i', data: '/tmp/d' };
    assert.deepEqual(differences({ id: 0, mountpoint: `${RD}/mounts/mount_0`, pid: 1 }, { id: 0, mountpoint: '/tmp/r/mounts/mount_0', pid: 7, extra: 1 }, c), []);
    assert.equal(differences({ id: 0, refs: 1 }, { id: 0, refs: 2 }, c).length, 1);
    assert.equal(differences({ state: 'running' }, {}, c).length, 1);
    assert.equal(differences([{ id: 0 }], [], c).length, 1);
  });

  it('the walkthrough through the examples: each request works, each answer is the example', async () => {
    const a = s.agent;
    const att = await a.post('/imageapi/v1/attach', send(request('/attach', 'post', 'loopback')));
    assert.equal(att.status, 201, att.text);
    same('POST /attach', answer('/attach', 'post', '201'), att.body);
    same('GET /attach', answer('/attach', 'get', '200'), (await a.get('/imageapi/v1/attach')).body);

    const m = await a.post('/imageapi/v1/mount', send(request('/mount', 'post', 'squashfs')));
    assert.equal(m.status, 201, m.text);
    same('POST /mount', answer('/mount', 'post', '201'), m.body);
    same('GET /mount', answer('/mount', 'get', '200'), (await a.get('/imageapi/v1/mount')).body);

    const inUse = await a.del(`/imageapi/v1/attach?id=${param('/attach', 'delete', 'id')}`);
    assert.equal(inUse.status, 409);
    same('DELETE /attach in use', answer('/attach', 'delete', '409'), inUse.body);

    const ovl = await a.post('/imageapi/v1/mount/overlay', send(request('/mount/overlay', 'post')));
    assert.equal(ovl.status, 201, ovl.text);
    same('POST /mount/overlay', answer('/mount/overlay', 'post', '201'), ovl.body);
    same('GET /mount/overlay/{id}', answer('/mount/overlay/{id}', 'get', '200'), (await a.get(`/imageapi/v1/mount/overlay/${ovl.body.id}`)).body);

    const demo = await a.post('/imageapi/v1/container', send(request('/container', 'post', 'reference')));
    assert.equal(demo.status, 201, demo.text);
    same('GET /container/{id}', answer('/container/{id}', 'get', '200'), (await a.get(`/imageapi/v1/container/${demo.body.id}`)).body);
    const started = await a.get(`/imageapi/v1/container/${demo.body.id}/${param('/container/{id}/{state}', 'get', 'state')}`);
    assert.equal(started.status, 200, started.text);
    same('GET /container/{id}/{state}', answer('/container/{id}/{state}', 'get', '200'), started.body);

    const web = await a.post('/imageapi/v1/container', send(request('/container', 'post', 'nested')));
    assert.equal(web.status, 201, web.text);
    same('POST /container', answer('/container', 'post', '201'), web.body);
    same('GET /container/byname/{name}', answer('/container/byname/{name}', 'get', '200'), (await a.get(`/imageapi/v1/container/byname/${param('/container/byname/{name}', 'get', 'name')}`)).body);
    const running = (await a.get('/imageapi/v1/container?state=running')).body as Obj[];
    same('GET /container?state=running', answer('/container', 'get', '200'), running.filter((c) => c.name === 'web'));
    const taken = await a.post('/imageapi/v1/container', send(request('/container', 'post', 'nested')));
    same('POST /container, name taken', answer('/container', 'post', '409'), taken.body);
    const refused = await a.del('/imageapi/v1/container?name=web');
    same('DELETE /container, running', answer('/container', 'delete', '409'), refused.body);

    const stopping = await a.patch(`/imageapi/v1/container?name=web&state=${param('/container', 'patch', 'state')}`);
    assert.equal(stopping.status, 200, stopping.text);
    same('PATCH /container', answer('/container', 'patch', '200'), stopping.body);
    const waited = await a.get('/imageapi/v1/container/wait?name=web&state=exited&timeout=60');
    assert.equal(waited.status, 200, waited.text);
    same('GET /container/wait', answer('/container/wait', 'get', '200'), waited.body);
    const deleted = await a.del('/imageapi/v1/container?name=web');
    assert.equal(deleted.status, 200, deleted.text);
    same('DELETE /container', answer('/container', 'delete', '200'), deleted.body);

    assert.equal((await a.del(`/imageapi/v1/container/${demo.body.id}`)).status, 204);
    assert.equal((await a.del(`/imageapi/v1/mount/overlay/${ovl.body.id}`)).status, 204);
    const dm = await a.del(`/imageapi/v1/mount?id=${m.body.id}`);
    assert.equal(dm.status, 200, dm.text);
    same('DELETE /mount', answer('/mount', 'delete', '200'), dm.body);
    const da = await a.del(`/imageapi/v1/attach?id=${att.body.id}`);
    assert.equal(da.status, 200, da.text);
    same('DELETE /attach', answer('/attach', 'delete', '200'), da.body);

    // the bind example, last: it takes a mount id the walkthrough's examples do not expect
    mkdirSync(ctx().data);
    const bind = await a.post('/imageapi/v1/mount', send(request('/mount', 'post', 'bind')));
    assert.equal(bind.status, 201, bind.text);
    assert.equal((await a.del(`/imageapi/v1/mount?id=${bind.body.id}`)).status, 200);

    const missing = await a.get('/imageapi/v1/attach?id=7');
    same('GET /attach?id=7', deref(spec.components.responses.NotFound).content['application/json'].example, missing.body);
    const bad = await a.post('/imageapi/v1/attach', { kind: 'loopback', loopback: { path: 5 } });
    same('POST /attach, bad', deref(spec.components.responses.BadRequest).content['application/json'].example, bad.body);
    assert.deepEqual(mountsUnder(s.runDir), []);
    assert.deepEqual(loopsOver(s.image), []);
  });
});
