// The agent survives its own death: after kill -9 (or SIGTERM) a new agent on the same run-dir
// adopts what still exists with the same ids, drops what vanished, and never reuses an id.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TestAgent } from '../helpers/agent.js';
import { busyboxImage } from '../helpers/fixtures.js';
import { forceCleanup, loopsOver, mountsUnder } from '../helpers/leaks.js';

describe('restart and reconcile', () => {
  let agent: TestAgent;
  let image: string;
  let runDir: string;

  before(async () => {
    image = busyboxImage();
    runDir = TestAgent.newRunDir();
    agent = await new TestAgent(runDir).start();
  });
  after(async () => {
    await agent.stop();
    forceCleanup(runDir, dirname(image));
  });

  const stack = () => ({
    kind: 'overlay',
    overlay: { lower: [{ kind: 'attach', attach: { fs_type: 'squashfs', attach: { kind: 'loopback', loopback: { path: image } } } }] },
  });

  it('kill -9, restart: same objects with the same ids, then a clean delete', async () => {
    const r = await agent.post('/mount', stack());
    assert.equal(r.status, 201, r.text);
    const before = { mounts: (await agent.get('/mount')).body, attach: (await agent.get('/attach')).body };
    await agent.kill9();
    assert.equal(mountsUnder(runDir).length, 2, 'the mounts stay while the agent is dead');
    agent = await new TestAgent(runDir).start();
    assert.deepEqual((await agent.get('/mount')).body, before.mounts);
    assert.deepEqual((await agent.get('/attach')).body, before.attach);
    // New objects never reuse an id.
    const again = await agent.post('/mount', stack());
    assert.equal(again.status, 201, again.text);
    assert.ok(again.body.id > r.body.id);
    assert.ok(again.body.overlay.lower[0].attach.attach.id > r.body.overlay.lower[0].attach.attach.id);
    for (const m of [r, again]) assert.equal((await agent.del(`/mount?id=${m.body.id}`)).status, 200);
    assert.deepEqual(mountsUnder(runDir), []);
    assert.deepEqual(loopsOver(image), []);
  });

  it('SIGTERM: exits 0, saves, leaves attachments and mounts for the next start', async () => {
    const r = await agent.post('/mount', stack());
    assert.equal(r.status, 201, r.text);
    assert.equal(await agent.stop(), 0);
    assert.ok(existsSync(r.body.mountpoint) && mountsUnder(runDir).length === 2);
    const state = JSON.parse(readFileSync(join(runDir, 'state.json'), 'utf8'));
    assert.equal(state.mount.length, 2);
    agent = await new TestAgent(runDir).start();
    assert.equal((await agent.get(`/mount?id=${r.body.id}`)).body.length, 1);
    assert.equal((await agent.del(`/mount?id=${r.body.id}`)).status, 200);
    assert.deepEqual(loopsOver(image), []);
  });

  it('what vanished while the agent was down is dropped (and what stood on it torn down)', async () => {
    const r = await agent.post('/mount', stack());
    assert.equal(r.status, 201, r.text);
    const lower = r.body.overlay.lower[0];
    await agent.kill9();
    // Someone unmounted the overlay by hand while the agent was dead.
    execFileSync('umount', [r.body.mountpoint]);
    agent = await new TestAgent(runDir).start();
    assert.deepEqual((await agent.get(`/mount?id=${r.body.id}`)).body, [], 'the vanished overlay is dropped');
    assert.deepEqual((await agent.get(`/mount?id=${lower.id}`)).body, [], 'what it defined is torn down with it');
    assert.match(agent.output, /vanished while the agent was down/);
    assert.deepEqual(mountsUnder(runDir), []);
    assert.deepEqual(loopsOver(image), []);
  });
});
