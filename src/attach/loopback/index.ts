// loopback: a loop device over a file under the host's root or inside another mount.
import { access, constants, stat } from 'node:fs/promises';
import type { AttachLoopback } from '../../model/types.js';
import { badRequest, fromFsError } from '../../model/errors.js';
import { loopAttach, loopBackingFile, loopDetach, loopReadonly } from '../../sys/loop.js';
import { resolveWithin } from '../../sys/paths.js';
import type { AttachDriver } from '../driver.js';

/** The store resolves `mount` to a mountpoint and passes it as `base_dir` (not part of the API). */
export type LoopbackSpec = AttachLoopback & { base_dir?: string };

export const loopbackDriver: AttachDriver<LoopbackSpec> = {
  kind: 'loopback',

  async attach(spec) {
    const base = spec.base === 'mount' ? spec.base_dir : '/';
    if (!base) throw badRequest('loopback: base "mount" needs a mount');
    const file = await resolveWithin(base, spec.path, 'loopback.path');
    const st = await stat(file).catch((e) => {
      throw fromFsError(e, `loopback.path "${spec.path}"`);
    });
    if (!st.isFile()) throw badRequest(`loopback.path "${spec.path}" is not a regular file`);
    if (st.size === 0) throw badRequest(`loopback.path "${spec.path}" is empty`);
    // Read-only when asked, or when the file (or the filesystem holding it) cannot be written.
    const writable = await access(file, constants.W_OK).then(
      () => true,
      () => false,
    );
    const dev = await loopAttach(file, { readonly: spec.readonly === true || !writable, partscan: spec.readPartitions === true });
    return { device_file: dev, state: { file, readonly: await loopReadonly(dev) } };
  },

  async detach(_spec, attached) {
    if ((await loopBackingFile(attached.device_file)) !== attached.state.file) return; // reused by someone else, or gone
    await loopDetach(attached.device_file);
  },

  async adopt(_spec, attached) {
    return (await loopBackingFile(attached.device_file)) === attached.state.file ? attached : null;
  },

  describe(spec) {
    const { base_dir: _hidden, ...shown } = spec;
    return shown;
  },
};
