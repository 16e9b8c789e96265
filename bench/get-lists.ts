// bench/get-lists: latency of GET /container, GET /mount and GET /attach (the whole lists) on an
// agent holding BENCH_OBJECTS (1000) objects, against the same GETs on an agent holding 10; the
// levels in between (BENCH_LEVELS, default 10,100,1000) show whether it stays flat. One agent per
// level, all running; the objects are made as bench/lib/populate.ts says (45 % containers in state
// created over one overlay, 45 % bind mounts, 10 % loop devices over small files). Each round
// sends one GET of each route to each agent, one at a time on a kept-alive connection, in a
// rotating order; p50/p99 from our own client's samples (sent → last byte read; the answer is
// not parsed, so the client's own JSON.parse is not in the time).
//   node dist/bench/get-lists.js           (root; bench/run.sh builds and runs it)
// Environment: BENCH_N (rounds, default 200), BENCH_WARMUP (10), BENCH_OBJECTS (1000),
// BENCH_LEVELS (10,100,BENCH_OBJECTS; e.g. 10,100,1000,10000 for the 10,000 point, which takes
// minutes to populate), BENCH_MIX (45,45).
import { runBench } from './lib/bench.js';
import { checkInterrupted, envNum, f2, fmt, median, now, quantile, resultLine, table } from './lib/common.js';
import { levelSizes, startLevels, stopLevels } from './lib/levels.js';

const N = envNum('BENCH_N', 200);
const WARMUP = envNum('BENCH_WARMUP', 10);
const ROUTES = ['/container', '/mount', '/attach'];

runBench('get-lists', async (b) => {
  const { levels: sizes, headline } = levelSizes();
  const levels = await startLevels(b, sizes);
  const samples = levels.map(() => ROUTES.map(() => [] as number[]));
  const bytes = levels.map(() => ROUTES.map(() => 0));
  for (let i = 0; i < WARMUP + N; i++) {
    checkInterrupted();
    for (let k = 0; k < levels.length; k++) {
      const li = (i + k) % levels.length;
      for (let j = 0; j < ROUTES.length; j++) {
        const ri = (i + j) % ROUTES.length;
        const t0 = now();
        // Timed to the answer's last byte, not parsed (a client's JSON.parse of 0.5 MB is ms too).
        const r = await levels[li]!.agent.reqRaw('GET', ROUTES[ri]!);
        const t = now() - t0;
        if (r.status !== 200) throw new Error(`GET ${ROUTES[ri]} → ${r.status}: ${r.text.slice(0, 500)}`);
        bytes[li]![ri] = r.bytes;
        if (i >= WARMUP) samples[li]![ri]!.push(t);
      }
    }
    if ((i + 1) % 50 === 0) b.log(`${i + 1}/${WARMUP + N} rounds`);
  }
  await stopLevels(b, levels);

  const rows: string[][] = [['objects', 'route', 'listed', 'bytes', 'p50', 'p99', 'max', 'p99 / p99 at ' + sizes[0]]];
  const worst = levels.map((_, li) => Math.max(...ROUTES.map((_, ri) => quantile(samples[li]![ri]!, 0.99))));
  for (const [li, l] of levels.entries()) {
    for (const [ri, route] of ROUTES.entries()) {
      const xs = samples[li]![ri]!;
      const listed = [l.counts.containers, l.counts.mounts, l.counts.attachments][ri]!;
      rows.push([String(l.objects), route, String(listed), String(bytes[li]![ri]), f2(median(xs)), f2(quantile(xs, 0.99)), f2(Math.max(...xs)), f2(quantile(xs, 0.99) / quantile(samples[0]![ri]!, 0.99))]);
    }
  }
  const hi = sizes.indexOf(headline);
  return [
    `get-lists: ${N} rounds after ${WARMUP} warm-up, one GET per route and agent per round, rotating; times in ms`,
    table(rows),
    '',
    `worst route p99 per level: ${levels.map((l, li) => `${l.objects}: ${fmt(worst[li]!)} ms`).join(', ')}`,
    `populating took ${levels.map((l) => `${fmt(l.populateS)} s for ${l.objects}`).join(', ')}`,
    resultLine('get-lists', worst[hi]!, worst[0]!, 'ms', `p99 < 10 ms at ${headline} objects vs ${sizes[0]}, flat; worst of the three routes`),
  ].join('\n');
});
