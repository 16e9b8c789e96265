// RBD attachment spec (from swagger.yaml's `attach_rbd` / `rbd_options`) and driver-private state.
import type { AttachRbd } from '../../model/types.js';

type AttachRbdOptions = NonNullable<AttachRbd['options']>;

// The spec's types come from swagger.yaml (generated), not written twice.
export type RbdOptions = AttachRbdOptions;
export type RbdSpec = AttachRbd;

export type RbdMode = 'krbd' | 'nbd' | 'fuse';
export type RbdModeSetting = RbdMode | 'auto';

/** What attach() keeps in Attached.state (persisted by the store; never shown). */
export type RbdState =
  | { mode: 'krbd'; device_id: number; readonly: boolean; force_unmap: boolean }
  | { mode: 'nbd'; readonly: boolean }
  | {
      mode: 'fuse';
      readonly: boolean;
      /** ${runDir}/rbd-fuse/<hash> */
      dir: string;
      /** The FUSE mountpoint, <dir>/mnt. */
      mnt: string;
      /** The loop device's backing file, <mnt>/<image>. */
      file: string;
    };
