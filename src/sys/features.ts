// What this kernel and host offer, as GET /version reports it: the RBD paths (krbd, nbd, FUSE),
// overlayfs, the cgroup layout and the namespaces. Read from /sys, /proc and /dev only.
import { readdir, readFile } from 'node:fs/promises';
import { release } from 'node:os';
import type { KernelFeatures } from '../model/types.js';
import { cgroupLayout } from './cgroups.js';
import { exists } from './fs.js';

export type { KernelFeatures };

export async function kernelFeatures(): Promise<KernelFeatures> {
  const filesystems = await readFile('/proc/filesystems', 'utf8').catch(() => '');
  const fs = new Set(filesystems.split('\n').map((l) => l.trim().split(/\s+/).pop() ?? ''));
  const devices = await readFile('/proc/devices', 'utf8').catch(() => '');
  const ns = await readdir('/proc/self/ns').catch(() => [] as string[]);
  return {
    kernel: release(),
    krbd: await exists('/sys/bus/rbd'),
    nbd: /\bnbd\b/.test(devices) || (await exists('/sys/block/nbd0')),
    fuse: fs.has('fuse') && (await exists('/dev/fuse')),
    overlay: fs.has('overlay'),
    squashfs: fs.has('squashfs'),
    cgroup: (await cgroupLayout()).mode,
    // `pid_for_children` and `time_for_children` are the same namespaces seen from a child.
    namespaces: ns.filter((n) => !n.endsWith('_for_children')).sort(),
  };
}
