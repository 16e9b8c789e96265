// bench/tool-run: what one external tool run costs the agent's process: `run('true')` through
// the fork server (src/sys/exec.ts → native/build/imageapi-spawner) against execa's
// child_process spawn, which forks this node process itself; both from a node process holding
// ~100 MB of heap, as the agent at node scale does. Sequential runs, interleaved in rounds.
// Also printed: the road not taken, an N-API addon (bench/native/napi-spawn.c, built here with cc
// and Node's headers; posix_spawn + waitpid on the thread pool), where the headers exist.
// Prints wall time and this process's CPU time (user + system: the fork's page-table copy is
// charged here) per run; the last line's ratio is the CPU per run, ours/execa.
//   node dist/bench/tool-run.js          (bench/run.sh builds and runs it)
// Environment: BENCH_N (runs per round and side, default 200), BENCH_WARMUP (default 20).
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
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

const NAPI_SRC = fileURLToPath(new URL('../../bench/native/napi-spawn.c', import.meta.url));

/** The N-API addon's run(), or why there is none. */
function napiAddon(dir: string): ((file: string) => Promise<number>) | string {
  if (!existsSync('/usr/include/node/node_api.h')) return 'not measured: no /usr/include/node/node_api.h (Debian libnode-dev)';
  const out = join(dir, 'napi-spawn.node');
  try {
    execFileSync('cc', ['-shared', '-fPIC', '-O2', '-I/usr/include/node', '-o', out, NAPI_SRC], { stdio: 'pipe' });
  } catch (err) {
    return `not measured: cc failed: ${String((err as { stderr?: Buffer }).stderr ?? err).trim()}`;
  }
  return (createRequire(import.meta.url)(out) as { run: (f: string) => Promise<number> }).run;
}

runBench('tool-run', async (b) => {
  // The agent's size at 1,000 objects and more: the cost of a fork grows with it.
  const ballast = Array.from({ length: 1_500_000 }, (_, i) => ({ i, s: `x${i}` }));
  const ours = () => run('true', []);
  const ref = () => execa('true', []);
  const napi = napiAddon(b.runDir('napi'));
  for (let i = 0; i < WARMUP; i++) await Promise.all([ours(), ref(), typeof napi === 'string' ? null : napi('true')]);
  const o: Sample[] = [];
  const r: Sample[] = [];
  const n: Sample[] = [];
  for (let k = 0; k < ROUNDS; k++) {
    o.push(await measure(ours));
    r.push(await measure(ref));
    if (typeof napi !== 'string') n.push(await measure(() => napi('true')));
  }
  const rss = process.memoryUsage().rss / 1e6;
  const line = (name: string, s: Sample[]) =>
    `  ${name.padEnd(40)} ${f2(median(s.map((x) => x.wall))).padStart(8)} ${f2(median(s.map((x) => x.cpu))).padStart(12)}`;
  return [
    `tool-run: ${ROUNDS} rounds of ${N} sequential runs of true per side, this process ${rss.toFixed(0)} MB RSS (${ballast.length} objects held); medians, ms per run`,
    `  ${'what'.padEnd(40)} ${'wall'.padStart(8)} ${'agent CPU'.padStart(12)}`,
    line('fork server (run, src/sys/exec.ts)', o),
    line('execa (a fork of this process)', r),
    typeof napi === 'string' ? `  N-API addon (posix_spawn): ${napi}` : line('N-API addon (posix_spawn, thread pool)', n),
    '',
    resultLine('tool-run', median(o.map((x) => x.cpu)), median(r.map((x) => x.cpu)), 'ms CPU/run', 'the agent forks no node process: well below 1'),
  ].join('\n');
});
