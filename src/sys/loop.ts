// Loop devices, by ioctl (LOOP_CTL_GET_FREE, LOOP_CONFIGURE, LOOP_CLR_FD) in the fork server's
// built-in commands (native/spawner-ops.c): no losetup to load and run. The kernel's view of a
// loop device lives in /sys/block/loopN/loop/, which is what adoption after a restart reads.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { run } from './exec.js';

export interface LoopOptions {
  readonly?: boolean;
  /** Scan the partition table (creates loopNpM devices). */
  partscan?: boolean;
}

/** Attach `file` to a free loop device; returns `/dev/loopN`. */
export async function loopAttach(file: string, opts: LoopOptions = {}): Promise<string> {
  const args: string[] = [];
  if (opts.readonly) args.push('--read-only');
  if (opts.partscan) args.push('--partscan');
  args.push('--', file);
  const { stdout } = await run('@loop-attach', args, { timeoutMs: 15_000 });
  const dev = stdout.trim();
  if (!/^\/dev\/loop\d+$/.test(dev)) throw new Error(`loop-attach printed no device for ${file}: ${stdout}`);
  return dev;
}

/** Detach a loop device; a device that is already free is not an error. */
export async function loopDetach(dev: string): Promise<void> {
  if ((await loopBackingFile(dev)) === null) return;
  await run('@loop-detach', [dev], { timeoutMs: 15_000 });
}

/** The backing file of /dev/loopN, or null when the device is not attached. */
export async function loopBackingFile(dev: string): Promise<string | null> {
  try {
    const f = await readFile(`/sys/block/${basename(dev)}/loop/backing_file`, 'utf8');
    return f.trim();
  } catch {
    return null;
  }
}

/** Whether /dev/loopN is attached read-only. */
export async function loopReadonly(dev: string): Promise<boolean> {
  try {
    return (await readFile(`/sys/block/${basename(dev)}/ro`, 'utf8')).trim() === '1';
  } catch {
    return false;
  }
}

/**
 * Every attached loop device with its backing file (what /sys/block says), as `/dev/loopN` → file.
 * Read synchronously: sysfs attributes are in memory, and a host has many free loop devices (100+
 * here) whose missing `loop/` directory would each cost a thread-pool round trip and an exception
 * (~2 ms of a create that loops a file, which reads this for its intent).
 */
export async function attachedLoops(): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let names: string[];
  try {
    names = readdirSync('/sys/block');
  } catch {
    return out;
  }
  for (const d of names) {
    if (!/^loop\d+$/.test(d)) continue;
    const file = `/sys/block/${d}/loop/backing_file`;
    if (!existsSync(file)) continue; // free
    try {
      out.set(`/dev/${d}`, readFileSync(file, 'utf8').trim());
    } catch {
      /* detached meanwhile */
    }
  }
  return out;
}
