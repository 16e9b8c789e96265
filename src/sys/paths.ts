// Confining user-supplied paths to their base directory: no `..`, no escape through symlinks;
// and what may be an image file or a bind source at all (no kernel interfaces, allowed roots).
import { realpath, statfs } from 'node:fs/promises';
import { isAbsolute, join, normalize, sep } from 'node:path';
import { invalid, fromFsError } from '../model/errors.js';
import { mountsUnder } from './mountinfo.js';

/**
 * Resolve `path` (relative to `base`, a leading `/` meaning the base itself) to a real path that
 * lies inside `base`. `what` names the field for error messages.
 */
export async function resolveWithin(base: string, path: string, what: string): Promise<string> {
  if (path.includes('\0')) throw invalid(`${what}: contains a NUL byte`);
  if (path.split('/').includes('..')) throw invalid(`${what}: "${path}" may not contain ".."`);
  const realBase = await realpath(base).catch((e) => {
    throw fromFsError(e, `${what}: base ${base}`);
  });
  const joined = normalize(join(realBase, isAbsolute(path) ? path.slice(1) : path));
  const real = await realpath(joined).catch((e) => {
    throw fromFsError(e, `${what}: "${path}"`);
  });
  if (!isInside(realBase, real)) {
    throw invalid(`${what}: "${path}" leads outside its base through a symbolic link (to ${real})`);
  }
  return real;
}

export function isInside(base: string, p: string): boolean {
  if (base === '/') return true;
  return p === base || p.startsWith(base.endsWith(sep) ? base : base + sep);
}

// ------------------------------------------------------------------ what may be an image or a bind source

/** Host trees that are the kernel's, not files: never an image, never a bind source. */
export const KERNEL_TREES = ['/proc', '/sys', '/dev'] as const;

/** Magic numbers (statfs f_type) of pseudo filesystems: their "files" are kernel interfaces. */
const PSEUDO_FS: Record<number, string> = {
  0x9fa0: 'proc',
  0x62656572: 'sysfs',
  0x1cd1: 'devpts',
  0x27e0eb: 'cgroup',
  0x63677270: 'cgroup2',
  0x64626720: 'debugfs',
  0x74726163: 'tracefs',
  0x73636673: 'securityfs',
  0xcafe4a11: 'bpf',
  0x62656570: 'configfs',
  0x6165676c: 'pstore',
  0xde5e81e4: 'efivarfs',
  0x42494e4d: 'binfmt_misc',
  0x19800202: 'mqueue',
  0x6e736673: 'nsfs',
};

export interface PathPolicy {
  /** Real paths under which `base: root` files and sources must lie (default: `/`). */
  roots: readonly string[];
  /** A recursive bind of `/` (it carries every mount of the host, other agents' too). */
  allowRootRbind?: boolean;
  /** Paths a bind source must not contain (the agent's unix socket: a container must not reach it). */
  hidden?: readonly string[];
}

export const DEFAULT_POLICY: PathPolicy = { roots: ['/'] };

/** The policy from the agent's config (`loopback_roots`, `bind_roots`, `allow_root_rbind`, the socket). */
export function policyFrom(config: Readonly<Record<string, unknown>>, kind: 'loopback' | 'bind'): PathPolicy {
  const roots = config[`${kind}_roots`];
  return {
    roots: Array.isArray(roots) && roots.length ? (roots as string[]) : ['/'],
    allowRootRbind: config.allow_root_rbind === true,
    hidden: Array.isArray(config.hidden_paths) ? (config.hidden_paths as string[]) : [],
  };
}

async function pseudoFs(real: string): Promise<string | undefined> {
  const st = await statfs(real).catch(() => null);
  return st ? PSEUDO_FS[Number(st.type)] : undefined;
}

/**
 * Refuse a real path (already confined to its base by resolveWithin) that must not be an image
 * file or a bind source: under /proc, /sys or /dev, on a pseudo filesystem wherever it is
 * mounted, or (for `base: root`) outside the configured roots. `what` names the field.
 */
export async function checkSource(real: string, given: string, what: string, policy: PathPolicy, baseRoot: boolean): Promise<void> {
  const tree = KERNEL_TREES.find((t) => isInside(t, real));
  if (tree) throw invalid(`${what}: "${given}" is under ${tree}, which holds the kernel's interfaces, not images (block devices go through the "local" kind)`);
  const fs = await pseudoFs(real);
  if (fs) throw invalid(`${what}: "${given}" is on a ${fs} filesystem (a kernel interface, not an image)`);
  if (baseRoot) {
    const roots = await Promise.all(policy.roots.map((r) => realpath(r).catch(() => r)));
    if (!roots.some((r) => isInside(r, real))) {
      throw invalid(`${what}: "${given}" is outside the allowed roots (${policy.roots.join(', ')}; set in the config file)`);
    }
  }
}

/** A bind source: also no recursive bind of `/` unless allowed, and never over the agent's socket. */
export async function checkBindSource(real: string, given: string, recursive: boolean, policy: PathPolicy, baseRoot: boolean): Promise<void> {
  await checkSource(real, given, 'bind.path', policy, baseRoot);
  if (real === '/' && recursive && !policy.allowRootRbind) {
    throw invalid('bind.path: a recursive bind of "/" carries every mount of the host (other agents\' too) and is refused; set allow_root_rbind: true in the config file to allow it');
  }
  if (real === '/' && policy.allowRootRbind) return; // explicitly allowed: the operator accepts what it exposes
  if (recursive) {
    // A recursive bind carries every mount below its source: no kernel interface may come along.
    const pseudo = new Set(Object.values(PSEUDO_FS).concat(['devtmpfs', 'fusectl', 'hugetlbfs', 'autofs']));
    const carried = (await mountsUnder(real)).find((m) => m.target !== real && pseudo.has(m.fstype));
    if (carried) {
      throw invalid(`bind.path: a recursive bind of "${given}" would carry the ${carried.fstype} mount at ${carried.target} (a kernel interface) into it; bind it without "recursive"`);
    }
  }
  for (const h of policy.hidden ?? []) {
    const hReal = await realpath(h).catch(() => h);
    if (isInside(real, hReal)) {
      throw invalid(`bind.path: "${given}" contains the agent's socket ${h}: a container on it could reach the agent`);
    }
  }
}
