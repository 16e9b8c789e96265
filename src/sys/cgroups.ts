// One cgroup per container, on cgroup v2, v1 and hybrid hosts. On v2 (pure, or the `unified`
// hierarchy of a hybrid host) cgroup.kill and cgroup.freeze do the work; on pure v1 the freezer
// and pids controllers do. The only place that touches /sys/fs/cgroup.
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sleep } from '../util/time.js';
import { exists } from './fs.js';

const ROOT = '/sys/fs/cgroup';

export interface CgroupLayout {
  mode: 'v2' | 'hybrid' | 'v1';
  /** v2 hierarchy root, if any. */
  v2: string | null;
  /** v1 controller roots used when there is no v2 hierarchy. */
  v1: string[];
}

let layout: CgroupLayout | null = null;
export async function cgroupLayout(): Promise<CgroupLayout> {
  if (layout) return layout;
  if (await exists(join(ROOT, 'cgroup.controllers'))) layout = { mode: 'v2', v2: ROOT, v1: [] };
  else {
    const v2 = (await exists(join(ROOT, 'unified', 'cgroup.procs'))) ? join(ROOT, 'unified') : null;
    const v1: string[] = [];
    if (!v2) for (const c of ['freezer', 'pids']) if (await exists(join(ROOT, c, 'cgroup.procs'))) v1.push(join(ROOT, c));
    layout = { mode: v2 ? 'hybrid' : 'v1', v2, v1 };
  }
  return layout;
}

/** The parent group of one agent instance (its run-dir), so agents with different run-dirs never collide. */
export function groupName(runDir: string): string {
  return `imageapi-${createHash('sha256').update(runDir).digest('hex').slice(0, 8)}`;
}

export async function createCgroups(runDir: string, id: number): Promise<string[]> {
  const l = await cgroupLayout();
  const roots = l.v2 ? [l.v2] : l.v1;
  const dirs = roots.map((r) => join(r, groupName(runDir), String(id)));
  for (const d of dirs) await mkdir(d, { recursive: true });
  return dirs;
}

/** The cgroup and its descendants, deepest first (systemd in a container makes its own child groups). */
async function subtree(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  const below: string[] = [];
  for (const e of entries) if (e.isDirectory()) below.push(...(await subtree(join(dir, e.name))));
  return [...below, dir];
}

/** Processes in the cgroup or any group below it. */
async function procs(dir: string): Promise<number[]> {
  const out: number[] = [];
  for (const d of await subtree(dir)) {
    const text = await readFile(join(d, 'cgroup.procs'), 'utf8').catch(() => '');
    out.push(...text.split('\n').filter(Boolean).map(Number));
  }
  return out;
}

export async function cgroupPids(dirs: string[]): Promise<number[]> {
  const all = new Set<number>();
  for (const d of dirs) for (const p of await procs(d)) all.add(p);
  return [...all];
}

const isV2 = (dir: string) => exists(join(dir, 'cgroup.kill'));

/** Kill every process in the container's cgroups and wait until they are gone. */
export async function killCgroups(dirs: string[], timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const d of dirs) {
    if (!(await exists(d))) continue;
    if (await isV2(d)) {
      await writeFile(join(d, 'cgroup.kill'), '1').catch(() => {});
    } else {
      // v1: freeze first so nothing forks while we kill, then thaw so the kills are delivered.
      const freezer = join(d, 'freezer.state');
      const hasFreezer = await exists(freezer);
      while ((await procs(d)).length && Date.now() < deadline) {
        if (hasFreezer) await writeFile(freezer, 'FROZEN').catch(() => {});
        for (const p of await procs(d)) {
          try {
            process.kill(p, 'SIGKILL');
          } catch {
            /* already gone */
          }
        }
        if (hasFreezer) await writeFile(freezer, 'THAWED').catch(() => {});
        await sleep(10);
      }
    }
  }
  while ((await cgroupPids(dirs)).length && Date.now() < deadline) await sleep(10);
}

export async function freezeCgroups(dirs: string[], frozen: boolean): Promise<void> {
  for (const d of dirs) {
    if (await isV2(d)) await writeFile(join(d, 'cgroup.freeze'), frozen ? '1' : '0');
    else if (await exists(join(d, 'freezer.state'))) await writeFile(join(d, 'freezer.state'), frozen ? 'FROZEN' : 'THAWED');
  }
}

/** Remove the container's cgroups (empty by now) and the agent's parent group if it is empty too. */
export async function removeCgroups(dirs: string[]): Promise<void> {
  for (const top of dirs) {
    for (const d of await subtree(top)) {
      // A cgroup whose last process just died stays busy for a moment.
      for (let i = 0; ; i++) {
        try {
          await rmdir(d);
          break;
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'ENOENT') break;
          if (code !== 'EBUSY' || i >= 100) throw new Error(`cannot remove cgroup ${d}: ${(err as Error).message}`);
          await sleep(10);
        }
      }
    }
    await rmdir(join(top, '..')).catch(() => {}); // the agent's group, once no container is left in it
  }
}
