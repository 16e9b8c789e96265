// v0.1's `rbd` mount, `{fs_type, mount_options, rbd: {…}}` or `{fs_type, id}`: an attach mount of
// an RBD attachment, said the old way. No definition means a reference, and no id means 0 (the
// Go client drops `id: 0`), as everywhere.
import type { MountRbdV1 } from '../../model/types.js';
import type { MountAlias } from '../driver.js';

export const rbdMountAlias: MountAlias = {
  kind: 'rbd',
  of: 'attach',
  expand(spec) {
    const { rbd, id, fs_type, mount_options } = spec as MountRbdV1;
    const attach = rbd ? { kind: 'rbd', rbd } : { id: id ?? 0, kind: 'rbd' };
    return { attach, fs_type, ...(mount_options ? { mount_options } : {}) };
  },
};
