// The RBD driver against a real one-node Ceph cluster (started here through
// test/fixtures/ceph-cluster.sh). This host has no kernel RBD and no nbd, so `auto` is the
// rbd-fuse path: rbd-fuse exposes the image as a file, a loop device makes it a block device.
import assert from 'node:assert/strict';
import { mkdtemp, open, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import type { Attached, DriverContext } from '../../src/attach/driver.js';
import { rbdDriver } from '../../src/attach/rbd/index.js';
import type { RbdOptions, RbdSpec } from '../../src/attach/rbd/types.js';
import { AgentError } from '../../src/model/errors.js';
import {
  type Cluster,
  cephSkipReason,
  fixturesDir,
  fuseProcsUnder,
  leftovers,
  makeCtx,
  otherKey,
  randomKey,
  rbdAdmin,
  scrub,
  sh,
  startCluster,
  stopCluster,
} from './cluster-fixture.js';

let skipReason: string | undefined;
let cluster: Cluster | undefined;
let work: string | undefined;
let image: Buffer;
const runDirs: string[] = [];

function skipIfNoCeph(t: TestContext): boolean {
  if (!skipReason) return false;
  t.skip(`SKIPPED, no Ceph cluster possible here: ${skipReason}`);
  return true;
}

async function ctx(config: Record<string, unknown> = {}): Promise<DriverContext> {
  const c = await makeCtx(undefined, config);
  runDirs.push(c.runDir);
  return c;
}

function spec(img: string, options: RbdOptions = {}, over: Partial<RbdSpec> = {}): RbdSpec {
  return {
    monitors: ['127.0.0.1'],
    pool: 'rbd',
    image: img,
    ...over,
    options: { name: 'admin', secret: cluster!.env.CEPH_ADMIN_KEY!, ...options },
  };
}

async function readDev(dev: string, len: number): Promise<Buffer> {
  const fh = await open(dev, 'r');
  try {
    const buf = Buffer.alloc(len);
    const { bytesRead } = await fh.read(buf, 0, len, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

async function assertClean(runDir: string): Promise<void> {
  assert.deepEqual(await leftovers(runDir), [], 'nothing left behind');
}

/** Expect attach to fail with `kind` (and `msg`) within `withinMs`, leaving nothing behind. */
async function expectFailure(s: RbdSpec, kind: AgentError['kind'], msg: RegExp, withinMs: number, t: TestContext) {
  const c = await ctx();
  const t0 = Date.now();
  let err: unknown;
  try {
    const a = await rbdDriver.attach(s, {}, c);
    await rbdDriver.detach(s, a, c).catch(() => undefined);
  } catch (e) {
    err = e;
  }
  const ms = Date.now() - t0;
  t.diagnostic(`failed in ${ms} ms: ${(err as Error | undefined)?.message}`);
  assert.ok(err instanceof AgentError, `expected an AgentError, got ${String(err)}`);
  assert.equal(err.kind, kind, err.message);
  assert.match(err.message, msg);
  assert.ok(!err.message.includes(cluster!.env.CEPH_ADMIN_KEY!), 'the key is not in the message');
  if (s.options?.secret) assert.ok(!err.message.includes(s.options.secret), 'the given key is not in the message');
  assert.ok(ms <= withinMs, `took ${ms} ms, more than ${withinMs} ms`);
  await assertClean(c.runDir);
}

before(
  async () => {
    skipReason = await cephSkipReason();
    if (skipReason) {
      process.stderr.write(`\n#\n# RBD CLUSTER TESTS SKIPPED: ${skipReason}\n#\n`);
      return;
    }
    cluster = await startCluster();
    process.stderr.write(`# ceph cluster up in ${cluster.startMs} ms (${cluster.dir})\n`);
    work = await mkdtemp('/tmp/imageapi-rbd-work-');
    const sqsh = join(work, 'busybox.sqsh');
    await sh('bash', [join(await fixturesDir(), 'busybox-image.sh'), sqsh], 120_000);
    image = await readFile(sqsh);
    await sh('bash', [cluster.script, 'import', cluster.dir, sqsh, 'bb1'], 60_000);
    await sh('bash', [cluster.script, 'import', cluster.dir, sqsh, 'bb2'], 60_000);
    await rbdAdmin(cluster, ['snap', 'create', 'rbd/bb1@s1']);
    await rbdAdmin(cluster, ['namespace', 'create', 'rbd/ns1']);
    await rbdAdmin(cluster, ['import', '--no-progress', sqsh, 'rbd/ns1/nsimg']);
    await rbdAdmin(cluster, ['create', '--size', '8M', 'rbd/scratch']);
  },
  { timeout: 900_000 },
);

after(
  async () => {
    for (const d of runDirs) await scrub(d).catch(() => undefined);
    if (work) await rm(work, { recursive: true, force: true });
    await stopCluster(cluster);
    if (cluster) {
      const left = (await sh('pgrep', ['-f', cluster.dir]).catch(() => '')).trim();
      assert.equal(left, '', `ceph processes left: ${left}`);
    }
  },
  { timeout: 120_000 },
);

describe('rbd through rbd-fuse on a real cluster', { concurrency: false }, () => {
  test('read-only attach: a loop device with the imported image, mountable', async (t) => {
    if (skipIfNoCeph(t)) return;
    const c = await ctx();
    const s = spec('bb1', { ro: true });
    const t0 = Date.now();
    const a = await rbdDriver.attach(s, {}, c);
    const ms = Date.now() - t0;
    t.diagnostic(`attach (first, starts rbd-fuse) took ${ms} ms`);
    process.stderr.write(`# rbd attach (starting rbd-fuse) took ${ms} ms\n`);
    try {
      assert.match(a.device_file, /^\/dev\/loop\d+$/);
      assert.equal(a.state.mode, 'fuse');
      assert.equal(a.state.readonly, true);
      const name = a.device_file.slice('/dev/'.length);
      assert.equal((await readFile(`/sys/block/${name}/ro`, 'utf8')).trim(), '1');
      assert.ok((await readDev(a.device_file, image.length)).equals(image), 'device content = imported squashfs');

      // The filesystem on it mounts (read-only) and shows the busybox tree.
      if ((await readFile('/proc/filesystems', 'utf8')).includes('squashfs')) {
        const mnt = await mkdtemp('/tmp/imageapi-rbd-mnt-');
        try {
          await sh('mount', ['-t', 'squashfs', '-o', 'ro', a.device_file, mnt]);
          try {
            assert.equal((await readFile(join(mnt, 'etc/hostname'), 'utf8')).trim(), 'imageapi-test');
            assert.ok((await stat(join(mnt, 'bin/busybox'))).isFile());
          } finally {
            await sh('umount', [mnt]);
          }
        } finally {
          await rm(mnt, { recursive: true, force: true });
        }
      }

      // The key: a 0600 keyring file only; never in rbd-fuse's argv or environment.
      const dir = a.state.dir as string;
      assert.equal((await stat(join(dir, 'keyring'))).mode & 0o777, 0o600);
      assert.equal((await stat(join(dir, 'ceph.conf'))).mode & 0o777, 0o600);
      assert.equal((await stat(dir)).mode & 0o777, 0o700);
      const key = cluster!.env.CEPH_ADMIN_KEY!;
      assert.ok(!(await readFile(join(dir, 'ceph.conf'), 'utf8')).includes(key));
      const procs = await fuseProcsUnder(c.runDir);
      assert.equal(procs.length, 1, 'one rbd-fuse');
      const pid = procs[0]!;
      assert.ok(!(await readFile(`/proc/${pid}/cmdline`)).toString().includes(key), 'key not in argv');
      assert.ok(!(await readFile(`/proc/${pid}/environ`)).toString().includes(key), 'key not in environ');
      assert.ok(!(await readFile(join(dir, 'client.log'), 'utf8').catch(() => '')).includes(key), 'key not in the log');
      // Detached: rbd-fuse leads its own session, not the agent's.
      const st = await readFile(`/proc/${pid}/stat`, 'utf8');
      const sid = Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[3]);
      assert.equal(sid, pid, 'rbd-fuse is a session leader');
      assert.notEqual(sid, Number((await readFile('/proc/self/stat', 'utf8')).split(') ')[1]!.split(' ')[3]));
    } finally {
      await rbdDriver.detach(s, a, c);
    }
    await assertClean(c.runDir);
  });

  test('two images share one rbd-fuse; detaching the first keeps the second; the last stops it', async (t) => {
    if (skipIfNoCeph(t)) return;
    const c = await ctx();
    const s1 = spec('bb1', { ro: true });
    const s2 = spec('bb2', { ro: true });
    const a1 = await rbdDriver.attach(s1, {}, c);
    let a2: Attached | undefined;
    try {
      const t0 = Date.now();
      a2 = await rbdDriver.attach(s2, {}, c);
      t.diagnostic(`attach (second, shared rbd-fuse) took ${Date.now() - t0} ms`);
      process.stderr.write(`# rbd attach (shared rbd-fuse) took ${Date.now() - t0} ms\n`);
      assert.equal(a1.state.dir, a2.state.dir, 'same instance');
      assert.notEqual(a1.device_file, a2.device_file);
      assert.equal((await fuseProcsUnder(c.runDir)).length, 1, 'one rbd-fuse for both');

      await rbdDriver.detach(s1, a1, c);
      assert.equal((await fuseProcsUnder(c.runDir)).length, 1, 'rbd-fuse still serves the second');
      assert.ok((await readDev(a2.device_file, image.length)).equals(image), 'second still readable');

      const t1 = Date.now();
      await rbdDriver.detach(s2, a2, c);
      t.diagnostic(`last detach (stops rbd-fuse) took ${Date.now() - t1} ms`);
      a2 = undefined;
      assert.deepEqual(await fuseProcsUnder(c.runDir), []);
      await assert.rejects(stat(a1.state.dir as string), 'the instance directory (keyring, conf) is gone');
    } finally {
      await rbdDriver.detach(s1, a1, c).catch(() => undefined);
      if (a2) await rbdDriver.detach(s2, a2, c).catch(() => undefined);
    }
    await assertClean(c.runDir);
  });

  test('the same image twice is a conflict; a failed attach leaves the shared instance alone', async (t) => {
    if (skipIfNoCeph(t)) return;
    const c = await ctx();
    const s = spec('bb1', { ro: true });
    const a = await rbdDriver.attach(s, {}, c);
    try {
      await assert.rejects(rbdDriver.attach(s, {}, c), (e: AgentError) => e.kind === 'ALREADY_EXISTS' && /bb1/.test(e.message));
      // Same image, monitors given differently (same set): still the same image.
      await assert.rejects(rbdDriver.attach({ ...s, monitors: ['127.0.0.1', '127.0.0.1'] }, {}, c), (e: AgentError) => e.kind === 'ALREADY_EXISTS');
      await assert.rejects(rbdDriver.attach(spec('missing', { ro: true }), {}, c), (e: AgentError) => e.kind === 'NOT_FOUND');
      assert.equal((await fuseProcsUnder(c.runDir)).length, 1);
      assert.ok((await readDev(a.device_file, image.length)).equals(image), 'first attachment unharmed');
    } finally {
      await rbdDriver.detach(s, a, c);
    }
    await assertClean(c.runDir);
  });

  test('adopt after an agent restart', async (t) => {
    if (skipIfNoCeph(t)) return;
    const c = await ctx();
    const s = spec('bb2', { ro: true });
    const a = await rbdDriver.attach(s, {}, c);
    // What the store persisted, read back by a new agent process with a fresh context.
    const persisted = JSON.parse(JSON.stringify({ spec: s, attached: a })) as { spec: RbdSpec; attached: Attached };
    const c2 = await makeCtx(c.runDir);
    try {
      const adopted = await rbdDriver.adopt(persisted.spec, persisted.attached, c2);
      assert.deepEqual(adopted, a);
      assert.ok((await readDev(a.device_file, image.length)).equals(image));
    } finally {
      await rbdDriver.detach(persisted.spec, persisted.attached, c2);
    }
    assert.equal(await rbdDriver.adopt(persisted.spec, persisted.attached, c2), null, 'gone after detach');
    await rbdDriver.detach(persisted.spec, persisted.attached, c2); // idempotent
    await assertClean(c.runDir);
  });

  test('adopt finds a dead rbd-fuse: null, and what was left is cleared', async (t) => {
    if (skipIfNoCeph(t)) return;
    const c = await ctx();
    const s = spec('bb1', { ro: true });
    const a = await rbdDriver.attach(s, {}, c);
    const [pid] = await fuseProcsUnder(c.runDir);
    assert.ok(pid);
    process.kill(pid, 'SIGKILL');
    for (let i = 0; i < 100 && (await fuseProcsUnder(c.runDir)).length; i++) await new Promise((r) => setTimeout(r, 50));
    const c2 = await makeCtx(c.runDir);
    assert.equal(await rbdDriver.adopt(s, JSON.parse(JSON.stringify(a)) as Attached, c2), null);
    await assertClean(c.runDir);
  });

  test('a namespace, and the cluster fsid checked', async (t) => {
    if (skipIfNoCeph(t)) return;
    const c = await ctx();
    const s = spec('nsimg', { ro: true, fsid: cluster!.env.CEPH_FSID! }, { namespace: 'ns1' });
    const a = await rbdDriver.attach(s, {}, c);
    try {
      assert.ok((await readDev(a.device_file, image.length)).equals(image));
    } finally {
      await rbdDriver.detach(s, a, c);
    }
    await assertClean(c.runDir);
    await expectFailure(
      spec('nsimg', { ro: true, fsid: '00000000-1111-2222-3333-444444444444' }, { namespace: 'ns1' }),
      'INVALID',
      /fsid/,
      10_000,
      t,
    );
  });

  test('read-write: writes through the loop device reach the image', async (t) => {
    if (skipIfNoCeph(t)) return;
    const c = await ctx();
    const s = spec('scratch', { mount_timeout: 5 });
    const a = await rbdDriver.attach(s, {}, c);
    const data = Buffer.alloc(65536, 0);
    data.write('imageapi rbd write test', 0);
    data.write('tail', 65536 - 4);
    try {
      assert.equal(a.state.readonly, false);
      const fh = await open(a.device_file, 'r+');
      try {
        await fh.write(data, 0, data.length, 4096);
        await fh.sync();
      } finally {
        await fh.close();
      }
    } finally {
      await rbdDriver.detach(s, a, c);
    }
    await assertClean(c.runDir);
    const out = join(work!, 'scratch.out');
    await rbdAdmin(cluster!, ['export', '--no-progress', 'rbd/scratch', out]);
    const exported = await readFile(out);
    assert.ok(exported.subarray(4096, 4096 + data.length).equals(data), 'the image holds the written bytes');
  });

  test('a snapshot cannot go through rbd-fuse (501), nothing left', async (t) => {
    if (skipIfNoCeph(t)) return;
    await expectFailure(spec('bb1', {}, { snapshot: 's1' }), 'UNSUPPORTED', /snapshot/, 1000, t);
  });

  test('kernel-only options are refused with the reason, nothing left', async (t) => {
    if (skipIfNoCeph(t)) return;
    await expectFailure(spec('bb1', { queue_depth: 64 }), 'INVALID', /queue_depth.*krbd/, 1000, t);
  });

  describe('failures: the right kind, within mount_timeout, nothing left behind', { concurrency: false }, () => {
    test('wrong key: 400 authentication failed', async (t) => {
      if (skipIfNoCeph(t)) return;
      const s = spec('bb1', { ro: true, mount_timeout: 3, secret: otherKey(cluster!.env.CEPH_ADMIN_KEY!) });
      await expectFailure(s, 'INVALID', /authentication failed for client\.admin/, 3500, t);
    });
    test('a fresh random key: 400 authentication failed', async (t) => {
      if (skipIfNoCeph(t)) return;
      await expectFailure(spec('bb1', { ro: true, mount_timeout: 3, secret: randomKey() }), 'INVALID', /authentication failed/, 3500, t);
    });
    test('unknown user: 400 authentication failed', async (t) => {
      if (skipIfNoCeph(t)) return;
      await expectFailure(spec('bb1', { ro: true, mount_timeout: 2, name: 'nobody' }), 'INVALID', /authentication failed/, 2500, t);
    });
    test('no key at all: 400 saying cephx is required', async (t) => {
      if (skipIfNoCeph(t)) return;
      const s: RbdSpec = { monitors: ['127.0.0.1'], pool: 'rbd', image: 'bb1', options: { ro: true, mount_timeout: 3 } };
      await expectFailure(s, 'INVALID', /cephx/, 3500, t);
    });
    test('unknown pool: 404 naming the pool', async (t) => {
      if (skipIfNoCeph(t)) return;
      await expectFailure(spec('bb1', { ro: true }, { pool: 'nopool' }), 'NOT_FOUND', /pool "nopool"/, 10_500, t);
    });
    test('unknown namespace: 404 naming it', async (t) => {
      if (skipIfNoCeph(t)) return;
      await expectFailure(spec('bb1', { ro: true }, { namespace: 'nons' }), 'NOT_FOUND', /namespace "nons"/, 10_500, t);
    });
    test('unknown image: 404 naming the image', async (t) => {
      if (skipIfNoCeph(t)) return;
      await expectFailure(spec('noimage', { ro: true }), 'NOT_FOUND', /image "noimage"/, 10_500, t);
    });
    test('unreachable monitor (unused loopback address): 504 naming it', async (t) => {
      if (skipIfNoCeph(t)) return;
      await expectFailure(
        spec('bb1', { ro: true, mount_timeout: 3 }, { monitors: ['127.0.0.77'] }),
        'TIMEOUT',
        /127\.0\.0\.77/,
        3500,
        t,
      );
    });
    test('unreachable monitor (closed port): 504 naming it', async (t) => {
      if (skipIfNoCeph(t)) return;
      await expectFailure(spec('bb1', { ro: true, mount_timeout: 2 }, { monitors: ['127.0.0.1:1'] }), 'TIMEOUT', /127\.0\.0\.1:1/, 2500, t);
    });
    test('unreachable monitor with the default mount_timeout: within 10 s', async (t) => {
      if (skipIfNoCeph(t)) return;
      await expectFailure(spec('bb1', { ro: true }, { monitors: ['127.0.0.77'] }), 'TIMEOUT', /within 10 s/, 10_500, t);
    });
  });
});
