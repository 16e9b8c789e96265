// nfs: an NFS export, through mount(8) (nfs-common's mount.nfs does the RPC work).
import { unsupported } from '../../model/errors.js';
import type { MountNfs } from '../../model/types.js';
import { checkOptions, kernelFilesystems } from '../../sys/mount.js';
import { mountAt } from '../../sys/mountinfo.js';
import type { MountDriver } from '../driver.js';
import { mountOrInvalid, unmountOrInUse } from '../kernel.js';

export const nfsDriver: MountDriver<MountNfs> = {
  kind: 'nfs',
  async available(spec) {
    const fs = await kernelFilesystems();
    if (!fs.has('nfs') && !fs.has('nfs4')) {
      throw unsupported('nfs: this kernel has no NFS client (neither nfs nor nfs4 is in /proc/filesystems)');
    }
    checkOptions(spec.options, 'nfs.options');
  },
  async mount(spec, _deps, mountpoint) {
    const options = checkOptions(spec.options, 'nfs.options');
    if (spec.ro && !options.includes('ro')) options.push('ro');
    const host = spec.host.includes(':') ? `[${spec.host}]` : spec.host;
    await mountOrInvalid({ source: `${host}:${spec.path}`, target: mountpoint, fstype: 'nfs', options });
    return { mountpoint, state: {} };
  },
  async unmount(_spec, mounted) {
    await unmountOrInUse(mounted.mountpoint);
  },
  async adopt(_spec, mounted) {
    const m = await mountAt(mounted.mountpoint);
    return m && m.fstype.startsWith('nfs') ? mounted : null;
  },
};
