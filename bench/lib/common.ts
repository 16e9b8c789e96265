// Shared by every benchmark: paths, environment knobs, ^C handling, statistics, the last line.
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

/** The repository (this file runs as dist/bench/lib/common.js). */
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const MAIN = join(ROOT, 'dist/src/main.js');
export const HELPER = join(ROOT, 'native/build/imageapi-init');
export const CRUN_SIDE = join(ROOT, 'bench/crun-side.sh');
export const BUSYBOX_IMAGE = join(ROOT, 'test/fixtures/busybox-image.sh');

export const now = () => performance.now();
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A numeric knob from the environment (BENCH_N, BENCH_OBJECTS, …). */
export function envNum(name: string, dflt: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name}=${v}: not a number`);
  return n;
}

/** A list of numbers from the environment, e.g. BENCH_LEVELS=10,100,1000. */
export function envList(name: string, dflt: number[]): number[] {
  const v = process.env[name];
  if (!v) return dflt;
  return v.split(',').map((s) => {
    const n = Number(s.trim());
    if (!Number.isInteger(n) || n < 0) throw new Error(`${name}=${v}: not a list of integers`);
    return n;
  });
}

// ^C or SIGTERM: stop after the current step and clean up (the agent would leave its mounts).
let interrupted: string | null = null;
let cleaningUp = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => (interrupted = sig));
export function checkInterrupted(): void {
  if (interrupted && !cleaningUp) throw new Error(`interrupted (${interrupted}): cleaning up`);
}
/** From now on (the cleanup) a ^C no longer stops anything: the cleanup must finish. */
export function ignoreInterrupts(): void {
  cleaningUp = true;
}

/** `fn(i)` for i in 0..n-1, at most `parallel` at a time; stops early on ^C or the first error. */
export async function pool<T>(n: number, parallel: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  let failed: unknown = null;
  const worker = async () => {
    while (next < n && failed === null) {
      const i = next++;
      try {
        checkInterrupted();
        out[i] = await fn(i);
      } catch (err) {
        failed ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(parallel, n)) }, worker));
  if (failed !== null) throw failed;
  return out;
}

// ------------------------------------------------------------------ statistics

export function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo);
}
export const median = (xs: number[]) => quantile(xs, 0.5);
export const f2 = (x: number) => x.toFixed(2);

/** A number with a sensible number of digits for a report. */
export function fmt(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  return a >= 100 ? x.toFixed(0) : a >= 10 ? x.toFixed(1) : a >= 1 ? x.toFixed(2) : x.toFixed(3);
}

/** A table: header row, then rows; the first column left-aligned, the others right-aligned. */
export function table(rows: string[][]): string {
  const w = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(w[c]!) : cell.padStart(w[c]!))).join('  ')).join('\n');
}

/**
 * The one line to track, printed last by every benchmark:
 *   NAME: ours X UNIT, ref Y UNIT, ratio R (goal G)
 */
export function resultLine(name: string, ours: number, ref: number, unit: string, goal: string): string {
  return `${name}: ours ${fmt(ours)} ${unit}, ref ${fmt(ref)} ${unit}, ratio ${(ours / ref).toFixed(2)} (goal ${goal})`;
}
