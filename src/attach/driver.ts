// The contract every attachment driver keeps. The store owns ids, references and persistence;
// a driver only turns a validated spec into a block device and back.
import type { Logger } from 'pino';

export interface DriverContext {
  /** Agent run-dir (state, mounts, keyrings, helper processes' files live under it). */
  runDir: string;
  log: Logger;
  /** Mountpoint of an existing mount (for `base: mount` specs); the store resolves it. */
  mountpoint(mountId: number): string;
  /** Settings from the agent's config that drivers may read (e.g. `rbd_mode`). */
  config: Readonly<Record<string, unknown>>;
}

/** What a driver returns from attach(): the device, plus private state kept in the store. */
export interface Attached {
  device_file: string;
  /** Driver-private facts needed to detach or adopt later (persisted, never shown to users). */
  state: Record<string, unknown>;
}

export interface AttachDriver<Spec = Record<string, unknown>> {
  readonly kind: string;
  /** Refuse what this build or kernel cannot do, before anything is created (throw notImplemented). */
  available?(ctx: DriverContext): Promise<void>;
  /** Create the attachment. On failure leave nothing behind and throw an ApiError. */
  attach(spec: Spec, ctx: DriverContext): Promise<Attached>;
  /** Undo attach(). Must be idempotent: a device already gone is not an error. */
  detach(spec: Spec, attached: Attached, ctx: DriverContext): Promise<void>;
  /** After an agent restart: is it still there? Return the (possibly refreshed) Attached, or null if it vanished. */
  adopt(spec: Spec, attached: Attached, ctx: DriverContext): Promise<Attached | null>;
  /** The spec as users may see it (secrets redacted). Default: the spec unchanged. */
  describe?(spec: Spec, attached: Attached): Spec;
}
