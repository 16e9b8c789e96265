// Mounts (mount(2) in a built-in of the fork server, or mount(8)), umount2(2), and what the kernel
// can mount. A tool's failure is reported as it is (INTERNAL); the driver that asked knows what it
// means for the request.
import { readFile, rm, rmdir } from 'node:fs/promises';
import { invalid, unsupported } from '../model/errors.js';
import { run } from './exec.js';
import { mountsUnder } from './mountinfo.js';

const MOUNT_TIMEOUT_MS = 30_000;

let fsCache: Set<string> | null = null;
/** Filesystem types in /proc/filesystems (read once; the kernel here loads no modules). */
export async function kernelFilesystems(): Promise<Set<string>> {
  if (!fsCache) {
    const text = await readFile('/proc/filesystems', 'utf8');
    fsCache = new Set(text.split('\n').map((l) => l.trim().split(/\s+/).pop() ?? '').filter(Boolean));
  }
  return fsCache;
}

export async function requireFilesystem(fstype: string, why = ''): Promise<void> {
  if (!(await kernelFilesystems()).has(fstype)) {
    throw unsupported(`this kernel cannot mount "${fstype}" (it is not in /proc/filesystems)${why}`);
  }
}

/** Mount options are joined with commas: an element may not smuggle in more of them. */
export function checkOptions(options: string[] | undefined, what: string, reserved: string[] = []): string[] {
  const out: string[] = [];
  for (const o of options ?? []) {
    if (/[,\s\0]/.test(o)) throw invalid(`${what}: option "${o}" may not contain commas or whitespace`);
    const key = o.split('=')[0]!.toLowerCase();
    if (reserved.includes(key)) throw invalid(`${what}: option "${key}" is set by the agent and may not be given`);
    out.push(o);
  }
  return out;
}

export interface MountArgs {
  source: string;
  target: string;
  fstype?: string;
  options?: string[];
  bind?: boolean;
  rbind?: boolean;
  cwd?: string;
}

/**
 * Types mounted by mount(2) alone (no /sbin/mount.TYPE helper, no libblkid probing): these go to
 * the fork server's built-in `@mount` (native/spawner-ops.c), the rest to mount(8).
 */
const DIRECT_TYPES = new Set(['squashfs', 'overlay', 'tmpfs', 'ext2', 'ext3', 'ext4', 'erofs', 'xfs', 'btrfs', 'vfat', 'iso9660']);
/** Options that mean something to mount(8) itself (libmount's userspace options), not to the kernel. */
const USERSPACE_OPTION = /^(x-|loop|offset=|sizelimit=|encryption=|nofail$|noauto$|auto$|user$|nouser$|users$|owner$|group$|_netdev$|comment=|helper=|remount$|bind$|rbind$|r?(private|shared|slave|unbindable)$|X-)/;

const direct = (a: MountArgs) => !a.bind && !a.rbind && a.fstype !== undefined && DIRECT_TYPES.has(a.fstype) && !(a.options ?? []).some((o) => USERSPACE_OPTION.test(o));

export async function mount(a: MountArgs): Promise<void> {
  const args: string[] = [];
  if (a.bind) args.push('--bind');
  if (a.rbind) args.push('--rbind');
  if (a.fstype) args.push('-t', a.fstype);
  if (a.options?.length) args.push('-o', a.options.join(','));
  args.push('--', a.source, a.target);
  // The built-in takes mount(8)'s arguments (those it is given: no --bind).
  await run(direct(a) ? '@mount' : 'mount', args, { timeoutMs: MOUNT_TIMEOUT_MS, cwd: a.cwd });
}

export async function remount(target: string, options: string[]): Promise<void> {
  await run('mount', ['-o', ['remount', ...options].join(','), '--', target], { timeoutMs: MOUNT_TIMEOUT_MS });
}

/** Unmount the topmost mount at `target` (umount2 in the fork server's built-in: no umount(8) to run). */
export async function unmount(target: string): Promise<void> {
  await run('@umount', [target], { timeoutMs: MOUNT_TIMEOUT_MS });
}

/** Unmount everything at and below `target` (deepest first); not mounted is not an error. */
export async function unmountTree(target: string): Promise<void> {
  for (const m of await mountsUnder(target)) await unmount(m.target);
}

/** Remove a directory the agent created (empty mountpoint), ignoring one already gone. */
export async function removeDir(dir: string, recursive = false): Promise<void> {
  if (recursive) await rm(dir, { recursive: true, force: true });
  else await rmdir(dir).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'ENOENT') throw e;
  });
}
