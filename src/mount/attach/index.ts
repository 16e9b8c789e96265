// attach: a filesystem on an attachment's block device.
import type { MountAttach } from '../../model/types.js';
import { badRequest } from '../../model/errors.js';
import { checkOptions, mount, requireFilesystem, unmountTree } from '../../sys/mount.js';
import { mountAt } from '../../sys/mountinfo.js';
import type { MountDriver } from '../driver.js';

export const attachMountDriver: MountDriver<MountAttach> = {
  kind: 'attach',
  async available(spec) {
    await requireFilesystem(spec.fs_type);
    checkOptions(spec.mount_options, 'attach.mount_options');
  },
  async mount(spec, deps, mountpoint) {
    if (!deps.device) throw badRequest('attach: no attachment');
    const options = checkOptions(spec.mount_options, 'attach.mount_options');
    // A read-only device can only be mounted read-only; say so rather than let mount(8) guess.
    if (deps.device.readonly && !options.includes('ro')) options.push('ro');
    await mount({ source: deps.device.device_file, target: mountpoint, fstype: spec.fs_type, options });
    return { mountpoint, state: { fstype: spec.fs_type, source: deps.device.device_file } };
  },
  async unmount(_spec, mounted) {
    await unmountTree(mounted.mountpoint);
  },
  async adopt(_spec, mounted) {
    const m = await mountAt(mounted.mountpoint);
    return m && m.fstype === mounted.state.fstype ? mounted : null;
  },
};
