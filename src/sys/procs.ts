// Processes, by what /proc says about them: finding helpers (no pid files to go stale), telling
// a live process from a reused PID, stopping them.
import { readdir, readFile } from 'node:fs/promises';
import { sleep } from '../util/time.js';

export interface Proc {
  pid: number;
  argv: string[];
}

/** Live processes whose executable name is `comm` and whose argv contains `arg` exactly. */
export async function findProcs(comm: string, arg: string): Promise<Proc[]> {
  const out: Proc[] = [];
  for (const name of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if ((await readFile(`/proc/${name}/comm`, 'utf8')).trim() !== comm.slice(0, 15)) continue;
      const argv = (await readFile(`/proc/${name}/cmdline`, 'utf8')).split('\0').filter((a) => a !== '');
      if (argv.includes(arg)) out.push({ pid: Number(name), argv });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** /proc/PID/stat start time: tells a live process from a reused PID. */
export async function processStartTime(pid: number): Promise<string | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Field 22, counted after the parenthesised command name (which may contain spaces).
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

/** `pid` still exists and (when `start` is known) is the process that had that start time. */
export async function isSameProcess(pid: number, start: string | null): Promise<boolean> {
  const s = await processStartTime(pid);
  return s !== null && (start === null || s === start);
}

/** Running: it exists and is not a zombie. */
export async function isRunning(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Wait until `pid` is gone; true if it went within `ms`. */
export async function waitGone(pid: number, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (await isRunning(pid)) {
    if (Date.now() >= end) return false;
    await sleep(50);
  }
  return true;
}

/** Give `pid` `graceMs` to exit by itself, then SIGTERM, then SIGKILL. */
export async function stopProc(pid: number, graceMs: number): Promise<void> {
  if (await waitGone(pid, graceMs)) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  if (await waitGone(pid, 3000)) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  await waitGone(pid, 3000);
}
