// What a test must not leave behind: mounts under its run-dir, loop devices over its files,
// processes or cgroups of its agent.
import { readdirSync, readFileSync, existsSync } from 'node:fs';
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

export function processesWith(text: string): string[] {
  const ps = execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' });
  return ps.split('\n').filter((l) => l.includes(text) && !l.includes('ps -eo'));
}

/** Force-clean what a failed test may have left (best effort), so one failure does not cascade. */
export function forceCleanup(runDir: string, ...filePrefixes: string[]): void {
  for (const p of processesWith(runDir)) {
    const pid = Number(p.trim().split(/\s+/)[0]);
    try {
      process.kill(pid, 'SIGKILL');
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
  for (const l of loopsOver(runDir, ...filePrefixes)) {
    try {
      execFileSync('losetup', ['-d', l.split(' ')[0]!]);
    } catch {
      /* gone */
    }
  }
}
