// Containers for real: a busybox image on loop + squashfs + overlay, run by the native helper in
// namespaces and a cgroup of their own.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { groupName } from '../../src/sys/cgroups.js';
import { TestAgent } from '../helpers/agent.js';
import { loopsOver, mountsUnder, processesWith } from '../helpers/leaks.js';
import { unstamped } from '../helpers/logs.js';
import { agentSuite, imageStack } from '../helpers/suite.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const nsenter = (pid: number, ...cmd: string[]) => execFileSync('nsenter', ['-t', String(pid), '-a', ...cmd], { encoding: 'utf8', timeout: 10_000 });

/**
 * The containers' cgroups of this agent (under its group, named after its run-dir) that still
 * exist; none may outlive its container. (The agent's own group stays while it runs.)
 */
function cgroupsOf(runDir: string): string[] {
  const name = groupName(runDir);
  return ['/sys/fs/cgroup/unified', '/sys/fs/cgroup', '/sys/fs/cgroup/pids', '/sys/fs/cgroup/freezer', '/sys/fs/cgroup/memory', '/sys/fs/cgroup/cpu']
    .map((root) => `${root}/${name}`)
    .filter((d) => existsSync(d))
    .flatMap((d) => readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => `${d}/${e.name}`));
}

describe('containers', () => {
  const ctx = agentSuite();
  const stack = () => imageStack(ctx.image);
  const run = async (extra: Record<string, unknown>) => {
    const r = await ctx.agent.post('/container', { state: 'running', stop_timeout: 2, mount: stack(), ...extra });
    assert.equal(r.status, 201, r.text);
    return r.body;
  };
  const waitState = async (id: number, want: string[], ms = 15_000) => {
    const end = Date.now() + ms;
    for (;;) {
      const c = (await ctx.agent.get(`/container?id=${id}`)).body[0];
      if (want.includes(c.state)) return c;
      if (Date.now() > end) assert.fail(`container ${id} is ${c.state}, wanted ${want.join('|')}`);
      await sleep(100);
    }
  };
  const gone = async (id: number) => {
    const d = await ctx.agent.del(`/container?id=${id}&force=true`);
    assert.equal(d.status, 200, d.text);
  };

  after(() => {
    assert.deepEqual(mountsUnder(ctx.runDir), []);
    assert.deepEqual(loopsOver(ctx.image), []);
  });

  it('walkthrough A steps 4-7 on typed routes: created, running, nsenter, ordered teardown, log lines', async () => {
    const m = await ctx.agent.post('/mount', { kind: 'attach', attach: { fs_type: 'squashfs', mount_options: ['ro'], attach: { kind: 'loopback', loopback: { path: ctx.image } } } });
    assert.equal(m.status, 201, m.text);
    const o = await ctx.agent.post('/mount/overlay', { lower: [m.body.id] });
    assert.equal(o.status, 201, o.text);
    const c = await ctx.agent.post('/container', { mount: { id: o.body.id, kind: 'overlay' }, command: '/bin/sh -c "echo started; exec sleep 1000"', state: 'created', systemd: true, stop_timeout: 1 });
    assert.equal(c.status, 201, c.text);
    for (const f of ['command', 'logfile', 'mount', 'namespaces', 'systemd']) assert.ok(f in c.body, f);
    assert.equal(c.body.state, 'created');
    assert.match(c.body.logfile, new RegExp(`^${ctx.runDir}/logs/${c.body.id}-\\d+\\.log$`));
    assert.match(readFileSync(c.body.logfile, 'utf8'), /^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d container\(\d+\): container created\n$/);

    const r = await ctx.agent.get(`/container/${c.body.id}/running`);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.state, 'running');
    assert.ok(r.body.pid > 1);
    // nsenter with the pid from the API: the command is PID 1 of its own PID namespace.
    const ps = nsenter(r.body.pid, 'ps', '-o', 'pid,args');
    assert.match(ps, /^\s*1\s+sleep 1000$/m);
    assert.equal((await ctx.agent.get('/container')).body[0].state, 'running');

    assert.equal((await ctx.agent.del(`/container/${c.body.id}`)).status, 204, 'the typed route stops a running container first');
    assert.equal((await ctx.agent.del(`/mount/overlay/${o.body.id}`)).status, 204);
    assert.equal((await ctx.agent.del(`/mount?id=${m.body.id}`)).status, 200);
    assert.deepEqual(mountsUnder(ctx.runDir), []);
    assert.deepEqual(loopsOver(ctx.image), []);
    const lines = readFileSync(c.body.logfile, 'utf8').split('\n').filter(Boolean).map((l) => l.replace(/^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d /, ''));
    const want = [
      'container(0): container created', 'container(0): starting container', 'container(0): validating image', 'container(0): validating init',
      'init: making all mounts private', 'init: preparing image', 'init: mounting /proc', 'init: mounting /dev', 'init: mounting /dev/shm',
      'init: mounting /dev/mqueue', 'init: mounting /dev/pts', 'init: mounting /sys', 'init: mounting /run', 'init: mounting /tmp',
      'init: mounting /sys/fs/cgroup', 'init: mounting /var/lib/journal', 'init: making device file /dev/null', 'init: making device file /dev/zero',
      'init: making device file /dev/full', 'init: making device file /dev/tty', 'init: making device file /dev/random',
      'init: making device file /dev/urandom', 'init: creating the /dev links', 'init: masking /proc and /sys paths',
    ];
    let at = 0;
    for (const w of want) {
      const i = lines.indexOf(w, at);
      assert.ok(i >= at, `log line "${w}" missing or out of order in:\n${lines.join('\n')}`);
      at = i + 1;
    }
    assert.match(lines[at]!, /^init: executing init/);
    assert.equal(lines[lines.length - 1], 'container(0): container deleted');
  });

  it('by name: typed byname routes', async () => {
    const c = await run({ name: 'test-container', command: 'sleep 1000' });
    assert.equal((await ctx.agent.get('/container/byname/test-container')).body.id, c.id);
    const s = await ctx.agent.get('/container/byname/test-container/exited');
    assert.equal(s.status, 200);
    assert.ok(['stopping', 'exited'].includes(s.body.state));
    await waitState(c.id, ['exited']);
    assert.equal((await ctx.agent.del('/container/byname/test-container')).status, 204);
    assert.equal((await ctx.agent.get('/container/byname/test-container')).status, 404);
  });

  it('uts gives its own hostname; net gives only lo, up', async () => {
    const c = await run({ name: 'box1', command: 'sleep 1000', namespaces: ['mnt', 'pid', 'uts', 'ipc', 'net'] });
    assert.equal(nsenter(c.pid, 'hostname').trim(), 'box1');
    assert.notEqual(execFileSync('hostname', { encoding: 'utf8' }).trim(), 'box1');
    const links = nsenter(c.pid, 'ip', '-o', 'link');
    assert.deepEqual(links.trim().split('\n').map((l) => l.split(':')[1]!.trim()), ['lo']);
    assert.match(links, /state UNKNOWN|UP/);
    await gone(c.id);
  });

  it('stop kills a grandchild that ignores SIGTERM; a requested stop ends exited, never dead', async () => {
    const c = await run({ command: `/bin/sh -c "(trap '' TERM; exec sleep 1001) & exec sleep 1002"`, stop_timeout: 1 });
    await sleep(200);
    assert.equal(processesWith('sleep 1001', true).length, 1);
    const p = await ctx.agent.patch(`/container?id=${c.id}&state=exited`);
    assert.equal(p.status, 200);
    assert.ok(['stopping', 'exited'].includes(p.body.state));
    const done = await waitState(c.id, ['exited', 'dead']);
    assert.equal(done.state, 'exited');
    assert.equal(done.pid, null);
    assert.deepEqual(processesWith('sleep 1001', true), []);
    assert.deepEqual(processesWith('sleep 1002', true), []);
    await gone(c.id);
  });

  it('a command that fails on its own is dead, with its exit code; one that succeeds is exited', async () => {
    const bad = await run({ command: '/bin/sh -c "exit 3"' });
    const d = await waitState(bad.id, ['dead', 'exited']);
    assert.equal(d.state, 'dead');
    assert.equal(d.exit_code, 3);
    const ok = await run({ command: '/bin/true' });
    const e = await waitState(ok.id, ['dead', 'exited']);
    assert.equal(e.state, 'exited');
    assert.equal(e.exit_code, 0);
    await gone(bad.id);
    await gone(ok.id);
  });

  it('pause freezes every process, running thaws them', async () => {
    const c = await run({ command: '/bin/sh -c "i=0; while true; do i=$((i+1)); echo $i > /tmp/tick; sleep 0.05; done"' });
    const p = await ctx.agent.patch(`/container?id=${c.id}&state=paused`);
    assert.equal(p.status, 200, p.text);
    assert.equal(p.body.state, 'paused');
    await sleep(150);
    const tick = nsenter(c.pid, 'cat', '/tmp/tick').trim();
    await sleep(300);
    assert.equal(nsenter(c.pid, 'cat', '/tmp/tick').trim(), tick, 'nothing runs while paused');
    const r = await ctx.agent.patch(`/container?id=${c.id}&state=running`);
    assert.equal(r.body.state, 'running');
    await sleep(300);
    assert.notEqual(nsenter(c.pid, 'cat', '/tmp/tick').trim(), tick, 'it runs again');
    await gone(c.id);
  });

  it('the log is readable over the API, whole or its tail', async () => {
    const c = await run({ command: '/bin/sh -c "echo line-one; echo line-two; exec sleep 1000"' });
    await sleep(200);
    const all = await ctx.agent.get(`/container/log?id=${c.id}`);
    assert.equal(all.status, 200);
    assert.match(unstamped(all.text), /container created[\s\S]*init: executing init[\s\S]*line-one\nline-two/);
    const tail = await ctx.agent.get(`/container/log?id=${c.id}&tail=2`);
    assert.match(tail.text, /^\S+ \S+ stdout: line-one\n\S+ \S+ stdout: line-two\n$/, 'the output, stamped (the default)');
    assert.equal(unstamped(tail.text), 'line-one\nline-two\n');
    await gone(c.id);
  });

  it('kill -9 of the agent: the container keeps running, a new agent finds it and stops it', async () => {
    const c = await run({ name: 'survivor', command: 'sleep 1000', stop_timeout: 1 });
    await ctx.agent.kill9();
    await sleep(200);
    assert.ok(existsSync(`/proc/${c.pid}`), 'still running without the agent');
    ctx.agent = await new TestAgent(ctx.runDir).start();
    const found = (await ctx.agent.get('/container?name=survivor')).body[0];
    assert.equal(found.id, c.id);
    assert.equal(found.pid, c.pid);
    assert.equal(found.state, 'running');
    assert.equal((await ctx.agent.patch('/container?name=survivor&state=exited')).status, 200);
    const done = await waitState(c.id, ['exited', 'dead']);
    assert.equal(done.state, 'exited');
    assert.ok(!existsSync(`/proc/${c.pid}`));
    await gone(c.id);
  });

  it('an exit while the agent is down is known after the restart', async () => {
    const c = await run({ command: '/bin/sh -c "sleep 0.5; exit 7"' });
    await ctx.agent.kill9();
    await sleep(1200);
    ctx.agent = await new TestAgent(ctx.runDir).start();
    const found = await waitState(c.id, ['dead', 'exited'], 5000);
    assert.equal(found.state, 'dead');
    assert.equal(found.exit_code, 7);
    await gone(c.id);
  });

  it('refuses what can be known before start, creating nothing', async () => {
    const cases: Array<[Record<string, unknown>, number, RegExp]> = [
      [{ command: '/bin/does-not-exist' }, 400, /does not exist in the image/],
      [{ command: 'no-such-tool --flag' }, 400, /not found in the image's PATH/],
      [{ command: '/etc/passwd' }, 400, /not executable/],
      [{ command: '/bin/sh', namespaces: ['pid', 'uts'] }, 400, /"mnt" is required/],
      // The overlay cannot be id-mapped for a user namespace (test/container/confine.test.ts has the working case).
      [{ command: '/bin/sh', namespaces: ['mnt', 'user'] }, 501, /"user": this kernel cannot id-map overlayfs/],
      [{ command: '/bin/sh', state: 'paused' }, 400, /created.*running/],
    ];
    for (const [spec, status, msg] of cases) {
      const r = await ctx.agent.post('/container', { mount: stack(), ...spec });
      assert.equal(r.status, status, `${JSON.stringify(spec)}: ${r.text}`);
      assert.match(r.body.message, msg);
      assert.deepEqual((await ctx.agent.get('/container')).body, []);
      assert.deepEqual((await ctx.agent.get('/mount')).body, []);
      assert.deepEqual(mountsUnder(ctx.runDir), []);
      assert.deepEqual(loopsOver(ctx.image), []);
    }
    const first = await run({ name: 'dup', command: 'sleep 1000' });
    const dup = await ctx.agent.post('/container', { name: 'dup', command: 'sleep 1', mount: stack() });
    assert.equal(dup.status, 409);
    assert.match(dup.body.message, /already exists/);
    assert.equal((await ctx.agent.get('/mount')).body.length, 2, 'only the first container\'s stack');
    const refused = await ctx.agent.del(`/container?id=${first.id}`);
    assert.equal(refused.status, 409, 'a running container is not deleted without force');
    await gone(first.id);
  });

  it('walkthrough B: the orchestrator sequence under 1 s polling', async () => {
    const c = await ctx.agent.post('/imageapi/v1/container', { name: 'image.sqsh', command: 'sleep 1000', state: 'running', stop_timeout: 1, mount: stack() });
    assert.equal(c.status, 201, c.text);
    const list = await ctx.agent.get('/imageapi/v1/container');
    assert.equal(list.body.find((x: { name: string }) => x.name === 'image.sqsh').state, 'running');
    assert.deepEqual((await ctx.agent.get('/imageapi/v1/container?state=running')).body.map((x: { id: number }) => x.id), [c.body.id]);
    const p = await ctx.agent.patch('/imageapi/v1/container?name=image.sqsh&state=exited');
    assert.ok(['stopping', 'exited'].includes(p.body.state));
    const seen: string[] = [];
    for (let i = 0; i < 10; i++) {
      const s = (await ctx.agent.get('/imageapi/v1/container')).body.find((x: { name: string }) => x.name === 'image.sqsh').state;
      seen.push(s);
      if (s === 'exited') break;
      await sleep(1000);
    }
    assert.equal(seen[seen.length - 1], 'exited', seen.join(','));
    assert.ok(!seen.includes('dead'));
    const d = await ctx.agent.del('/imageapi/v1/container?name=image.sqsh');
    assert.equal(d.status, 200);
    assert.equal(d.body.name, 'image.sqsh');
    assert.deepEqual((await ctx.agent.get('/imageapi/v1/mount')).body, []);
    assert.deepEqual((await ctx.agent.get('/imageapi/v1/attach')).body, []);
    assert.deepEqual(mountsUnder(ctx.runDir), []);
    assert.deepEqual(loopsOver(ctx.image), []);
    assert.deepEqual(cgroupsOf(ctx.runDir), []);
    assert.deepEqual(processesWith(ctx.runDir).filter((l) => l.includes('imageapi-init')), [], 'no supervisor left');
  });
});
