// kill -9 anywhere leaks nothing: rounds of mixed requests (nested stacks, running containers,
// top-level attachments, forced deletes, stops), each round ending with a kill -9 of the agent
// 0–400 ms into a request, then a restart on the same run-dir. After every start the kernel is
// scanned and compared with the state file: nothing of the run-dir that no record owns (leaks),
// no record of something the kernel does not have (missing), and no id ever given twice (reused).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { groupName } from '../../src/sys/cgroups.js';
import { TestAgent } from '../helpers/agent.js';
import { busyboxImage } from '../helpers/fixtures.js';
import { forceCleanup, loopsOver } from '../helpers/leaks.js';
import { imageStack } from '../helpers/suite.js';

const ROUNDS = Number(process.env.CRASH_ROUNDS ?? 30);
const LANES = 3;
const CMD = '/bin/sleep 7013';
const CGROUP_ROOTS = ['/sys/fs/cgroup/unified', '/sys/fs/cgroup', '/sys/fs/cgroup/pids', '/sys/fs/cgroup/freezer'];

/** A small deterministic PRNG (the rounds are the same on every run; the seed can be changed). */
function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

interface Kernel {
  mounts: Set<string>;
  loops: Set<string>;
  cgroups: Set<string>;
  shims: Set<number>;
}

/** What the kernel has of this run-dir: top mounts under mounts/, loops over the image, cgroups, supervisors. */
function scanKernel(runDir: string, image: string): Kernel {
  const mountsDir = join(runDir, 'mounts');
  const mounts = new Set<string>();
  for (const l of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const t = l.split(' ')[4] ?? '';
    if (t.startsWith(mountsDir + '/')) mounts.add(join(mountsDir, t.slice(mountsDir.length + 1).split('/')[0]!));
  }
  const loops = new Set(loopsOver(image, runDir + '/').map((l) => l.split(' ')[0]!));
  const cgroups = new Set<string>();
  for (const root of CGROUP_ROOTS) {
    const g = join(root, groupName(runDir));
    if (!existsSync(g)) continue;
    for (const e of readdirSync(g, { withFileTypes: true })) if (e.isDirectory()) cgroups.add(join(g, e.name));
  }
  const shims = new Set<number>();
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (readFileSync(`/proc/${p}/comm`, 'utf8').trim() !== 'imageapi-shim') continue;
      if (readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(runDir + '/')) shims.add(Number(p));
    } catch {
      /* gone */
    }
  }
  return { mounts, loops, cgroups, shims };
}

interface State {
  seq: Record<string, number>;
  attach: Array<{ id: number; attached: { device_file: string } }>;
  mount: Array<{ id: number; mounted: { mountpoint: string } }>;
  container: Array<{ id: number; state: string; cgroups: string[]; shim_pid: number | null }>;
}

/** Leaks (kernel objects no record owns) and missing (records of objects the kernel lacks). */
function compare(k: Kernel, s: State): { leaks: string[]; missing: string[] } {
  const leaks: string[] = [];
  const missing: string[] = [];
  const mps = new Set(s.mount.map((m) => m.mounted.mountpoint));
  const devs = new Set(s.attach.map((a) => a.attached.device_file));
  const cgs = new Set(s.container.flatMap((c) => c.cgroups));
  const shims = new Set(s.container.map((c) => c.shim_pid).filter((p) => p !== null));
  for (const m of k.mounts) if (!mps.has(m)) leaks.push(`mount ${m}`);
  for (const l of k.loops) if (!devs.has(l)) leaks.push(`loop ${l}`);
  for (const c of k.cgroups) if (!cgs.has(c)) leaks.push(`cgroup ${c}`);
  for (const p of k.shims) if (!shims.has(p)) leaks.push(`supervisor ${p}`);
  for (const m of mps) if (!k.mounts.has(m)) missing.push(`mount ${m}`);
  for (const d of devs) if (!k.loops.has(d)) missing.push(`loop ${d}`);
  // A container that is stopping may end any moment (its record follows a moment later): its
  // cgroup and supervisor are its own while they last, and not missing once gone.
  const ending = new Set(s.container.filter((c) => c.state === 'stopping').flatMap((c) => [...c.cgroups, String(c.shim_pid)]));
  for (const c of cgs) if (!k.cgroups.has(c) && !ending.has(c)) missing.push(`cgroup ${c}`);
  for (const p of shims) if (!k.shims.has(p as number) && !ending.has(String(p))) missing.push(`supervisor ${p}`);
  return { leaks, missing };
}

/** Every id an answer names, by type (nested levels included). */
function idsIn(x: unknown, out: Array<[string, number]> = []): Array<[string, number]> {
  if (Array.isArray(x)) for (const v of x) idsIn(v, out);
  else if (x && typeof x === 'object') {
    const o = x as Record<string, unknown>;
    if (typeof o.id === 'number') {
      if ('command' in o) out.push(['container', o.id]);
      else if ('mountpoint' in o) out.push(['mount', o.id]);
      else if ('device_file' in o) out.push(['attach', o.id]);
    }
    for (const v of Object.values(o)) idsIn(v, out);
  }
  return out;
}

describe('kill -9 during requests', () => {
  let image: string;
  const lanes: Array<{ runDir: string; image: string; agent?: TestAgent }> = [];

  before(() => {
    image = busyboxImage();
    // Lanes run side by side (the rounds are bounded by the agents' start-up time); each has its
    // own run-dir and its own copy of the image, so one lane's loop devices are never another's.
    for (let i = 0; i < LANES; i++) {
      const runDir = TestAgent.newRunDir();
      const copy = join(dirname(image), `crash-lane-${i}.sqsh`);
      copyFileSync(image, copy);
      lanes.push({ runDir, image: copy });
    }
  });
  after(async () => {
    for (const l of lanes) {
      await l.agent?.kill9();
      forceCleanup(l.runDir, dirname(image));
    }
  });

  it(`${ROUNDS} rounds of mixed requests, each cut by kill -9: 0 leaked, 0 missing, 0 reused`, async () => {
    const leaks: string[] = [];
    const missing: string[] = [];
    const reused: string[] = [];
    let ops = 0;
    let cut = 0;
    let midway = 0;

    const runLane = async (lane: (typeof lanes)[number], index: number, rounds: number) => {
      const { runDir, image } = lane;
      const rand = rng(13 + index);
      const seen: Record<string, Set<number>> = { attach: new Set(), mount: new Set(), container: new Set() };
      /** Ids that ever existed: from the state file, the kernel's names, the answers. */
      const note = (type: string, id: number, fromAnswer: boolean) => {
        if (fromAnswer && seen[type]!.has(id)) reused.push(`lane ${index}: ${type} ${id}`);
        seen[type]!.add(id);
      };
      const send = async (method: string, path: string, body?: unknown) => {
        const agent = lane.agent!;
        const res = await fetch(agent.url + path, {
          method,
          headers: body === undefined ? {} : { 'content-type': 'application/json' },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
        const text = await res.text();
        assert.ok(res.status < 500 || res.status === 501, `${method} ${path} → ${res.status}: ${text}\n${agent.output.slice(-2000)}`);
        const parsed = text ? JSON.parse(text) : undefined;
        if (method === 'POST' && res.status === 201) for (const [t, id] of idsIn(parsed)) note(t, id, true);
        return { status: res.status, body: parsed };
      };
      const container = (running: boolean) => ({
        command: CMD,
        state: running ? 'running' : 'created',
        stop_timeout: 1,
        mount: imageStack(image),
      });
      /** One request of the mix, chosen by what exists (at most a few objects at a time). */
      const pick = async (): Promise<() => Promise<unknown>> => {
        const cs = (await send('GET', '/imageapi/v1/container')).body as Array<{ id: number; state: string }>;
        const ms = (await send('GET', '/imageapi/v1/mount')).body as Array<{ id: number }>;
        const as = (await send('GET', '/imageapi/v1/attach')).body as Array<{ id: number }>;
        const total = cs.length + ms.length + as.length;
        const r = rand();
        if (total > 8 || (total > 0 && r < 0.3)) {
          const all = [...cs.map((c) => `container?id=${c.id}`), ...ms.map((m) => `mount?id=${m.id}`), ...as.map((a) => `attach?id=${a.id}`)];
          const target = all[Math.floor(rand() * all.length)]!;
          return () => send('DELETE', `/imageapi/v1/${target}&force=true`);
        }
        if (r < 0.4 && cs.length) {
          const c = cs[Math.floor(rand() * cs.length)]!;
          return () => send('PATCH', `/imageapi/v1/container?id=${c.id}&state=${c.state === 'running' ? 'exited' : 'running'}`);
        }
        if (r < 0.6) return () => send('POST', '/imageapi/v1/container', container(true));
        if (r < 0.7) return () => send('POST', '/imageapi/v1/container', container(false));
        if (r < 0.85) return () => send('POST', '/imageapi/v1/mount', imageStack(image));
        return () => send('POST', '/imageapi/v1/attach', { kind: 'loopback', loopback: { path: image, readonly: true } });
      };
      /** After a start: compare the kernel with the state file, and remember every id in use. */
      const check = (round: number) => {
        const state = JSON.parse(readFileSync(join(runDir, 'state.json'), 'utf8')) as State;
        const k = scanKernel(runDir, image);
        const d = compare(k, state);
        leaks.push(...d.leaks.map((l) => `lane ${index} round ${round}: ${l}`));
        missing.push(...d.missing.map((m) => `lane ${index} round ${round}: ${m}`));
        for (const t of ['attach', 'mount', 'container'] as const) for (const r of state[t]) note(t, r.id, false);
        for (const m of k.mounts) note('mount', Number(/mount_(\d+)$/.exec(m)?.[1] ?? -1), false);
        for (const c of k.cgroups) note('container', Number(/(\d+)$/.exec(c)?.[1] ?? -1), false);
      };

      for (let round = 1; round <= rounds; round++) {
        lane.agent = await new TestAgent(runDir).start();
        check(round);
        // A fresh agent's first request of each route builds its validator (a second or so): warm
        // them, so that the kills land in the work of the requests, not before it.
        await Promise.all([
          send('POST', '/imageapi/v1/container', {}),
          send('POST', '/imageapi/v1/mount', {}),
          send('POST', '/imageapi/v1/attach', {}),
          send('DELETE', '/imageapi/v1/container?id=999999&force=true'),
          send('DELETE', '/imageapi/v1/mount?id=999999&force=true'),
          send('DELETE', '/imageapi/v1/attach?id=999999&force=true'),
          send('PATCH', '/imageapi/v1/container?id=999999&state=exited'),
        ]);
        const before = Math.floor(rand() * 2);
        for (let i = 0; i < before; i++) {
          await (await pick())();
          ops++;
        }
        const last = await pick();
        let answered = false;
        const inFlight = last().then(
          () => (answered = true),
          () => undefined, // its connection dies with the agent
        );
        ops++;
        // 0–400 ms into the request, most often early (a create here takes some 50–300 ms).
        await new Promise((r) => setTimeout(r, Math.floor(rand() ** 2 * 400)));
        await lane.agent.kill9();
        await inFlight;
        cut++;
        if (!answered) midway++;
      }
      // The last start: everything still recorded is deleted through the API; then nothing is left.
      lane.agent = await new TestAgent(runDir).start();
      check(rounds + 1);
      for (const c of (await send('GET', '/imageapi/v1/container')).body as Array<{ id: number }>) {
        assert.equal((await send('DELETE', `/imageapi/v1/container?id=${c.id}&force=true`)).status, 200);
      }
      for (const type of ['mount', 'attach']) {
        for (const o of (await send('GET', `/imageapi/v1/${type}`)).body as Array<{ id: number }>) {
          const r = await send('DELETE', `/imageapi/v1/${type}?id=${o.id}&force=true`);
          assert.ok(r.status === 200 || r.status === 404, JSON.stringify(r.body)); // 404: gone with its parent
        }
      }
      assert.equal(await lane.agent.stop(), 0);
      const k = scanKernel(runDir, image);
      leaks.push(...[...k.mounts, ...k.loops, ...k.cgroups, ...k.shims].map((x) => `lane ${index}, after deleting everything: ${x}`));
    };

    const per = Math.ceil(ROUNDS / LANES);
    await Promise.all(lanes.map((l, i) => runLane(l, i, per)));
    const sleepers = execFileSync('ps', ['-eo', 'args='], { encoding: 'utf8' }).split('\n').filter((l) => l === CMD || l === CMD.slice(5));
    leaks.push(...sleepers.map((s) => `after deleting everything: process ${s}`));
    console.log(
      `crash: rounds ${cut}, leaks ${leaks.length}, missing ${missing.length}, reused ${reused.length} (${ops} requests, ${midway} kills before the answer, ${LANES} agents side by side)`,
    );
    assert.deepEqual({ leaks, missing, reused }, { leaks: [], missing: [], reused: [] });
    assert.ok(midway >= cut / 3, `only ${midway} of ${cut} kills came before the answer: the rounds test too little`);
  });
});
