// How a container is confined and limited, as the container layer plans it, the store keeps it
// and the cgroup code applies it (types only; the checks and defaults are in container/spec.ts).
import type { components } from './schema.gen.js';

export type IdMap = components['schemas']['container_id_map'];

export interface Confinement {
  /** Every capability, no seccomp filter, no masked paths, no no_new_privs (the old behaviour). */
  privileged: boolean;
  /** The capability set (bounding, permitted, effective, inheritable), names without CAP_. */
  caps: string[];
  cap_add?: string[];
  cap_drop?: string[];
  no_new_privs: boolean;
  seccomp: 'default' | 'unconfined';
  mask_paths: boolean;
  user?: { uid: number; gid: number };
  working_dir: string;
  /** With the user namespace: the maps (given, or from the pool at create). */
  uid_map?: IdMap[];
  gid_map?: IdMap[];
  /** The pool slot of an automatic range. */
  userns_slot?: number;
}

export interface Limits {
  memory?: { max: number; swap: number };
  pids?: { max: number };
  cpu?: { weight?: number; quota?: number; period?: number };
  io?: { weight: number };
}
