// The agent does not crash silently: a state file that cannot be saved (a full run-dir) is
// logged and the agent keeps serving, then recovers. (An exit seen twice is recorded once:
// test/unit/container/end-once.test.ts, where the race can be forced.)
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TestAgent } from '../helpers/agent.js';
import { busyboxImage } from '../helpers/fixtures.js';
import { forceCleanup, loopsOver, mountsUnder } from '../helpers/leaks.js';
import { imageStack } from '../helpers/suite.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

describe('a run-dir that fills up', () => {
  let image: string;
  let runDir: string;
  let agent: TestAgent;

  before(async () => {
    image = busyboxImage();
    // A tiny tmpfs as the run-dir: the test fills it, then the container's end must still be handled.
    runDir = mkdtempSync(join(tmpdir(), 'imageapi-test-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m,mode=0700', 'imageapi-test', runDir]);
    agent = await new TestAgent(runDir).start();
  });
  after(async () => {
    await agent.stop();
    forceCleanup(runDir, image); // also unmounts the tmpfs and removes the run-dir
  });

  it('a save that fails with ENOSPC is logged, the agent keeps serving, and recovers once space is back', async () => {
    const c = await agent.post('/container', {
      name: 'ends-on-a-full-disk',
      command: '/bin/sh -c "read x < /dev/null; sleep 2; exit 0"',
      state: 'running',
      mount: imageStack(image),
    });
    assert.equal(c.status, 201, c.text);
    // Fill the run-dir while the container runs.
    const filler = join(runDir, 'filler');
    try {
      execFileSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=64k'], { stdio: 'ignore' });
    } catch {
      /* ENOSPC: full, as wanted */
    }
    // Each save replaces the state file's previous version (state.json.prev), whose pages it may
    // then reuse; without one (and with its pages taken), a save on the full run-dir has no room.
    rmSync(join(runDir, 'state.json.prev'), { force: true });
    try {
      execFileSync('dd', ['if=/dev/zero', `of=${filler}-2`, 'bs=4k'], { stdio: 'ignore' });
    } catch {
      /* ENOSPC again */
    }
    // The container ends; recording that cannot be saved. The agent must log it and stay up.
    const ended = await waitFor('the end to be recorded', async () => {
      const r = await agent.get(`/container?id=${c.body.id}`);
      return ['exited', 'dead'].includes(r.body[0].state) ? r.body[0] : undefined;
    });
    // The supervisor could not write its status file either: the end is known, its code is not.
    assert.equal(ended.state, 'dead');
    assert.match(ended.error, /exit status is unknown/);
    // The agent's log is written asynchronously: wait for the line rather than race it.
    await waitFor('the failed save in the agent log', async () => (/ENOSPC|is full/i.test(agent.output) ? true : undefined), 5000);
    assert.equal(agent.proc.exitCode, null, 'the agent is still running');
    assert.equal((await agent.get('/container')).status, 200);
    // Space back: deleting works and is saved.
    rmSync(filler);
    const d = await agent.del(`/container?id=${c.body.id}`);
    assert.equal(d.status, 200, d.text);
    const state = JSON.parse(readFileSync(join(runDir, 'state.json'), 'utf8'));
    assert.deepEqual(state.container, []);
    assert.deepEqual(readdirSync(runDir).filter((f) => f.includes('.tmp')), [], 'no half-written state file left');
    assert.deepEqual(mountsUnder(join(runDir, 'mounts')), []);
    assert.deepEqual(loopsOver(image), []);
  });
});
