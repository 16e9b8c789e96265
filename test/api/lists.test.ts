// The GET lists answer from JSON text the agent keeps per object (src/api/views.ts): after every
// change an object goes through — a container started, stopped, deleted; a mount gaining and
// losing users; an object deleted with its children — every list and lookup that shows it
// answers what it is now, never what was kept from before the change.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { agentSuite, imageStack } from '../helpers/suite.js';

describe('lists answer what is, after every change', () => {
  const ctx = agentSuite();
  const sh = (script: string) => ['/bin/sh', '-c', script];

  /** One container as every route shows it: the list, ?id=, ?name= and the typed route agree. */
  const everywhere = async (id: number, name: string) => {
    const list = (await ctx.agent.get('/container')).body as Array<Record<string, any>>;
    const inList = list.find((c) => c.id === id);
    const byId = (await ctx.agent.get(`/container?id=${id}`)).body[0];
    const byName = (await ctx.agent.get(`/container?name=${name}`)).body[0];
    const typed = (await ctx.agent.get(`/container/${id}`)).body;
    assert.deepEqual(byId, inList, 'list and ?id=');
    assert.deepEqual(byName, inList, 'list and ?name=');
    assert.deepEqual(typed, inList, 'list and the typed route');
    return inList!;
  };

  it('a container\'s state, pid and exit code, and its mount\'s refs, in every list', async () => {
    const c = await ctx.agent.post('/container', { name: 'lists-a', state: 'created', command: sh("trap 'exit 0' TERM; sleep 1000 & wait"), mount: imageStack(ctx.image), stop_timeout: 5 });
    assert.equal(c.status, 201, c.text);
    const id = c.body.id as number;
    const overlay = c.body.mount.id as number;
    const created = await everywhere(id, 'lists-a');
    assert.equal(created.state, 'created');
    assert.equal(created.pid, null);
    const refs0 = (await ctx.agent.get(`/mount?id=${overlay}`)).body[0].refs;
    assert.equal(created.mount.refs, refs0);

    const started = await ctx.agent.patch(`/container?id=${id}&state=running`);
    assert.equal(started.status, 200, started.text);
    const running = await everywhere(id, 'lists-a');
    assert.equal(running.state, 'running');
    assert.ok(running.pid > 0, 'the pid shows once running');
    assert.equal((await ctx.agent.get('/container?state=running')).body.length, 1);

    // A second user of the overlay: its refs go up inside the first container's answer too.
    const b = await ctx.agent.post('/container', { name: 'lists-b', state: 'created', command: '/bin/true', mount: { id: overlay } });
    assert.equal(b.status, 201, b.text);
    assert.equal((await ctx.agent.get(`/mount?id=${overlay}`)).body[0].refs, refs0 + 1);
    assert.equal((await everywhere(id, 'lists-a')).mount.refs, refs0 + 1);
    assert.equal((await everywhere(b.body.id, 'lists-b')).mount.refs, refs0 + 1);

    assert.equal((await ctx.agent.patch(`/container?id=${id}&state=exited`)).status, 200);
    const w = await ctx.agent.get(`/container/wait?id=${id}&state=exited&timeout=60`);
    assert.equal(w.status, 200, w.text);
    const exited = await everywhere(id, 'lists-a');
    assert.equal(exited.state, 'exited');
    assert.equal(exited.exit_code, 0);
    assert.deepEqual((await ctx.agent.get('/container?state=running')).body, []);

    assert.equal((await ctx.agent.del(`/container?id=${b.body.id}`)).status, 200);
    assert.equal((await everywhere(id, 'lists-a')).mount.refs, refs0);
    assert.equal((await ctx.agent.get(`/container?id=${b.body.id}`)).status, 404);

    // The container goes with what it defined: every list is empty again.
    assert.equal((await ctx.agent.del(`/container?id=${id}`)).status, 200);
    assert.deepEqual((await ctx.agent.get('/container')).body, []);
    assert.deepEqual((await ctx.agent.get('/mount')).body, []);
    assert.deepEqual((await ctx.agent.get('/attach')).body, []);
  });

  it('an attachment\'s refs in the mount list and in its own, as users come and go', async () => {
    const a = await ctx.agent.post('/attach', { kind: 'loopback', loopback: { path: ctx.image, readonly: true } });
    assert.equal(a.status, 201, a.text);
    const seen = async () => {
      const [att] = (await ctx.agent.get(`/attach?id=${a.body.id}`)).body;
      const mounts = (await ctx.agent.get('/mount')).body as Array<Record<string, any>>;
      return { refs: att.refs, inMounts: mounts.map((m) => m.attach.attach.refs) };
    };
    assert.deepEqual(await seen(), { refs: 1, inMounts: [] });
    const m1 = await ctx.agent.post('/mount', { kind: 'attach', attach: { fs_type: 'squashfs', mount_options: ['ro'], attach: { id: a.body.id } } });
    assert.equal(m1.status, 201, m1.text);
    assert.deepEqual(await seen(), { refs: 2, inMounts: [2] });
    const m2 = await ctx.agent.post('/mount', { kind: 'attach', attach: { fs_type: 'squashfs', mount_options: ['ro'], attach: { id: a.body.id } } });
    assert.equal(m2.status, 201, m2.text);
    assert.deepEqual(await seen(), { refs: 3, inMounts: [3, 3] });
    assert.equal((await ctx.agent.del(`/mount?id=${m1.body.id}`)).status, 200);
    assert.deepEqual(await seen(), { refs: 2, inMounts: [2] });
    assert.equal((await ctx.agent.del(`/attach?id=${a.body.id}&force=true`)).status, 200);
    assert.deepEqual((await ctx.agent.get('/mount')).body, []);
    assert.deepEqual((await ctx.agent.get('/attach')).body, []);
  });
});
