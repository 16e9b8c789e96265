// The set-up most test files share: the busybox image, a fresh run-dir, an agent on it, and a
// teardown that leaves nothing behind even when a test failed half-way.
import { dirname } from 'node:path';
import { after, before } from 'node:test';
import { TestAgent } from './agent.js';
import { busyboxImage } from './fixtures.js';
import { forceCleanup } from './leaks.js';

export interface Suite {
  agent: TestAgent;
  image: string;
  runDir: string;
}

export function agentSuite(): Suite {
  const s = {} as Suite;
  before(async () => {
    s.image = busyboxImage();
    s.runDir = TestAgent.newRunDir();
    s.agent = await new TestAgent(s.runDir).start();
  });
  after(async () => {
    await s.agent.stop();
    forceCleanup(s.runDir, dirname(s.image));
  });
  return s;
}

/** The nested v0.2 stack of walkthrough B: overlay over a squashfs mount of a loop device over `image`. */
export function imageStack(image: string, mountOptions = ['ro']) {
  return {
    kind: 'overlay',
    overlay: { lower: [{ kind: 'attach', attach: { fs_type: 'squashfs', mount_options: mountOptions, attach: { kind: 'loopback', loopback: { path: image } } } }] },
  };
}
