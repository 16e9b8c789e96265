// Stopping many stubborn containers: 80 containers over one shared overlay whose PID 1 ignores
// SIGTERM (a PID 1 without a handler does), stop_timeout 2 s. Deleting them all, by 80 parallel
// DELETEs or by one forced delete of the overlay they share, must stop them in parallel: about
// one stop_timeout, not 80 of them (160 s). The bound below is far above one stop_timeout and
// far below two dozen of them.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cgroupPids } from '../../src/sys/cgroups.js';
import { loopsOver, mountsUnder } from '../helpers/leaks.js';
import { agentSuite, imageStack } from '../helpers/suite.js';

const N = 80;
const STOP_TIMEOUT = 2;
/** Serial stops would take N × STOP_TIMEOUT = 160 s; parallel ones about STOP_TIMEOUT plus the work. */
const BOUND_S = 40;

describe(`stopping ${N} containers that ignore SIGTERM`, () => {
  const ctx = agentSuite();

  async function startMany(mountId: number): Promise<Array<{ id: number; pid: number }>> {
    const rs = await Promise.all(
      Array.from({ length: N }, () =>
        ctx.agent.post('/imageapi/v1/container', { command: '/bin/sleep 3600', mount: { id: mountId, kind: 'overlay' }, state: 'running', stop_timeout: STOP_TIMEOUT }),
      ),
    );
    for (const r of rs) assert.equal(r.status, 201, r.text);
    const list = (await ctx.agent.get('/imageapi/v1/container?state=running')).body as Array<{ id: number; pid: number }>;
    assert.equal(list.length, N);
    return list;
  }

  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };

  async function overlay(): Promise<number> {
    const r = await ctx.agent.post('/imageapi/v1/mount', imageStack(ctx.image));
    assert.equal(r.status, 201, r.text);
    return r.body.id;
  }

  async function assertAllGone(pids: number[]) {
    assert.deepEqual((await ctx.agent.get('/imageapi/v1/container')).body, []);
    assert.deepEqual(pids.filter(alive), [], 'no container process is left');
  }

  it(`${N} parallel DELETEs take about one stop_timeout, not ${N}`, { timeout: 120_000 }, async (t) => {
    const mountId = await overlay();
    const list = await startMany(mountId);
    const started = Date.now();
    const rs = await Promise.all(list.map((c) => ctx.agent.del(`/container/${c.id}`)));
    const took = (Date.now() - started) / 1000;
    t.diagnostic(`stop-many: ${N} containers, stop_timeout ${STOP_TIMEOUT} s, deleted in ${took} s`);
    for (const r of rs) assert.equal(r.status, 204, r.text);
    assert.ok(took >= STOP_TIMEOUT - 0.5, `the stop timeout was waited for (took ${took} s): PID 1 ignores SIGTERM`);
    assert.ok(took < BOUND_S, `${N} stops took ${took} s: they ran one after another (bound ${BOUND_S} s)`);
    await assertAllGone(list.map((c) => c.pid));
    assert.equal((await ctx.agent.del(`/mount?id=${mountId}`)).status, 200);
    assert.deepEqual(mountsUnder(ctx.runDir), []);
  });

  it(`a forced delete of the overlay shared by ${N} running containers stops them in parallel`, { timeout: 120_000 }, async (t) => {
    const mountId = await overlay();
    const list = await startMany(mountId);
    const started = Date.now();
    const r = await ctx.agent.del(`/imageapi/v1/mount?id=${mountId}&force=true`);
    const took = (Date.now() - started) / 1000;
    t.diagnostic(`stop-many: ${N} containers, stop_timeout ${STOP_TIMEOUT} s, deleted in ${took} s`);
    assert.equal(r.status, 200, r.text);
    assert.ok(took >= STOP_TIMEOUT - 0.5, `the stop timeout was waited for (took ${took} s)`);
    assert.ok(took < BOUND_S, `${N} stops took ${took} s: they ran one after another (bound ${BOUND_S} s)`);
    await assertAllGone(list.map((c) => c.pid));
    assert.deepEqual((await ctx.agent.get('/mount')).body, []);
    assert.deepEqual((await ctx.agent.get('/attach')).body, []);
    assert.deepEqual(mountsUnder(ctx.runDir), []);
    assert.deepEqual(loopsOver(ctx.image), []);
    assert.deepEqual(await cgroupPids([]), []);
  });
});
