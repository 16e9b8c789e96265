// Confinement and limits, checked from inside real containers (busybox on loop + squashfs +
// overlay, run by the native helper): the capability sets, no_new_privs and the seccomp filter in
// /proc/self/status; EPERM for reboot, mount, insmod and kexec; masked and read-only /proc and
// /sys paths; a memory hog ending `dead` out of memory; a fork bomb stopped at `pids`; a cpu
// quota against an unlimited loop in the same test; user namespaces (id 0 inside, a file owned by
// the mapped uid); env, working_dir, user and an argv command; limits in GET across a restart.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ALL_CAPS, DEFAULT_CAPS } from '../../src/container/spec.js';
import { groupName } from '../../src/sys/cgroups.js';
import { ROOT, TestAgent } from '../helpers/agent.js';
import { loopsOver, mountsUnder } from '../helpers/leaks.js';
import { unstamped } from '../helpers/logs.js';
import { agentSuite, imageStack } from '../helpers/suite.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const PROBE = join(ROOT, 'native/build/test/syscall-probe');
const V2 = existsSync('/sys/fs/cgroup/cgroup.controllers') ? '/sys/fs/cgroup' : '/sys/fs/cgroup/unified';

/** The capability mask of these names, as /proc/self/status prints it, within what this host has. */
function capMask(names: readonly string[]): string {
  const hostBnd = BigInt('0x' + /^CapBnd:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]);
  let m = 0n;
  for (const n of names) m |= 1n << BigInt(ALL_CAPS.indexOf(n as (typeof ALL_CAPS)[number]));
  return (m & hostBnd).toString(16).padStart(16, '0');
}

const statusField = (text: string, f: string) => new RegExp(`^${f}:\\s*(\\S+)$`, 'm').exec(text)?.[1];

/** usage_usec of a cgroup2 group's cpu.stat (always there, controller or not). */
const cpuUsage = (dir: string) => Number(/^usage_usec (\d+)$/m.exec(readFileSync(join(dir, 'cpu.stat'), 'utf8'))![1]);

describe('container confinement and limits', () => {
  const ctx = agentSuite();
  let scratch = '';
  before(() => {
    scratch = mkdtempSync(join(tmpdir(), 'imageapi-confine-'));
    assert.ok(existsSync(PROBE), `${PROBE} missing: make -C native test-build`);
  });

  const create = async (extra: Record<string, unknown>, status = 201) => {
    const r = await ctx.agent.post('/imageapi/v1/container', { stop_timeout: 1, mount: imageStack(ctx.image), ...extra });
    assert.equal(r.status, status, r.text);
    return r.body;
  };
  const get = async (id: number) => (await ctx.agent.get(`/imageapi/v1/container?id=${id}`)).body[0];
  const waitState = async (id: number, want: string[], ms = 20_000) => {
    const end = Date.now() + ms;
    for (;;) {
      const c = await get(id);
      if (want.includes(c.state)) return c;
      if (Date.now() > end) assert.fail(`container ${id} is ${c.state}, wanted ${want.join('|')}; log:\n${readFileSync(c.logfile, 'utf8')}`);
      await sleep(100);
    }
  };
  const remove = async (id: number) => {
    const d = await ctx.agent.del(`/imageapi/v1/container?id=${id}&force=true`);
    assert.equal(d.status, 200, d.text);
  };
  /** Run a command to its end; the container's answer and its output (the log without agent/init lines). */
  const runToEnd = async (extra: Record<string, unknown>) => {
    const c = await create({ state: 'running', ...extra });
    try {
      const end = await waitState(c.id, ['exited', 'dead']);
      const out = unstamped(readFileSync(end.logfile, 'utf8')).split('\n').filter((l) => !/^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d (init|container\(\d+\)):/.test(l)).join('\n');
      return { c: end, out };
    } finally {
      await remove(c.id);
    }
  };

  after(() => {
    rmSync(scratch, { recursive: true, force: true });
    assert.deepEqual(mountsUnder(ctx.runDir), []);
    assert.deepEqual(loopsOver(ctx.image), []);
  });

  it('defaults: the OCI capability set (effective = bounding), NoNewPrivs 1, Seccomp 2, shown in GET', async () => {
    const { c, out } = await runToEnd({ command: ['/bin/cat', '/proc/self/status'] });
    assert.equal(c.state, 'exited', out);
    const want = capMask(DEFAULT_CAPS);
    assert.equal(statusField(out, 'CapEff'), want, out);
    assert.equal(statusField(out, 'CapBnd'), want, out);
    assert.equal(statusField(out, 'CapPrm'), want, out);
    assert.equal(statusField(out, 'CapAmb'), '0000000000000000', out);
    assert.equal(statusField(out, 'NoNewPrivs'), '1', out);
    assert.equal(statusField(out, 'Seccomp'), '2', out);
    assert.deepEqual(c.capabilities, ALL_CAPS.filter((n) => DEFAULT_CAPS.includes(n)));
    assert.equal(c.privileged, false);
    assert.equal(c.no_new_privs, true);
    assert.equal(c.seccomp, 'default');
  });

  it('cap_add / cap_drop change the set; privileged keeps every capability, no filter, no no_new_privs', async () => {
    const a = await runToEnd({ command: '/bin/cat /proc/self/status', cap_add: ['CAP_NET_ADMIN', 'SYS_PTRACE'], cap_drop: ['CHOWN', 'KILL'], no_new_privs: false });
    const want = capMask([...DEFAULT_CAPS.filter((n) => n !== 'CHOWN' && n !== 'KILL'), 'NET_ADMIN', 'SYS_PTRACE']);
    assert.equal(statusField(a.out, 'CapEff'), want, a.out);
    assert.equal(statusField(a.out, 'CapBnd'), want, a.out);
    assert.equal(statusField(a.out, 'NoNewPrivs'), '0', a.out);
    const p = await runToEnd({ command: '/bin/cat /proc/self/status', privileged: true });
    assert.equal(statusField(p.out, 'CapEff'), capMask(ALL_CAPS), p.out);
    assert.equal(statusField(p.out, 'Seccomp'), '0', p.out);
    assert.equal(statusField(p.out, 'NoNewPrivs'), '0', p.out);
    const u = await runToEnd({ command: '/bin/cat /proc/self/status', seccomp: 'unconfined' });
    assert.equal(statusField(u.out, 'Seccomp'), '0', u.out);
    await create({ command: '/bin/true', privileged: true, cap_add: ['NET_ADMIN'] }, 400);
    await create({ command: '/bin/true', cap_add: ['NOT_A_CAP'] }, 400);
  });

  it('reboot, mount -t tmpfs, insmod and kexec fail with EPERM inside; not so when privileged', async () => {
    const script = [
      'reboot -f 2>&1; echo "reboot=$?"',
      'mount -t tmpfs none /mnt 2>&1; echo "mount=$?"',
      'insmod /bin/busybox 2>&1; echo "insmod=$?"',
      '/probe',
    ].join('; ');
    const withProbe = async (extra: Record<string, unknown>, cmd = script) => {
      const c = await create({ state: 'created', command: ['/bin/sh', '-c', cmd], ...extra });
      try {
        copyFileSync(PROBE, join(c.mount.mountpoint, 'probe')); // into the overlay's upper layer
        assert.equal((await ctx.agent.patch(`/imageapi/v1/container?id=${c.id}&state=running`)).status, 200);
        const end = await waitState(c.id, ['exited', 'dead']);
        return unstamped(readFileSync(end.logfile, 'utf8'));
      } finally {
        await remove(c.id);
      }
    };
    const out = await withProbe({});
    assert.match(out, /^reboot: .*Operation not permitted$/m);
    assert.match(out, /^reboot=1$/m);
    assert.match(out, /^mount: permission denied/m); // busybox's words for EPERM
    assert.match(out, /^insmod: can't insert '\/bin\/busybox': Operation not permitted$/m);
    for (const s of ['kexec_load', 'kexec_file_load', 'init_module', 'finit_module', 'reboot', 'keyctl', 'bpf', 'mount', 'unshare\\(CLONE_NEWUSER\\)']) {
      assert.match(out, new RegExp(`^${s}: Operation not permitted$`, 'm'), out);
    }
    // The same probe unconfined: the kernel's own answers (so the EPERMs above are the filter's).
    // Not `reboot -f`: with CAP_SYS_BOOT it really "reboots" the container (its PID 1 dies).
    const free = await withProbe({ privileged: true }, script.replace(/^reboot[^;]*; echo "reboot=\$\?"; /, ''));
    assert.doesNotMatch(free, /^insmod: .*Operation not permitted$/m, free);
    assert.doesNotMatch(free, /^bpf: Operation not permitted$/m, free);
    assert.match(free, /^mount: succeeded$/m, free);
  });

  it('masked paths read nothing, read-only paths refuse writes', async (t) => {
    const checks = [
      'echo "keys=$(wc -c < /proc/keys)"',
      'echo "timer_list=$(wc -c < /proc/timer_list)"',
      'echo "firmware=$(ls /sys/firmware | wc -l)"',
      'cat /proc/kcore > /dev/null 2>&1; echo "kcore=$?"',
      '(echo 60 > /proc/sys/vm/swappiness) 2>&1; echo "sysctl=$?"',
      '(echo h > /proc/sysrq-trigger) 2>&1; echo "sysrq=$?"',
    ].join('; ');
    const { out } = await runToEnd({ command: ['/bin/sh', '-c', checks] });
    assert.ok(readFileSync('/proc/keys', 'utf8').length > 0, 'the host has keys to hide');
    assert.match(out, /^keys=0$/m, out);
    assert.match(out, /^timer_list=0$/m, out);
    if (readdirSync('/sys/firmware').length > 0) assert.match(out, /^firmware=0$/m, out);
    assert.match(out, /^kcore=1$/m, out);
    if (!existsSync('/proc/kcore')) t.diagnostic('this kernel has no /proc/kcore: its masking is not exercised');
    assert.match(out, /Read-only file system\nsysctl=1$/m, out);
    if (existsSync('/proc/sysrq-trigger')) assert.match(out, /Read-only file system\nsysrq=1$/m, out);
    else {
      assert.match(out, /^sysrq=1$/m, out);
      t.diagnostic('this kernel has no /proc/sysrq-trigger: only /proc/sys shows the read-only rule');
    }
  });

  it('a memory hog over `memory` ends dead with an out-of-memory error; nothing else is killed', async () => {
    const bystander = await create({ state: 'running', command: '/bin/sleep 1000' });
    const hog = await create({
      state: 'running',
      memory: { max: 32 * 1024 * 1024 },
      command: ['/bin/sh', '-c', 'x=$(head -c 200000000 /dev/zero | tr "\\0" a); echo survived'],
    });
    try {
      assert.deepEqual(hog.memory, { max: 32 * 1024 * 1024, swap: 0 });
      const end = await waitState(hog.id, ['exited', 'dead'], 60_000);
      assert.equal(end.state, 'dead');
      assert.match(end.error, /^out of memory: the OOM killer killed \d+ process/);
      assert.equal(end.exit_code, 137);
      // The log line follows the state change by a moment: wait for it.
      let log = unstamped(readFileSync(end.logfile, 'utf8'));
      for (let i = 0; i < 50 && !/container\(\d+\): container dead/.test(log); i++) {
        await new Promise((r) => setTimeout(r, 100));
        log = unstamped(readFileSync(end.logfile, 'utf8'));
      }
      assert.match(log, /container\(\d+\): out of memory: the OOM killer killed/);
      assert.doesNotMatch(log, /^survived$/m);
      assert.equal((await get(bystander.id)).state, 'running');
      process.kill((await get(bystander.id)).pid, 0); // its PID 1 lives
      assert.equal((await ctx.agent.get('/imageapi/v1/container')).status, 200); // and so does the agent
    } finally {
      await remove(hog.id);
      await remove(bystander.id);
    }
  });

  it('a fork bomb stops at `pids`', async () => {
    const c = await create({
      state: 'running',
      pids: { max: 12 },
      // The inner shell forks until it cannot (busybox sh then gives up), the outer one stays.
      command: ['/bin/sh', '-c', 'sh -c \'i=0; while [ $i -lt 50 ]; do sleep 1000 & i=$((i+1)); done\'; echo forked; exec sleep 1000'],
    });
    try {
      const dir = join('/sys/fs/cgroup/pids', groupName(ctx.runDir), String(c.id));
      const pidsDir = existsSync(join(dir, 'pids.max')) ? dir : join(V2, groupName(ctx.runDir), String(c.id));
      assert.equal(readFileSync(join(pidsDir, 'pids.max'), 'utf8').trim(), '12');
      const end = Date.now() + 15_000;
      while (!/^forked$/m.test(unstamped(readFileSync(c.logfile, 'utf8'))) && Date.now() < end) await sleep(100);
      const log = unstamped(readFileSync(c.logfile, 'utf8'));
      assert.match(log, /can't fork/, log);
      const current = Number(readFileSync(join(pidsDir, 'pids.current'), 'utf8'));
      assert.ok(current <= 12 && current >= 10, `pids.current ${current}`);
      assert.ok(readFileSync(join(pidsDir, 'pids.events'), 'utf8').match(/^max [1-9]/m), 'pids.events counts refused forks');
    } finally {
      await remove(c.id);
    }
  });

  it('a cpu quota of a quarter CPU at least halves a spinning loop against an unlimited one', async (t) => {
    const spin = ['/bin/sh', '-c', 'while :; do :; done'];
    const limited = await create({ state: 'running', cpu: { quota: 25_000, period: 100_000 }, command: spin });
    const free = await create({ state: 'running', command: spin });
    try {
      assert.deepEqual(limited.cpu, { quota: 25_000, period: 100_000 });
      const dirL = join(V2, groupName(ctx.runDir), String(limited.id));
      const dirF = join(V2, groupName(ctx.runDir), String(free.id));
      const v1 = join('/sys/fs/cgroup/cpu', groupName(ctx.runDir), String(limited.id));
      if (existsSync(v1)) assert.equal(readFileSync(join(v1, 'cpu.cfs_quota_us'), 'utf8').trim(), '25000');
      await sleep(300);
      const [l0, f0, w0] = [cpuUsage(dirL), cpuUsage(dirF), Date.now()];
      await sleep(3000);
      const [l1, f1, w1] = [cpuUsage(dirL), cpuUsage(dirF), Date.now()];
      const [usedL, usedF, wallUs] = [l1 - l0, f1 - f0, (w1 - w0) * 1000];
      const ratio = usedL / usedF;
      const what = `limited ${usedL} µs, unlimited ${usedF} µs in ${wallUs} µs (ratio ${ratio.toFixed(2)})`;
      assert.ok(usedL > 0, 'the limited loop ran');
      // The quota is a ceiling whatever else runs: a quarter of the time, with a generous margin.
      assert.ok(usedL < 0.25 * wallUs * 1.4, what);
      if (existsSync(v1)) assert.match(readFileSync(join(v1, 'cpu.stat'), 'utf8'), /^nr_throttled [1-9]/m, 'the limited group was throttled');
      // Against the unlimited loop: at least halved, when the host lets that one have most of a CPU
      // (a node busy with other work may starve it; the ceiling above still holds then).
      if (usedF > 0.6 * wallUs) assert.ok(ratio < 0.5, what);
      else {
        assert.ok(ratio < 1, what);
        t.diagnostic(`the host is busy, the unlimited loop got ${(usedF / wallUs).toFixed(2)} CPU: ${what}`);
      }
    } finally {
      await remove(limited.id);
      await remove(free.id);
    }
  });

  it('io weight is refused with 501 naming the controller where the host cannot weigh I/O', async () => {
    const r = await ctx.agent.post('/imageapi/v1/container', { command: '/bin/true', mount: imageStack(ctx.image), io: { weight: 200 } });
    if (existsSync('/sys/fs/cgroup/blkio/blkio.weight') || existsSync('/sys/fs/cgroup/blkio/blkio.bfq.weight')) {
      assert.equal(r.status, 201, r.text);
      await remove(r.body.id);
    } else {
      assert.equal(r.status, 501, r.text);
      assert.match(r.body.message, /^io: /);
      assert.equal((await ctx.agent.get('/imageapi/v1/mount')).body.length, 0, 'nothing of the request is left');
    }
  });

  it('user namespace: id 0 inside, a file it creates is owned by the mapped host uid; overlay roots are 501', async () => {
    // A directory tree (on the temp filesystem, which can be id-mapped) bound as the root.
    const tree = join(scratch, 'root');
    execFileSync('bash', [join(ROOT, 'test/fixtures/busybox-image.sh'), join(scratch, 'unused.sqsh'), tree]);
    const c = await ctx.agent.post('/imageapi/v1/container', {
      state: 'running',
      stop_timeout: 1,
      namespaces: ['mnt', 'pid', 'uts', 'ipc', 'user'],
      mount: { kind: 'bind', bind: { path: tree } },
      command: ['/bin/sh', '-c', 'id; echo made > /root/made; grep -E "^(Uid|CapEff):" /proc/self/status; exec sleep 1000'],
    });
    assert.equal(c.status, 201, c.text);
    try {
      const host = c.body.uid_map[0].host_id;
      assert.ok(host >= 0x80000, `an unprivileged range: ${host}`);
      assert.deepEqual(c.body.uid_map, [{ container_id: 0, host_id: host, size: 65536 }]);
      const end = Date.now() + 10_000;
      while (!/^CapEff:/m.test(unstamped(readFileSync(c.body.logfile, 'utf8'))) && Date.now() < end) await sleep(100);
      const log = unstamped(readFileSync(c.body.logfile, 'utf8'));
      assert.match(log, /^uid=0\(root\) gid=0\(root\)/m, log);
      // On the host, through the container's root: the mapped uid, not root.
      const made = statSync(`/proc/${c.body.pid}/root/root/made`);
      assert.equal(made.uid, host);
      assert.equal(made.gid, host);
      assert.equal(readFileSync(`/proc/${c.body.pid}/uid_map`, 'utf8').trim().split(/\s+/).join(' '), `0 ${host} 65536`);
      // The container's root is root only there: its process is the mapped uid on the host.
      assert.match(readFileSync(`/proc/${c.body.pid}/status`, 'utf8'), new RegExp(`^Uid:\\s+${host}\\s`, 'm'));
      // A second one gets the next range.
      const d = await create({ state: 'created', namespaces: ['mnt', 'user'], mount: { kind: 'bind', bind: { path: tree } }, command: '/bin/true' });
      assert.equal(d.uid_map[0].host_id, host + 65536);
      await remove(d.id);
    } finally {
      await remove(c.body.id);
    }
    // Explicit maps; host root refused.
    await create({ namespaces: ['mnt', 'user'], uid_map: [{ container_id: 0, host_id: 0, size: 65536 }], mount: { kind: 'bind', bind: { path: tree } }, command: '/bin/true' }, 400);
    const e = await runToEnd({
      namespaces: ['mnt', 'pid', 'user'],
      uid_map: [{ container_id: 0, host_id: 300000, size: 65536 }],
      mount: { kind: 'bind', bind: { path: tree } },
      command: ['/bin/sh', '-c', 'cat /proc/self/uid_map'],
    });
    assert.match(e.out, /^\s*0\s+300000\s+65536$/m, e.out);
    // overlayfs cannot be id-mapped (6.x): 501 naming why, before anything starts; nothing left.
    const o = await ctx.agent.post('/imageapi/v1/container', { state: 'created', namespaces: ['mnt', 'pid', 'user'], mount: imageStack(ctx.image), command: '/bin/true' });
    assert.equal(o.status, 501, o.text);
    assert.match(o.body.message, /"user": this kernel cannot id-map overlayfs/);
    assert.equal((await ctx.agent.get('/imageapi/v1/container')).body.length, 0);
    assert.equal((await ctx.agent.get('/imageapi/v1/mount')).body.length, 0);
  });

  it('env, working_dir, user uid:gid and an argv command; a non-root user has no capabilities', async () => {
    const { c, out } = await runToEnd({
      command: ['/bin/sh', '-c', 'echo "foo=[$FOO] pwd=$(pwd) id=$(id -u):$(id -g)"; grep CapEff /proc/self/status', 'ignored $0'],
      env: ['FOO=bar baz'],
      working_dir: '/tmp',
      user: '1000:1001',
    });
    assert.equal(c.state, 'exited', out);
    assert.match(out, /^foo=\[bar baz\] pwd=\/tmp id=1000:1001$/m);
    assert.match(out, /^CapEff:\s+0000000000000000$/m);
    assert.equal(c.user, '1000:1001');
    assert.equal(c.working_dir, '/tmp');
    assert.deepEqual(c.command, ['/bin/sh', '-c', 'echo "foo=[$FOO] pwd=$(pwd) id=$(id -u):$(id -g)"; grep CapEff /proc/self/status', 'ignored $0']);
    // A working directory the image lacks is the request's fault (400), and nothing is left.
    const r = await ctx.agent.post('/imageapi/v1/container', { state: 'running', mount: imageStack(ctx.image), command: '/bin/true', working_dir: '/no/such/dir' });
    assert.equal(r.status, 400, r.text);
    assert.match(r.body.message, /changing to the working directory \/no\/such\/dir: No such file or directory/);
    assert.equal((await ctx.agent.get('/imageapi/v1/container')).body.length, 0);
  });

  it('limits are in GET and in the cgroup, and survive an agent restart', async () => {
    const c = await create({ state: 'running', command: '/bin/sleep 1000', memory: { max: 64 << 20, swap: 0 }, pids: { max: 100 }, cpu: { weight: 50 } });
    try {
      const mem = join('/sys/fs/cgroup/memory', groupName(ctx.runDir), String(c.id));
      const memFile = existsSync(mem) ? join(mem, 'memory.limit_in_bytes') : join(V2, groupName(ctx.runDir), String(c.id), 'memory.max');
      assert.equal(readFileSync(memFile, 'utf8').trim(), String(64 << 20));
      await ctx.agent.stop();
      ctx.agent = await new TestAgent(ctx.runDir).start();
      const again = await get(c.id);
      assert.equal(again.state, 'running');
      assert.deepEqual([again.memory, again.pids, again.cpu], [{ max: 64 << 20, swap: 0 }, { max: 100 }, { weight: 50 }]);
      assert.deepEqual(again.capabilities, c.capabilities);
      assert.equal(readFileSync(memFile, 'utf8').trim(), String(64 << 20));
    } finally {
      await remove(c.id);
    }
  });
});
