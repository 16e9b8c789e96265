// Helpers for the tests that need a real Ceph cluster: start/stop it through
// test/fixtures/ceph-cluster.sh, build driver contexts, and find anything an attachment left behind.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { access, constants, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { pino } from 'pino';
import type { DriverContext } from '../../src/attach/driver.js';
import { mountTable } from '../../src/sys/mountinfo.js';

const pexec = promisify(execFile);

/** Run a tool; resolve with stdout, reject with its stderr in the message. */
export async function sh(file: string, args: string[], timeoutMs = 60_000): Promise<string> {
  try {
    const { stdout } = await pexec(file, args, { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
    return stdout;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`${file} ${args.join(' ')}: ${(err.stderr || err.message).trim().split('\n').slice(-30).join('\n')}`);
  }
}

/** test/fixtures, from the sources (test/rbd) or from the compiled tree (dist/test/rbd). */
export async function fixturesDir(): Promise<string> {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const c of [resolve(here, '../fixtures'), resolve(here, '../../../test/fixtures'), resolve(process.cwd(), 'test/fixtures')]) {
    if (await exists(join(c, 'ceph-cluster.sh'))) return c;
  }
  throw new Error(`test/fixtures/ceph-cluster.sh not found from ${here}`);
}

export const exists = (p: string, mode = constants.F_OK) =>
  access(p, mode).then(
    () => true,
    () => false,
  );

async function onPath(tool: string): Promise<boolean> {
  for (const d of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    if (d && (await exists(join(d, tool), constants.X_OK))) return true;
  }
  return false;
}

export interface Cluster {
  dir: string;
  env: Record<string, string>;
  script: string;
  startMs: number;
}

/**
 * Make sure the Ceph packages are there (installing them if possible). Returns the reason the
 * cluster tests must be skipped, or undefined.
 */
export async function cephSkipReason(): Promise<string | undefined> {
  const fx = await fixturesDir();
  if (!(await exists('/dev/fuse'))) return 'no /dev/fuse on this host';
  for (const t of ['busybox', 'mksquashfs', 'losetup']) {
    if (!(await onPath(t)) && !(await exists(`/bin/${t}`))) return `${t} is not installed (busybox-static, squashfs-tools, util-linux)`;
  }
  const need = ['ceph-mon', 'ceph-osd', 'rbd', 'rbd-fuse'];
  const missing = async () => (await Promise.all(need.map(async (t) => ((await onPath(t)) ? '' : t)))).filter(Boolean);
  if ((await missing()).length) {
    try {
      await sh('bash', [join(fx, 'ceph-cluster.sh'), 'install'], 900_000);
    } catch (e) {
      return `the Ceph packages (ceph-mon ceph-osd ceph-common rbd-fuse) cannot be installed: ${(e as Error).message}`;
    }
    const still = await missing();
    if (still.length) return `Ceph tools still missing after install: ${still.join(', ')}`;
  }
  return undefined;
}

export async function startCluster(): Promise<Cluster> {
  const fx = await fixturesDir();
  const script = join(fx, 'ceph-cluster.sh');
  const dir = await mkdtemp('/tmp/imageapi-rbd-ceph-');
  const t0 = Date.now();
  try {
    await sh('bash', [script, 'start', dir], 120_000);
  } catch (e) {
    await sh('bash', [script, 'stop', dir, '--purge'], 60_000).catch(() => undefined);
    throw e;
  }
  const startMs = Date.now() - t0;
  const env: Record<string, string> = {};
  for (const line of (await readFile(join(dir, 'env'), 'utf8')).split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) env[line.slice(0, i)] = line.slice(i + 1);
  }
  return { dir, env, script, startMs };
}

export async function stopCluster(c: Cluster | undefined): Promise<void> {
  if (!c) return;
  await sh('bash', [c.script, 'stop', c.dir, '--purge'], 60_000);
}

/** `rbd` as the cluster's admin. */
export function rbdAdmin(c: Cluster, args: string[], timeoutMs = 60_000): Promise<string> {
  return sh('rbd', ['-c', c.env.CEPH_CONF!, ...args], timeoutMs);
}

export async function makeCtx(runDir?: string, config: Record<string, unknown> = {}): Promise<DriverContext> {
  const dir = runDir ?? (await mkdtemp('/tmp/imageapi-rbd-run-'));
  return {
    runDir: dir,
    log: pino({ level: 'silent' }),
    config,
  };
}

/** rbd-fuse processes whose command line names a path under `under`. */
export async function fuseProcsUnder(under: string): Promise<number[]> {
  const out: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if ((await readFile(`/proc/${name}/comm`, 'utf8')).trim() !== 'rbd-fuse') continue;
      const stat = await readFile(`/proc/${name}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue;
      const argv = (await readFile(`/proc/${name}/cmdline`, 'utf8')).split('\0');
      if (argv.some((a) => a.startsWith(under + '/'))) out.push(Number(name));
    } catch {
      // gone
    }
  }
  return out;
}

/** Loop devices whose backing file lies under `under`. */
export async function loopsUnder(under: string): Promise<string[]> {
  const out: string[] = [];
  for (const name of await readdir('/sys/block')) {
    if (!name.startsWith('loop')) continue;
    const f = await readFile(`/sys/block/${name}/loop/backing_file`, 'utf8').catch(() => '');
    if (f.trim().startsWith(under + '/')) out.push(`/dev/${name}`);
  }
  return out;
}

/** Everything an attachment under `runDir` could leave behind; empty when clean. */
export async function leftovers(runDir: string): Promise<string[]> {
  const out: string[] = [];
  for (const p of await fuseProcsUnder(runDir)) out.push(`rbd-fuse process ${p}`);
  for (const l of await loopsUnder(runDir)) out.push(`loop device ${l}`);
  for (const m of await mountTable()) if (m.target.startsWith(runDir + '/')) out.push(`mount ${m.target}`);
  for (const sub of ['rbd-fuse', 'rbd-krbd', 'rbd-nbd']) {
    for (const e of await readdir(join(runDir, sub)).catch(() => [] as string[])) out.push(`file ${sub}/${e}`);
  }
  return out;
}

/** Tear down whatever is left under `runDir`, whatever state the test ended in. */
export async function scrub(runDir: string): Promise<void> {
  for (const l of await loopsUnder(runDir)) await sh('losetup', ['-d', l], 15_000).catch(() => undefined);
  const mounts = (await mountTable()).filter((m) => m.target.startsWith(runDir + '/')).reverse();
  for (const m of mounts) await sh('umount', ['-l', m.target], 15_000).catch(() => undefined);
  for (const p of await fuseProcsUnder(runDir)) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // gone
    }
  }
  await rm(runDir, { recursive: true, force: true });
}

/** A fresh cephx key, as `ceph-authtool --gen-print-key` makes them (type 1, created, 16 secret bytes). */
export function randomKey(): string {
  const b = Buffer.alloc(28);
  b.writeUInt16LE(1, 0);
  b.writeUInt32LE(Math.floor(Date.now() / 1000), 2);
  b.writeUInt16LE(16, 10);
  randomBytes(16).copy(b, 12);
  return b.toString('base64');
}

/** A cephx key of the right shape that is not `key` (the secret bytes flipped). */
export function otherKey(key: string): string {
  const b = Buffer.from(key, 'base64');
  for (let i = b.length - 16; i < b.length; i++) b[i] = b[i]! ^ 0x5a;
  return b.toString('base64');
}
