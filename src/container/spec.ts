// A container spec checked and completed before anything is created: namespaces, the command's
// words, the initial state, defaults. Only what can be known from the request itself.
import { invalid, unsupported } from '../model/errors.js';
import type { ContainerSpec, Namespace } from '../model/types.js';
import { splitCommand } from './command.js';

export const DEFAULT_NAMESPACES: readonly Namespace[] = ['mnt', 'pid', 'uts', 'ipc'];
export const DEFAULT_STOP_TIMEOUT_S = 10;

export interface ContainerPlan {
  namespaces: Namespace[];
  argv: string[];
  wanted: 'created' | 'running';
  systemd: boolean;
  env: string[];
  stop_timeout: number;
  hostnameFor(id: number): string;
}

export function planContainer(spec: ContainerSpec): ContainerPlan {
  const namespaces = [...(spec.namespaces?.length ? spec.namespaces : DEFAULT_NAMESPACES)];
  if (!namespaces.includes('mnt')) throw invalid('namespaces: "mnt" is required (the container needs its own mount namespace)');
  if (namespaces.includes('user')) {
    throw unsupported('namespaces: "user" is not supported: containers run as the host\'s root and mount their image as root, which a user namespace would not allow');
  }
  if (spec.systemd && !namespaces.includes('cgroup')) namespaces.push('cgroup');
  if (spec.hostname && !namespaces.includes('uts')) throw invalid('hostname: needs the "uts" namespace');
  const argv = splitCommand(spec.command);
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
  };
}
