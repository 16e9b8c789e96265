// One cgroup per container, on cgroup v2, v1 and hybrid hosts. On v2 (pure, or the `unified`
// hierarchy of a hybrid host) cgroup.kill and cgroup.freeze do the work; on pure v1 the freezer
// and pids controllers do. The only place that touches /sys/fs/cgroup.
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Limits } from '../model/confine.js';
import { unsupported } from '../model/errors.js';
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

// ------------------------------------------------------------------ resource limits

type Controller = 'memory' | 'pids' | 'cpu' | 'io';
/** The v1 hierarchy of each controller (`io` is v1's `blkio`). */
const V1_NAME: Record<Controller, string> = { memory: 'memory', pids: 'pids', cpu: 'cpu', io: 'blkio' };

/** Where a controller can be used: on the v2 hierarchy (enabled there), a v1 hierarchy, or nowhere. */
export async function controllerHome(c: Controller): Promise<{ v2: string } | { v1: string } | null> {
  const l = await cgroupLayout();
  if (l.v2) {
    const have = (await readFile(join(l.v2, 'cgroup.controllers'), 'utf8').catch(() => '')).split(/\s+/);
    if (have.includes(c)) return { v2: l.v2 };
  }
  const v1 = join(ROOT, V1_NAME[c]);
  if (l.mode !== 'v2' && (await exists(join(v1, 'cgroup.procs')))) return { v1 };
  return null;
}

/** The v1 blkio file that weighs I/O (CFQ's blkio.weight or BFQ's blkio.bfq.weight), if any. */
async function v1IoWeightFile(root: string): Promise<string | null> {
  for (const f of ['blkio.weight', 'blkio.bfq.weight']) if (await exists(join(root, f))) return f;
  return null;
}

/** Refuse (UNSUPPORTED, naming the controller) a limit this host cannot enforce. */
export async function checkLimits(limits: Limits): Promise<void> {
  for (const c of ['memory', 'pids', 'cpu', 'io'] as const) {
    if (!limits[c]) continue;
    const home = await controllerHome(c);
    const l = await cgroupLayout();
    if (!home) {
      throw unsupported(`${c}: the ${c} cgroup controller is not available on this host (cgroup2${l.v2 ? ` at ${l.v2} does not offer it` : ' is not mounted'}, and there is no v1 ${V1_NAME[c]} hierarchy)`);
    }
    if (c === 'io' && 'v1' in home && !(await v1IoWeightFile(home.v1))) {
      throw unsupported('io: the blkio controller here cannot weigh I/O (no blkio.weight or blkio.bfq.weight: no CFQ or BFQ scheduler)');
    }
  }
}

// v1 ↔ v2 conversions as crun does them.
const weightToShares = (w: number) => 2 + Math.floor(((w - 1) * 262142) / 9999);
const weightToBlkio = (w: number) => 10 + Math.floor(((w - 1) * 990) / 9999);

async function writeLimit(dir: string, file: string, value: string): Promise<void> {
  try {
    await writeFile(join(dir, file), value);
  } catch (err) {
    throw new Error(`cannot set ${join(dir, file)} to ${value}: ${(err as Error).message}`);
  }
}

async function applyV2(dir: string, c: Controller, limits: Limits): Promise<void> {
  if (c === 'memory' && limits.memory) {
    await writeLimit(dir, 'memory.max', String(limits.memory.max));
    if (await exists(join(dir, 'memory.swap.max'))) await writeLimit(dir, 'memory.swap.max', String(limits.memory.swap));
  } else if (c === 'pids' && limits.pids) await writeLimit(dir, 'pids.max', String(limits.pids.max));
  else if (c === 'cpu' && limits.cpu) {
    if (limits.cpu.weight !== undefined) await writeLimit(dir, 'cpu.weight', String(limits.cpu.weight));
    if (limits.cpu.quota !== undefined) await writeLimit(dir, 'cpu.max', `${limits.cpu.quota} ${limits.cpu.period ?? 100_000}`);
  } else if (c === 'io' && limits.io) {
    if (await exists(join(dir, 'io.weight'))) await writeLimit(dir, 'io.weight', `default ${limits.io.weight}`);
    else await writeLimit(dir, 'io.bfq.weight', String(Math.min(1000, limits.io.weight)));
  }
}

async function applyV1(dir: string, c: Controller, limits: Limits): Promise<void> {
  if (c === 'memory' && limits.memory) {
    await writeLimit(dir, 'memory.limit_in_bytes', String(limits.memory.max));
    // memory+swap, when the kernel accounts swap (it must be at least the memory limit).
    if (await exists(join(dir, 'memory.memsw.limit_in_bytes'))) {
      await writeLimit(dir, 'memory.memsw.limit_in_bytes', String(limits.memory.max + limits.memory.swap));
    }
  } else if (c === 'pids' && limits.pids) await writeLimit(dir, 'pids.max', String(limits.pids.max));
  else if (c === 'cpu' && limits.cpu) {
    if (limits.cpu.weight !== undefined) await writeLimit(dir, 'cpu.shares', String(weightToShares(limits.cpu.weight)));
    if (limits.cpu.quota !== undefined) {
      await writeLimit(dir, 'cpu.cfs_period_us', String(limits.cpu.period ?? 100_000));
      await writeLimit(dir, 'cpu.cfs_quota_us', String(limits.cpu.quota));
    }
  } else if (c === 'io' && limits.io) {
    const f = await v1IoWeightFile(dir);
    if (f) await writeLimit(dir, f, String(f === 'blkio.weight' ? weightToBlkio(limits.io.weight) : Math.min(1000, limits.io.weight)));
  }
}

/**
 * The container's cgroups: the one the agent always makes (v2, or v1 freezer and pids), plus, for
 * each limit, the controller's v1 hierarchy when the controller lives there; limits of controllers
 * enabled on v2 go in the v2 group (the agent's parent group enables them for its children).
 * `limits` were checked by checkLimits. The first v2 directory comes first (the helper is cloned
 * into it).
 */
export async function createCgroups(runDir: string, id: number, limits: Limits = {}): Promise<string[]> {
  const l = await cgroupLayout();
  const roots = l.v2 ? [l.v2] : [...l.v1];
  const v2Controllers: Controller[] = [];
  const v1For = new Map<string, Controller[]>();
  for (const c of ['memory', 'pids', 'cpu', 'io'] as const) {
    if (!limits[c]) continue;
    const home = await controllerHome(c);
    if (!home) throw unsupported(`${c}: the ${c} cgroup controller is not available on this host`);
    if ('v2' in home) v2Controllers.push(c);
    else {
      if (!roots.includes(home.v1)) roots.push(home.v1);
      v1For.set(home.v1, [...(v1For.get(home.v1) ?? []), c]);
    }
  }
  const dirs = roots.map((r) => join(r, groupName(runDir), String(id)));
  for (const d of dirs) await mkdir(d, { recursive: true });
  if (v2Controllers.length && l.v2) {
    // Enabled from the root down to the agent's group, so that the container's group has them.
    const want = v2Controllers.map((c) => `+${c}`).join(' ');
    for (const d of [l.v2, join(l.v2, groupName(runDir))]) {
      const on = (await readFile(join(d, 'cgroup.subtree_control'), 'utf8').catch(() => '')).split(/\s+/);
      if (v2Controllers.every((c) => on.includes(c))) continue;
      await writeFile(join(d, 'cgroup.subtree_control'), want).catch((err) => {
        throw unsupported(`${v2Controllers.join(', ')}: cannot enable the cgroup controllers in ${d}: ${(err as Error).message}`);
      });
    }
    for (const c of v2Controllers) await applyV2(join(l.v2, groupName(runDir), String(id)), c, limits);
  }
  for (const [root, cs] of v1For) for (const c of cs) await applyV1(join(root, groupName(runDir), String(id)), c, limits);
  return dirs;
}

/** How many processes the kernel's OOM killer killed in these cgroups (v2 memory.events, v1 memory.oom_control). */
export async function oomKills(dirs: string[]): Promise<number> {
  let n = 0;
  for (const d of dirs) {
    for (const f of ['memory.events', 'memory.oom_control']) {
      const text = await readFile(join(d, f), 'utf8').catch(() => '');
      const m = /^oom_kill (\d+)$/m.exec(text);
      if (m) n += Number(m[1]);
    }
  }
  return n;
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
  for (let i = 0; (await cgroupPids(dirs)).length && Date.now() < deadline; i++) await sleep(backoff(i));
}

/**
 * Waits while the kernel finishes what was asked (processes dying, a cgroup becoming removable):
 * 1, 2, 4, 8 ms, then every 10 ms. Most waits end within a few ms; a fixed 10 ms made every
 * delete cost at least that.
 */
const backoff = (i: number) => Math.min(10, 2 ** i);

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
      // A cgroup whose last process just died stays busy for a moment (up to ~1 s is waited for).
      for (let i = 0; ; i++) {
        try {
          await rmdir(d);
          break;
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'ENOENT') break;
          if (code !== 'EBUSY' || i >= 104) throw new Error(`cannot remove cgroup ${d}: ${(err as Error).message}`);
          await sleep(backoff(i));
        }
      }
    }
  }
  // The agent's own group stays while it runs, even empty: the network guard's rule names it, and
  // a new group would cost an nft run on the next start (removeAgentGroup, at the agent's stop).
}

/** At the agent's stop: its parent group in every hierarchy, if no container is left in it. */
export async function removeAgentGroup(runDir: string): Promise<void> {
  const l = await cgroupLayout();
  const roots = [...(l.v2 ? [l.v2] : []), ...l.v1, ...(l.mode === 'v2' ? [] : Object.values(V1_NAME).map((n) => join(ROOT, n)))];
  for (const r of new Set(roots)) await rmdir(join(r, groupName(runDir))).catch(() => {});
}

/** The container groups of one agent instance that exist, by container id: `id` → its directories. */
export async function agentCgroups(runDir: string): Promise<Map<number, string[]>> {
  const l = await cgroupLayout();
  const out = new Map<number, string[]>();
  for (const root of l.v2 ? [l.v2] : l.v1) {
    const group = join(root, groupName(runDir));
    for (const e of await readdir(group, { withFileTypes: true }).catch(() => [])) {
      if (!e.isDirectory() || !/^\d+$/.test(e.name)) continue;
      const id = Number(e.name);
      out.set(id, [...(out.get(id) ?? []), join(group, e.name)]);
    }
  }
  return out;
}
