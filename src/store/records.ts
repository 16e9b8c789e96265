// The records the store keeps. A record's `spec` is the kind-specific part of what the user asked
// for, with every nested child replaced by a reference `{id}`; `holds` lists those children.
import type { Attached, Mounted, ObjType, Ref } from '../model/objects.js';
import { nounOf } from '../model/objects.js';
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

export type AnyRec = AttachRec | MountRec | ContainerRec;

export const refOf = (r: AnyRec): Ref => ({ type: r.type, id: r.id });

/** A short human name for messages: `mount 3 (overlay)`, `container 1 ("web")`. */
export function describeRec(r: AnyRec): string {
  if (r.type === 'container') return `container ${r.id}${r.name ? ` ("${r.name}")` : ''}`;
  return `${nounOf(r.type)} ${r.id} (${r.kind})`;
}
