// attach: a filesystem on an attachment's block device.
import { invalid } from '../../model/errors.js';
import type { MountAttach } from '../../model/types.js';
import { checkOptions, requireFilesystem } from '../../sys/mount.js';
import { mountAt } from '../../sys/mountinfo.js';
import type { MountDriver } from '../driver.js';
import { mountOrInvalid, unmountOrInUse } from '../kernel.js';

export const attachMountDriver: MountDriver<MountAttach> = {
  kind: 'attach',
  children: () => [{ field: 'attach', type: 'attach' }],
  async available(spec) {
    await requireFilesystem(spec.fs_type);
    checkOptions(spec.mount_options, 'attach.mount_options');
  },
  async mount(spec, deps, mountpoint) {
    const device = deps.attach;
    if (!device || Array.isArray(device) || device.type !== 'attach') throw invalid('attach: no attachment');
    const options = checkOptions(spec.mount_options, 'attach.mount_options');
    // A read-only device can only be mounted read-only; say so rather than let mount(8) guess.
    if (device.readonly && !options.includes('ro')) options.push('ro');
    await mountOrInvalid({ source: device.device_file, target: mountpoint, fstype: spec.fs_type, options });
    return { mountpoint, state: { fstype: spec.fs_type, source: device.device_file } };
  },
  async unmount(_spec, mounted) {
    await unmountOrInUse(mounted.mountpoint);
  },
  async adopt(_spec, mounted) {
    const m = await mountAt(mounted.mountpoint);
    return m && m.fstype === mounted.state.fstype ? mounted : null;
  },
};
