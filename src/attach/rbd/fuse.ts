// The userspace path: one rbd-fuse per (monitors, pool, namespace, user, key, connection
// settings), shared by every attachment of that cluster/pool/user, exposing each image as a file;
// a loop device over that file is the block device.
//
// Layout, under ${runDir}/rbd-fuse/<hash>/ (0700):  ceph.conf, keyring (0600), meta.json,
// client.log, and mnt/ (the FUSE mount). rbd-fuse daemonises itself (its own session), so it
// outlives the agent. Who uses an instance is read from the kernel, not from agent state: the loop
// devices whose backing file lies under its mnt/ — which survives an agent restart as it is.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { type AgentError, alreadyExists, internal, unsupported } from '../../model/errors.js';
import { run } from '../../sys/exec.js';
import { unmount } from '../../sys/mount.js';
import { loopAttach, loopBackingFile, loopDetach, loopReadonly } from '../../sys/loop.js';
import { mountAt } from '../../sys/mountinfo.js';
import type { Attached, DriverContext } from '../driver.js';
import { writeClientFiles } from './cephconf.js';
import { libradosSettings } from './options.js';
import { checkFsid, probeImage } from './probe.js';
import { findProcs, stopProc } from '../../sys/procs.js';
import { KeyedMutex } from '../../util/mutex.js';
import { imageSpec, rbdIdentity, type Resolved } from './spec.js';
import type { RbdState } from './types.js';

/** One queue per shared rbd-fuse instance (start, probe, attach, last detach). */
const instances = new KeyedMutex();

type FuseState = Extract<RbdState, { mode: 'fuse' }>;

export const fuseRoot = (runDir: string) => join(runDir, 'rbd-fuse');

/** Short hash naming the shared instance. The key is part of it, so a wrong key never reaches a running instance. */
export function instanceHash(r: Resolved): string {
  const mons = [...new Set(r.monitors)].sort();
  const material = JSON.stringify({
    mons,
    pool: r.pool,
    ns: r.namespace ?? '',
    user: r.user,
    key: r.key ?? '',
    settings: libradosSettings(r.opts),
    // noshare: a private instance.
    own: r.opts.noshare === true ? randomBytes(8).toString('hex') : '',
  });
  return createHash('sha256').update(material).digest('hex').slice(0, 16);
}

interface Meta {
  monitors: string[];
  pool: string;
  namespace?: string;
}

/** All loop devices and their backing files. */
async function loopBackings(): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const name of await readdir('/sys/block').catch(() => [] as string[])) {
    if (!name.startsWith('loop')) continue;
    const f = await loopBackingFile(`/dev/${name}`);
    if (f) out.set(`/dev/${name}`, f.replace(/ \(deleted\)$/, ''));
  }
  return out;
}

/** Loop devices backed by a file of the instance mounted at `mnt`. */
export async function instanceUsers(mnt: string): Promise<string[]> {
  const prefix = mnt + '/';
  return [...(await loopBackings())].filter(([, f]) => f.startsWith(prefix)).map(([d]) => d);
}

/** Identities of the images attached through any rbd-fuse instance of this run-dir. */
export async function attachedIdentities(runDir: string): Promise<Set<string>> {
  const root = fuseRoot(runDir);
  const out = new Set<string>();
  const backings = [...(await loopBackings()).values()].filter((f) => f.startsWith(root + '/'));
  if (!backings.length) return out;
  for (const hash of await readdir(root).catch(() => [] as string[])) {
    const prefix = join(root, hash, 'mnt') + '/';
    const mine = backings.filter((f) => f.startsWith(prefix));
    if (!mine.length) continue;
    const meta = JSON.parse(await readFile(join(root, hash, 'meta.json'), 'utf8').catch(() => 'null')) as Meta | null;
    if (!meta) continue;
    for (const f of mine) out.add(rbdIdentity({ ...meta, image: f.slice(prefix.length) }));
  }
  return out;
}

async function fuseMounted(mnt: string): Promise<boolean> {
  const m = await mountAt(mnt);
  return m !== undefined && m.fstype.startsWith('fuse');
}

async function fuseProcs(mnt: string) {
  return findProcs('rbd-fuse', mnt);
}

/** Unmount, wait for the rbd-fuse process(es) to go, remove the instance directory. */
async function stopInstance(dir: string, log: DriverContext['log']): Promise<void> {
  const mnt = join(dir, 'mnt');
  const procs = await fuseProcs(mnt);
  if (await fuseMounted(mnt)) {
    await unmount(mnt).catch((e: AgentError) => {
      throw e.as('IN_USE');
    });
  }
  // rbd-fuse exits by itself once unmounted (it shuts its cluster connection down first).
  for (const p of procs) await stopProc(p.pid, 8000);
  await rm(dir, { recursive: true, force: true });
  log.info({ dir }, 'rbd-fuse instance stopped');
}

/** Wait for loop devices over `mnt` that the kernel is still letting go of. */
async function settledUsers(mnt: string): Promise<string[]> {
  let users = await instanceUsers(mnt);
  for (let i = 0; users.length && i < 20; i++) {
    await new Promise((res) => setTimeout(res, 50));
    users = await instanceUsers(mnt);
  }
  return users;
}

async function startInstance(r: Resolved, conf: string, mnt: string, secrets: string[]): Promise<void> {
  await mkdir(mnt, { recursive: true, mode: 0o700 });
  const args = ['-c', conf, '--id', r.user, '-p', r.pool];
  if (r.namespace) args.push(`--namespace=${r.namespace}`);
  args.push(mnt);
  // rbd-fuse mounts, then daemonises (setsid); the foreground process returns once mounted.
  await run('rbd-fuse', args, { timeoutMs: r.timeoutS * 1000, secrets, failKind: 'INTERNAL' });
  if (!(await fuseMounted(mnt))) throw internal(`rbd: rbd-fuse exited without mounting ${mnt}`);
}

export async function fuseAttach(r: Resolved, ctx: DriverContext): Promise<Attached> {
  if (r.snapshot !== undefined) {
    throw unsupported(
      `rbd: snapshot "${r.snapshot}": this host has no kernel RBD and rbd-fuse (Ceph 16) exposes only image heads, not snapshots`,
    );
  }
  // Loop backing files are shown as real paths: work under the run-dir's real path.
  await mkdir(ctx.runDir, { recursive: true });
  const runDir = await realpath(ctx.runDir);
  const hash = instanceHash(r);
  const dir = join(fuseRoot(runDir), hash);
  const mnt = join(dir, 'mnt');
  const file = join(mnt, r.image);
  const secrets = r.key ? [r.key] : [];
  const deadline = Date.now() + r.timeoutS * 1000;

  return instances.run(hash, async () => {
    if ((await attachedIdentities(runDir)).has(rbdIdentity(r.spec))) {
      throw alreadyExists(`rbd: ${imageSpec(r)} at ${r.spec.monitors.join(', ')} is already attached`);
    }
    let dev: string | undefined;
    try {
      // An instance whose rbd-fuse died leaves a dead mount: clear it before starting afresh.
      if ((await fuseMounted(mnt)) && (await fuseProcs(mnt)).length === 0) await stopInstance(dir, ctx.log);
      await mkdir(fuseRoot(runDir), { recursive: true, mode: 0o700 });
      const files = await writeClientFiles(dir, r);
      const meta: Meta = { monitors: r.spec.monitors, pool: r.pool, ...(r.namespace ? { namespace: r.namespace } : {}) };
      await writeFile(join(dir, 'meta.json'), JSON.stringify(meta) + '\n', { mode: 0o600 });
      await checkFsid(r, files);
      await probeImage(r, files);
      if (!(await fuseMounted(mnt))) {
        await startInstance(r, files.conf, mnt, secrets);
        ctx.log.info({ dir, pool: r.pool, namespace: r.namespace }, 'rbd-fuse instance started');
      }
      // The image must show up as a file (this also completes rbd-fuse's connection).
      const left = Math.max(1000, deadline - Date.now());
      await run('stat', ['-c', '%s', '--', file], { timeoutMs: left, secrets });
      dev = await loopAttach(file, { readonly: r.readonly });
      if ((await loopBackingFile(dev)) !== file) throw internal(`rbd: ${dev} is not backed by ${file}`);
      const state: FuseState = { mode: 'fuse', readonly: await loopReadonly(dev), dir, mnt, file };
      return { device_file: dev, state };
    } catch (err) {
      if (dev) await loopDetach(dev).catch(() => undefined);
      if ((await settledUsers(mnt)).length === 0) {
        await stopInstance(dir, ctx.log).catch((e: unknown) => ctx.log.warn({ err: e, dir }, 'rbd-fuse cleanup failed'));
      }
      throw err;
    }
  });
}

export async function fuseDetach(attached: Attached, ctx: DriverContext): Promise<void> {
  const st = attached.state as FuseState;
  const hash = basename(st.dir);
  await instances.run(hash, async () => {
    if ((await loopBackingFile(attached.device_file))?.replace(/ \(deleted\)$/, '') === st.file) {
      await loopDetach(attached.device_file);
    }
    if ((await settledUsers(st.mnt)).length === 0) await stopInstance(st.dir, ctx.log);
  });
}

/**
 * After a restart: the FUSE mount is still there with its rbd-fuse, and the loop device still has
 * our file behind it. If not, what is left of this attachment is cleared and null returned.
 */
export async function fuseAdopt(attached: Attached, ctx: DriverContext): Promise<Attached | null> {
  const st = attached.state as FuseState;
  const healthy =
    (await fuseMounted(st.mnt)) &&
    (await fuseProcs(st.mnt)).length > 0 &&
    (await loopBackingFile(attached.device_file)) === st.file;
  if (healthy) {
    return { device_file: attached.device_file, state: { ...st, readonly: await loopReadonly(attached.device_file) } };
  }
  await fuseDetach(attached, ctx).catch((err: unknown) => ctx.log.warn({ err, dir: st.dir }, 'rbd: clearing a vanished attachment failed'));
  return null;
}
