// loopback: a loop device over a file under the host's root or inside another mount.
import { access, constants, stat } from 'node:fs/promises';
import { fromFsError, invalid } from '../../model/errors.js';
import { baseMountSlot, mountDep } from '../../model/objects.js';
import type { AttachLoopback } from '../../model/types.js';
import { loopAttach, loopBackingFile, loopDetach, loopReadonly } from '../../sys/loop.js';
import { checkSource, policyFrom, resolveWithin } from '../../sys/paths.js';
import type { AttachDriver } from '../driver.js';

export const loopbackDriver: AttachDriver<AttachLoopback> = {
  kind: 'loopback',

  children: (spec) => baseMountSlot(spec, 'loopback'),

  async attach(spec, deps, ctx) {
    const base = spec.base === 'mount' ? mountDep(deps, 'mount') : '/';
    if (!base) throw invalid('loopback: base "mount" needs a mount');
    const file = await resolveWithin(base, spec.path, 'loopback.path');
    await checkSource(file, spec.path, 'loopback.path', policyFrom(ctx.config, 'loopback'), spec.base !== 'mount');
    const st = await stat(file).catch((e) => {
      throw fromFsError(e, `loopback.path "${spec.path}"`);
    });
    if (!st.isFile()) throw invalid(`loopback.path "${spec.path}" is not a regular file`);
    if (st.size === 0) throw invalid(`loopback.path "${spec.path}" is empty`);
    // Read-only when asked, or when the file (or the filesystem holding it) cannot be written.
    const writable = await access(file, constants.W_OK).then(
      () => true,
      () => false,
    );
    const dev = await loopAttach(file, { readonly: spec.readonly === true || !writable, partscan: spec.readPartitions === true });
    const readonly = await loopReadonly(dev);
    return { device_file: dev, readonly, state: { file, readonly } };
  },

  async detach(_spec, attached) {
    if ((await loopBackingFile(attached.device_file)) !== attached.state.file) return; // reused by someone else, or gone
    await loopDetach(attached.device_file);
  },

  async adopt(_spec, attached) {
    return (await loopBackingFile(attached.device_file)) === attached.state.file ? attached : null;
  },
};
