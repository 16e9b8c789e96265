// Damage never stops the agent, and never leaves a lie: an object that vanished while it was down
// (it starts, serves and leaks nothing, rather than exit 0), a damaged state file (moved aside,
// said loudly, the run-dir's kernel objects cleaned), a full run-dir (507 naming it, nothing
// half-made, a start and a delete still work), a delete whose mountpoint a foreign recursive
// bind copy pins (the mount is gone, so the record goes; the directory is removed later).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { groupName } from '../../src/sys/cgroups.js';
import { TestAgent, type Reply } from '../helpers/agent.js';
import { busyboxImage } from '../helpers/fixtures.js';
import { forceCleanup, loopsOver, mountsUnder, processesWith } from '../helpers/leaks.js';
import { imageStack } from '../helpers/suite.js';

const CMD = '/bin/sleep 7113';

/** What of a run-dir the kernel still has: mounts, loops over the image, cgroups, supervisors. */
function kernelOf(runDir: string, image: string): string[] {
  const out = [...mountsUnder(join(runDir, 'mounts')), ...loopsOver(image, runDir + '/')];
  for (const root of ['/sys/fs/cgroup/unified', '/sys/fs/cgroup', '/sys/fs/cgroup/pids', '/sys/fs/cgroup/freezer']) {
    const g = join(root, groupName(runDir));
    if (existsSync(g)) for (const e of readdirSync(g, { withFileTypes: true })) if (e.isDirectory()) out.push(join(g, e.name));
  }
  out.push(...processesWith(`${runDir}/containers/`)); // the supervisors (the containers' processes are in the cgroups)
  return out;
}

const running = (image: string, name?: string) => ({ ...(name ? { name } : {}), command: CMD, state: 'running', stop_timeout: 1, mount: imageStack(image) });

/** POST without the helper's throw on 5xx: a 507 is what some of these tests expect. */
async function post(agent: TestAgent, path: string, body: unknown): Promise<Reply> {
  const res = await fetch(agent.url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: JSON.parse(text), text };
}

describe('damage', () => {
  let fixture: string;
  /** This test's own copy of the image: the loop devices over it are this test's alone. */
  let image: string;
  const runDirs: string[] = [];
  const agents: TestAgent[] = [];
  let n = 0;
  const newRunDir = () => {
    const d = TestAgent.newRunDir();
    runDirs.push(d);
    return d;
  };
  const start = async (runDir: string) => {
    const a = new TestAgent(runDir);
    agents.push(a);
    return a.start();
  };

  before(() => {
    fixture = busyboxImage();
  });
  beforeEach(() => {
    image = join(dirname(fixture), `damage-${n++}.sqsh`);
    copyFileSync(fixture, image);
  });
  after(async () => {
    for (const a of agents) await a.kill9();
    for (const d of runDirs.reverse()) forceCleanup(d, dirname(fixture));
  });

  it('an object that vanished while the agent was down: it starts, serves, and what stood on it is torn down', async () => {
    const runDir = newRunDir();
    let agent = await start(runDir);
    const c = await agent.post('/imageapi/v1/container', running(image, 'vanishing'));
    assert.equal(c.status, 201, c.text);
    assert.equal(await agent.stop(), 0);
    execFileSync('umount', ['-l', join(runDir, 'mounts', 'mount_0')]);
    agent = await start(runDir);
    assert.match(agent.output, /vanished while the agent was down/);
    const list = await agent.get('/imageapi/v1/container');
    assert.equal(list.status, 200);
    assert.deepEqual(list.body, [], 'the container on the vanished mount is dropped');
    assert.deepEqual((await agent.get('/imageapi/v1/mount')).body, []);
    assert.deepEqual((await agent.get('/imageapi/v1/attach')).body, []);
    assert.deepEqual(kernelOf(runDir, image), [], 'the overlay, the loop, the cgroup and the processes are gone');
    // Still serving: a new stack works, with new ids.
    const again = await agent.post('/imageapi/v1/container', running(image));
    assert.equal(again.status, 201, again.text);
    assert.ok(again.body.id > c.body.id && again.body.mount.id > c.body.mount.id);
    assert.equal((await agent.del(`/imageapi/v1/container?id=${again.body.id}&force=true`)).status, 200);
    assert.equal(await agent.stop(), 0);
    assert.deepEqual(kernelOf(runDir, image), []);
  });

  const damages: Array<[string, (text: string) => string]> = [
    ['truncated', (t) => t.slice(0, Math.floor(t.length / 2))],
    ['empty', () => ''],
    ['garbage', () => '\u0000\u0001 this is not json {{{'],
    ['mistyped', (t) => JSON.stringify({ ...JSON.parse(t), mount: { not: 'a list' }, seq: 'x' })],
    ['null', () => 'null'],
  ];
  for (const [what, damage] of damages) {
    it(`a ${what} state file and no previous version: moved aside, logged, the kernel objects cleaned, the agent starts`, async () => {
      const runDir = newRunDir();
      let agent = await start(runDir);
      const c = await agent.post('/imageapi/v1/container', running(image));
      assert.equal(c.status, 201, c.text);
      await agent.kill9();
      const file = join(runDir, 'state.json');
      const text = readFileSync(file, 'utf8');
      writeFileSync(file, damage(text));
      rmSync(`${file}.prev`);
      agent = await start(runDir);
      assert.match(agent.output, /the state file is damaged: moved aside; starting without records/);
      const aside = readdirSync(runDir).filter((n) => n.startsWith('state.json.damaged-'));
      assert.equal(aside.length, 1, 'the damaged file is kept beside');
      assert.equal(readFileSync(join(runDir, aside[0]!), 'utf8'), damage(text));
      assert.deepEqual((await agent.get('/imageapi/v1/container')).body, []);
      assert.deepEqual((await agent.get('/imageapi/v1/mount')).body, []);
      assert.deepEqual(kernelOf(runDir, image), [], 'nothing the lost records described is left');
      // Ids the run-dir shows in use are not given again (mount and container ids are visible there).
      const again = await agent.post('/imageapi/v1/container', running(image));
      assert.equal(again.status, 201, again.text);
      assert.ok(again.body.id > c.body.id, `container id ${again.body.id} after ${c.body.id}`);
      assert.ok(again.body.mount.id > c.body.mount.id, `mount id ${again.body.mount.id} after ${c.body.mount.id}`);
      assert.equal((await agent.del(`/imageapi/v1/container?id=${again.body.id}&force=true`)).status, 200);
      assert.equal(await agent.stop(), 0);
      assert.deepEqual(kernelOf(runDir, image), []);
    });
  }

  for (const [what, damage] of damages.filter(([w]) => w === 'null' || w === 'truncated')) {
    it(`a ${what} state file: rebuilt from its previous version, the running stack adopted, nothing lost`, async () => {
      const runDir = newRunDir();
      let agent = await start(runDir);
      const c = await agent.post('/imageapi/v1/container', running(image, 'kept'));
      assert.equal(c.status, 201, c.text);
      const a = await agent.post('/imageapi/v1/attach', { kind: 'loopback', loopback: { path: image, readonly: true } });
      assert.equal(a.status, 201, a.text);
      const m = await agent.post('/imageapi/v1/mount', imageStack(image)); // the last write: the previous one has the attachment
      assert.equal(m.status, 201, m.text);
      await agent.kill9();
      const file = join(runDir, 'state.json');
      writeFileSync(file, damage(readFileSync(file, 'utf8')));
      agent = await start(runDir);
      assert.match(agent.output, /the state file is damaged: moved aside; rebuilt from its previous version/);
      const kept = await agent.get('/imageapi/v1/container?name=kept');
      assert.equal(kept.status, 200);
      assert.equal(kept.body[0].state, 'running');
      assert.equal(kept.body[0].pid, c.body.pid);
      assert.equal((await agent.get(`/imageapi/v1/attach?id=${a.body.id}`)).status, 200);
      // The mount of the last request was in no version the agent could read: removed, not leaked.
      assert.equal((await agent.get(`/imageapi/v1/mount?id=${m.body.id}`)).status, 404);
      for (const [t, id] of [['container', c.body.id], ['attach', a.body.id]]) {
        assert.equal((await agent.del(`/imageapi/v1/${t}?id=${id}&force=true`)).status, 200);
      }
      const again = await agent.post('/imageapi/v1/mount', imageStack(image));
      assert.ok(again.body.id > m.body.id, 'no id is given twice');
      assert.equal((await agent.del(`/imageapi/v1/mount?id=${again.body.id}&force=true`)).status, 200);
      assert.equal(await agent.stop(), 0);
      assert.deepEqual(kernelOf(runDir, image), []);
    });
  }

  it('a full run-dir: 507 naming it, nothing half-made; the agent starts on it, deletes, and creates again', async () => {
    const runDir = mkdtempSync(join(tmpdir(), 'imageapi-test-'));
    runDirs.push(runDir);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m,mode=0700', 'imageapi-test', runDir]);
    let agent = await start(runDir);
    // A container that fills the run-dir (its overlay's upper directory is there).
    const filler = await agent.post('/imageapi/v1/container', {
      name: 'filler',
      command: '/bin/sh -c "sleep 1; dd if=/dev/zero of=/fill bs=64k; exec sleep 7113"', // after its create is saved
      state: 'running',
      stop_timeout: 1,
      mount: imageStack(image),
    });
    assert.equal(filler.status, 201, filler.text);
    const df = () => Number(execFileSync('df', ['--output=avail', '-B1', runDir], { encoding: 'utf8' }).split('\n')[1]);
    for (let i = 0; i < 100 && df() > 64 * 1024; i++) await new Promise((r) => setTimeout(r, 100));
    // Whatever a refused request frees again (a page of its log) is taken back before the next.
    let fillers = 0;
    const fill = () => {
      try {
        execFileSync('dd', ['if=/dev/zero', `of=${join(runDir, `host-filler-${fillers++}`)}`, 'bs=4k'], { stdio: 'ignore' });
      } catch {
        /* ENOSPC: full, as wanted */
      }
    };
    const before = kernelOf(runDir, image);
    // Each create either is whole (what it needs fits: a state file replaces its previous version
    // page for page) or answers 507 naming the run-dir and leaves nothing; a container needs its
    // log, so it is refused.
    const tries: Array<[string, unknown]> = [
      ['/imageapi/v1/container', running(image)],
      ['/imageapi/v1/container', running(image)],
      ['/imageapi/v1/mount', imageStack(image)],
      ['/imageapi/v1/attach', { kind: 'loopback', loopback: { path: image, readonly: true } }],
    ];
    const statuses: number[] = [];
    for (const [path, spec] of tries) {
      fill();
      const r = await post(agent, path, spec);
      statuses.push(r.status);
      assert.ok(r.status === 507 || r.status === 201, `${r.text}\n${agent.output.slice(-3000)}`);
      if (r.status === 507) {
        assert.equal(r.body.code, 507);
        assert.ok(r.body.message.includes(runDir), r.body.message);
      }
    }
    assert.deepEqual(statuses.slice(0, 2), [507, 507], 'a container cannot be created on a full run-dir');
    // Nothing half-made: every mount and loop device of the run-dir is a recorded object's.
    const recorded = async () => {
      const ms = (await agent.get('/imageapi/v1/mount')).body as Array<{ mountpoint: string }>;
      const as = (await agent.get('/imageapi/v1/attach')).body as Array<{ device_file: string }>;
      return { mounts: ms.map((m) => m.mountpoint).sort(), loops: as.map((a) => a.device_file).sort() };
    };
    const kernel = () => ({
      mounts: mountsUnder(join(runDir, 'mounts')).filter((m) => /\/mounts\/mount_\d+$/.test(m)).sort(),
      loops: loopsOver(image).map((l) => l.split(' ')[0]!).sort(),
    });
    assert.deepEqual(kernel(), await recorded(), 'what the kernel has is what the agent recorded');
    // A start on the full disk, then the delete that frees it.
    await agent.kill9();
    fill();
    agent = await start(runDir);
    assert.deepEqual(kernel(), await recorded());
    const listed = await agent.get('/imageapi/v1/container?name=filler');
    assert.equal(listed.status, 200);
    assert.equal(listed.body[0].state, 'running');
    const d = await agent.del('/imageapi/v1/container?name=filler&force=true');
    assert.equal(d.status, 200, d.text);
    const ok = await agent.post('/imageapi/v1/container', running(image));
    assert.equal(ok.status, 201, ok.text);
    assert.equal((await agent.del(`/imageapi/v1/container?id=${ok.body.id}&force=true`)).status, 200);
    for (const t of ['mount', 'attach']) {
      for (const o of (await agent.get(`/imageapi/v1/${t}`)).body as Array<{ id: number }>) await agent.del(`/imageapi/v1/${t}?id=${o.id}&force=true`);
    }
    assert.equal(await agent.stop(), 0);
    assert.deepEqual(kernelOf(runDir, image), []);
  });

  describe('a delete whose mountpoint a foreign recursive bind copy pins (rmdir: EBUSY)', () => {
    const copies: string[] = [];
    after(() => {
      for (const c of copies) {
        try {
          execFileSync('umount', ['-R', c], { stdio: 'ignore' });
        } catch {
          /* not mounted */
        }
        rmSync(c, { recursive: true, force: true });
      }
    });
    /** What another process does: a recursive bind copy of the agent's mounts, not propagated back. */
    const foreignCopy = (runDir: string) => {
      const copy = mkdtempSync(join(tmpdir(), 'imageapi-foreign-'));
      copies.push(copy);
      execFileSync('mount', ['--rbind', join(runDir, 'mounts'), copy]);
      execFileSync('mount', ['--make-rprivate', copy]);
      return copy;
    };

    it('a mount: 200, the record goes with the mount, the directory is removed once free', async () => {
      const runDir = newRunDir();
      let agent = await start(runDir);
      const m = await agent.post('/imageapi/v1/mount', imageStack(image));
      assert.equal(m.status, 201, m.text);
      const copy = foreignCopy(runDir);
      const d = await agent.del(`/imageapi/v1/mount?id=${m.body.id}&force=true`);
      assert.equal(d.status, 200, d.text);
      assert.equal((await agent.get(`/imageapi/v1/mount?id=${m.body.id}`)).status, 404);
      assert.deepEqual((await agent.get('/imageapi/v1/mount')).body, []);
      assert.deepEqual((await agent.get('/imageapi/v1/attach')).body, []);
      assert.deepEqual(mountsUnder(join(runDir, 'mounts')), [], 'our mounts are gone (the copy is not ours)');
      assert.ok(existsSync(m.body.mountpoint), 'the pinned directory stays for now');
      assert.match(agent.output, /cannot be removed yet/);
      execFileSync('umount', ['-R', copy]);
      // Retried at the next delete (or start): a second stack, deleted, takes the old directories with it.
      const m2 = await agent.post('/imageapi/v1/mount', imageStack(image));
      assert.equal((await agent.del(`/imageapi/v1/mount?id=${m2.body.id}&force=true`)).status, 200);
      assert.equal(existsSync(m.body.mountpoint), false, 'the directory is removed once free');
      assert.deepEqual(readdirSync(join(runDir, 'mounts')), []);
      assert.equal(await agent.stop(), 0);
      assert.deepEqual(kernelOf(runDir, image), []);
    });

    it('a running container: 200, not "kept as top-level objects"; a restart removes the directories', async () => {
      const runDir = newRunDir();
      let agent = await start(runDir);
      const c = await agent.post('/imageapi/v1/container', running(image));
      assert.equal(c.status, 201, c.text);
      const copy = foreignCopy(runDir);
      const d = await agent.del(`/imageapi/v1/container?id=${c.body.id}&force=true`);
      assert.equal(d.status, 200, d.text);
      for (const t of ['container', 'mount', 'attach']) assert.deepEqual((await agent.get(`/imageapi/v1/${t}`)).body, [], t);
      assert.deepEqual(mountsUnder(join(runDir, 'mounts')), []);
      execFileSync('umount', ['-R', copy]);
      assert.equal(await agent.stop(), 0, agent.output.slice(-3000));
      agent = await start(runDir);
      assert.deepEqual(readdirSync(join(runDir, 'mounts')), [], 'the start removes what could not be removed before');
      assert.equal(await agent.stop(), 0);
      assert.deepEqual(kernelOf(runDir, image), []);
    });
  });
});
