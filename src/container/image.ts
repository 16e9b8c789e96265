// Checks of a container's image that can be made before anything starts: the root is a
// directory, and the command exists in it and is executable. Symbolic links inside the image
// are resolved relative to the image's root, never the host's.
import { lstat, readlink, stat, statfs } from 'node:fs/promises';
import { posix } from 'node:path';
import { invalid, unsupported } from '../model/errors.js';

const PATH = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];
const MAX_LINKS = 40;

/** Resolve `p` (absolute, inside the image) to a host path, following links as the container would. */
async function resolveInRoot(root: string, p: string): Promise<string | null> {
  let parts = p.split('/').filter(Boolean);
  let done: string[] = [];
  let links = 0;
  while (parts.length) {
    const part = parts.shift()!;
    if (part === '.') continue;
    if (part === '..') {
      done.pop();
      continue;
    }
    const host = posix.join(root, ...done, part);
    const st = await lstat(host).catch(() => null);
    if (!st) return null;
    if (st.isSymbolicLink()) {
      if (++links > MAX_LINKS) return null;
      const target = await readlink(host);
      if (target.startsWith('/')) done = [];
      parts = [...target.split('/').filter(Boolean), ...parts];
      continue;
    }
    done.push(part);
  }
  return posix.join(root, ...done);
}

export async function checkImageRoot(root: string): Promise<void> {
  const st = await stat(root).catch(() => null);
  if (!st?.isDirectory()) throw invalid(`container.mount: the mount's directory ${root} is not a directory`);
}

/** Where the command's file is inside the image (for the log), or a 400 saying why it cannot run. */
export async function checkInit(root: string, argv0: string): Promise<string> {
  const candidates = argv0.includes('/') ? [posix.resolve('/', argv0)] : PATH.map((d) => posix.join(d, argv0));
  for (const c of candidates) {
    const host = await resolveInRoot(root, c);
    if (!host) continue;
    const st = await stat(host).catch(() => null);
    if (!st) continue;
    if (!st.isFile()) throw invalid(`command: ${c} in the image is not a regular file`);
    if ((st.mode & 0o111) === 0) throw invalid(`command: ${c} in the image is not executable`);
    return c;
  }
  throw invalid(
    argv0.includes('/') ? `command: ${argv0} does not exist in the image` : `command: "${argv0}" is not found in the image's PATH (${PATH.join(':')})`,
  );
}

/** Filesystems (statfs f_type) that refuse MOUNT_ATTR_IDMAP on the kernels this agent knows (6.x). */
const NOT_IDMAPPABLE: Record<number, string> = { 0x794c7630: 'overlayfs', 0x73717368: 'squashfs' };

/**
 * A user namespace needs an id-mapped root: refuse, before anything starts, a root on a
 * filesystem known to refuse one. Others are tried by the helper at start (which then fails
 * with the kernel's answer, also a 501).
 */
export async function checkIdmappable(root: string): Promise<void> {
  const type = Number((await statfs(root)).type);
  const name = NOT_IDMAPPABLE[type];
  if (name) {
    throw unsupported(`namespaces: "user": this kernel cannot id-map ${name}, the container's root (${root}); use a bind mount of a directory on ext4, xfs, btrfs or tmpfs`);
  }
}
