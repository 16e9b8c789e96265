// bind: a directory of the host's root, or of another mount, bound at the mountpoint.
import { stat } from 'node:fs/promises';
import { invalid } from '../../model/errors.js';
import { baseMountSlot, mountDep } from '../../model/objects.js';
import type { MountBind } from '../../model/types.js';
import { remount } from '../../sys/mount.js';
import { mountAt, mountsUnder } from '../../sys/mountinfo.js';
import { checkBindSource, policyFrom, resolveWithin } from '../../sys/paths.js';
import type { MountDriver } from '../driver.js';
import { mountOrInvalid, unmountOrInUse } from '../kernel.js';

export const bindDriver: MountDriver<MountBind> = {
  kind: 'bind',
  children: (spec) => baseMountSlot(spec, 'bind'),
  async mount(spec, deps, mountpoint, ctx) {
    const base = spec.base === 'mount' ? mountDep(deps, 'mount') : '/';
    if (!base) throw invalid('bind: base "mount" needs a mount');
    const source = await resolveWithin(base, spec.path, 'bind.path');
    if (!(await stat(source)).isDirectory()) throw invalid(`bind.path "${spec.path}" is not a directory`);
    await checkBindSource(source, spec.path, spec.recursive === true, policyFrom(ctx.config, 'bind'), spec.base !== 'mount');
    await mountOrInvalid({ source, target: mountpoint, bind: !spec.recursive, rbind: spec.recursive === true });
    if (spec.ro) {
      try {
        // A bind mount ignores `ro` at creation; it takes a remount, and one per submount.
        for (const m of (await mountsUnder(mountpoint)).reverse()) await remount(m.target, ['bind', 'ro']);
      } catch (err) {
        await unmountOrInUse(mountpoint);
        throw err;
      }
    }
    return { mountpoint, state: { source } };
  },
  async unmount(_spec, mounted) {
    await unmountOrInUse(mounted.mountpoint);
  },
  async adopt(_spec, mounted) {
    return (await mountAt(mounted.mountpoint)) ? mounted : null;
  },
};
