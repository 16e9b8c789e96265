// The contract every mount driver keeps. The core resolves the children a driver declares (the
// attachment under an attach mount, an overlay's lowers, the base of a bind) before calling it.
import type { ChildSlot, DriverContext, Mounted, Resolved } from '../model/objects.js';

export type { DriverContext, Mounted, Resolved };

export interface MountDriver<Spec = Record<string, unknown>> {
  readonly kind: string;
  readonly secretFields?: readonly string[];
  children?(spec: Spec): ChildSlot[];
  available?(spec: Spec, ctx: DriverContext): Promise<void>;
  /** Mount at `mountpoint` (an empty directory the core created). On failure leave nothing mounted. */
  mount(spec: Spec, deps: Resolved, mountpoint: string, ctx: DriverContext): Promise<Mounted>;
  /** Undo mount(). Idempotent. */
  unmount(spec: Spec, mounted: Mounted, ctx: DriverContext): Promise<void>;
  /** After a restart: still mounted? */
  adopt(spec: Spec, mounted: Mounted, ctx: DriverContext): Promise<Mounted | null>;
}

/** A kind that is another kind in other words (v0.1's `rbd` mount is an attach mount of an RBD attachment). */
export interface MountAlias {
  readonly kind: string;
  /** The kind it stands for: references of this kind may name objects of that one. */
  readonly of: string;
  expand(spec: Record<string, unknown>): Record<string, unknown>;
}
