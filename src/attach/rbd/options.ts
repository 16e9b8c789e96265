// How each RbdOptions field reaches each path: a krbd map option, a librados setting for the
// userspace paths (rbd-fuse, rbd-nbd), something the agent does itself, or a refusal with the reason.
import { invalid } from '../../model/errors.js';
import type { RbdMode, RbdOptions } from './types.js';

/** Fields every path handles outside the option string. */
const HANDLED = new Set<keyof RbdOptions>(['name', 'secret', 'namespace', 'mount_timeout', 'ro', 'rw']);

/**
 * krbd `-o` options, in RbdOptions order. `ro` and `exclusive` go through `--read-only` and
 * `--exclusive`; `force` is an unmap option (`rbd device unmap -o force`).
 */
export function krbdOptionList(o: RbdOptions): string[] {
  const out: string[] = [];
  const flag = (k: keyof RbdOptions, as: string = k) => {
    if (o[k] === true) out.push(as);
  };
  const num = (k: keyof RbdOptions) => {
    if (o[k] !== undefined) out.push(`${k}=${String(o[k])}`);
  };
  if (o.fsid !== undefined) out.push(`fsid=${o.fsid}`);
  if (o.ip !== undefined) out.push(`ip=${o.ip}`);
  flag('share');
  flag('noshare');
  flag('crc');
  flag('nocrc');
  flag('ceph_requires_signatures', 'cephx_require_signatures');
  flag('noceph_requires_signatures', 'nocephx_require_signatures');
  flag('tcp_nodelay');
  flag('notcp_nodelay');
  flag('cephx_sign_messages');
  flag('nocephx_sign_messages');
  num('mount_timeout');
  num('osdkeepalive');
  num('osd_idle_ttl');
  flag('rw');
  num('queue_depth');
  flag('lock_on_read');
  num('lock_timeout');
  flag('notrim');
  flag('abort_on_full');
  num('alloc_size');
  return out;
}

/** librados settings (ceph.conf keys) that express an option on the userspace paths. */
export function libradosSettings(o: RbdOptions): Record<string, string> {
  const s: Record<string, string> = {};
  if (o.fsid !== undefined) s.fsid = o.fsid;
  if (o.crc) s.ms_crc_data = 'true';
  if (o.nocrc) s.ms_crc_data = 'false';
  if (o.ceph_requires_signatures) s.cephx_require_signatures = 'true';
  if (o.noceph_requires_signatures) s.cephx_require_signatures = 'false';
  if (o.tcp_nodelay) s.ms_tcp_nodelay = 'true';
  if (o.notcp_nodelay) s.ms_tcp_nodelay = 'false';
  if (o.cephx_sign_messages) s.cephx_sign_messages = 'true';
  if (o.nocephx_sign_messages) s.cephx_sign_messages = 'false';
  return s;
}

const KERNEL_ONLY = 'applies to the kernel client (krbd) only';

/** Why an option cannot be honoured on a userspace path (undefined: it can). */
function userspaceRefusal(k: keyof RbdOptions, mode: Exclude<RbdMode, 'krbd'>): string | undefined {
  switch (k) {
    case 'fsid':
    case 'crc':
    case 'nocrc':
    case 'ceph_requires_signatures':
    case 'noceph_requires_signatures':
    case 'tcp_nodelay':
    case 'notcp_nodelay':
    case 'cephx_sign_messages':
    case 'nocephx_sign_messages':
    case 'share':
      return undefined;
    case 'noshare':
      return undefined; // fuse: a private rbd-fuse; nbd: every rbd-nbd is private anyway
    case 'exclusive':
      return mode === 'nbd' ? undefined : 'rbd-fuse takes no exclusive lock; use the kernel client (krbd) or rbd-nbd';
    case 'notrim':
      // A loop device over an rbd-fuse file never passes discards to the image (rbd-fuse has no fallocate).
      return mode === 'fuse' ? undefined : 'rbd-nbd of Ceph 16 has no --notrim';
    case 'ip':
      return `${KERNEL_ONLY} (a librados client does not bind to an address)`;
    case 'force':
      return `${KERNEL_ONLY} (it forces the unmapping of a device in use)`;
    case 'osdkeepalive':
    case 'osd_idle_ttl':
    case 'queue_depth':
    case 'lock_on_read':
    case 'lock_timeout':
    case 'abort_on_full':
    case 'alloc_size':
      return KERNEL_ONLY;
    default:
      return undefined;
  }
}

/** Refuse (400) the options that `mode` cannot honour, naming each with its reason. */
export function checkOptionsFor(mode: RbdMode, o: RbdOptions): void {
  if (mode === 'krbd') return;
  const bad: string[] = [];
  for (const [k, v] of Object.entries(o) as [keyof RbdOptions, unknown][]) {
    if (v === undefined || v === false || HANDLED.has(k)) continue;
    const why = userspaceRefusal(k, mode);
    if (why) bad.push(`"${k}" ${why}`);
  }
  if (bad.length) {
    const path = mode === 'fuse' ? 'rbd-fuse (this host has no kernel RBD)' : 'rbd-nbd';
    throw invalid(`rbd.options: not available when attaching through ${path}: ${bad.join('; ')}`);
  }
}
