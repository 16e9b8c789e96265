// overlay: overlayfs over lower mounts (lower[0] on top) with an upper and work directory that
// the agent keeps under its run-dir, so the mount is writable and the lowers stay untouched.
import { mkdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { MountOverlay } from '../../model/types.js';
import { invalid } from '../../model/errors.js';
import type { Dep } from '../../model/objects.js';
import { checkOptions, removeDir, requireFilesystem } from '../../sys/mount.js';
import { mountAt } from '../../sys/mountinfo.js';
import type { MountDriver } from '../driver.js';
import { mountOrInvalid, unmountOrInUse } from '../kernel.js';

// mount(2) takes the option string in one page; longer lowerdir lists fail with a misleading error.
const MAX_DATA = 4000;
const RESERVED = ['lowerdir', 'upperdir', 'workdir', 'datadir'];

export const overlayDriver: MountDriver<MountOverlay> = {
  kind: 'overlay',
  children: () => [{ field: 'lower', type: 'mount', many: true }],
  async available(spec) {
    await requireFilesystem('overlay');
    checkOptions(spec.mount_options, 'overlay.mount_options', RESERVED);
  },
  async mount(spec, deps, mountpoint, ctx) {
    const lowers = ((deps.lower ?? []) as Dep[]).map((d) => (d.type === 'mount' ? d.mountpoint : ''));
    if (lowers.length === 0) throw invalid('overlay.lower: at least one lower mount is needed');
    const extra = checkOptions(spec.mount_options, 'overlay.mount_options', RESERVED);
    const dir = join(ctx.runDir, 'overlay', basename(mountpoint));
    const upperdir = join(dir, 'upper');
    const workdir = join(dir, 'work');
    // Lowers that live beside the mountpoint are named relative to it (mount runs there), which
    // keeps the option string short enough for hundreds of layers.
    const here = dirname(mountpoint);
    const lowerdir = lowers.map((l) => (dirname(l) === here ? basename(l) : l)).join(':');
    if (lowers.some((l) => /[:,]/.test(l))) throw invalid('overlay.lower: a lower path contains ":" or ","');
    const options = [`lowerdir=${lowerdir}`, `upperdir=${upperdir}`, `workdir=${workdir}`, ...extra];
    if (options.join(',').length > MAX_DATA) {
      throw invalid(`overlay.lower: ${lowers.length} lower layers make the mount options longer than the kernel accepts (${MAX_DATA} bytes)`);
    }
    await mkdir(upperdir, { recursive: true, mode: 0o755 });
    await mkdir(workdir, { recursive: true, mode: 0o700 });
    try {
      await mountOrInvalid({ source: 'overlay', target: mountpoint, fstype: 'overlay', options, cwd: here });
    } catch (err) {
      await removeDir(dir, true);
      throw err;
    }
    return { mountpoint, state: { dir }, shown: { upperdir, workdir } };
  },
  async unmount(_spec, mounted) {
    await unmountOrInUse(mounted.mountpoint);
    await removeDir(String(mounted.state.dir), true);
  },
  async adopt(_spec, mounted) {
    const m = await mountAt(mounted.mountpoint);
    return m && m.fstype === 'overlay' ? mounted : null;
  },
};
