// Finding and stopping helper processes by what /proc says about them (no pid files to go stale).
import { readdir, readFile } from 'node:fs/promises';

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

/** Alive and not a zombie. */
export async function alive(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Wait until `pid` is gone; true if it went within `ms`. */
export async function waitGone(pid: number, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (await alive(pid)) {
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
