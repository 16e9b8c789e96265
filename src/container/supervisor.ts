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
  /** Resolves when the supervisor exits (only observable while this agent lives). */
  exited: Promise<void>;
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
    '--ns', rec.namespaces.join(','),
    ...(rec.namespaces.includes('uts') ? ['--hostname', rec.hostname] : []),
    ...(rec.systemd ? ['--systemd'] : []),
    ...rec.cgroups.flatMap((c) => ['--cgroup', c]),
    ...rec.env.flatMap((e) => ['--env', e]),
    '--', ...rec.argv,
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
    launched.child.kill('SIGKILL');
    throw new AgentError('INTERNAL', `container ${id}: the init helper failed: ${(err as Error).message}`);
  }
  if (!line.startsWith('ok ')) {
    const why = line.replace(/^error /, '');
    await launched.exited;
    throw new AgentError(/^executing /.test(why) ? 'INVALID' : 'INTERNAL', `container ${id}: ${why}`);
  }
  const pid = Number(line.slice(3));
  return { pid, pid_start: await processStartTime(pid), shim_pid: launched.child.pid ?? null, exited: launched.exited };
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
