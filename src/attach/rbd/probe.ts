// A cheap check before anything is started: `rbd info` with the caller's monitors, user and key,
// bounded by mount_timeout. Its failure says precisely what is wrong (key, pool, namespace,
// image, snapshot, permissions, unreachable monitors), as a 4xx or a 504.
import { readFile, rm } from 'node:fs/promises';
import { AgentError, invalid, internal, notFound } from '../../model/errors.js';
import { redactText } from '../../model/secrets.js';
import { run } from '../../sys/exec.js';
import type { ClientFiles } from './cephconf.js';
import { imageSpec, type Resolved } from './spec.js';

export interface ImageInfo {
  size: number;
  features: string[];
}

/** Arguments of the probe (pure; tests check them). */
export function probeArgs(r: Resolved, conf: string, log: string): string[] {
  // Connecting may take most of the budget, leaving a second for the answer.
  const connectS = Math.max(1, r.timeoutS - 1);
  const args = [
    '-c', conf,
    '--id', r.user,
    '--log-file', log,
    '--client-mount-timeout', String(connectS),
    '--rados-mon-op-timeout', String(connectS),
    '--rados-osd-op-timeout', String(connectS),
    'info',
    '--pool', r.pool,
  ];
  if (r.namespace) args.push('--namespace', r.namespace);
  args.push('--image', r.image);
  if (r.snapshot) args.push('--snap', r.snapshot);
  args.push('--format', 'json');
  return args;
}

function monitorsOf(r: Resolved): string {
  return r.spec.monitors.join(', ');
}

/** Turn the probe's complaint (stderr and its log) into the error users should see. */
export function classifyProbeFailure(text: string, r: Resolved, timedOut: boolean): AgentError {
  const where = imageSpec(r);
  if (/handle_auth_bad_method|authentication error|bad authorizer|no keyring found|keyring not found/i.test(text)) {
    if (r.key === undefined) {
      return invalid(
        `rbd: authentication failed at monitors ${monitorsOf(r)}: the cluster requires cephx; give options.name and options.secret`,
      );
    }
    return invalid(
      `rbd: authentication failed for client.${r.user} at monitors ${monitorsOf(r)} (wrong key, or no such user)`,
    );
  }
  if (/error opening pool[^\n]*\(2\)/.test(text)) return notFound(`rbd: pool "${r.pool}" does not exist`);
  if (/namespace '[^']*' does not exist/.test(text)) {
    return notFound(`rbd: namespace "${r.namespace}" does not exist in pool "${r.pool}"`);
  }
  if (/error opening image[^\n]*\(2\)/.test(text)) {
    return notFound(`rbd: image "${r.image}" does not exist in pool "${r.pool}"${r.namespace ? ` namespace "${r.namespace}"` : ''}`);
  }
  if (/snapshot context[^\n]*\(2\)|snap[^\n]*\(2\) No such file/.test(text)) {
    return notFound(`rbd: snapshot "${r.snapshot}" of image "${r.image}" does not exist`);
  }
  if (/\(1\) Operation not permitted|\(13\) Permission denied/.test(text)) {
    return invalid(`rbd: client.${r.user} is not permitted to open ${where} (check its caps)`);
  }
  if (timedOut || /couldn't connect to the cluster|authenticate timed out|timed out|\(110\)/.test(text)) {
    return new AgentError(
      'TIMEOUT',
      `rbd: could not reach the monitors ${monitorsOf(r)} within ${r.timeoutS} s (mount_timeout)`,
    );
  }
  const last = text.trim().split('\n').filter(Boolean).slice(-2).join('; ');
  return internal(`rbd: checking ${where} failed: ${last}`);
}

/** Probe the image with the caller's files; throws the classified error. */
export async function probeImage(r: Resolved, files: ClientFiles): Promise<ImageInfo> {
  const log = `${files.log}.probe`;
  const secrets = r.key ? [r.key] : [];
  try {
    const { stdout } = await run('rbd', probeArgs(r, files.conf, log), { timeoutMs: r.timeoutS * 1000, secrets });
    const info = JSON.parse(stdout) as { size?: number; features?: string[] };
    return { size: Number(info.size ?? 0), features: info.features ?? [] };
  } catch (err) {
    if (!(err instanceof AgentError)) throw err;
    const logText = await readFile(log, 'utf8').catch(() => '');
    throw classifyProbeFailure(redactText(`${err.message}\n${logText}`, secrets), r, err.kind === 'TIMEOUT');
  } finally {
    await rm(log, { force: true });
  }
}

/** With options.fsid: the cluster's fsid must be that one (librados does not check it itself). */
export async function checkFsid(r: Resolved, files: ClientFiles): Promise<void> {
  const want = r.opts.fsid;
  if (want === undefined) return;
  const secrets = r.key ? [r.key] : [];
  const { stdout } = await run(
    'ceph',
    ['-c', files.conf, '--id', r.user, '--connect-timeout', String(r.timeoutS), 'fsid'],
    { timeoutMs: r.timeoutS * 1000 + 2000, secrets, failKind: 'INVALID' },
  );
  if (stdout.trim().toLowerCase() !== want.toLowerCase()) {
    throw invalid(`rbd.options.fsid: the cluster at ${monitorsOf(r)} has fsid ${stdout.trim()}, not ${want}`);
  }
}
