// Requests in parallel over shared objects, through the API and the real kernel: containers on one
// overlay, mounts referencing one attachment, deletes (plain and forced) racing creates that
// reference what they delete, names and nested stacks created side by side. Every answer must be
// that of some serial order of the requests, and consistent with the GETs that follow: no id given
// twice, no reference counted wrong or left dangling, nothing leaked. Then kill -9 of the agent in
// the middle of a parallel load, a few rounds on one run-dir: after each restart the agent's view
// (the GET lists) equals the kernel's (mounts under the run-dir, loop devices over the image,
// containers' cgroups and supervisors), and nothing is orphaned.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { groupName } from '../../src/sys/cgroups.js';
import { ROOT, TestAgent, type Reply } from '../helpers/agent.js';
import { busyboxImage } from '../helpers/fixtures.js';
import { forceCleanup, loopsOver } from '../helpers/leaks.js';
import { agentSuite, imageStack } from '../helpers/suite.js';

const CGROUP_ROOTS = ['/sys/fs/cgroup/unified', '/sys/fs/cgroup', '/sys/fs/cgroup/pids', '/sys/fs/cgroup/freezer'];
const CMD = '/bin/sleep 7014';

/** A small deterministic PRNG (the same rounds on every run). */
function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

interface KernelView {
  /** Top-level mountpoints under <run-dir>/mounts. */
  mounts: string[];
  /** Loop devices over the image or files under the run-dir. */
  loops: string[];
  /** Container ids that have a cgroup of this run-dir (any hierarchy). */
  cgroups: number[];
  /** Supervisors (imageapi-shim) of this run-dir. */
  shims: number[];
}

function kernelOf(runDir: string, image: string): KernelView {
  const mountsDir = join(runDir, 'mounts');
  const mounts = new Set<string>();
  for (const l of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const t = l.split(' ')[4] ?? '';
    if (t.startsWith(mountsDir + '/')) mounts.add(join(mountsDir, t.slice(mountsDir.length + 1).split('/')[0]!));
  }
  const cgroups = new Set<number>();
  for (const root of CGROUP_ROOTS) {
    const g = join(root, groupName(runDir));
    if (!existsSync(g)) continue;
    for (const e of readdirSync(g, { withFileTypes: true })) if (e.isDirectory() && /^\d+$/.test(e.name)) cgroups.add(Number(e.name));
  }
  const shims: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (readFileSync(`/proc/${p}/comm`, 'utf8').trim() !== 'imageapi-shim') continue;
      if (readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(runDir + '/')) shims.push(Number(p));
    } catch {
      /* gone */
    }
  }
  return {
    mounts: [...mounts].sort(),
    loops: loopsOver(image, runDir + '/').map((l) => l.split(' ')[0]!).sort(),
    cgroups: [...cgroups].sort((a, b) => a - b),
    shims: shims.sort((a, b) => a - b),
  };
}

interface AgentView {
  attach: Array<{ id: number; device_file: string; refs: number }>;
  mount: Array<{ id: number; mountpoint: string; refs: number; kind: string }>;
  container: Array<{ id: number; name?: string; state: string; pid?: number | null; mount: { id: number } }>;
}

async function viewOf(agent: TestAgent): Promise<AgentView> {
  const [a, m, c] = await Promise.all([agent.get('/attach'), agent.get('/mount'), agent.get('/container')]);
  for (const r of [a, m, c]) assert.equal(r.status, 200, r.text);
  return { attach: a.body, mount: m.body, container: c.body };
}

/**
 * The agent's view against the kernel's: every mount and loop device it lists exists and nothing
 * else of its run-dir does; every live container (running, paused, stopping) has its cgroup and
 * supervisor, and no other container has either. A stopping container may end any moment.
 */
function differences(v: AgentView, k: KernelView): string[] {
  const out: string[] = [];
  const mps = new Set(v.mount.map((m) => m.mountpoint));
  const devs = new Set(v.attach.map((a) => a.device_file));
  for (const m of k.mounts) if (!mps.has(m)) out.push(`leaked mount ${m}`);
  for (const m of mps) if (!k.mounts.includes(m)) out.push(`missing mount ${m}`);
  for (const l of k.loops) if (!devs.has(l)) out.push(`leaked loop ${l}`);
  for (const d of devs) if (!k.loops.includes(d)) out.push(`missing loop ${d}`);
  const live = v.container.filter((c) => ['running', 'paused', 'stopping'].includes(c.state));
  const ending = new Set(v.container.filter((c) => c.state === 'stopping').map((c) => c.id));
  for (const id of k.cgroups) if (!live.some((c) => c.id === id)) out.push(`leaked cgroup of container ${id}`);
  for (const c of live) if (!k.cgroups.includes(c.id) && !ending.has(c.id)) out.push(`missing cgroup of container ${c.id} (${c.state})`);
  if (k.shims.length > live.length) out.push(`${k.shims.length} supervisors for ${live.length} live containers`);
  if (k.shims.length < live.length - ending.size) out.push(`${k.shims.length} supervisors for ${live.length} live containers`);
  for (const c of live) {
    if (!c.pid) {
      out.push(`container ${c.id} is ${c.state} without a pid`);
      continue;
    }
    if (!existsSync(`/proc/${c.pid}`) && !ending.has(c.id)) out.push(`container ${c.id} is ${c.state}, its pid ${c.pid} is gone`);
  }
  // References: every object a record names exists, and refs count the users the lists show.
  const users = new Map<string, number>();
  for (const c of v.container) users.set(`mount:${c.mount.id}`, (users.get(`mount:${c.mount.id}`) ?? 0) + 1);
  for (const c of v.container) if (!v.mount.some((m) => m.id === c.mount.id)) out.push(`container ${c.id} names mount ${c.mount.id}, which is not listed`);
  return out;
}

const all = <T>(n: number, fn: (i: number) => Promise<T>) => Promise.all(Array.from({ length: n }, (_, i) => fn(i)));
const statuses = (rs: Reply[]) => rs.map((r) => r.status);
function onlyStatuses(rs: Reply[], allowed: number[], what: string): void {
  for (const r of rs) assert.ok(allowed.includes(r.status), `${what}: ${r.status} ${r.text}`);
}

describe('parallel requests over shared objects', () => {
  const s = agentSuite();

  /** Nothing of the run-dir left in the kernel, and the agent lists nothing. */
  async function assertEmpty(): Promise<void> {
    const v = await viewOf(s.agent);
    assert.deepEqual(
      { attach: v.attach, mount: v.mount, container: v.container },
      { attach: [], mount: [], container: [] },
    );
    const k = kernelOf(s.runDir, s.image);
    assert.deepEqual(k, { mounts: [], loops: [], cgroups: [], shims: [] });
  }

  it('16 containers started at once on one overlay, names racing, then 16 forced deletes at once', async () => {
    const base = await s.agent.post('/mount', imageStack(s.image));
    assert.equal(base.status, 201, base.text);
    const overlay = base.body.id as number;
    // 12 with names of their own, 4 racing for one name.
    const names = [...Array.from({ length: 12 }, (_, i) => `c${i}`), 'dup', 'dup', 'dup', 'dup'];
    const made = await all(names.length, (i) =>
      s.agent.post('/container', { name: names[i], command: CMD, state: 'running', stop_timeout: 0, mount: { id: overlay } }),
    );
    onlyStatuses(made, [201, 409], 'create');
    assert.equal(made.filter((r) => r.status === 201).length, 13, statuses(made).join(' '));
    assert.equal(made.slice(12).filter((r) => r.status === 201).length, 1, 'exactly one container gets the name "dup"');
    for (const r of made.slice(12).filter((r) => r.status === 409)) assert.match(r.body.message, /named "dup" already exists/);
    const ok = made.filter((r) => r.status === 201).map((r) => r.body);
    assert.equal(new Set(ok.map((c) => c.id)).size, ok.length, 'no container id given twice');
    assert.equal(new Set(ok.map((c) => c.pid)).size, ok.length, 'each its own process');
    for (const c of ok) assert.equal(c.state, 'running');

    const v = await viewOf(s.agent);
    assert.deepEqual(v.container.map((c) => c.id).sort((a, b) => a - b), ok.map((c) => c.id).sort((a, b) => a - b));
    assert.equal(v.mount.find((m) => m.id === overlay)!.refs, 1 + ok.length, 'the overlay counts every container');
    assert.deepEqual(differences(v, kernelOf(s.runDir, s.image)), []);

    const gone = await all(ok.length, (i) => s.agent.del(`/container?id=${ok[i].id}&force=true`));
    onlyStatuses(gone, [200], 'delete');
    const after = await viewOf(s.agent);
    assert.deepEqual(after.container, []);
    assert.equal(after.mount.find((m) => m.id === overlay)!.refs, 1);
    assert.deepEqual(differences(after, kernelOf(s.runDir, s.image)), []);
    assert.equal((await s.agent.del(`/mount?id=${overlay}`)).status, 200);
    await assertEmpty();
  });

  it('mounts referencing one attachment, created in parallel with a delete of it, then with a forced delete', async () => {
    const att = await s.agent.post('/attach', { kind: 'loopback', loopback: { path: s.image, readonly: true } });
    assert.equal(att.status, 201, att.text);
    const a = att.body.id as number;
    const mountOver = () => s.agent.post('/mount', { kind: 'attach', attach: { fs_type: 'squashfs', mount_options: ['ro'], attach: { id: a } } });

    // Round 1: the delete (not forced) comes among 12 creates.
    const [made, del] = await Promise.all([all(12, () => mountOver()), new Promise((r) => setTimeout(r, 5)).then(() => s.agent.del(`/attach?id=${a}`))]);
    onlyStatuses(made, [201, 404], 'create');
    const ok = made.filter((r) => r.status === 201).map((r) => r.body.id as number);
    assert.equal(new Set(ok).size, ok.length, 'no mount id given twice');
    let v = await viewOf(s.agent);
    if (del.status === 200) {
      // The delete came first: none of the creates got the attachment.
      assert.deepEqual(ok, [], `the attachment was deleted, yet mounts on it were made: ${ok}`);
      assert.deepEqual(v.attach, []);
    } else {
      assert.equal(del.status, 409, del.text);
      assert.match(del.body.message, /is in use by mount/);
      assert.equal(v.attach.find((x) => x.id === a)!.refs, 1 + ok.length, 'refs count every mount made');
      for (const r of made.filter((r) => r.status === 404)) assert.fail(`a create was refused although the attachment stayed: ${r.text}`);
    }
    assert.deepEqual(v.mount.map((m) => m.id).sort((x, y) => x - y), [...ok].sort((x, y) => x - y));
    assert.deepEqual(differences(v, kernelOf(s.runDir, s.image)), []);

    // Round 2: a forced delete among 8 more creates: it takes every mount made before it.
    if (del.status !== 200) {
      const [more, fdel] = await Promise.all([all(8, () => mountOver()), new Promise((r) => setTimeout(r, 5)).then(() => s.agent.del(`/attach?id=${a}&force=true`))]);
      onlyStatuses(more, [201, 404], 'create');
      assert.equal(fdel.status, 200, fdel.text);
      v = await viewOf(s.agent);
      assert.deepEqual(v.mount, [], 'every mount on the attachment went with it');
      assert.deepEqual(v.attach, []);
      // A later create referencing it is refused cleanly.
      const late = await mountOver();
      assert.equal(late.status, 404, late.text);
    }
    await assertEmpty();
  });

  it('forced deletes of an overlay racing container creates on it: no container on a deleted overlay, nothing left', async () => {
    for (let round = 0; round < 3; round++) {
      const base = await s.agent.post('/mount', imageStack(s.image));
      assert.equal(base.status, 201, base.text);
      const o = base.body.id as number;
      const [made, fdel] = await Promise.all([
        all(8, (i) => new Promise((r) => setTimeout(r, i * 2)).then(() => s.agent.post('/container', { command: CMD, state: i % 2 ? 'running' : 'created', stop_timeout: 0, mount: { id: o } }))),
        new Promise((r) => setTimeout(r, 4 + round * 4)).then(() => s.agent.del(`/mount?id=${o}&force=true`)),
      ]);
      onlyStatuses(made, [201, 404], `round ${round}: create`);
      assert.equal(fdel.status, 200, fdel.text);
      const v = await viewOf(s.agent);
      // Every container made before the delete went with it; none could be made after it.
      assert.deepEqual(v.container, [], `round ${round}: containers left on a deleted overlay`);
      assert.deepEqual(v.mount, []);
      assert.deepEqual(v.attach, []);
      assert.deepEqual(differences(v, kernelOf(s.runDir, s.image)), []);
    }
    await assertEmpty();
  });

  it('a nested container delete racing creates that reference its squashfs mount: the mount stays for them, as the user\'s', async () => {
    const c = await s.agent.post('/container', { command: CMD, state: 'running', stop_timeout: 0, mount: imageStack(s.image) });
    assert.equal(c.status, 201, c.text);
    const squash = (await s.agent.get('/mount')).body.find((m: { kind: string }) => m.kind === 'attach').id as number;
    const [made, del] = await Promise.all([
      all(6, (i) => new Promise((r) => setTimeout(r, i * 3)).then(() => s.agent.post('/mount', { kind: 'overlay', overlay: { lower: [{ id: squash }] } }))),
      s.agent.del(`/container?id=${c.body.id}&force=true`),
    ]);
    assert.equal(del.status, 200, del.text);
    onlyStatuses(made, [201, 404], 'create');
    const ok = made.filter((r) => r.status === 201).map((r) => r.body.id as number);
    const v = await viewOf(s.agent);
    assert.deepEqual(v.container, []);
    if (ok.length) {
      const m = v.mount.find((x) => x.id === squash);
      assert.ok(m, 'the squashfs mount stays while overlays made on it use it');
      assert.equal(m.refs, 1 + ok.length, 'the user, and each overlay on it');
    } else assert.deepEqual(v.mount, []);
    assert.deepEqual(v.mount.filter((m) => m.kind === 'overlay').map((m) => m.id).sort((x, y) => x - y), [...ok].sort((x, y) => x - y));
    assert.deepEqual(differences(v, kernelOf(s.runDir, s.image)), []);
    for (const id of ok) assert.equal((await s.agent.del(`/mount?id=${id}`)).status, 200);
    if (ok.length) assert.equal((await s.agent.del(`/mount?id=${squash}&force=true`)).status, 200);
    await assertEmpty();
  });

  it('8 nested stacks created at once, and a state change racing each delete: unique ids at every level, nothing leaked', async () => {
    const made = await all(8, (i) => s.agent.post('/container', { command: CMD, state: i % 2 ? 'running' : 'created', stop_timeout: 0, mount: imageStack(s.image) }));
    onlyStatuses(made, [201], 'create');
    const ids = made.map((r) => r.body.id as number);
    assert.equal(new Set(ids).size, 8, 'no container id given twice');
    const v = await viewOf(s.agent);
    assert.equal(v.mount.length, 16);
    assert.equal(new Set(v.mount.map((m) => m.id)).size, 16, 'no mount id given twice');
    assert.equal(v.attach.length, 8);
    assert.equal(new Set(v.attach.map((a) => a.device_file)).size, 8, 'each stack its own loop device');
    assert.deepEqual(differences(v, kernelOf(s.runDir, s.image)), []);
    // Each delete races a PATCH that starts (or stops) the same container.
    const raced = await all(8, (i) =>
      Promise.all([
        s.agent.patch(`/container?id=${ids[i]}&state=${i % 2 ? 'exited' : 'running'}`),
        s.agent.del(`/container?id=${ids[i]}&force=true`),
      ]),
    );
    for (const [p, d] of raced) {
      assert.equal(d.status, 200, d.text);
      assert.ok([200, 404, 409].includes(p.status), `patch: ${p.status} ${p.text}`);
    }
    // A start that lost the race must not leave a process behind (give a late exit a moment).
    await new Promise((r) => setTimeout(r, 300));
    await assertEmpty();
  });
});

describe('a start waiting on its helper holds up nobody', () => {
  // The agent's helper is a wrapper that, while <gate>/hold exists, says so (<gate>/waiting) and
  // waits before it execs the real helper: a start held at will, without timing anything.
  let runDir: string;
  let image: string;
  let gate: string;
  let agent: TestAgent;
  before(async () => {
    image = busyboxImage();
    runDir = TestAgent.newRunDir();
    gate = join(runDir, '..', `${runDir.split('/').pop()}-gate`);
    mkdirSync(gate);
    const wrapper = join(gate, 'helper');
    writeFileSync(
      wrapper,
      `#!/bin/sh\nif [ -e ${gate}/hold ]; then : > ${gate}/waiting; i=0; while [ -e ${gate}/hold ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; fi\nexec ${join(ROOT, 'native/build/imageapi-init')} "$@"\n`,
      { mode: 0o755 },
    );
    agent = await new TestAgent(runDir, ['--helper', wrapper]).start();
  });
  after(async () => {
    rmSync(join(gate, 'hold'), { force: true });
    await agent.stop();
    forceCleanup(runDir, dirname(image));
    rmSync(gate, { recursive: true, force: true });
  });

  it('PATCH state=running runs outside the lock: creates and deletes go on; a stop asked meanwhile waits for the start', async () => {
    const stack = await agent.post('/container', { command: CMD, state: 'created', stop_timeout: 0, mount: imageStack(image) });
    assert.equal(stack.status, 201, stack.text);
    const a = stack.body as { id: number; mount: number | { id: number } };
    const overlay = typeof a.mount === 'number' ? a.mount : a.mount.id;
    writeFileSync(join(gate, 'hold'), '');
    let started: Reply | undefined;
    const starting = agent.patch(`/container?id=${a.id}&state=running`).then((r) => (started = r));
    for (let i = 0; i < 400 && !existsSync(join(gate, 'waiting')); i++) await new Promise((r) => setTimeout(r, 25));
    assert.ok(existsSync(join(gate, 'waiting')), 'the start reached its helper');
    let stopped: Reply | undefined;
    const stopping = agent.patch(`/container?id=${a.id}&state=exited`).then((r) => (stopped = r));
    // While the helper waits: a create (under the lock) and a delete answer, GET shows the container not yet running.
    const gateOpen = (ms: number) => new Promise<'held'>((r) => setTimeout(() => r('held'), ms).unref());
    const made = await Promise.race([agent.post('/container', { command: CMD, state: 'created', mount: { id: overlay } }), gateOpen(15_000)]);
    assert.notEqual(made, 'held', 'a create answered while a start waited on its helper');
    assert.equal((made as Reply).status, 201, (made as Reply).text);
    const other = (made as Reply).body.id as number;
    assert.equal((await agent.del(`/container?id=${other}`)).status, 200);
    assert.equal((await agent.get(`/container?id=${a.id}`)).body[0].state, 'created');
    assert.equal(started, undefined, 'the start is still waiting');
    assert.equal(stopped, undefined, 'the stop waits for the start');
    rmSync(join(gate, 'hold'));
    await starting;
    assert.equal(started!.status, 200, started!.text);
    // (answered after the save, by when the waiting stop may have begun)
    assert.ok(['running', 'stopping', 'exited'].includes(started!.body.state), started!.text);
    await stopping;
    assert.equal(stopped!.status, 200, stopped!.text);
    assert.ok(['stopping', 'exited'].includes(stopped!.body.state), stopped!.text);
    assert.equal((await agent.del(`/container?id=${a.id}&force=true`)).status, 200);
    const k = kernelOf(runDir, image);
    assert.deepEqual(k, { mounts: [], loops: [], cgroups: [], shims: [] });
  });
});

describe('kill -9 of the agent during a parallel load', () => {
  const ROUNDS = Number(process.env.CONCURRENCY_CRASH_ROUNDS ?? 4);
  let image: string;
  let runDir: string;
  let agent: TestAgent | undefined;

  before(() => {
    const fixture = busyboxImage();
    image = join(dirname(fixture), 'concurrency-crash.sqsh'); // its own file: its loops are only this test's
    copyFileSync(fixture, image);
    runDir = TestAgent.newRunDir();
  });
  after(async () => {
    await agent?.kill9();
    forceCleanup(runDir, image);
  });

  it(`${ROUNDS} rounds of 10 requests in flight cut by kill -9: after each restart the agent's view is the kernel's, no id twice`, async () => {
    const rand = rng(91);
    const seen: Record<string, Set<number>> = { attach: new Set(), mount: new Set(), container: new Set() };
    const reused: string[] = [];
    const diffs: string[] = [];
    let killedMidway = 0;
    const note = (type: string, id: number) => {
      if (seen[type]!.has(id)) reused.push(`${type} ${id}`);
      seen[type]!.add(id);
    };
    /** The id a 201 answer gives (a container's view shows the mounts it names too: not noted). */
    const noteAnswer = (type: string, x: { id?: unknown }): void => {
      if (typeof x.id === 'number') note(type, x.id);
    };
    const send = async (method: string, path: string, body?: unknown) => {
      const a = agent!;
      try {
        const res = await fetch(a.url + path, {
          method,
          headers: body === undefined ? {} : { 'content-type': 'application/json' },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
        const text = await res.text();
        assert.ok(res.status < 500 || res.status === 501, `${method} ${path} → ${res.status}: ${text}`);
        if (method === 'POST' && res.status === 201) noteAnswer(path.slice(1), JSON.parse(text));
        return res.status;
      } catch (err) {
        if (err instanceof assert.AssertionError) throw err;
        return 0; // the agent died under it
      }
    };

    for (let round = 1; round <= ROUNDS + 1; round++) {
      agent = await new TestAgent(runDir).start();
      const v = await viewOf(agent);
      diffs.push(...differences(v, kernelOf(runDir, image)).map((d) => `after restart ${round}: ${d}`));
      for (const r of reused.splice(0)) diffs.push(`before restart ${round}: id given twice: ${r}`);
      if (round > ROUNDS) break;
      // Shared objects for the load: an overlay (nested, with its loop device) and an attachment.
      const overlay = await fetch(agent.url + '/mount', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(imageStack(image)) }).then((r) => r.json());
      noteAnswer('mount', overlay);
      const att = await fetch(agent.url + '/attach', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'loopback', loopback: { path: image, readonly: true } }) }).then((r) => r.json());
      noteAnswer('attach', att);
      const existing = v.container.map((c) => c.id);
      const load: Array<() => Promise<number>> = [];
      for (let i = 0; i < 10; i++) {
        const r = rand();
        if (r < 0.3) load.push(() => send('POST', '/container', { command: CMD, state: 'running', stop_timeout: 0, mount: { id: overlay.id } }));
        else if (r < 0.5) load.push(() => send('POST', '/container', { command: CMD, state: 'running', stop_timeout: 0, mount: imageStack(image) }));
        else if (r < 0.65) load.push(() => send('POST', '/mount', { kind: 'attach', attach: { fs_type: 'squashfs', mount_options: ['ro'], attach: { id: att.id } } }));
        else if (r < 0.75) load.push(() => send('DELETE', `/attach?id=${att.id}&force=true`));
        else if (r < 0.85) load.push(() => send('DELETE', `/mount?id=${overlay.id}&force=true`));
        else if (existing.length) load.push(() => send('DELETE', `/container?id=${existing[Math.floor(rand() * existing.length)]}&force=true`));
        else load.push(() => send('POST', '/attach', { kind: 'loopback', loopback: { path: image, readonly: true } }));
      }
      let answered = 0;
      const inFlight = Promise.all(load.map((f) => f().then((st) => void (st && answered++))));
      await new Promise((r) => setTimeout(r, Math.floor(rand() * 250)));
      await agent.kill9();
      await inFlight;
      if (answered < load.length) killedMidway++;
    }
    // The last agent deletes everything: then nothing of the run-dir is left.
    for (const c of (await agent!.get('/container')).body as Array<{ id: number }>) assert.equal((await agent!.del(`/container?id=${c.id}&force=true`)).status, 200);
    for (const type of ['mount', 'attach']) {
      for (const o of (await agent!.get(`/${type}`)).body as Array<{ id: number }>) {
        const r = await agent!.del(`/${type}?id=${o.id}&force=true`);
        assert.ok(r.status === 200 || r.status === 404, r.text); // 404: gone with its parent
      }
    }
    assert.equal(await agent!.stop(), 0);
    agent = undefined;
    const k = kernelOf(runDir, image);
    console.log(`concurrency crash: rounds ${ROUNDS}, kills before every answer came ${killedMidway}, differences ${diffs.length}`);
    assert.deepEqual({ diffs, kernel: k }, { diffs: [], kernel: { mounts: [], loops: [], cgroups: [], shims: [] } });
    assert.ok(killedMidway >= 1, 'no kill came while requests were in flight: the rounds test too little');
  });
});
