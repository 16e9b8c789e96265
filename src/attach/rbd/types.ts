// RBD attachment spec (mirrors `attach_rbd` / `rbd_options` in swagger.yaml) and driver-private state.

/** Upstream's krbd option set. Booleans count only when `true`. */
export interface RbdOptions {
  fsid?: string;
  ip?: string;
  share?: boolean;
  noshare?: boolean;
  crc?: boolean;
  nocrc?: boolean;
  ceph_requires_signatures?: boolean;
  noceph_requires_signatures?: boolean;
  tcp_nodelay?: boolean;
  notcp_nodelay?: boolean;
  cephx_sign_messages?: boolean;
  nocephx_sign_messages?: boolean;
  /** Seconds; bounds connecting, probing and mapping (default 10). */
  mount_timeout?: number;
  osdkeepalive?: number;
  osd_idle_ttl?: number;
  force?: boolean;
  rw?: boolean;
  ro?: boolean;
  queue_depth?: number;
  lock_on_read?: boolean;
  exclusive?: boolean;
  lock_timeout?: number;
  notrim?: boolean;
  abort_on_full?: boolean;
  alloc_size?: number;
  /** cephx user without the `client.` prefix (default `admin`). */
  name?: string;
  /** cephx key (base64). Never shown, logged or put on a command line. */
  secret?: string;
  namespace?: string;
}

export interface RbdSpec {
  monitors: string[];
  pool: string;
  image: string;
  snapshot?: string;
  namespace?: string;
  options?: RbdOptions;
  /** Read-only in the API; shown for kernel mappings. */
  device_id?: number;
}

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
