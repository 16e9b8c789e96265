// rbd: a Ceph RBD image as a block device, through the kernel (krbd), rbd-nbd, or rbd-fuse and a
// loop device — whichever this host can do (config `rbd_mode`: auto | krbd | nbd | fuse).
import type { AttachDriver, Attached } from '../driver.js';
import { fuseAdopt, fuseAttach, fuseDetach } from './fuse.js';
import { krbdAdopt, krbdAttach, krbdDetach } from './krbd.js';
import { resolveMode } from './mode.js';
import { nbdAdopt, nbdAttach, nbdDetach } from './nbd.js';
import { checkOptionsFor } from './options.js';
import { describeSpec, resolveSpec } from './spec.js';
import type { RbdSpec, RbdState } from './types.js';

export type { RbdOptions, RbdSpec, RbdMode, RbdState } from './types.js';
export { rbdIdentity } from './spec.js';

const modeOf = (a: Attached) => (a.state as Partial<RbdState>).mode;

export const rbdDriver: AttachDriver<RbdSpec> = {
  kind: 'rbd',

  async available(ctx) {
    await resolveMode(ctx.config);
  },

  async attach(spec, ctx) {
    const r = resolveSpec(spec);
    const mode = await resolveMode(ctx.config);
    checkOptionsFor(mode, r.opts);
    const started = Date.now();
    const a = mode === 'krbd' ? await krbdAttach(r, ctx) : mode === 'nbd' ? await nbdAttach(r, ctx) : await fuseAttach(r, ctx);
    ctx.log.info({ mode, pool: r.pool, image: r.image, device: a.device_file, ms: Date.now() - started }, 'rbd attached');
    return a;
  },

  async detach(spec, attached, ctx) {
    switch (modeOf(attached)) {
      case 'krbd':
        return krbdDetach(resolveSpec(spec), attached);
      case 'nbd':
        return nbdDetach(resolveSpec(spec), attached);
      case 'fuse':
        return fuseDetach(attached, ctx);
      default:
        return; // never attached
    }
  },

  async adopt(spec, attached, ctx) {
    switch (modeOf(attached)) {
      case 'krbd':
        return krbdAdopt(resolveSpec(spec), attached);
      case 'nbd':
        return nbdAdopt(resolveSpec(spec), attached);
      case 'fuse':
        return fuseAdopt(attached, ctx);
      default:
        return null;
    }
  },

  describe(spec, attached) {
    const shown = describeSpec(spec);
    const st = attached?.state as Partial<RbdState> | undefined;
    return st?.mode === 'krbd' && 'device_id' in st ? { ...shown, device_id: st.device_id } : shown;
  },
};
