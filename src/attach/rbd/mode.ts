// Which way an RBD image becomes a block device on this host: the kernel client (krbd), rbd-nbd
// over the kernel's nbd, or rbd-fuse plus a loop device. `rbd_mode` in the agent config picks one
// or leaves it to `auto`.
import { access, constants } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { internal, unsupported } from '../../model/errors.js';
import { exists } from '../../sys/fs.js';
import type { RbdMode, RbdModeSetting } from './types.js';

/** What the host offers; gathered by hostFacts(), given by hand in tests. */
export interface HostFacts {
  /** /sys/bus/rbd exists (kernel RBD). */
  krbd: boolean;
  /** /sys/module/nbd or /dev/nbd0 exists. */
  nbdKernel: boolean;
  /** Tools on PATH. */
  rbd: boolean;
  rbdNbd: boolean;
  rbdFuse: boolean;
  /** /dev/fuse exists. */
  fuse: boolean;
}

/** Why `mode` cannot work with `facts`, or undefined when it can. */
export function unavailableReason(mode: RbdMode, f: HostFacts): string | undefined {
  switch (mode) {
    case 'krbd':
      if (!f.krbd) return 'this kernel has no RBD support (no /sys/bus/rbd)';
      if (!f.rbd) return 'the rbd tool is not installed (package ceph-common)';
      return undefined;
    case 'nbd':
      if (!f.nbdKernel) return 'this kernel has no nbd support (no /sys/module/nbd, no /dev/nbd0)';
      if (!f.rbdNbd) return 'rbd-nbd is not installed (package rbd-nbd)';
      return undefined;
    case 'fuse':
      if (!f.fuse) return 'FUSE is not available (no /dev/fuse)';
      if (!f.rbdFuse) return 'rbd-fuse is not installed (package rbd-fuse)';
      if (!f.rbd) return 'the rbd tool is not installed (package ceph-common)';
      return undefined;
  }
}

export function parseModeSetting(v: unknown): RbdModeSetting {
  if (v === undefined || v === null || v === '') return 'auto';
  if (v === 'auto' || v === 'krbd' || v === 'nbd' || v === 'fuse') return v;
  throw internal(`agent config: rbd_mode must be auto, krbd, nbd or fuse (not ${JSON.stringify(v)})`);
}

/**
 * The mode to use. `auto`: krbd if the kernel has RBD, else nbd if the kernel has nbd and rbd-nbd
 * is installed, else fuse. A forced mode that cannot work here, or `auto` with nothing usable,
 * is a 501 with the reasons.
 */
export function chooseMode(setting: RbdModeSetting, f: HostFacts): RbdMode {
  if (setting !== 'auto') {
    const why = unavailableReason(setting, f);
    if (why) throw unsupported(`rbd: rbd_mode is "${setting}" but ${why}`);
    return setting;
  }
  if (f.krbd) {
    const why = unavailableReason('krbd', f);
    if (why) throw unsupported(`rbd: ${why}`);
    return 'krbd';
  }
  if (!unavailableReason('nbd', f)) return 'nbd';
  const why = unavailableReason('fuse', f);
  if (why) {
    throw unsupported(
      `rbd: no way to attach RBD images on this host: no kernel RBD (/sys/bus/rbd), ` +
        `nbd: ${unavailableReason('nbd', f)}, fuse: ${why}`,
    );
  }
  return 'fuse';
}


async function onPath(tool: string): Promise<boolean> {
  const dirs = (process.env.PATH || '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin').split(delimiter);
  for (const d of dirs) if (d && (await exists(join(d, tool), constants.X_OK))) return true;
  return false;
}

export async function hostFacts(): Promise<HostFacts> {
  const [krbd, nbdMod, nbd0, rbd, rbdNbd, rbdFuse, fuse] = await Promise.all([
    exists('/sys/bus/rbd'),
    exists('/sys/module/nbd'),
    exists('/dev/nbd0'),
    onPath('rbd'),
    onPath('rbd-nbd'),
    onPath('rbd-fuse'),
    exists('/dev/fuse'),
  ]);
  return { krbd, nbdKernel: nbdMod || nbd0, rbd, rbdNbd, rbdFuse, fuse };
}

export async function resolveMode(config: Readonly<Record<string, unknown>>): Promise<RbdMode> {
  return chooseMode(parseModeSetting(config.rbd_mode), await hostFacts());
}
