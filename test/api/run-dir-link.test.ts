// A run-dir named through a symbolic link (the unit's --run-dir /var/run/imageapi: /var/run is a
// link to /run on Debian): the kernel names the agent's mountpoints by their real path, so a
// restart must look for them under it, and adopt them, not drop them and what stands on them.
import assert from 'node:assert/strict';
import { mkdtempSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { TestAgent } from '../helpers/agent.js';
import { busyboxImage } from '../helpers/fixtures.js';
import { forceCleanup } from '../helpers/leaks.js';
import { imageStack } from '../helpers/suite.js';

describe('a run-dir given through a symbolic link', () => {
  const real = TestAgent.newRunDir();
  const links = mkdtempSync(join(tmpdir(), 'imageapi-link-'));
  const link = join(links, 'run');
  symlinkSync(real, link);
  let agent: TestAgent | undefined;
  after(async () => {
    await agent?.stop();
    // An agent that kept the link's name (the fault this test is for) named its cgroups by it.
    forceCleanup(link, busyboxImage());
    forceCleanup(realpathSync(real), busyboxImage());
    rmSync(links, { recursive: true, force: true });
  });

  it('a restart adopts the mounts and the running container (same ids, same PID)', async () => {
    agent = await new TestAgent(link).start();
    const c = await agent.post('/container', { name: 'linked', state: 'running', mount: imageStack(busyboxImage()), command: "/bin/sh -c \"trap 'exit 0' TERM; sleep infinity & wait\"" });
    assert.equal(c.status, 201, c.text);
    assert.ok(c.body.mount.mountpoint.startsWith(`${realpathSync(real)}/`), `named by the real path: ${c.body.mount.mountpoint}`);
    assert.equal(await agent.stop(), 0);
    agent = await new TestAgent(link).start();
    const after = (await agent.get('/container?name=linked')).body;
    assert.deepEqual([after[0]?.id, after[0]?.state, after[0]?.pid], [c.body.id, 'running', c.body.pid], `${JSON.stringify(after)}\n${agent.output}`);
    assert.equal((await agent.get('/mount')).body.length, 2, 'the overlay and the squashfs mount');
    assert.doesNotMatch(agent.output, /vanished/);
    assert.equal((await agent.del('/container?name=linked&force=true')).status, 200);
  });
});
