// The fork server (native/build/imageapi-spawner) through run() and launchDetached(): what a
// tool gets (argv, input, cwd, env, only fds 0-2), what comes back (output, binary-safe, bounded;
// exit codes; errors naming the tool), timeouts, many at once, supervisors in their own session,
// and a fork server that dies: its callers are told, the next call starts a new one.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AgentError } from '../../src/model/errors.js';
import { launchDetached } from '../../src/sys/detached.js';
import { run } from '../../src/sys/exec.js';
import { loopAttach, loopBackingFile, loopDetach, loopReadonly } from '../../src/sys/loop.js';
import { mount, unmount } from '../../src/sys/mount.js';

async function rejects(p: Promise<unknown>, kind: string, pattern: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof AgentError, `an AgentError, not ${String(err)}`);
    assert.equal(err.kind, kind);
    assert.match(err.message, pattern);
    return true;
  });
}

/** The fork servers that are this process's children. */
function spawners(): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const [, comm, rest] = /^\d+ \((.*)\) (.*)$/s.exec(stat)!;
      const ppid = Number(rest!.split(' ')[1]);
      if (comm === 'imageapi-spawn' && ppid === process.pid) out.push(Number(d));
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}

describe('the fork server', () => {
  // A supervisor's end is watched without keeping node alive (the agent's listeners do that).
  let keep: NodeJS.Timeout;
  before(() => (keep = setInterval(() => {}, 1000)));
  after(() => clearInterval(keep));

  it('runs a tool: argv as given, stdout and stderr back with the final newline stripped', async () => {
    const r = await run('sh', ['-c', 'printf "%s|" "$@"; echo; echo warn >&2', 'sh', 'a b', '', "it's;$(x)"]);
    assert.equal(r.stdout, "a b||it's;$(x)|");
    assert.equal(r.stderr, 'warn');
  });

  it('feeds input, sets cwd and env, and the tool has only fds 0, 1, 2', async () => {
    const big = 'x'.repeat(300_000) + '\n';
    assert.equal((await run('wc', ['-c'], { input: big })).stdout.trim(), String(big.length));
    const r = await run('sh', ['-c', 'pwd; echo "$IMAGEAPI_T"; ls /proc/$$/fd | tr "\\n" " "'], { cwd: '/usr', env: { IMAGEAPI_T: 'v=1' } });
    const [cwd, env, fds] = r.stdout.split('\n');
    assert.equal(cwd, '/usr');
    assert.equal(env, 'v=1');
    assert.deepEqual(fds!.trim().split(' ').filter((f) => Number(f) > 2 && Number(f) !== 10), [], `only stdio: ${fds}`);
  });

  it('gives binary output byte for byte', async () => {
    const r = await run('printf', ['a\\000b\\377']);
    assert.deepEqual(Buffer.from(r.stdout, 'latin1').subarray(0, 2), Buffer.from('a\0'));
    assert.equal(r.stdout.length, 4, 'a NUL b and one (invalid UTF-8) byte');
  });

  it('a failing tool, a missing one, a missing cwd: errors naming the command and the reason', async () => {
    await rejects(run('sh', ['-c', 'echo "no such device" >&2; exit 3']), 'INTERNAL', /^sh -c .*: no such device$/);
    await rejects(run('sh', ['-c', 'exit 4']), 'INTERNAL', /: exit code 4$/);
    await rejects(run('sh', ['-c', 'exit 1'], { failKind: 'IN_USE' }), 'IN_USE', /exit code 1/);
    await rejects(run('imageapi-no-such-tool', ['x']), 'INTERNAL', /^imageapi-no-such-tool x: exec: No such file or directory$/);
    await rejects(run('true', [], { cwd: '/nonexistent-dir' }), 'INTERNAL', /chdir: No such file or directory/);
  });

  it('a timeout stops the tool (SIGTERM, then SIGKILL) and is TIMEOUT', async () => {
    const t0 = Date.now();
    await rejects(run('sleep', ['30'], { timeoutMs: 200 }), 'TIMEOUT', /^sleep 30: timed out after 200 ms$/);
    await rejects(run('sh', ['-c', 'trap "" TERM; sleep 7'], { timeoutMs: 200 }), 'TIMEOUT', /timed out/);
    assert.ok(Date.now() - t0 < 15_000, 'ended by the kills, not by sleep');
  });

  it('bounds the output: more than 1 MiB is an error, not memory', async () => {
    await rejects(run('head', ['-c', '3000000', '/dev/zero']), 'INTERNAL', /produced too much output/);
  });

  it('runs many at once, each answer to its caller', async () => {
    const rs = await Promise.all(Array.from({ length: 64 }, (_, i) => run('sh', ['-c', `sleep 0.0${i % 10}; echo ${i}`])));
    assert.deepEqual(rs.map((r) => r.stdout), Array.from({ length: 64 }, (_, i) => String(i)));
  });

  it('starts a supervisor in its own session with a ready pipe on fd 3; no line is an error with its stderr', async () => {
    const d = launchDetached('sh', ['-c', 'echo "ok $(cut -d" " -f6 /proc/self/stat)" >&3; sleep 0.3'], 5000);
    const line = await d.ready;
    const pid = await d.pid;
    assert.equal(line, `ok ${pid}`, 'the session id is its own pid (setsid)');
    assert.equal(await d.exited, true);
    const bad = launchDetached('sh', ['-c', 'echo "cannot do it" >&2; exit 1'], 5000);
    await assert.rejects(bad.ready, /cannot do it/);
    const slow = launchDetached('sleep', ['30'], 200);
    await assert.rejects(slow.ready, /did not report within 200 ms/);
    slow.kill('SIGKILL');
    assert.equal(await slow.exited, true);
    await assert.rejects(launchDetached('imageapi-no-such-helper', [], 5000).ready, /No such file or directory/);
  });

  it('dies: the callers waiting on it are told, a supervisor it started keeps running, the next call starts a new one', async () => {
    await run('true', []);
    const [pid] = spawners();
    assert.ok(pid, 'a fork server runs');
    const sup = launchDetached('sh', ['-c', 'echo ok >&3; exec sleep 30'], 5000);
    await sup.ready;
    const shim = await sup.pid;
    const waiting = run('sleep', ['30']);
    process.kill(pid, 'SIGKILL');
    await rejects(waiting, 'INTERNAL', /^sleep 30: the fork server exited \(SIGKILL\)$/);
    assert.equal(await sup.exited, false, 'its end can no longer be seen');
    process.kill(shim, 0); // still there
    assert.equal((await run('echo', ['again'])).stdout, 'again');
    const [next] = spawners();
    assert.ok(next && next !== pid, 'a new fork server');
    process.kill(shim, 'SIGKILL');
  });

  it('built-ins: loop devices by ioctl (read-only, in parallel, each its own), mount(2) with mount(8)\'s option names and messages, umount2', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'imageapi-spawner-'));
    const devs: string[] = [];
    try {
      const files = Array.from({ length: 8 }, (_, i) => join(dir, `f${i}.img`));
      for (const f of files) writeFileSync(f, Buffer.alloc(1 << 20));
      devs.push(...(await Promise.all(files.map((f, i) => loopAttach(f, { readonly: i % 2 === 0 })))));
      assert.equal(new Set(devs).size, 8, `eight devices: ${devs}`);
      for (const [i, d] of devs.entries()) {
        assert.equal(await loopBackingFile(d), files[i]);
        assert.equal(await loopReadonly(d), i % 2 === 0);
      }
      await Promise.all(devs.map((d) => loopDetach(d)));
      for (const d of devs) assert.equal(await loopBackingFile(d), null, `${d} detached`);
      await run('@loop-detach', [devs[0]!]); // already free: not an error
      await rejects(loopAttach(join(dir, 'missing.img')), 'INTERNAL', /^loop-attach -- \S+missing\.img: opening \S+: No such file or directory$/);
      const mnt = join(dir, 'mnt');
      mkdirSync(mnt);
      await mount({ source: 'none', target: mnt, fstype: 'tmpfs', options: ['size=1m'] });
      await unmount(mnt);
      await rejects(unmount(mnt), 'INTERNAL', /^umount \S+mnt: umount2: Invalid argument$/);
      await rejects(run('@no-such-builtin', []), 'INTERNAL', /no built-in command @no-such-builtin/);
      // mount(2) with mount(8)'s option names: flags into flags, the rest into the filesystem's data.
      await mount({ source: 'imageapi-t', target: mnt, fstype: 'tmpfs', options: ['size=2m', 'nosuid', 'nodev', 'noexec', 'ro', 'mode=0700'] });
      const line = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === mnt)!;
      assert.match(line, / ro,nosuid,nodev,noexec[, ]/, line);
      assert.match(line, / tmpfs imageapi-t ro,.*size=2048k,mode=700/, line);
      await unmount(mnt);
      // An overlay whose layers are named relative to cwd (how the overlay driver fits long lists in a page).
      for (const d of ['lower', 'upper', 'work']) mkdirSync(join(dir, d));
      writeFileSync(join(dir, 'lower', 'f'), 'from below');
      await mount({ source: 'overlay', target: mnt, fstype: 'overlay', options: ['lowerdir=lower', 'upperdir=upper', 'workdir=work'], cwd: dir });
      assert.equal(readFileSync(join(mnt, 'f'), 'utf8'), 'from below');
      await unmount(mnt);
      const zeros = await loopAttach(files[0]!, { readonly: true });
      devs.push(zeros);
      await rejects(mount({ source: zeros, target: mnt, fstype: 'squashfs', options: ['ro'] }), 'INTERNAL', /^mount -t squashfs -o ro -- \S+ \S+: mount: \S+: wrong fs type, bad option, bad superblock on \/dev\/loop\d+, or other error \(mount\(2\)\): Invalid argument$/);
      await rejects(mount({ source: 'none', target: mnt, fstype: 'tmpfs', options: ['nosuchoption=1'] }), 'INTERNAL', /wrong fs type, bad option/);
    } finally {
      for (const d of devs) await loopDetach(d).catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
