// The nbd path: rbd-nbd (a librbd daemon serving the kernel's nbd). Not exercisable on hosts
// without nbd; kept small and checked through its arguments.
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { internal } from '../../model/errors.js';
import { run } from '../../sys/exec.js';
import type { Attached, DriverContext } from '../driver.js';
import { writeClientFiles } from './cephconf.js';
import { probeImage } from './probe.js';
import { imageSpec, type Resolved } from './spec.js';
import type { RbdState } from './types.js';

type NbdState = Extract<RbdState, { mode: 'nbd' }>;

/** `rbd-nbd` arguments mapping `r` (pure). librados settings for options come from the conf file. */
export function nbdMapArgs(r: Resolved, files: { conf: string; keyring?: string | undefined }): string[] {
  const args = ['map', '-c', files.conf, '--id', r.user];
  if (files.keyring) args.push('--keyring', files.keyring);
  if (r.readonly) args.push('--read-only');
  if (r.opts.exclusive) args.push('--exclusive');
  args.push(imageSpec(r));
  return args;
}

interface Mapped {
  device: string;
  pool: string;
  namespace?: string;
  image: string;
  snap?: string;
}

export async function nbdAttach(r: Resolved, ctx: DriverContext): Promise<Attached> {
  // rbd-nbd reads the key once at start and keeps it in memory; the file goes right after.
  const dir = join(ctx.runDir, 'rbd-nbd', randomBytes(8).toString('hex'));
  try {
    const files = await writeClientFiles(dir, r);
    await probeImage(r, files);
    const { stdout } = await run('rbd-nbd', nbdMapArgs(r, files), {
      timeoutMs: r.timeoutS * 1000 + 5000,
      secrets: r.key ? [r.key] : [],
      failKind: 'INVALID',
    });
    const dev = stdout.trim().split('\n').pop() ?? '';
    if (!/^\/dev\/nbd\d+$/.test(dev)) throw internal(`rbd-nbd map printed no device: ${stdout.trim().slice(0, 200)}`);
    const state: NbdState = { mode: 'nbd', readonly: r.readonly };
    return { device_file: dev, state };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function listMapped(): Promise<Mapped[]> {
  const { stdout } = await run('rbd-nbd', ['list-mapped', '--format', 'json'], { timeoutMs: 10_000 });
  return JSON.parse(stdout || '[]') as Mapped[];
}

function sameImage(m: Mapped, r: Resolved): boolean {
  return (
    m.pool === r.pool &&
    (m.namespace ?? '') === (r.namespace ?? '') &&
    m.image === r.image &&
    (m.snap ?? '-') === (r.snapshot ?? '-')
  );
}

export async function nbdDetach(r: Resolved, attached: Attached): Promise<void> {
  const m = (await listMapped()).find((x) => x.device === attached.device_file);
  if (!m || !sameImage(m, r)) return;
  await run('rbd-nbd', ['unmap', attached.device_file], { timeoutMs: r.timeoutS * 1000 + 5000, failKind: 'IN_USE' });
}

export async function nbdAdopt(r: Resolved, attached: Attached): Promise<Attached | null> {
  const m = (await listMapped().catch(() => [])).find((x) => x.device === attached.device_file);
  return m && sameImage(m, r) ? attached : null;
}
