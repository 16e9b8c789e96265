// The records the store keeps. A record's `spec` is the kind-specific part of what the user asked
// for, with every nested child replaced by a reference `{id}`; `holds` lists those children.
import type { Attached, Mounted, ObjType, Ref } from '../model/objects.js';
import { nounOf } from '../model/objects.js';
import type { ResolvedImage } from '../image/types.js';
import type { Confinement, Limits } from '../model/confine.js';
import type { AttachKind, ContainerState, MountKind, Namespace } from '../model/types.js';

export type { ObjType, Ref };
export { sameRef, nounOf } from '../model/objects.js';

/** Who an object belongs to: the user (top-level) or the parent that defined it. */
export type Owner = 'user' | Ref;

interface BaseRec {
  id: number;
  owner: Owner;
  holds: Ref[];
  /** Being created by a request that has not finished: invisible, not persisted. */
  pending?: boolean;
  /** Pending, and part of the request's commit: written to the state file, still invisible until that write is durable. */
  committing?: boolean;
}

export interface AttachRec extends BaseRec {
  type: 'attach';
  kind: AttachKind;
  spec: Record<string, unknown>;
  attached: Attached;
}

export interface MountRec extends BaseRec {
  type: 'mount';
  kind: Exclude<MountKind, 'rbd'>;
  spec: Record<string, unknown>;
  mounted: Mounted;
}

export interface ContainerRec extends BaseRec {
  type: 'container';
  name?: string;
  /** As given: a string (split like a shell does) or an argv array. */
  command: string | string[];
  argv: string[];
  systemd: boolean;
  namespaces: Namespace[];
  hostname: string;
  env: string[];
  stop_timeout: number;
  /** The log file's size cap (bytes, 0: none) and how many files are kept; absent in records of older agents. */
  log_max_size?: number;
  log_max_files?: number;
  /** Output lines carry a timestamp and their stream. */
  log_timestamps?: boolean;
  state: ContainerState;
  logfile: string;
  /** Host PID of the container's PID 1, and of its supervisor (imageapi-shim), while running. */
  pid: number | null;
  shim_pid: number | null;
  /** /proc/PID/stat start time of pid, to tell a PID reused by another process. */
  pid_start: string | null;
  exit_code: number | null;
  error?: string;
  /** A stop was requested (so any end is `exited`, not `dead`). */
  stop_requested: boolean;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  cgroups: string[];
  /** Capabilities, seccomp, masked paths, user, user namespace; absent in records made before
   * confinement existed (they keep running unconfined, as they were started). */
  confine?: Confinement;
  /** Resource limits of the container's cgroups. */
  limits?: Limits;
}

/** A pull's state: `pulling` (in the background), `ready` (verified, in the cache), `failed` (with `error`). */
export type ImageState = 'pulling' | 'ready' | 'failed';

/** An image from an image server (or a file URL), one per digest: a verified file in the cache. */
export interface ImageRec extends BaseRec {
  type: 'image';
  name?: string;
  /** The request as given (a URL with its checksum, or a source reference). */
  source: Record<string, unknown>;
  /** `sha256:…` / `sha1:…` of the download, as the request or the server named it. */
  digest: string;
  /** Where the request resolved to: the URL, the expected size, the compression (to pull it again after a restart). */
  resolved: ResolvedImage;
  /** Known once ready (or when the request or the server says). */
  format: string | null;
  /** Bytes of the usable (decompressed) file, once ready. */
  size: number | null;
  state: ImageState;
  progress: { done: number; total: number | null };
  error?: string;
  /** The AgentError kind of `error` (what a mount waiting on it answers). */
  error_kind?: string;
  /** The cache file, once ready. */
  path?: string;
  /** Made by a mount's or an attachment's definition (not POST /image): a failed pull deletes it. */
  implicit?: boolean;
  last_used: string | null;
  created_at: string;
}

export type AnyRec = AttachRec | MountRec | ContainerRec | ImageRec;

export const refOf = (r: AnyRec): Ref => ({ type: r.type, id: r.id });

/** A short human name for messages: `mount 3 (overlay)`, `container 1 ("web")`. */
export function describeRec(r: AnyRec): string {
  if (r.type === 'container') return `container ${r.id}${r.name ? ` ("${r.name}")` : ''}`;
  if (r.type === 'image') return `image ${r.id}${r.name ? ` ("${r.name}")` : ''}`;
  return `${nounOf(r.type)} ${r.id} (${r.kind})`;
}
