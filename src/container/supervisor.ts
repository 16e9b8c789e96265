// The protocol with the native supervisor (native/build/imageapi-init, `imageapi-shim` in ps):
// its arguments, its ready line on fd 3 (`ok PID` or `error WHY`), the status file it leaves
// (`exit_code=`, `signal=`, `start_error=`), and how to tell whether it still runs.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AgentError } from '../model/errors.js';
import type { ContainerRec } from '../store/records.js';
import { launchDetached } from '../sys/detached.js';
import { processStartTime } from '../sys/procs.js';

const READY_TIMEOUT_MS = 30_000;
/** glibc's SIGRTMIN (34) + 3: systemd's "halt". */
export const SIGRTMIN_3 = 37;

export interface ExitStatus {
  exit_code: number;
  signal: number;
  start_error?: string;
}

export interface Started {
  pid: number;
  pid_start: string | null;
  shim_pid: number | null;
  /**
   * Resolves when the supervisor exits (only observable while this agent lives): true, or false
   * once it can no longer be observed (its end is then found by polling).
   */
  exited: Promise<boolean>;
}

/** The files of one run of a container: `<dir>/pid`, `<dir>/status`. */
export const statusFile = (dir: string) => join(dir, 'status');

export function helperArgs(rec: ContainerRec, root: string, dir: string): string[] {
  return [
    '--root', root,
    '--log', rec.logfile,
    '--ready-fd', '3',
    '--pidfile', join(dir, 'pid'),
    '--status', statusFile(dir),
    // The output through the helper's log writer: capped, rotated, optionally stamped.
    ...(rec.log_max_size !== undefined ? ['--log-max-size', String(rec.log_max_size), '--log-max-files', String(rec.log_max_files ?? 1)] : []),
    ...(rec.log_timestamps ? ['--log-stamps'] : []),
    '--ns', rec.namespaces.join(','),
    ...(rec.namespaces.includes('uts') ? ['--hostname', rec.hostname] : []),
    ...(rec.systemd ? ['--systemd'] : []),
    ...rec.cgroups.flatMap((c) => ['--cgroup', c]),
    ...rec.env.flatMap((e) => ['--env', e]),
    ...confinementArgs(rec),
    '--', ...rec.argv,
  ];
}

const idMapArgs = (opt: string, map: { container_id: number; host_id: number; size: number }[] = []) =>
  map.flatMap((m) => [opt, `${m.container_id}:${m.host_id}:${m.size}`]);

/** Capabilities, no_new_privs, seccomp, masked paths, user, id maps (nothing for a record from before them). */
function confinementArgs(rec: ContainerRec): string[] {
  const c = rec.confine;
  if (!c) return [];
  return [
    ...(c.working_dir !== '/' ? ['--workdir', c.working_dir] : []),
    ...(c.user ? ['--user', `${c.user.uid}:${c.user.gid}`] : []),
    ...(c.privileged ? [] : ['--caps', c.caps.length ? c.caps.join(',').toLowerCase() : 'none']),
    ...(c.no_new_privs ? ['--no-new-privs'] : []),
    // systemd sets up mount namespaces for its services: its profile allows mount and unshare.
    ...(c.seccomp === 'default' ? ['--seccomp', rec.systemd ? 'systemd' : 'default'] : []),
    ...(c.mask_paths ? ['--mask-paths'] : []),
    ...idMapArgs('--uid-map', c.uid_map),
    ...idMapArgs('--gid-map', c.gid_map),
  ];
}

/**
 * Start the supervisor and wait for its ready line. An `error` line is the container's failure
 * to start: the image's fault (INVALID) when the exec failed, the node's otherwise.
 */
export async function launch(helper: string, args: string[], id: number): Promise<Started> {
  const launched = launchDetached(helper, args, READY_TIMEOUT_MS);
  let line: string;
  try {
    line = await launched.ready;
  } catch (err) {
    launched.kill('SIGKILL');
    throw new AgentError('INTERNAL', `container ${id}: the init helper failed: ${(err as Error).message}`);
  }
  if (!line.startsWith('ok ')) {
    const why = line.replace(/^error /, '');
    await launched.exited;
    // A root filesystem the kernel cannot id-map (user namespace) is this kernel's limit, not a fault.
    // A working directory missing in the image is the request's fault, like a missing command.
    const kind = /^(executing |changing to the working directory )/.test(why) ? 'INVALID' : /^id-mapping the root filesystem: this kernel cannot/.test(why) ? 'UNSUPPORTED' : 'INTERNAL';
    throw new AgentError(kind, `container ${id}: ${why}`);
  }
  const pid = Number(line.slice(3));
  return { pid, pid_start: await processStartTime(pid), shim_pid: await launched.pid, exited: launched.exited };
}

export async function readStatus(dir: string): Promise<ExitStatus | null> {
  try {
    const text = await readFile(statusFile(dir), 'utf8');
    const kv = Object.fromEntries(text.split('\n').filter(Boolean).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    return { exit_code: Number(kv.exit_code ?? -1), signal: Number(kv.signal ?? 0), start_error: kv.start_error };
  } catch {
    return null;
  }
}
