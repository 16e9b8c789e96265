// The contract every attachment driver keeps. The store owns ids, references and persistence;
// the core resolves the children a driver declares and hands them over; a driver only turns a
// validated spec into a block device and back.
import type { Attached, ChildSlot, DriverContext, Resolved } from '../model/objects.js';

export type { Attached, DriverContext, Resolved };

export interface AttachDriver<Spec = Record<string, unknown>> {
  readonly kind: string;
  /** Spec fields (at any depth) that hold keys: redacted in answers, never written to state.json. */
  readonly secretFields?: readonly string[];
  /** The fields of the spec that name other objects; throw `invalid` for a spec that contradicts itself. */
  children?(spec: Spec): ChildSlot[];
  /** Refuse what this build or kernel cannot do, before anything is created (throw `unsupported`). */
  available?(spec: Spec, ctx: DriverContext): Promise<void>;
  /** Create the attachment. On failure leave nothing behind and throw an AgentError. */
  attach(spec: Spec, deps: Resolved, ctx: DriverContext): Promise<Attached>;
  /** Undo attach(). Must be idempotent: a device already gone is not an error. */
  detach(spec: Spec, attached: Attached, ctx: DriverContext): Promise<void>;
  /** After an agent restart: is it still there? Return the (possibly refreshed) Attached, or null if it vanished. */
  adopt(spec: Spec, attached: Attached, ctx: DriverContext): Promise<Attached | null>;
  /** Read-only facts added to the spec users see (an RBD device id, say). */
  describe?(spec: Spec, attached: Attached): Record<string, unknown>;
}
