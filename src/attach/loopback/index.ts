// loopback: a loop device over a file under the host's root or inside another mount, or over a
// cached image (`base: image`: the image's verified cache file, always read-only).
import { access, constants, stat } from 'node:fs/promises';
import { fromFsError, invalid } from '../../model/errors.js';
import { baseMountSlot, imageDep, mountDep } from '../../model/objects.js';
import type { AttachLoopback } from '../../model/types.js';
import { loopAttach, loopBackingFile, loopDetach, loopReadonly } from '../../sys/loop.js';
import { checkSource, policyFrom, resolveWithin } from '../../sys/paths.js';
import type { AttachDriver } from '../driver.js';

export const loopbackDriver: AttachDriver<AttachLoopback> = {
  kind: 'loopback',

  children: (spec) => {
    const s = spec as AttachLoopback & { image?: unknown };
    if (s.base === 'image') {
      if (!s.image) throw invalid('loopback: base is "image" but no "image" is given');
      if (s.path !== undefined) throw invalid('loopback: "path" is given but base is "image" (the image is the file)');
      if (s.mount) throw invalid('loopback: "mount" is given but base is "image"');
      return [{ field: 'image', type: 'image' }];
    }
    if (s.image) throw invalid('loopback: "image" is given but base is not "image" (set base to "image")');
    if (s.path === undefined) throw invalid('loopback: "path" is required (or base "image" with an "image")');
    return baseMountSlot(spec, 'loopback');
  },

  async attach(spec, deps, ctx) {
    if (spec.base === 'image') {
      const img = imageDep(deps, 'image');
      if (!img) throw invalid('loopback: base "image" needs an image');
      if (img.format === 'tar') throw invalid(`loopback: image ${img.id} is a tar archive, not a filesystem image (mount it with kind "uri")`);
      // The cache's file is verified and shared: never written through a loop device.
      const dev = await loopAttach(img.path, { readonly: true, partscan: false });
      return { device_file: dev, readonly: true, state: { file: img.path, readonly: true } };
    }
    const base = spec.base === 'mount' ? mountDep(deps, 'mount') : '/';
    if (!base) throw invalid('loopback: base "mount" needs a mount');
    const path = spec.path!; // (children() required it for base root and mount)
    const file = await resolveWithin(base, path, 'loopback.path');
    await checkSource(file, path, 'loopback.path', policyFrom(ctx.config, 'loopback'), spec.base !== 'mount');
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

  // Over an image it is read-only whatever the spec said: the answer says so.
  describe: (spec) => (spec.base === 'image' ? { readonly: true } : {}),

  async detach(_spec, attached) {
    if ((await loopBackingFile(attached.device_file)) !== attached.state.file) return; // reused by someone else, or gone
    await loopDetach(attached.device_file);
  },

  async adopt(_spec, attached) {
    return (await loopBackingFile(attached.device_file)) === attached.state.file ? attached : null;
  },
};
