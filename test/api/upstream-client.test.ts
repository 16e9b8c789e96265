// What the go-swagger client of kraken-hpc/imageapi v0.2.0 puts on the wire, posted raw: `null`
// for unset slices and pointers, no `id` for id 0 (omitempty), the Kraken sequence under a 1 s
// poll. Every call must answer what that client expects (201/200/404 as upstream).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loopsOver, mountsUnder } from '../helpers/leaks.js';
import { agentSuite } from '../helpers/suite.js';

const V1 = '/imageapi/v1';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('the upstream Go client, as it marshals', () => {
  const ctx = agentSuite();

  it('empty references name id 0: the first attachment, mount and container', async () => {
    // A fresh agent: these are attachment 0 and mount 0.
    const a = await ctx.agent.post(`${V1}/attach`, `{"kind":"loopback","loopback":{"path":${JSON.stringify(ctx.image)},"readonly":true,"mount":null}}`);
    assert.equal(a.status, 201, a.text);
    assert.equal(a.body.id, 0);
    // `"attach":{}` is how the client names attachment 0.
    const m = await ctx.agent.post(`${V1}/mount`, '{"kind":"attach","attach":{"attach":{},"fs_type":"squashfs","mount_options":null}}');
    assert.equal(m.status, 201, m.text);
    assert.equal(m.body.id, 0);
    assert.equal(m.body.attach.attach.id, 0);
    assert.equal((await ctx.agent.get(`${V1}/attach?id=0`)).body[0].refs, 2, 'the user and mount 0');
    // A lower of `{}` is mount 0; `{"kind":"attach"}` (kind but no definition) is a reference too.
    const ov = await ctx.agent.post(`${V1}/mount`, '{"kind":"overlay","overlay":{"lower":[{}],"mount_options":null}}');
    assert.equal(ov.status, 201, ov.text);
    assert.equal(ov.body.overlay.lower[0].id, 0);
    const ov2 = await ctx.agent.post(`${V1}/mount`, '{"kind":"overlay","overlay":{"lower":[{"kind":"attach"}]}}');
    assert.equal(ov2.status, 201, ov2.text);
    const wrongKind = await ctx.agent.post(`${V1}/mount`, '{"kind":"overlay","overlay":{"lower":[{"kind":"bind"}]}}');
    assert.equal(wrongKind.status, 400, wrongKind.text);
    assert.match(wrongKind.body.message, /mount 0 \(attach\) is not of kind "bind"/);
    // The typed v0.1 mount with the attachment's id 0 dropped.
    const typed = await ctx.agent.post(`${V1}/mount/rbd`, '{"fs_type":"squashfs","mount_options":["ro"]}');
    assert.equal(typed.status, 400, typed.text);
    assert.match(typed.body.message, /attachment 0 \(loopback\) is not of kind "rbd"/, 'id 0 was meant, and it is not RBD');
    // A container on mount 0 through `"mount":{}`, then read by `?id=0`.
    const c = await ctx.agent.post(`${V1}/container`, '{"command":"/bin/true","mount":{},"namespaces":null,"state":"created"}');
    assert.equal(c.status, 201, c.text);
    assert.equal(c.body.id, 0);
    assert.equal(c.body.mount.id, 0);
    assert.deepEqual(c.body.namespaces, ['mnt', 'pid', 'uts', 'ipc'], 'null namespaces: the defaults');
    assert.equal((await ctx.agent.get(`${V1}/container?id=0`)).body[0].id, 0);
    assert.equal((await ctx.agent.del(`${V1}/container?id=0`)).status, 200);
    for (const id of [ov2.body.id, ov.body.id, 0]) assert.equal((await ctx.agent.del(`${V1}/mount?id=${id}`)).status, 200);
    assert.equal((await ctx.agent.del(`${V1}/attach?id=0`)).status, 200);
    assert.deepEqual(loopsOver(ctx.image), []);
    assert.deepEqual(mountsUnder(ctx.runDir), []);
  });

  it('an id together with a definition is refused, naming both', async () => {
    const r = await ctx.agent.post(`${V1}/mount`, { kind: 'overlay', overlay: { lower: [{ id: 0, kind: 'bind', bind: { path: '/tmp' } }] } });
    assert.equal(r.status, 400, r.text);
    assert.match(r.body.message, /mount\.overlay\.lower\[0\]: give either "id" \(a reference\) or a definition \("bind"\), not both/);
  });

  it('lookups of what does not exist answer 404; filters that match nothing answer []', async () => {
    for (const p of ['/attach?id=77', '/mount?id=77', '/container?id=77', '/container?name=nobody']) {
      const r = await ctx.agent.get(V1 + p);
      assert.equal(r.status, 404, `${p}: ${r.text}`);
      assert.equal(r.body.code, 404);
      assert.match(r.body.message, /^no (attachment|mount|container) (with id 77|named "nobody")$/);
    }
    for (const p of ['/attach?kind=rbd', '/mount?kind=nfs', '/container?state=running', '/attach', '/mount', '/container']) {
      const r = await ctx.agent.get(V1 + p);
      assert.equal(r.status, 200, `${p}: ${r.text}`);
      assert.deepEqual(r.body, []);
    }
  });

  it("Kraken's sequence: create running with namespaces null, poll each second, PATCH exited, poll, DELETE", async () => {
    // The body as encoding/json writes Kraken's structs: unset slices and pointers are null.
    const body = JSON.stringify({
      command: `/bin/sh -c "trap 'exit 0' TERM; while :; do sleep 1; done"`,
      mount: {
        kind: 'overlay',
        overlay: {
          lower: [
            {
              kind: 'attach',
              attach: {
                attach: { kind: 'loopback', loopback: { path: ctx.image, base: 'root', mount: null }, rbd: null, local: null, iscsi: null },
                fs_type: 'squashfs',
                mount_options: ['ro'],
              },
              bind: null,
              nfs: null,
              overlay: null,
            },
          ],
          mount_options: null,
        },
      },
      name: 'kraken-node-1',
      namespaces: null,
      env: null,
      state: 'running',
    });
    const created = await ctx.agent.post(`${V1}/container`, body);
    assert.equal(created.status, 201, created.text);
    assert.equal(created.body.state, 'running');
    assert.ok(created.body.pid > 0);

    // Poll the list each second, as Kraken does.
    for (let i = 0; i < 2; i++) {
      const list = await ctx.agent.get(`${V1}/container`);
      assert.equal(list.status, 200);
      assert.equal(list.body.find((c: { name: string }) => c.name === 'kraken-node-1')?.state, 'running');
      await sleep(1000);
    }
    const patched = await ctx.agent.patch(`${V1}/container?name=kraken-node-1&state=exited`);
    assert.equal(patched.status, 200, patched.text);
    assert.match(patched.body.state, /^(stopping|exited)$/);
    let state = patched.body.state as string;
    for (let i = 0; i < 15 && state !== 'exited'; i++) {
      await sleep(1000);
      const list = await ctx.agent.get(`${V1}/container`);
      state = list.body.find((c: { name: string }) => c.name === 'kraken-node-1').state;
      assert.notEqual(state, 'dead', 'a requested stop is never "dead"');
    }
    assert.equal(state, 'exited');
    const deleted = await ctx.agent.del(`${V1}/container?name=kraken-node-1`);
    assert.equal(deleted.status, 200, deleted.text);
    assert.equal(deleted.body.name, 'kraken-node-1');
    assert.equal((await ctx.agent.get(`${V1}/container?name=kraken-node-1`)).status, 404);
    assert.deepEqual((await ctx.agent.get(`${V1}/mount`)).body, []);
    assert.deepEqual((await ctx.agent.get(`${V1}/attach`)).body, []);
    assert.deepEqual(loopsOver(ctx.image), []);
    assert.deepEqual(mountsUnder(ctx.runDir), []);
  });

  it('a null required field is still a 400 naming it', async () => {
    const r = await ctx.agent.post(`${V1}/container`, '{"command":null,"mount":{"id":0},"namespaces":null}');
    assert.equal(r.status, 400, r.text);
    assert.match(r.body.message, /command/);
    const r2 = await ctx.agent.post(`${V1}/attach`, '{"kind":"loopback","loopback":{"path":null}}');
    assert.equal(r2.status, 400, r2.text);
    assert.match(r2.body.message, /path/);
  });
});
