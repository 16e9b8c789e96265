// bench/many-delete: deleting 100 running containers of one image (force: stopped first), 8
// requests in flight, against `crun delete --force` of as many, 8 in parallel. See
// bench/lib/many.ts for what is measured.
//   node dist/bench/many-delete.js          (root; bench/run.sh builds and runs it)
// Environment: BENCH_CONTAINERS (100), BENCH_PARALLEL (8), BENCH_N (rounds, 3), BENCH_WARMUP (1),
// BENCH_CRUN_CGROUP.
import { runBench } from './lib/bench.js';
import { median, resultLine } from './lib/common.js';
import { manyRounds, manyTable } from './lib/many.js';

runBench('many-delete', async (b) => {
  const s = await manyRounds(b);
  const ours = median(s.oursDelete) / 1000;
  const ref = median(s.crunDelete) / 1000;
  return [manyTable(s), '', resultLine('many-delete', ours, ref, 's', '<= 1.2x crun')].join('\n');
});
