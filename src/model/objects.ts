// The objects the agent tracks, as every layer sees them: references between them, what a driver
// produced (Attached, Mounted), what a driver is handed (DriverContext, its resolved children).
import type { Logger } from 'pino';
import { invalid } from './errors.js';

export type ObjType = 'attach' | 'mount' | 'container' | 'image';
export interface Ref {
  type: ObjType;
  id: number;
}
export const sameRef = (a: Ref, b: Ref) => a.type === b.type && a.id === b.id;

const NOUN: Record<ObjType, string> = { attach: 'attachment', mount: 'mount', container: 'container', image: 'image' };
export const nounOf = (t: ObjType) => NOUN[t];

export interface DriverContext {
  /** Agent run-dir (state, mounts, keyrings, helper processes' files live under it). */
  runDir: string;
  log: Logger;
  /** Settings from the agent's config that drivers may read (e.g. `rbd_mode`). */
  config: Readonly<Record<string, unknown>>;
}

/** What an attachment driver produced: the device, plus private state kept in the store. */
export interface Attached {
  device_file: string;
  /** The device is read-only (a filesystem on it can only be mounted read-only). */
  readonly?: boolean;
  /** Driver-private facts needed to detach or adopt later (persisted, never shown to users). */
  state: Record<string, unknown>;
}

/** What a mount driver produced. */
export interface Mounted {
  mountpoint: string;
  /** Driver-private facts needed to unmount or adopt later (persisted, never shown to users). */
  state: Record<string, unknown>;
  /** Read-only fields the driver adds to the user-visible spec (e.g. an overlay's upperdir). */
  shown?: Record<string, unknown>;
}

/**
 * A field of a kind's spec that names other objects (by reference or definition). The core
 * resolves it before calling the driver and replaces it by `{id}` (or a list of them) in the record.
 */
export interface ChildSlot {
  field: string;
  /** `image`: a cached image from an image server (a reference `{id}` or an image request). */
  type: 'attach' | 'mount' | 'image';
  /** The field is a list (an overlay's `lower`). */
  many?: boolean;
  /**
   * The child's spec is made by the kind, not read from `spec[field]`: from its own fields, or
   * from the children resolved before it (`deps`). `undefined`: there is no such child. (A `uri`
   * mount's image comes from its `uri`/`checksum` fields; its loop attachment exists only for
   * image formats, which are known once the image is.) The record keeps `{id}` in `field`.
   */
  derive?(deps: Resolved): unknown;
}

/** A resolved child, as the core hands it to a driver. */
export type Dep =
  | { type: 'attach'; id: number; device_file: string; readonly: boolean }
  | { type: 'mount'; id: number; mountpoint: string }
  /** A ready image: its verified cache file and what it holds. */
  | { type: 'image'; id: number; path: string; format: ImageDepFormat };
export type ImageDepFormat = 'squashfs' | 'erofs' | 'ext4' | 'tar';
/** Resolved children by field name (a list for `many` slots). */
export type Resolved = Record<string, Dep | Dep[]>;

/**
 * The child of a spec with `base: root|mount` (a loopback file, a bind source): with `base:
 * mount`, `mount` names the mount the path is inside; with `base: root` (the default) there is none.
 */
export function baseMountSlot(spec: { base?: string; mount?: unknown }, kind: string): ChildSlot[] {
  if ((spec.base ?? 'root') === 'mount') {
    if (!spec.mount) throw invalid(`${kind}: base is "mount" but no "mount" is given`);
    return [{ field: 'mount', type: 'mount' }];
  }
  if (spec.mount) throw invalid(`${kind}: "mount" is given but base is "root" (set base to "mount")`);
  return [];
}

/** The one mount dependency in `field` (drivers call this after declaring the slot). */
export function mountDep(deps: Resolved, field: string): string | undefined {
  const d = deps[field];
  return d && !Array.isArray(d) && d.type === 'mount' ? d.mountpoint : undefined;
}

/** The one image dependency in `field`. */
export function imageDep(deps: Resolved, field: string): Extract<Dep, { type: 'image' }> | undefined {
  const d = deps[field];
  return d && !Array.isArray(d) && d.type === 'image' ? d : undefined;
}
