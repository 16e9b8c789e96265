// The kernel path: `rbd device map` / `rbd device unmap`; the kernel's view of a mapping lives in
// /sys/bus/rbd/devices/<id>/, which is what adoption reads.
import { randomBytes } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { internal } from '../../model/errors.js';
import { run } from '../../sys/exec.js';
import type { Attached, DriverContext } from '../driver.js';
import { writeClientFiles } from './cephconf.js';
import { krbdOptionList } from './options.js';
import { probeImage } from './probe.js';
import type { Resolved } from './spec.js';
import type { RbdState } from './types.js';

type KrbdState = Extract<RbdState, { mode: 'krbd' }>;

/**
 * `rbd` arguments mapping `r` (pure; the tests check them exactly). The key is only ever in the
 * keyring file; `-o` carries every krbd option except `ro`/`exclusive` (their own flags).
 */
export function krbdMapArgs(r: Resolved, files: { conf: string; keyring?: string | undefined }): string[] {
  const args = ['device', 'map', '-c', files.conf, '--id', r.user];
  if (files.keyring) args.push('--keyring', files.keyring);
  args.push('-m', r.monHost, '--pool', r.pool);
  if (r.namespace) args.push('--namespace', r.namespace);
  args.push('--image', r.image);
  if (r.snapshot) args.push('--snap', r.snapshot);
  if (r.readonly) args.push('--read-only');
  if (r.opts.exclusive) args.push('--exclusive');
  const o = krbdOptionList(r.opts);
  if (o.length) args.push('-o', o.join(','));
  return args;
}

export function krbdUnmapArgs(deviceId: number, force: boolean): string[] {
  return ['device', 'unmap', ...(force ? ['-o', 'force'] : []), `/dev/rbd${deviceId}`];
}

/** The device id in `rbd device map`'s output (`/dev/rbdN`). */
export function parseMapOutput(stdout: string): number {
  const m = /\/dev\/rbd(\d+)\s*$/.exec(stdout.trim());
  if (!m) throw internal(`rbd device map printed no device: ${stdout.trim().slice(0, 200)}`);
  return Number(m[1]);
}

export interface SysfsRbd {
  pool: string;
  name: string;
  current_snap: string;
  pool_ns: string;
}

/** Does the kernel's mapping `s` still show the image of `r`? */
export function sysfsMatches(s: SysfsRbd, r: Pick<Resolved, 'pool' | 'namespace' | 'image' | 'snapshot'>): boolean {
  return (
    s.pool === r.pool &&
    s.name === r.image &&
    s.current_snap === (r.snapshot ?? '-') &&
    s.pool_ns === (r.namespace ?? '')
  );
}

export async function readSysfs(deviceId: number): Promise<SysfsRbd | null> {
  const dir = `/sys/bus/rbd/devices/${deviceId}`;
  const get = (f: string) => readFile(join(dir, f), 'utf8').then((t) => t.trim());
  try {
    const [pool, name, current_snap] = await Promise.all([get('pool'), get('name'), get('current_snap')]);
    const pool_ns = await get('pool_ns').catch(() => ''); // older kernels: no namespaces
    return { pool, name, current_snap, pool_ns };
  } catch {
    return null;
  }
}

export async function krbdAttach(r: Resolved, ctx: DriverContext): Promise<Attached> {
  // The key is needed only while mapping: the kernel keeps it in its own keyring afterwards.
  const dir = join(ctx.runDir, 'rbd-krbd', randomBytes(8).toString('hex'));
  const secrets = r.key ? [r.key] : [];
  try {
    const files = await writeClientFiles(dir, r);
    await probeImage(r, files);
    const { stdout } = await run('rbd', krbdMapArgs(r, files), {
      timeoutMs: r.timeoutS * 1000 + 5000,
      secrets,
      failKind: 'INVALID',
    });
    const id = parseMapOutput(stdout);
    const state: KrbdState = { mode: 'krbd', device_id: id, readonly: r.readonly, force_unmap: r.opts.force === true };
    return { device_file: `/dev/rbd${id}`, state };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export async function krbdDetach(r: Resolved, attached: Attached): Promise<void> {
  const st = attached.state as KrbdState;
  const s = await readSysfs(st.device_id);
  if (!s || !sysfsMatches(s, r)) return; // gone, or the id now belongs to another mapping
  await run('rbd', krbdUnmapArgs(st.device_id, st.force_unmap), { timeoutMs: r.timeoutS * 1000 + 5000, failKind: 'IN_USE' });
}

export async function krbdAdopt(r: Resolved, attached: Attached): Promise<Attached | null> {
  const st = attached.state as KrbdState;
  const s = await readSysfs(st.device_id);
  return s && sysfsMatches(s, r) ? attached : null;
}
