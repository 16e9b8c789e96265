// RBD through the API, against a real one-node Ceph cluster (test/fixtures/ceph-cluster.sh):
// walkthrough A verbatim on the typed v0.1 routes, its nested v0.1 container, the v0.2 RBD form
// of walkthrough B, a shared attachment, failures, a snapshot (501 on the rbd-fuse path) and an
// agent killed with -9 while an RBD-backed container runs. This kernel has no kernel RBD, so the
// agent's `--rbd-mode auto` is rbd-fuse + a loop device; its instances live under <run-dir>/rbd-fuse/.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, readdirSync, readFileSync, realpathSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, afterEach, before, describe, test, type TestContext } from 'node:test';
import { TestAgent, type Reply } from '../helpers/agent.js';
import { busyboxImage } from '../helpers/fixtures.js';
import { forceCleanup, loopsOver, mountsUnder, processesWith } from '../helpers/leaks.js';
import { type Cluster, cephSkipReason, fuseProcsUnder, leftovers, otherKey, rbdAdmin, sh, startCluster, stopCluster } from './cluster-fixture.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const nsenter = (pid: number, ...cmd: string[]) => execFileSync('nsenter', ['-t', String(pid), '-a', ...cmd], { encoding: 'utf8', timeout: 10_000 });

const IMAGE = 'systemd.sqsh'; // the walkthrough's name, holding the busybox squashfs
const IMAGE2 = 'busybox.sqsh'; // the same squashfs under a second name

let skipReason: string | undefined;
let cluster: Cluster | undefined;
let KEY = '';
let sqshFile = '';
let runDir = '';
let realRunDir = '';
let agent: TestAgent | undefined;
/** Everything every agent of this file printed (agents killed and restarted included). */
const outputs: string[] = [];
/** Device files of every RBD attachment seen, checked for leaks at the end. */
const devices = new Set<string>();
/** Every answer's text, checked for the key as it comes. */
let answers = 0;

function skipIfNoCeph(t: TestContext): boolean {
  if (!skipReason) return false;
  t.skip(`SKIPPED, no Ceph cluster possible here: ${skipReason}`);
  return true;
}

const rbdSpec = (image: string, options: Record<string, unknown> = {}, over: Record<string, unknown> = {}) => ({
  monitors: ['127.0.0.1'],
  pool: 'rbd',
  image,
  ...over,
  options: { ro: true, name: 'admin', secret: KEY, ...options },
});

function noKey(where: string, text: string): void {
  assert.ok(!text.includes(KEY), `the key appears in ${where}:\n${text.slice(0, 2000)}`);
}

/** A request through the test agent; 5xx other than 501 throws (the harness's rule); the key is never in an answer. */
async function call(method: string, path: string, body?: unknown): Promise<Reply> {
  const r = await agent!.req(method, path, body);
  answers++;
  noKey(`the answer to ${method} ${path}`, r.text);
  for (const m of r.text.matchAll(/"device_file":"(\/dev\/loop\d+)"/g)) devices.add(m[1]!);
  return r;
}
/** The same without the harness's 5xx rule, for answers that are meant to be 5xx (504). */
async function raw(method: string, path: string, body?: unknown): Promise<Reply> {
  const res = await fetch(agent!.url + path, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  answers++;
  noKey(`the answer to ${method} ${path}`, text);
  let parsed: any = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    /* text */
  }
  return { status: res.status, body: parsed, text };
}
const get = (p: string) => call('GET', p);
const post = (p: string, b: unknown) => call('POST', p, b);
const del = (p: string) => call('DELETE', p);
const patch = (p: string) => call('PATCH', p);

async function startAgent(): Promise<TestAgent> {
  if (agent) outputs.push(agent.output);
  agent = await new TestAgent(runDir).start();
  return agent;
}

const waitState = async (id: number, want: string[], ms = 15_000) => {
  const end = Date.now() + ms;
  for (;;) {
    const c = (await get(`/container?id=${id}`)).body[0];
    if (want.includes(c.state)) return c;
    if (Date.now() > end) assert.fail(`container ${id} is ${c.state}, wanted ${want.join('|')}`);
    await sleep(100);
  }
};

/** Regular files under `dir`, not descending into mount points (mounted images, the FUSE mount). */
function filesUnder(dir: string): string[] {
  const mounted = new Set(mountsUnder(dir));
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d)) {
      const p = join(d, e);
      const st = lstatSync(p);
      if (st.isDirectory()) {
        if (!mounted.has(p)) walk(p);
      } else if (st.isFile()) out.push(p);
    }
  };
  if (existsSync(dir)) walk(dir);
  return out;
}

/** Files under the run-dir holding the key, but for the 0600 keyrings of rbd-fuse instances (asserted 0600). */
function filesWithKey(): string[] {
  const out: string[] = [];
  for (const f of filesUnder(realRunDir)) {
    if (f.startsWith(join(realRunDir, 'rbd-fuse') + '/') && f.endsWith('/keyring')) {
      assert.equal(statSync(f).mode & 0o777, 0o600, `${f} is 0600`);
      continue;
    }
    if (readFileSync(f, 'utf8').includes(KEY)) out.push(f.slice(realRunDir.length + 1));
  }
  return out;
}
const keyrings = () => filesUnder(realRunDir).filter((f) => f.endsWith('/keyring'));

/** TestAgent.stop() waits forever for an agent killed by a signal (its exitCode stays null). */
const alive = (a: TestAgent) => a.proc.exitCode === null && a.proc.signalCode === null;

/** After a failed test: delete whatever it left through the API, so one failure does not cascade. */
async function reset(): Promise<void> {
  if (!agent || !alive(agent) || skipReason) return;
  for (const c of (await raw('GET', '/container')).body ?? []) await raw('DELETE', `/container?id=${c.id}&force=true`);
  for (const m of (await raw('GET', '/mount')).body ?? []) if (m.refs > 0) await raw('DELETE', `/mount?id=${m.id}&force=true`);
  for (const a of (await raw('GET', '/attach')).body ?? []) await raw('DELETE', `/attach?id=${a.id}&force=true`);
}

/** Nothing of any object left: API lists empty, no mount, loop, rbd-fuse, keyring or instance file. */
async function assertClean(what: string): Promise<void> {
  assert.deepEqual((await get('/container')).body, [], `${what}: no container`);
  assert.deepEqual((await get('/mount')).body, [], `${what}: no mount`);
  assert.deepEqual((await get('/attach')).body, [], `${what}: no attachment`);
  assert.deepEqual(await leftovers(realRunDir), [], `${what}: nothing left under the run-dir`);
  assert.deepEqual(mountsUnder(runDir), [], `${what}: no mount under the run-dir`);
  assert.deepEqual(loopsOver(realRunDir + '/'), [], `${what}: no loop device over a file of the run-dir`);
  assert.deepEqual(await fuseProcsUnder(realRunDir), [], `${what}: no rbd-fuse`);
  assert.deepEqual(
    filesUnder(realRunDir).filter((f) => f.endsWith('keyring')),
    [],
    `${what}: no keyring file`,
  );
}

before(
  async () => {
    skipReason = await cephSkipReason();
    if (skipReason) {
      process.stderr.write(`\n#\n# RBD WALKTHROUGH TESTS SKIPPED: ${skipReason}\n#\n`);
      return;
    }
    cluster = await startCluster();
    process.stderr.write(`# ceph cluster up in ${cluster.startMs} ms (${cluster.dir})\n`);
    KEY = cluster.env.CEPH_ADMIN_KEY!;
    assert.ok(KEY.length > 20, 'the fixture exposes the admin key');
    sqshFile = busyboxImage();
    await sh('bash', [cluster.script, 'import', cluster.dir, sqshFile, IMAGE], 60_000);
    await sh('bash', [cluster.script, 'import', cluster.dir, sqshFile, IMAGE2], 60_000);
    runDir = TestAgent.newRunDir();
    realRunDir = realpathSync(runDir);
    await startAgent();
  },
  { timeout: 900_000 },
);

after(
  async () => {
    if (agent) {
      await reset().catch(() => undefined);
      if (alive(agent)) await agent.stop();
      outputs.push(agent.output);
    }
    if (runDir) {
      // Loops over rbd-fuse files first: once forceCleanup has lazily unmounted the FUSE mount,
      // their backing file no longer names the run-dir and they would be missed (and leak).
      for (const l of loopsOver(realRunDir + '/')) await sh('losetup', ['-d', l.split(' ')[0]!]).catch(() => undefined);
      forceCleanup(runDir, realRunDir);
      // What forceCleanup does not know: rbd-fuse daemons (their argv names the run-dir's real path).
      for (const p of await fuseProcsUnder(realRunDir)) process.kill(p, 'SIGKILL');
      if (existsSync(runDir) && mountsUnder(realRunDir).length === 0) rmSync(runDir, { recursive: true, force: true });
    }
    await stopCluster(cluster);
    if (sqshFile) rmSync(dirname(sqshFile), { recursive: true, force: true });
    if (skipReason) return;
    // Nothing of the run-dir remains, and the key never reached any agent's output.
    assert.equal(existsSync(runDir), false, `${runDir} removed`);
    assert.deepEqual(mountsUnder(realRunDir), []);
    assert.deepEqual(loopsOver(realRunDir + '/'), []);
    assert.deepEqual(await fuseProcsUnder(realRunDir), []);
    assert.deepEqual(processesWith(realRunDir), []);
    // A loop device whose FUSE mount was lazily unmounted shows its backing file as "/<image>".
    const stale = [...devices].filter((d) => {
      const b = existsSync(`/sys/block/${d.slice(5)}/loop/backing_file`) ? readFileSync(`/sys/block/${d.slice(5)}/loop/backing_file`, 'utf8').trim() : '';
      return b.startsWith(realRunDir + '/') || b === `/${IMAGE}` || b === `/${IMAGE2}`;
    });
    assert.deepEqual(stale, [], 'no loop device of an RBD attachment left');
    if (cluster) assert.equal((await sh('pgrep', ['-f', cluster.dir]).catch(() => '')).trim(), '', 'ceph daemons stopped');
    for (const o of outputs) noKey("an agent's output", o);
    process.stderr.write(`# ${answers} answers checked for the key\n`);
  },
  { timeout: 120_000 },
);

describe('RBD through the API on a real cluster (rbd-fuse path)', { concurrency: false }, () => {
  afterEach(reset);

  test('walkthrough A verbatim on the typed routes: attach, mount, overlay, container, ordered teardown; the key nowhere', async (t) => {
    if (skipIfNoCeph(t)) return;
    const t0 = Date.now();
    const a = await post('/attach/rbd', { monitors: ['127.0.0.1'], pool: 'rbd', image: IMAGE, options: { ro: true, name: 'admin', secret: KEY } });
    t.diagnostic(`POST /attach/rbd (starts rbd-fuse) took ${Date.now() - t0} ms`);
    assert.equal(a.status, 201, a.text);
    assert.equal(a.body.id, 0);
    assert.equal(a.body.image, IMAGE);
    assert.deepEqual(a.body.monitors, ['127.0.0.1']);
    assert.equal(a.body.pool, 'rbd');
    assert.deepEqual(a.body.options, { ro: true, name: 'admin', secret: '<redacted>' });
    assert.match(a.body.device_file, /^\/dev\/loop\d+$/);
    assert.ok(existsSync(a.body.device_file), 'the device file exists');
    assert.equal(readFileSync(`/sys/block/${a.body.device_file.slice(5)}/ro`, 'utf8').trim(), '1', 'read-only device');
    assert.deepEqual(loopsOver(join(realRunDir, 'rbd-fuse') + '/').length, 1, 'one loop over the rbd-fuse file');
    assert.equal((await fuseProcsUnder(realRunDir)).length, 1, 'one rbd-fuse for the run-dir');

    // While attached: the key is in no process's arguments and in no file but the 0600 keyring.
    const ps = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' });
    noKey('ps -eo args', ps);
    assert.equal(keyrings().length, 1, 'one keyring');
    const leaking = new Set(filesWithKey());
    assert.equal((await get('/attach/rbd/0')).body.options.secret, '<redacted>');

    const m = await post('/mount/rbd', { id: 0, fs_type: 'squashfs', mount_options: ['ro'] });
    assert.equal(m.status, 201, m.text);
    assert.equal(m.body.fs_type, 'squashfs');
    assert.equal(typeof m.body.id, 'number');
    assert.deepEqual(m.body.mount_options, ['ro']);
    assert.match(m.body.mountpoint, new RegExp(`^${runDir}/mounts/mount_\\d+$`));
    assert.equal(readFileSync(join(m.body.mountpoint, 'etc/hostname'), 'utf8').trim(), 'imageapi-test', "the image's root is visible");
    assert.ok(existsSync(join(m.body.mountpoint, 'bin/busybox')));

    const o = await post('/mount/overlay', { lower: [m.body.id] });
    assert.equal(o.status, 201, o.text);
    assert.equal(o.body.id, 1);
    assert.deepEqual(o.body.lower, [m.body.id]);
    for (const f of ['mountpoint', 'upperdir', 'workdir']) assert.equal(typeof o.body[f], 'string', f);
    execFileSync('sh', ['-c', `echo hello > ${join(o.body.mountpoint, 'etc/written-by-test')}`]);
    assert.equal(readFileSync(join(o.body.mountpoint, 'etc/written-by-test'), 'utf8'), 'hello\n', 'the overlay is writable');
    assert.ok(!existsSync(join(m.body.mountpoint, 'etc/written-by-test')), 'the image underneath is untouched');

    const c = await post('/container', { mount: { id: 1, kind: 'overlay' }, command: '/bin/sh -c "exec sleep 1000"', state: 'created', systemd: true, stop_timeout: 1 });
    assert.equal(c.status, 201, c.text);
    assert.equal(c.body.id, 0);
    assert.equal(c.body.state, 'created');
    for (const f of ['command', 'logfile', 'mount', 'namespaces', 'systemd']) assert.ok(f in c.body, f);
    assert.match(c.body.logfile, new RegExp(`^${runDir}/logs/0-\\d+\\.log$`));

    const r = await get('/container/0/running');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.state, 'running');
    assert.ok(r.body.pid > 1, 'the pid is in the answer');
    assert.match(nsenter(r.body.pid, 'ps', '-o', 'pid,args'), /^\s*1\s+sleep 1000$/m, 'the command is PID 1');
    const list = await get('/container');
    assert.equal(list.body.length, 1);
    assert.equal(list.body[0].state, 'running');
    noKey('ps -eo args (container running)', execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' }));
    for (const f of filesWithKey()) leaking.add(f);

    // Teardown in the walkthrough's order, each 204.
    assert.equal((await del('/container/0')).status, 204, 'DELETE /container/0 (running: stopped first)');
    noKey('the container log', readFileSync(c.body.logfile, 'utf8'));
    assert.equal((await del('/mount/overlay/1')).status, 204);
    assert.equal((await del(`/mount/rbd/${m.body.id}`)).status, 204);
    const t1 = Date.now();
    assert.equal((await del('/attach/rbd/0')).status, 204);
    t.diagnostic(`DELETE /attach/rbd/0 (stops rbd-fuse) took ${Date.now() - t1} ms`);
    await assertClean('after the walkthrough teardown');
    noKey("the agent's output", agent!.output);
    for (const f of filesWithKey()) leaking.add(f);
    assert.deepEqual([...leaking], [], 'files under the run-dir holding the key (only the 0600 keyring may)');
  });

  test('the typed routes under /imageapi/v1 too; GET lists of RBD attachments and mounts', async (t) => {
    if (skipIfNoCeph(t)) return;
    const B = '/imageapi/v1';
    const a = await post(`${B}/attach/rbd`, rbdSpec(IMAGE2));
    assert.equal(a.status, 201, a.text);
    assert.equal(a.body.options.secret, '<redacted>');
    const m = await post(`${B}/mount/rbd`, { id: a.body.id, fs_type: 'squashfs', mount_options: ['ro'] });
    assert.equal(m.status, 201, m.text);
    assert.ok(existsSync(join(m.body.mountpoint, 'bin/busybox')));
    const la = (await get(`${B}/attach/rbd`)).body;
    assert.deepEqual(la.map((x: { id: number }) => x.id), [a.body.id]);
    assert.equal(la[0].refs, 2, 'the user and the mount');
    assert.equal(la[0].options.secret, '<redacted>');
    const lm = (await get(`${B}/mount/rbd`)).body;
    assert.deepEqual(lm.map((x: { id: number }) => x.id), [m.body.id]);
    assert.equal((await get(`${B}/mount/rbd/${m.body.id}`)).body.mountpoint, m.body.mountpoint);
    const refused = await del(`${B}/attach/rbd/${a.body.id}`);
    assert.equal(refused.status, 409, 'in use by the mount');
    assert.equal((await del(`${B}/mount/rbd/${m.body.id}`)).status, 204);
    assert.equal((await del(`${B}/attach/rbd/${a.body.id}`)).status, 204);
    assert.equal((await get(`${B}/attach/rbd/${a.body.id}`)).status, 404);
    await assertClean('after the typed routes under the base path');
  });

  test('v0.1 nesting in one POST /container; stopped and deleted by name, everything goes', async (t) => {
    if (skipIfNoCeph(t)) return;
    const t0 = Date.now();
    const c = await post('/container', {
      mount: {
        kind: 'overlay',
        overlay: { lower: [{ kind: 'rbd', rbd: { fs_type: 'squashfs', mount_options: ['ro'], rbd: rbdSpec(IMAGE) } }] },
      },
      command: 'sleep 1000',
      systemd: false,
      name: IMAGE,
      state: 'running',
      stop_timeout: 1,
    });
    t.diagnostic(`nested POST /container (rbd-fuse, loop, squashfs, overlay, start) took ${Date.now() - t0} ms`);
    assert.equal(c.status, 201, c.text);
    assert.equal(c.body.state, 'running');
    assert.equal(c.body.name, IMAGE);
    assert.ok(c.body.pid > 1);
    assert.match(nsenter(c.body.pid, 'cat', '/etc/hostname'), /imageapi-test/);
    const atts = (await get('/attach?kind=rbd')).body;
    assert.equal(atts.length, 1);
    assert.equal(atts[0].rbd.image, IMAGE);
    assert.equal(atts[0].rbd.options.secret, '<redacted>');
    assert.equal(atts[0].refs, 1, 'held by the squashfs mount only');
    assert.equal((await get('/mount')).body.length, 2, 'the squashfs mount and the overlay');
    assert.equal((await get(`/container/byname/${IMAGE}`)).body.id, c.body.id);

    const p = await patch(`/container?name=${IMAGE}&state=exited`);
    assert.equal(p.status, 200, p.text);
    assert.ok(['stopping', 'exited'].includes(p.body.state), p.body.state);
    assert.equal((await waitState(c.body.id, ['exited', 'dead'])).state, 'exited');
    const d = await del(`/container?name=${IMAGE}`);
    assert.equal(d.status, 200, d.text);
    assert.equal(d.body.name, IMAGE);
    noKey('the container log', readFileSync(c.body.logfile, 'utf8'));
    await assertClean('after deleting the nested container');
  });

  test('v0.2 RBD form of walkthrough B: the orchestrator sequence under 1 s polling', async (t) => {
    if (skipIfNoCeph(t)) return;
    const spec = {
      name: IMAGE2,
      command: 'sleep 1000',
      state: 'running',
      stop_timeout: 1,
      mount: {
        kind: 'overlay',
        overlay: {
          lower: [
            {
              kind: 'attach',
              attach: {
                fs_type: 'squashfs',
                mount_options: ['ro'],
                attach: { kind: 'rbd', rbd: { image: IMAGE2, monitors: ['127.0.0.1'], options: { name: 'admin', ro: true, secret: KEY }, pool: 'rbd' } },
              },
            },
          ],
        },
      },
    };
    const c = await post('/imageapi/v1/container', spec);
    assert.equal(c.status, 201, c.text);
    assert.equal(c.body.state, 'running');
    const list = await get('/imageapi/v1/container');
    assert.equal(list.body.find((x: { name: string }) => x.name === IMAGE2).state, 'running');
    assert.deepEqual((await get('/imageapi/v1/container?state=running')).body.map((x: { id: number }) => x.id), [c.body.id]);
    const atts = (await get('/imageapi/v1/attach?kind=rbd')).body;
    assert.equal(atts.length, 1);
    assert.equal(atts[0].rbd.image, IMAGE2);
    assert.equal(atts[0].rbd.options.secret, '<redacted>');
    const overlay = (await get(`/imageapi/v1/mount?id=${c.body.mount.id}`)).body[0];
    assert.equal(overlay.kind, 'overlay');
    assert.equal(overlay.overlay.lower[0].attach.attach.rbd.options.secret, '<redacted>', 'redacted in the nested view too');

    const p = await patch(`/imageapi/v1/container?name=${IMAGE2}&state=exited`);
    assert.equal(p.status, 200, p.text);
    assert.ok(['stopping', 'exited'].includes(p.body.state));
    const seen: string[] = [];
    for (let i = 0; i < 10; i++) {
      const s = (await get('/imageapi/v1/container')).body.find((x: { name: string }) => x.name === IMAGE2).state;
      seen.push(s);
      if (s === 'exited') break;
      await sleep(1000);
    }
    assert.equal(seen[seen.length - 1], 'exited', seen.join(','));
    assert.ok(!seen.includes('dead'));
    const d = await del(`/imageapi/v1/container?name=${IMAGE2}`);
    assert.equal(d.status, 200, d.text);
    assert.equal(d.body.name, IMAGE2);
    await assertClean('after walkthrough B');
  });

  test('two containers on overlays of one RBD squashfs mount share one attachment', async (t) => {
    if (skipIfNoCeph(t)) return;
    const m = await post('/mount', { kind: 'attach', attach: { fs_type: 'squashfs', mount_options: ['ro'], attach: { kind: 'rbd', rbd: rbdSpec(IMAGE) } } });
    assert.equal(m.status, 201, m.text);
    assert.equal(m.body.refs, 1, 'the user');
    const aid = m.body.attach.attach.id;
    assert.equal(typeof aid, 'number');
    const containers = [];
    for (const name of ['shared-a', 'shared-b']) {
      const c = await post('/container', { name, command: 'sleep 1000', state: 'running', stop_timeout: 1, mount: { kind: 'overlay', overlay: { lower: [{ id: m.body.id }] } } });
      assert.equal(c.status, 201, c.text);
      containers.push(c.body);
    }
    assert.notEqual(containers[0].pid, containers[1].pid);
    const atts = (await get('/attach?kind=rbd')).body;
    assert.equal(atts.length, 1, 'exactly one RBD attachment');
    assert.equal(atts[0].id, aid);
    assert.equal(atts[0].refs, 1, 'the attachment is held by the squashfs mount only');
    assert.equal((await get(`/mount?id=${m.body.id}`)).body[0].refs, 3, 'the mount: the user and the two overlays');
    assert.equal((await get('/mount?kind=overlay')).body.length, 2);
    assert.equal((await fuseProcsUnder(realRunDir)).length, 1, 'one rbd-fuse');
    assert.equal(loopsOver(join(realRunDir, 'rbd-fuse') + '/').length, 1, 'one loop device');

    for (const c of containers) {
      const d = await del(`/container?id=${c.id}&force=true`);
      assert.equal(d.status, 200, d.text);
    }
    // The overlays went with their containers; the user's mount (and the attachment it defined) remain.
    assert.deepEqual((await get('/container')).body, []);
    const left = (await get('/mount')).body;
    assert.deepEqual(left.map((x: { id: number }) => x.id), [m.body.id]);
    assert.equal(left[0].refs, 1);
    const atts2 = (await get('/attach?kind=rbd')).body;
    assert.equal(atts2.length, 1);
    assert.equal(atts2[0].id, aid);
    assert.equal(atts2[0].refs, 1);
    assert.ok(existsSync(join(m.body.mountpoint, 'bin/busybox')), 'still mounted');
    assert.equal((await fuseProcsUnder(realRunDir)).length, 1);

    // The attachment is the mount's: refused on its own, gone with it.
    const refused = await del(`/attach?id=${aid}`);
    assert.equal(refused.status, 409, refused.text);
    const dm = await del(`/mount?id=${m.body.id}`);
    assert.equal(dm.status, 200, dm.text);
    await assertClean('after deleting the shared mount');
  });

  test('a top-level RBD attachment stays until deleted when its mount goes', async (t) => {
    if (skipIfNoCeph(t)) return;
    const a = await post('/attach', { kind: 'rbd', rbd: rbdSpec(IMAGE) });
    assert.equal(a.status, 201, a.text);
    assert.equal(a.body.refs, 1);
    const m = await post('/mount', { kind: 'attach', attach: { fs_type: 'squashfs', mount_options: ['ro'], attach: { id: a.body.id } } });
    assert.equal(m.status, 201, m.text);
    assert.equal((await get(`/attach?id=${a.body.id}`)).body[0].refs, 2, 'the user and the mount');
    assert.equal((await del(`/mount?id=${m.body.id}`)).status, 200);
    const still = (await get('/attach?kind=rbd')).body;
    assert.deepEqual(still.map((x: { id: number }) => x.id), [a.body.id]);
    assert.equal(still[0].refs, 1);
    assert.equal((await fuseProcsUnder(realRunDir)).length, 1);
    const d = await del(`/attach?id=${a.body.id}`);
    assert.equal(d.status, 200, d.text);
    await assertClean('after deleting the top-level attachment');
  });

  describe('failures through the API leave nothing', { concurrency: false }, () => {
    test('wrong key: 4xx naming authentication', async (t) => {
      if (skipIfNoCeph(t)) return;
      const wrong = otherKey(KEY);
      const r = await post('/attach/rbd', rbdSpec(IMAGE, { secret: wrong, mount_timeout: 3 }));
      assert.ok(r.status >= 400 && r.status < 500, `${r.status}: ${r.text}`);
      t.diagnostic(`${r.status}: ${r.body.message}`);
      assert.match(r.body.message, /authentication/);
      assert.ok(!r.text.includes(wrong), 'the given key is not echoed');
      await assertClean('after a wrong key');
    });

    test('unknown image: 404', async (t) => {
      if (skipIfNoCeph(t)) return;
      const r = await post('/attach/rbd', rbdSpec('no-such-image'));
      assert.equal(r.status, 404, r.text);
      t.diagnostic(r.body.message);
      assert.match(r.body.message, /no-such-image/);
      await assertClean('after an unknown image');
    });

    test('unreachable monitor: 504 within a few seconds', async (t) => {
      if (skipIfNoCeph(t)) return;
      const t0 = Date.now();
      const r = await raw('POST', '/attach/rbd', rbdSpec(IMAGE, { mount_timeout: 2 }, { monitors: ['127.0.0.77'] }));
      const ms = Date.now() - t0;
      t.diagnostic(`504 after ${ms} ms: ${r.body?.message}`);
      assert.equal(r.status, 504, r.text);
      assert.match(r.body.message, /127\.0\.0\.77/);
      assert.ok(ms < 5000, `answered after ${ms} ms`);
      await assertClean('after an unreachable monitor');
    });

    test('the same image twice: 409, the first unharmed', async (t) => {
      if (skipIfNoCeph(t)) return;
      const a = await post('/attach/rbd', rbdSpec(IMAGE));
      assert.equal(a.status, 201, a.text);
      const again = await post('/attach/rbd', rbdSpec(IMAGE));
      assert.equal(again.status, 409, again.text);
      t.diagnostic(again.body.message);
      assert.match(again.body.message, new RegExp(IMAGE.replace('.', '\\.')));
      const generic = await post('/attach', { kind: 'rbd', rbd: rbdSpec(IMAGE) });
      assert.equal(generic.status, 409, generic.text);
      const atts = (await get('/attach?kind=rbd')).body;
      assert.deepEqual(atts.map((x: { id: number }) => x.id), [a.body.id]);
      assert.equal(atts[0].device_file, a.body.device_file);
      assert.equal((await fuseProcsUnder(realRunDir)).length, 1);
      assert.equal(readFileSync(a.body.device_file).subarray(0, 4).toString('latin1'), 'hsqs', 'still the squashfs');
      assert.equal((await del(`/attach/rbd/${a.body.id}`)).status, 204);
      await assertClean('after the conflict');
    });
  });

  test('a snapshot: 501 on the rbd-fuse path, with the reason, nothing left', async (t) => {
    if (skipIfNoCeph(t)) return;
    await rbdAdmin(cluster!, ['snap', 'create', `rbd/${IMAGE2}@snap1`]);
    assert.match(await rbdAdmin(cluster!, ['snap', 'ls', `rbd/${IMAGE2}`]), /snap1/);
    const r = await post('/attach', { kind: 'rbd', rbd: rbdSpec(IMAGE2, {}, { snapshot: 'snap1' }) });
    assert.equal(r.status, 501, r.text);
    t.diagnostic(r.body.message);
    assert.match(r.body.message, /snapshot "snap1"/);
    assert.match(r.body.message, /rbd-fuse/);
    await assertClean('after the snapshot refusal');
  });

  test('kill -9 of the agent with an RBD-backed container running: adopted by a new agent, then stopped', async (t) => {
    if (skipIfNoCeph(t)) return;
    const c = await post('/container', {
      name: 'rbd-survivor',
      command: 'sleep 1000',
      state: 'running',
      stop_timeout: 1,
      mount: { kind: 'overlay', overlay: { lower: [{ kind: 'attach', attach: { fs_type: 'squashfs', mount_options: ['ro'], attach: { kind: 'rbd', rbd: rbdSpec(IMAGE) } } }] } },
    });
    assert.equal(c.status, 201, c.text);
    const before = (await get('/attach?kind=rbd')).body;
    assert.equal(before.length, 1);
    const fuse = await fuseProcsUnder(realRunDir);
    assert.equal(fuse.length, 1);

    await agent!.kill9();
    await sleep(200);
    assert.ok(existsSync(`/proc/${c.body.pid}`), 'the container runs without the agent');
    assert.deepEqual(await fuseProcsUnder(realRunDir), fuse, 'rbd-fuse outlives the agent');

    const t0 = Date.now();
    await startAgent();
    t.diagnostic(`restart with adoption took ${Date.now() - t0} ms`);
    const found = (await get(`/container?id=${c.body.id}`)).body[0];
    assert.equal(found.name, 'rbd-survivor');
    assert.equal(found.state, 'running');
    assert.equal(found.pid, c.body.pid);
    const after = (await get('/attach?kind=rbd')).body;
    assert.equal(after.length, 1);
    assert.equal(after[0].id, before[0].id, 'same attachment id');
    assert.equal(after[0].device_file, before[0].device_file, 'same device file');
    assert.equal(after[0].rbd.options.secret, '<redacted>');
    assert.match(nsenter(c.body.pid, 'cat', '/etc/hostname'), /imageapi-test/, 'the image is still readable');

    const p = await patch('/container?name=rbd-survivor&state=exited');
    assert.equal(p.status, 200, p.text);
    assert.equal((await waitState(c.body.id, ['exited', 'dead'])).state, 'exited');
    assert.ok(!existsSync(`/proc/${c.body.pid}`));
    const d = await del('/container?name=rbd-survivor');
    assert.equal(d.status, 200, d.text);
    await assertClean('after the adopted container is deleted');
  });
});
