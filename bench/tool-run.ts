// bench/tool-run: what one external tool run costs the agent's process: `run('true')` through
// the fork server (src/sys/exec.ts → native/build/imageapi-spawner) against execa's
// child_process spawn, which forks this node process itself; both from a node process holding
// ~100 MB of heap, as the agent at node scale does. Sequential runs, interleaved in rounds.
// Prints wall time and this process's CPU time (user + system: the fork's page-table copy is
// charged here) per run; the last line's ratio is the CPU per run, ours/execa.
//   node dist/bench/tool-run.js          (bench/run.sh builds and runs it)
// Environment: BENCH_N (runs per round and side, default 200), BENCH_WARMUP (default 20).
import { execa } from 'execa';
import { run } from '../src/sys/exec.js';
import { runBench } from './lib/bench.js';
import { envNum, f2, median, resultLine } from './lib/common.js';

const N = envNum('BENCH_N', 200);
const WARMUP = envNum('BENCH_WARMUP', 20);
const ROUNDS = 3;

interface Sample {
  wall: number;
  cpu: number;
}

async function measure(fn: () => Promise<unknown>): Promise<Sample> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < N; i++) await fn();
  const wall = (performance.now() - t0) / N;
  const c = process.cpuUsage(c0);
  return { wall, cpu: (c.user + c.system) / 1000 / N };
}

runBench('tool-run', async () => {
  // The agent's size at 1,000 objects and more: the cost of a fork grows with it.
  const ballast = Array.from({ length: 1_500_000 }, (_, i) => ({ i, s: `x${i}` }));
  const ours = () => run('true', []);
  const ref = () => execa('true', []);
  for (let i = 0; i < WARMUP; i++) await Promise.all([ours(), ref()]);
  const o: Sample[] = [];
  const r: Sample[] = [];
  for (let k = 0; k < ROUNDS; k++) {
    o.push(await measure(ours));
    r.push(await measure(ref));
  }
  const rss = process.memoryUsage().rss / 1e6;
  const line = (name: string, s: Sample[]) =>
    `  ${name.padEnd(40)} ${f2(median(s.map((x) => x.wall))).padStart(8)} ${f2(median(s.map((x) => x.cpu))).padStart(12)}`;
  return [
    `tool-run: ${ROUNDS} rounds of ${N} sequential runs of true per side, this process ${rss.toFixed(0)} MB RSS (${ballast.length} objects held); medians, ms per run`,
    `  ${'what'.padEnd(40)} ${'wall'.padStart(8)} ${'agent CPU'.padStart(12)}`,
    line('fork server (run, src/sys/exec.ts)', o),
    line('execa (a fork of this process)', r),
    '',
    resultLine('tool-run', median(o.map((x) => x.cpu)), median(r.map((x) => x.cpu)), 'ms CPU/run', 'the agent forks no node process: well below 1'),
  ].join('\n');
});
