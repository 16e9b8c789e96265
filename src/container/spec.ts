// A container spec checked and completed before anything is created: namespaces, the command's
// words, the initial state, defaults. Only what can be known from the request itself.
import { invalid } from '../model/errors.js';
import type { Confinement, IdMap, Limits } from '../model/confine.js';
import type { ContainerSpec, Namespace } from '../model/types.js';
import { splitCommand } from './command.js';

export type { Confinement, IdMap, Limits };

export const DEFAULT_NAMESPACES: readonly Namespace[] = ['mnt', 'pid', 'uts', 'ipc'];
export const DEFAULT_STOP_TIMEOUT_S = 10;

/** Every capability the kernel knows (linux/capability.h, up to 6.x), in number order. */
export const ALL_CAPS = [
  'CHOWN', 'DAC_OVERRIDE', 'DAC_READ_SEARCH', 'FOWNER', 'FSETID', 'KILL', 'SETGID', 'SETUID', 'SETPCAP',
  'LINUX_IMMUTABLE', 'NET_BIND_SERVICE', 'NET_BROADCAST', 'NET_ADMIN', 'NET_RAW', 'IPC_LOCK', 'IPC_OWNER',
  'SYS_MODULE', 'SYS_RAWIO', 'SYS_CHROOT', 'SYS_PTRACE', 'SYS_PACCT', 'SYS_ADMIN', 'SYS_BOOT', 'SYS_NICE',
  'SYS_RESOURCE', 'SYS_TIME', 'SYS_TTY_CONFIG', 'MKNOD', 'LEASE', 'AUDIT_WRITE', 'AUDIT_CONTROL', 'SETFCAP',
  'MAC_OVERRIDE', 'MAC_ADMIN', 'SYSLOG', 'WAKE_ALARM', 'BLOCK_SUSPEND', 'AUDIT_READ', 'PERFMON', 'BPF',
  'CHECKPOINT_RESTORE',
] as const;

/** The OCI/Docker default set. */
export const DEFAULT_CAPS = [
  'CHOWN', 'DAC_OVERRIDE', 'FSETID', 'FOWNER', 'MKNOD', 'NET_RAW', 'SETGID', 'SETUID', 'SETFCAP', 'SETPCAP',
  'NET_BIND_SERVICE', 'SYS_CHROOT', 'KILL', 'AUDIT_WRITE',
];

/**
 * What systemd as PID 1 needs (systemd-nspawn's default set, without SYS_BOOT: a halt is
 * systemd's exit, which the seccomp filter makes happen by refusing reboot(2)): SYS_ADMIN for
 * the mounts and namespaces of its services, SYS_RESOURCE and SYS_NICE for their limits,
 * DAC_READ_SEARCH, IPC_OWNER, LEASE, LINUX_IMMUTABLE, NET_BROADCAST, SYS_PTRACE, AUDIT_CONTROL;
 * NET_ADMIN too with a `net` namespace (networkd, lo).
 */
export const SYSTEMD_CAPS = [
  ...DEFAULT_CAPS, 'DAC_READ_SEARCH', 'IPC_OWNER', 'LEASE', 'LINUX_IMMUTABLE', 'NET_BROADCAST', 'SYS_ADMIN',
  'SYS_NICE', 'SYS_PTRACE', 'SYS_RESOURCE', 'AUDIT_CONTROL',
];

/**
 * The default pool automatic user-namespace ranges come from (systemd-nspawn's: 0x80000–0x6FFFFFFF;
 * the config key `userns_pool` changes it): slot N is host ids POOL_START + N*65536 … +65535.
 */
export const USERNS_POOL_START = 0x80000;
export const USERNS_RANGE = 65536;
export const USERNS_POOL_SLOTS = Math.floor((0x70000000 - USERNS_POOL_START) / USERNS_RANGE);

export interface ContainerPlan {
  namespaces: Namespace[];
  argv: string[];
  wanted: 'created' | 'running';
  systemd: boolean;
  env: string[];
  stop_timeout: number;
  hostnameFor(id: number): string;
  confine: Confinement;
  limits: Limits;
  /** The user namespace wants an automatic range (the lifecycle picks a free slot). */
  autoUserns: boolean;
  /** Output lines stamped with their time and stream (default; `log_timestamps: false` writes them as they come). */
  log_timestamps: boolean;
}

function capName(raw: string, field: string): string {
  const n = raw.replace(/^CAP_/, '');
  if (n !== 'ALL' && !(ALL_CAPS as readonly string[]).includes(n)) throw invalid(`${field}: unknown capability "${raw}"`);
  return n;
}

function checkMap(map: IdMap[], field: string): void {
  for (const [i, m] of map.entries()) {
    if (m.host_id === 0 || (m.host_id < 1 && m.host_id + m.size > 0)) throw invalid(`${field}[${i}]: maps to the host's root (host_id 0): use an unprivileged range`);
    if (m.host_id + m.size > 2 ** 32 - 1 || m.container_id + m.size > 2 ** 32 - 1) throw invalid(`${field}[${i}]: the range ends past 4294967294`);
  }
  if (!map.some((m) => m.container_id === 0)) throw invalid(`${field}: must map the container's id 0 (its root)`);
}

const mapped = (map: IdMap[], id: number) => map.some((m) => id >= m.container_id && id < m.container_id + m.size);

function planConfinement(spec: ContainerSpec, namespaces: Namespace[]): { confine: Confinement; autoUserns: boolean } {
  const privileged = spec.privileged === true;
  if (privileged && (spec.cap_add?.length || spec.cap_drop?.length || spec.seccomp === 'default')) {
    throw invalid('privileged: cannot be combined with cap_add, cap_drop or seccomp (it keeps every capability and has no filter)');
  }
  let caps: string[];
  if (privileged) caps = [...ALL_CAPS];
  else {
    const base = spec.systemd ? [...SYSTEMD_CAPS, ...(namespaces.includes('net') ? ['NET_ADMIN'] : [])] : [...DEFAULT_CAPS];
    const set = new Set(base);
    for (const c of spec.cap_add ?? []) {
      const n = capName(c, 'cap_add');
      if (n === 'ALL') for (const a of ALL_CAPS) set.add(a);
      else set.add(n);
    }
    for (const c of spec.cap_drop ?? []) {
      const n = capName(c, 'cap_drop');
      if (n === 'ALL') set.clear();
      else set.delete(n);
    }
    caps = ALL_CAPS.filter((c) => set.has(c));
  }
  let user: { uid: number; gid: number } | undefined;
  if (spec.user) {
    const [u, g] = spec.user.split(':');
    user = { uid: Number(u), gid: Number(g ?? 0) };
    if (user.uid > 4294967294 || user.gid > 4294967294) throw invalid(`user: "${spec.user}": ids go up to 4294967294`);
  }
  const userns = namespaces.includes('user');
  if (!userns && (spec.uid_map || spec.gid_map)) throw invalid('uid_map, gid_map: need the "user" namespace');
  const uid_map = spec.uid_map;
  const gid_map = spec.gid_map ?? spec.uid_map;
  if (uid_map) checkMap(uid_map, 'uid_map');
  if (spec.gid_map) checkMap(spec.gid_map, 'gid_map');
  if (user && uid_map && (!mapped(uid_map, user.uid) || !mapped(gid_map!, user.gid))) throw invalid(`user: "${spec.user}" is not mapped by uid_map/gid_map`);
  if (user && userns && !uid_map && (user.uid >= USERNS_RANGE || user.gid >= USERNS_RANGE)) throw invalid(`user: "${spec.user}" is outside the automatic range (0-${USERNS_RANGE - 1})`);
  const confine: Confinement = {
    privileged,
    caps,
    ...(spec.cap_add?.length ? { cap_add: spec.cap_add } : {}),
    ...(spec.cap_drop?.length ? { cap_drop: spec.cap_drop } : {}),
    no_new_privs: privileged ? false : spec.no_new_privs ?? true,
    seccomp: privileged ? 'unconfined' : spec.seccomp ?? 'default',
    mask_paths: !privileged,
    ...(user ? { user } : {}),
    working_dir: spec.working_dir ?? '/',
    ...(userns && uid_map ? { uid_map, gid_map: gid_map! } : {}),
  };
  return { confine, autoUserns: userns && !uid_map };
}

function planLimits(spec: ContainerSpec): Limits {
  const limits: Limits = {};
  if (spec.memory && spec.memory.max !== undefined) limits.memory = { max: spec.memory.max, swap: spec.memory.swap ?? 0 };
  else if (spec.memory?.swap !== undefined) throw invalid('memory.swap: needs memory.max');
  if (spec.pids?.max !== undefined) limits.pids = { max: spec.pids.max };
  if (spec.cpu && (spec.cpu.weight !== undefined || spec.cpu.quota !== undefined)) {
    if (spec.cpu.period !== undefined && spec.cpu.quota === undefined) throw invalid('cpu.period: needs cpu.quota');
    limits.cpu = {
      ...(spec.cpu.weight !== undefined ? { weight: spec.cpu.weight } : {}),
      ...(spec.cpu.quota !== undefined ? { quota: spec.cpu.quota, period: spec.cpu.period ?? 100_000 } : {}),
    };
  } else if (spec.cpu?.period !== undefined) throw invalid('cpu.period: needs cpu.quota');
  if (spec.io?.weight !== undefined) limits.io = { weight: spec.io.weight };
  return limits;
}

/** The automatic id maps of user-namespace slot N of the pool starting at host id `start`. */
export function poolMap(slot: number, start = USERNS_POOL_START): IdMap[] {
  return [{ container_id: 0, host_id: start + slot * USERNS_RANGE, size: USERNS_RANGE }];
}

export function planContainer(spec: ContainerSpec): ContainerPlan {
  const namespaces = [...(spec.namespaces?.length ? spec.namespaces : DEFAULT_NAMESPACES)];
  if (!namespaces.includes('mnt')) throw invalid('namespaces: "mnt" is required (the container needs its own mount namespace)');
  if (spec.systemd && !namespaces.includes('cgroup')) namespaces.push('cgroup');
  // In a user namespace, /proc and /dev/mqueue can only be mounted for pid and ipc namespaces it owns.
  if (namespaces.includes('user')) for (const n of ['pid', 'ipc'] as const) if (!namespaces.includes(n)) namespaces.push(n);
  if (spec.hostname && !namespaces.includes('uts')) throw invalid('hostname: needs the "uts" namespace');
  const argv = Array.isArray(spec.command) ? [...spec.command] : splitCommand(spec.command);
  if (!argv[0]) throw invalid('command: the first word (the program) is empty');
  const { confine, autoUserns } = planConfinement(spec, namespaces);
  const limits = planLimits(spec);
  const wanted = spec.state ?? 'created';
  if (wanted !== 'created' && wanted !== 'running') throw invalid(`state: a new container can be "created" or "running", not "${wanted}"`);
  // The default hostname is the name made valid (no leading punctuation, no underscores).
  const fromName = spec.name?.replace(/^[^A-Za-z0-9]+/, '').replace(/_/g, '-').slice(0, 63);
  return {
    namespaces,
    argv,
    wanted,
    systemd: spec.systemd === true,
    env: spec.env ?? [],
    stop_timeout: spec.stop_timeout ?? DEFAULT_STOP_TIMEOUT_S,
    hostnameFor: (id) => spec.hostname ?? (fromName || `container-${id}`),
    confine,
    limits,
    autoUserns,
    log_timestamps: spec.log_timestamps ?? true,
  };
}
