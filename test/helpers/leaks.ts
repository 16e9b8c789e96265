// What a test must not leave behind: mounts under its run-dir, loop devices over its files,
// processes or cgroups of its agent.
import { existsSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { groupName } from '../../src/sys/cgroups.js';
import { execFileSync } from 'node:child_process';

export function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((t) => t === dir || t.startsWith(dir + '/'));
}

/** Loop devices whose backing file is under any of `prefixes`. */
export function loopsOver(...prefixes: string[]): string[] {
  const out: string[] = [];
  for (const d of readdirSync('/sys/block')) {
    if (!d.startsWith('loop')) continue;
    const f = `/sys/block/${d}/loop/backing_file`;
    if (!existsSync(f)) continue;
    const back = readFileSync(f, 'utf8').trim();
    if (prefixes.some((p) => back.startsWith(p))) out.push(`/dev/${d} → ${back}`);
  }
  return out;
}

/** Processes whose command line contains `text` (or is exactly `text`, with `exact`). */
export function processesWith(text: string, exact = false): string[] {
  const ps = execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' });
  return ps
    .split('\n')
    .filter((l) => (exact ? l.trim().replace(/^\d+\s+/, '') === text : l.includes(text)) && !l.includes('ps -eo'));
}

/** Force-clean what a failed test may have left (best effort), so one failure does not cascade. */
export function forceCleanup(runDir: string, ...filePrefixes: string[]): void {
  // Containers first, through their cgroups (their processes do not name the run-dir).
  for (const root of ['/sys/fs/cgroup/unified', '/sys/fs/cgroup', '/sys/fs/cgroup/pids', '/sys/fs/cgroup/freezer', '/sys/fs/cgroup/memory', '/sys/fs/cgroup/cpu', '/sys/fs/cgroup/blkio']) {
    const group = join(root, groupName(runDir));
    if (!existsSync(group)) continue;
    for (const c of readdirSync(group)) {
      const dir = join(group, c);
      if (!statSync(dir).isDirectory()) continue;
      if (existsSync(join(dir, 'cgroup.kill'))) writeFileSync(join(dir, 'cgroup.kill'), '1');
      else for (const p of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
        try {
          process.kill(Number(p), 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
    execFileSync('sleep', ['0.2']);
    for (const c of readdirSync(group)) {
      try {
        rmdirSync(join(group, c));
      } catch {
        /* a file, or busy */
      }
    }
    try {
      rmdirSync(group);
    } catch {
      /* busy */
    }
  }
  for (const p of processesWith(runDir)) {
    const pid = Number(p.trim().split(/\s+/)[0]);
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  // Loops first: once a FUSE mount under the run-dir is gone, its loops no longer name it
  // (a busy loop detaches itself when its filesystem is unmounted).
  for (const l of loopsOver(runDir, ...filePrefixes)) {
    try {
      execFileSync('losetup', ['-d', l.split(' ')[0]!]);
    } catch {
      /* gone */
    }
  }
  for (const m of mountsUnder(runDir).reverse()) {
    try {
      execFileSync('umount', ['-l', m]);
    } catch {
      /* gone */
    }
  }
  // The network guard's nftables table of this run-dir (an agent killed with -9 leaves it).
  try {
    execFileSync('nft', ['delete', 'table', 'inet', groupName(runDir).replace(/-/g, '_')], { stdio: 'ignore' });
  } catch {
    /* none, or no nft */
  }
  // Remove the run-dir itself, but never through something still mounted in it.
  if (mountsUnder(runDir).length === 0) rmSync(runDir, { recursive: true, force: true });
}
