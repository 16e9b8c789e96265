// Checking an RBD spec and deriving what every path needs from it: the cephx user and key, the
// namespace, the timeout, the monitor list in Ceph's own syntax, and the image's identity.
import { invalid } from '../../model/errors.js';
import type { RbdOptions, RbdSpec } from './types.js';

export const DEFAULT_USER = 'admin';
export const DEFAULT_TIMEOUT_S = 10;

const NAME_RE = /^[A-Za-z0-9._-]{1,256}$/;
const MON_RE = /^[A-Za-z0-9.:[\]_-]{1,255}$/;
const KEY_RE = /^[A-Za-z0-9+/]{16,}={0,2}$/;
const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const IPV4_RE = /^(?:\d{1,3}\.){3}\d{1,3}$/;

/** Options that come in mutually exclusive pairs. */
export const OPPOSITES: ReadonlyArray<[keyof RbdOptions, keyof RbdOptions]> = [
  ['share', 'noshare'],
  ['crc', 'nocrc'],
  ['ceph_requires_signatures', 'noceph_requires_signatures'],
  ['tcp_nodelay', 'notcp_nodelay'],
  ['cephx_sign_messages', 'nocephx_sign_messages'],
  ['rw', 'ro'],
];

function checkName(value: unknown, what: string, max = 256): string {
  if (typeof value !== 'string' || !NAME_RE.test(value) || value.length > max) {
    throw invalid(`rbd.${what}: must be 1-${max} characters of A-Z a-z 0-9 . _ -`);
  }
  // A leading '-' would read as an option to the Ceph tools; '.' and '..' are not file names.
  if (value.startsWith('-')) throw invalid(`rbd.${what}: "${value}" may not start with "-"`);
  if (value === '.' || value === '..') throw invalid(`rbd.${what}: "${value}" is not a usable name`);
  return value;
}

function checkInt(value: unknown, what: string, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (value === undefined) return;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalid(`rbd.options.${what}: must be an integer from ${min} to ${max}`);
  }
}

/** The fully checked view of a spec that the paths work from. */
export interface Resolved {
  spec: RbdSpec;
  opts: RbdOptions;
  monitors: string[];
  /** mon_host / -m value. */
  monHost: string;
  pool: string;
  namespace: string | undefined;
  image: string;
  snapshot: string | undefined;
  user: string;
  key: string | undefined;
  timeoutS: number;
  readonly: boolean;
}

/** Validate `spec` (the API schema checks shapes too; this is the driver's own line of defence). */
export function resolveSpec(spec: RbdSpec): Resolved {
  if (!spec || typeof spec !== 'object') throw invalid('rbd: the spec must be an object');
  const mons = spec.monitors;
  if (!Array.isArray(mons) || mons.length === 0 || mons.length > 32) {
    throw invalid('rbd.monitors: give 1 to 32 monitor addresses');
  }
  for (const m of mons) {
    if (typeof m !== 'string' || !MON_RE.test(m)) throw invalid(`rbd.monitors: "${String(m)}" is not a monitor address`);
  }
  const pool = checkName(spec.pool, 'pool', 128);
  const image = checkName(spec.image, 'image');
  const snapshot = spec.snapshot === undefined ? undefined : checkName(spec.snapshot, 'snapshot');
  const opts: RbdOptions = spec.options ?? {};
  if (typeof opts !== 'object' || Array.isArray(opts)) throw invalid('rbd.options: must be an object');

  let namespace = spec.namespace === undefined ? undefined : checkName(spec.namespace, 'namespace', 128);
  if (opts.namespace !== undefined) {
    const ns = checkName(opts.namespace, 'options.namespace', 128);
    if (namespace !== undefined && namespace !== ns) {
      throw invalid(`rbd: namespace "${namespace}" and options.namespace "${ns}" disagree`);
    }
    namespace = ns;
  }

  for (const [a, b] of OPPOSITES) {
    if (opts[a] === true && opts[b] === true) throw invalid(`rbd.options: "${a}" and "${b}" exclude each other`);
  }
  if (snapshot !== undefined && opts.rw === true) {
    throw invalid(`rbd.options.rw: snapshot "${snapshot}" can only be attached read-only`);
  }
  checkInt(opts.mount_timeout, 'mount_timeout', 1, 600);
  checkInt(opts.osdkeepalive, 'osdkeepalive', 1);
  checkInt(opts.osd_idle_ttl, 'osd_idle_ttl', 1);
  checkInt(opts.queue_depth, 'queue_depth', 1);
  checkInt(opts.lock_timeout, 'lock_timeout', 0);
  checkInt(opts.alloc_size, 'alloc_size', 512);
  if (opts.fsid !== undefined && (typeof opts.fsid !== 'string' || !UUID_RE.test(opts.fsid))) {
    throw invalid('rbd.options.fsid: must be a UUID');
  }
  if (opts.ip !== undefined && (typeof opts.ip !== 'string' || !IPV4_RE.test(opts.ip))) {
    throw invalid('rbd.options.ip: must be an IPv4 address');
  }
  const user = opts.name === undefined ? DEFAULT_USER : checkName(opts.name, 'options.name', 128);
  let key: string | undefined;
  if (opts.secret !== undefined) {
    // Never echo the value, not even a wrong one.
    if (typeof opts.secret !== 'string' || !KEY_RE.test(opts.secret) || Buffer.from(opts.secret, 'base64').length < 12) {
      throw invalid('rbd.options.secret: not a cephx key (base64, as `ceph auth get-key` prints it)');
    }
    key = opts.secret;
  }
  const monitors = mons.map(normalizeMonitor);
  return {
    spec,
    opts,
    monitors,
    monHost: monitors.join(','),
    pool,
    namespace,
    image,
    snapshot,
    user,
    key,
    timeoutS: opts.mount_timeout ?? DEFAULT_TIMEOUT_S,
    readonly: opts.ro === true || snapshot !== undefined,
  };
}

/**
 * One monitor in Ceph's mon_host syntax. An address without a port gets both of Ceph's default
 * ports, `[v2:IP:3300,v1:IP:6789]` (what Ceph itself assumes for a bare IP); `IP:port`,
 * `[IPv6]:port`, `v1:`/`v2:` forms and host names are left to Ceph.
 */
export function normalizeMonitor(m: string): string {
  if (/^v[12]:/.test(m)) return m;
  if (IPV4_RE.test(m)) return `[v2:${m}:3300,v1:${m}:6789]`;
  let v6: string | undefined;
  if (/^\[[0-9A-Fa-f:.]+\]$/.test(m)) v6 = m;
  else if (/^[0-9A-Fa-f:.]+$/.test(m) && (m.match(/:/g) ?? []).length >= 2) v6 = `[${m}]`;
  if (v6) return `[v2:${v6}:3300,v1:${v6}:6789]`;
  return m.toLowerCase();
}

/**
 * The identity of an attached image: the same monitor set, pool, namespace, image and snapshot
 * means the same attachment (the store uses it to refuse duplicates).
 */
export function rbdIdentity(spec: RbdSpec): string {
  const mons = [...new Set((spec.monitors ?? []).map(normalizeMonitor))].sort();
  const ns = spec.namespace ?? spec.options?.namespace ?? '';
  return JSON.stringify(['rbd', mons, spec.pool, ns, spec.image, spec.snapshot ?? '']);
}

/** `pool/[ns/]image[@snap]`, for messages and the krbd/nbd image spec. */
export function imageSpec(r: Pick<Resolved, 'pool' | 'namespace' | 'image' | 'snapshot'>): string {
  return `${r.pool}/${r.namespace ? `${r.namespace}/` : ''}${r.image}${r.snapshot ? `@${r.snapshot}` : ''}`;
}
