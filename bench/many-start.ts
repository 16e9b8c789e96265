// bench/many-start: 100 containers of one image started (running), 8 requests in flight, against
// `crun run --detach` ×100, 8 in parallel. See bench/lib/many.ts for what is measured.
//   node dist/bench/many-start.js          (root; bench/run.sh builds and runs it)
// Environment: BENCH_CONTAINERS (100), BENCH_PARALLEL (8), BENCH_N (rounds, 3), BENCH_WARMUP (1),
// BENCH_CRUN_CGROUP.
import { runBench } from './lib/bench.js';
import { median, resultLine } from './lib/common.js';
import { manyRounds, manyTable } from './lib/many.js';

runBench('many-start', async (b) => {
  const s = await manyRounds(b);
  const ours = median(s.oursStart) / 1000;
  const ref = median(s.crunStart) / 1000;
  return [manyTable(s), '', resultLine('many-start', ours, ref, 's', '< 1 s, <= 1.2x crun')].join('\n');
});
