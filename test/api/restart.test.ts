// The agent survives its own death: after kill -9 (or SIGTERM) a new agent on the same run-dir
// adopts what still exists with the same ids, drops what vanished, and never reuses an id.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { TestAgent } from '../helpers/agent.js';
import { loopsOver, mountsUnder } from '../helpers/leaks.js';
import { agentSuite, imageStack } from '../helpers/suite.js';

describe('restart and reconcile', () => {
  const ctx = agentSuite();


  const stack = () => imageStack(ctx.image);

  it('kill -9, restart: same objects with the same ids, then a clean delete', async () => {
    const r = await ctx.agent.post('/mount', stack());
    assert.equal(r.status, 201, r.text);
    const before = { mounts: (await ctx.agent.get('/mount')).body, attach: (await ctx.agent.get('/attach')).body };
    await ctx.agent.kill9();
    assert.equal(mountsUnder(ctx.runDir).length, 2, 'the mounts stay while the agent is dead');
    ctx.agent = await new TestAgent(ctx.runDir).start();
    assert.deepEqual((await ctx.agent.get('/mount')).body, before.mounts);
    assert.deepEqual((await ctx.agent.get('/attach')).body, before.attach);
    // New objects never reuse an id.
    const again = await ctx.agent.post('/mount', stack());
    assert.equal(again.status, 201, again.text);
    assert.ok(again.body.id > r.body.id);
    assert.ok(again.body.overlay.lower[0].attach.attach.id > r.body.overlay.lower[0].attach.attach.id);
    for (const m of [r, again]) assert.equal((await ctx.agent.del(`/mount?id=${m.body.id}`)).status, 200);
    assert.deepEqual(mountsUnder(ctx.runDir), []);
    assert.deepEqual(loopsOver(ctx.image), []);
  });

  it('SIGTERM: exits 0, saves, leaves attachments and mounts for the next start', async () => {
    const r = await ctx.agent.post('/mount', stack());
    assert.equal(r.status, 201, r.text);
    assert.equal(await ctx.agent.stop(), 0);
    assert.ok(existsSync(r.body.mountpoint) && mountsUnder(ctx.runDir).length === 2);
    const state = JSON.parse(readFileSync(join(ctx.runDir, 'state.json'), 'utf8'));
    assert.equal(state.mount.length, 2);
    ctx.agent = await new TestAgent(ctx.runDir).start();
    assert.equal((await ctx.agent.get(`/mount?id=${r.body.id}`)).body.length, 1);
    assert.equal((await ctx.agent.del(`/mount?id=${r.body.id}`)).status, 200);
    assert.deepEqual(loopsOver(ctx.image), []);
  });

  it('what vanished while the agent was down is dropped (and what stood on it torn down)', async () => {
    const r = await ctx.agent.post('/mount', stack());
    assert.equal(r.status, 201, r.text);
    const lower = r.body.overlay.lower[0];
    await ctx.agent.kill9();
    // Someone unmounted the overlay by hand while the agent was dead.
    execFileSync('umount', [r.body.mountpoint]);
    ctx.agent = await new TestAgent(ctx.runDir).start();
    assert.equal((await ctx.agent.get(`/mount?id=${r.body.id}`)).status, 404, "the vanished overlay is dropped");
    assert.equal((await ctx.agent.get(`/mount?id=${lower.id}`)).status, 404, "what it defined is torn down with it");
    assert.match(ctx.agent.output, /vanished while the agent was down/);
    assert.deepEqual(mountsUnder(ctx.runDir), []);
    assert.deepEqual(loopsOver(ctx.image), []);
  });
});
