// The contract every mount driver keeps. The store resolves references before calling a driver
// (for example the device file under an attach mount, or the mountpoints of an overlay's lowers).
import type { DriverContext } from '../attach/driver.js';

export interface Mounted {
  mountpoint: string;
  /** Driver-private facts needed to unmount or adopt later (persisted, never shown to users). */
  state: Record<string, unknown>;
  /** Read-only fields the driver adds to the user-visible spec (e.g. an overlay's upperdir). */
  shown?: Record<string, unknown>;
}

/** Resolved lower objects the store hands to a mount driver. */
export interface MountDeps {
  /** attach mounts: the attachment's device file and whether it is read-only. */
  device?: { device_file: string; readonly: boolean };
  /** overlay: mountpoints of the lower mounts, lower[0] first (topmost). */
  lowers?: string[];
  /** bind (base mount) and loopback-in-mount: the base mount's mountpoint. */
  base?: string;
}

export interface MountDriver<Spec = Record<string, unknown>> {
  readonly kind: string;
  available?(spec: Spec, ctx: DriverContext): Promise<void>;
  /** Mount at `mountpoint` (an empty directory the store created). On failure leave nothing mounted. */
  mount(spec: Spec, deps: MountDeps, mountpoint: string, ctx: DriverContext): Promise<Mounted>;
  /** Undo mount(). Idempotent. */
  unmount(spec: Spec, mounted: Mounted, ctx: DriverContext): Promise<void>;
  /** After a restart: still mounted? */
  adopt(spec: Spec, mounted: Mounted, ctx: DriverContext): Promise<Mounted | null>;
}

export type { DriverContext };
