// rbd: a Ceph RBD image as a block device, through the kernel (krbd), rbd-nbd, or rbd-fuse and a
// loop device — whichever this host can do (config `rbd_mode`: auto | krbd | nbd | fuse).
import { REDACTED } from '../../model/secrets.js';
import type { AttachDriver, Attached } from '../driver.js';
import { fuseAdopt, fuseAttach, fuseDetach } from './fuse.js';
import { krbdAdopt, krbdAttach, krbdDetach } from './krbd.js';
import { resolveMode } from './mode.js';
import { nbdAdopt, nbdAttach, nbdDetach } from './nbd.js';
import { checkOptionsFor } from './options.js';
import { resolveSpec } from './spec.js';
import type { RbdSpec, RbdState } from './types.js';

export type { RbdOptions, RbdSpec, RbdMode, RbdState } from './types.js';
export { rbdIdentity } from './spec.js';

/** A spec read back from state.json carries `secret: "<redacted>"`; detach and adopt need no key. */
const unkeyed = (spec: RbdSpec): RbdSpec =>
  spec.options?.secret === REDACTED ? { ...spec, options: { ...spec.options, secret: undefined } } : spec;

const modeOf = (a: Attached) => (a.state as Partial<RbdState>).mode;

export const rbdDriver: AttachDriver<RbdSpec> = {
  kind: 'rbd',
  secretFields: ['secret'],

  async available(_spec, ctx) {
    await resolveMode(ctx.config);
  },

  async attach(spec, _deps, ctx) {
    const r = resolveSpec(spec);
    const mode = await resolveMode(ctx.config);
    checkOptionsFor(mode, r.opts);
    const started = Date.now();
    const a = mode === 'krbd' ? await krbdAttach(r, ctx) : mode === 'nbd' ? await nbdAttach(r, ctx) : await fuseAttach(r, ctx);
    ctx.log.info({ mode, pool: r.pool, image: r.image, device: a.device_file, ms: Date.now() - started }, 'rbd attached');
    return { ...a, readonly: a.state.readonly === true };
  },

  async detach(spec, attached, ctx) {
    switch (modeOf(attached)) {
      case 'krbd':
        return krbdDetach(resolveSpec(unkeyed(spec)), attached);
      case 'nbd':
        return nbdDetach(resolveSpec(unkeyed(spec)), attached);
      case 'fuse':
        return fuseDetach(attached, ctx);
      default:
        return; // never attached
    }
  },

  async adopt(spec, attached, ctx) {
    const a = await (async () => {
      switch (modeOf(attached)) {
        case 'krbd':
          return krbdAdopt(resolveSpec(unkeyed(spec)), attached);
        case 'nbd':
          return nbdAdopt(resolveSpec(unkeyed(spec)), attached);
        case 'fuse':
          return fuseAdopt(attached, ctx);
        default:
          return null;
      }
    })();
    return a && { ...a, readonly: a.state.readonly === true };
  },

  describe(_spec, attached) {
    const st = attached?.state as Partial<RbdState> | undefined;
    return st?.mode === 'krbd' && 'device_id' in st ? { device_id: st.device_id } : {};
  },
};
