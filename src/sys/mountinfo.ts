// /proc/self/mountinfo, parsed. The one place that reads it.
import { AsyncLocalStorage } from 'node:async_hooks';
import { readFile } from 'node:fs/promises';

export interface MountEntry {
  id: number;
  parent: number;
  target: string;
  root: string;
  options: string[];
  fstype: string;
  source: string;
  superOptions: string[];
}

// mountinfo escapes space, tab, newline and backslash as \ooo octal.
const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const f = left.split(' ');
    const r = right.split(' ');
    out.push({
      id: Number(f[0]),
      parent: Number(f[1]),
      root: unescape(f[3] ?? ''),
      target: unescape(f[4] ?? ''),
      options: (f[5] ?? '').split(','),
      fstype: r[0] ?? '',
      source: unescape(r[1] ?? ''),
      superOptions: (r[2] ?? '').split(','),
    });
  }
  return out;
}

const snapshot = new AsyncLocalStorage<{ table?: Promise<MountEntry[]> }>();

export async function mountTable(): Promise<MountEntry[]> {
  const s = snapshot.getStore();
  if (s) return (s.table ??= readFile('/proc/self/mountinfo', 'utf8').then(parseMountinfo));
  return parseMountinfo(await readFile('/proc/self/mountinfo', 'utf8'));
}

/**
 * Run `fn` with one reading of the mount table for every lookup inside it (adoption after a
 * restart asks about every mount: one read, not one per mount). Only for work that mounts nothing.
 */
export function withMountSnapshot<T>(fn: () => Promise<T>): Promise<T> {
  return snapshot.run({}, fn);
}

/** The topmost mount at exactly `target`, or undefined. */
export async function mountAt(target: string): Promise<MountEntry | undefined> {
  const table = await mountTable();
  let found: MountEntry | undefined;
  for (const m of table) if (m.target === target) found = m;
  return found;
}

/** Mounts at or below `dir` (deepest first, the order to unmount them in). */
export async function mountsUnder(dir: string): Promise<MountEntry[]> {
  const prefix = dir.endsWith('/') ? dir : dir + '/';
  const table = await mountTable();
  return table.filter((m) => m.target === dir || m.target.startsWith(prefix)).reverse();
}
