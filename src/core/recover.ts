// After a start: every kernel object under the run-dir that no record owns is the leftover of a
// request the agent died in (kill -9, power loss) or of a damaged state file, and is removed; the
// id sequences are raised past every id the run-dir shows in use. Objects are found by name:
// mounts by path (<run-dir>/mounts/mount_N), cgroups by name (imageapi-<hash>/<id>), supervisors
// by their files (<run-dir>/containers/<id>/pid), loop devices by backing file (a file under the
// run-dir, or a file the unfinished request's intent named that gained a loop device since).
import { readdir, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Logger } from 'pino';
import type { Intent, Store } from '../store/store.js';
import { agentCgroups, killCgroups, removeCgroups } from '../sys/cgroups.js';
import { attachedLoops, loopDetach } from '../sys/loop.js';
import { removeDir, unmount } from '../sys/mount.js';
import { mountTable, mountsUnder } from '../sys/mountinfo.js';
import { findProcs } from '../sys/procs.js';

export interface Recovery {
  /** The state file of the last run still held this intent: the agent died during that request. */
  intent?: Intent;
  /** The state file was damaged (the agent starts without records): loops it named are known. */
  damaged?: { loops: Array<[dev: string, file: string]> };
  /** Other directories whose files' loop devices are the agent's (the image cache, when outside the run-dir). */
  loopRoots?: string[];
}

export interface Cleaned {
  mounts: string[];
  loops: string[];
  cgroups: string[];
  supervisors: number[];
  dirs: string[];
}

const SHIM = 'imageapi-shim';

async function names(dir: string): Promise<string[]> {
  return readdir(dir).catch(() => [] as string[]);
}

/** Raise the id sequences past every id the run-dir shows in use, so none is ever given twice. */
export async function raiseSeqFromRunDir(store: Store, runDir: string): Promise<void> {
  const num = (re: RegExp, list: string[]) => list.map((n) => re.exec(n)).filter((m) => m).map((m) => Number(m![1]));
  const mounts = [
    ...num(/^mount_(\d+)$/, await names(join(runDir, 'mounts'))),
    ...num(/^mount_(\d+)$/, await names(join(runDir, 'overlay'))),
  ];
  const containers = [
    ...num(/^(\d+)$/, await names(join(runDir, 'containers'))),
    ...num(/^(\d+)-\d+\.log$/, await names(join(runDir, 'logs'))),
    ...(await agentCgroups(runDir)).keys(),
  ];
  if (mounts.length) store.raiseSeq('mount', Math.max(...mounts) + 1);
  if (containers.length) store.raiseSeq('container', Math.max(...containers) + 1);
}

/** Remove what no record owns. Never throws: each failure is logged and the rest goes on. */
export async function cleanOrphans(store: Store, runDir: string, log: Logger, rec: Recovery): Promise<Cleaned> {
  const out: Cleaned = { mounts: [], loops: [], cgroups: [], supervisors: [], dirs: [] };
  const fail = (what: string) => (err: unknown) => log.error({ err, object: what }, 'cannot remove a leftover of an unfinished request');
  const containers = store.list('container');

  // Containers first (they use the mounts): cgroups no record runs in, supervisors no record knows.
  const owned = new Set(containers.flatMap((c) => c.cgroups));
  for (const [id, dirs] of await agentCgroups(runDir)) {
    const stray = dirs.filter((d) => !owned.has(d));
    if (!stray.length) continue;
    try {
      await killCgroups(stray);
      await removeCgroups(stray);
      out.cgroups.push(...stray);
    } catch (err) {
      fail(`cgroup of container ${id}`)(err);
    }
  }
  const byId = new Map(containers.map((c) => [c.id, c]));
  for (const name of await names(join(runDir, 'containers'))) {
    if (!/^\d+$/.test(name)) continue;
    const c = byId.get(Number(name));
    const dir = join(runDir, 'containers', name);
    for (const p of await findProcs(SHIM, join(dir, 'pid'))) {
      if (c && c.shim_pid === p.pid) continue;
      try {
        process.kill(p.pid, 'SIGKILL');
        out.supervisors.push(p.pid);
      } catch {
        /* gone */
      }
    }
    if (!c) {
      await rm(dir, { recursive: true, force: true }).catch(fail(dir));
      out.dirs.push(dir);
    }
  }

  // Mounts under mounts/ that are not a record's (or below one: a recursive bind's submounts).
  const mountsDir = join(runDir, 'mounts');
  const keep = new Set(store.list('mount').map((m) => m.mounted.mountpoint));
  const topOf = (p: string) => join(mountsDir, p.slice(mountsDir.length + 1).split('/')[0]!);
  const sources = new Set<string>();
  for (const m of await mountsUnder(mountsDir)) {
    if (m.target === mountsDir || keep.has(topOf(m.target))) continue;
    try {
      await unmount(m.target);
      out.mounts.push(m.target);
      if (m.source.startsWith('/dev/loop')) sources.add(m.source);
    } catch (err) {
      fail(m.target)(err);
    }
  }
  const stillMounted = new Set((await mountsUnder(mountsDir)).map((m) => topOf(m.target)));
  for (const name of await names(mountsDir)) {
    const dir = join(mountsDir, name);
    if (keep.has(dir) || stillMounted.has(dir)) continue;
    try {
      await removeDir(dir);
      out.dirs.push(dir);
    } catch (err) {
      // EBUSY: a copy of it is mounted elsewhere (another namespace, a recursive bind): next start.
      log.warn({ err, dir }, 'cannot remove a leftover mountpoint yet');
    }
  }
  const overlays = new Set(store.list('mount').map((m) => (typeof m.mounted.state.dir === 'string' ? basename(m.mounted.state.dir) : '')));
  for (const name of await names(join(runDir, 'overlay'))) {
    if (overlays.has(name) || stillMounted.has(join(mountsDir, name))) continue;
    const dir = join(runDir, 'overlay', name);
    await removeDir(dir, true).catch(fail(dir));
    out.dirs.push(dir);
  }

  // Loop devices: no record holds them, and they are this agent's by their backing file.
  const held = new Set(store.list('attach').map((a) => a.attached.device_file));
  const inUse = new Set((await mountTable()).map((m) => m.source));
  const intent = rec.intent;
  const salvaged = new Map(rec.damaged?.loops ?? []);
  for (const [dev, file] of await attachedLoops()) {
    if (held.has(dev)) continue;
    const ours =
      file.startsWith(runDir + '/') ||
      (rec.loopRoots ?? []).some((r) => file.startsWith(r + '/')) ||
      (intent !== undefined && intent.loop_files.includes(file) && !intent.loops_before.includes(dev)) ||
      salvaged.get(dev) === file ||
      (rec.damaged !== undefined && sources.has(dev));
    if (!ours || inUse.has(dev)) continue; // (what is still mounted somewhere is someone's)
    try {
      await loopDetach(dev);
      out.loops.push(`${dev} (${file})`);
    } catch (err) {
      fail(dev)(err);
    }
  }
  return out;
}
