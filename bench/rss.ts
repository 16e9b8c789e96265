// bench/rss: the agent's resident memory (VmRSS, sampled every 50 ms from /proc/PID/status) while
// wrk (1 thread, BENCH_CONNECTIONS=8 connections) sends GET /container, /mount, /attach in turn,
// on an agent holding BENCH_OBJECTS (1000) objects; the same on an agent holding 10 objects is
// printed as the reference. Objects as in bench/lib/populate.ts. Load bursts of BENCH_SECONDS (5)
// alternate between the two agents, BENCH_N (2) each; the peak over the bursts is reported, with
// the RSS before any load and the kernel's high-water mark (VmHWM, which includes populating).
//   node dist/bench/rss.js           (root; bench/run.sh builds and runs it)
// Environment: BENCH_N (2), BENCH_SECONDS (5), BENCH_CONNECTIONS (8), BENCH_OBJECTS (1000),
// BENCH_MIX (45,45).
import { runBench } from './lib/bench.js';
import { checkInterrupted, envNum, fmt, resultLine, table } from './lib/common.js';
import { levelSizes, startLevels, stopLevels } from './lib/levels.js';
import { wrk } from './lib/load.js';

const N = envNum('BENCH_N', 2);
const SECONDS = envNum('BENCH_SECONDS', 5);
const CONNECTIONS = envNum('BENCH_CONNECTIONS', 8);

runBench('rss', async (b) => {
  const { headline } = levelSizes();
  const sizes = [...new Set([10, headline])].sort((x, y) => x - y);
  const levels = await startLevels(b, sizes);
  const idle = levels.map((l) => l.agent.memMB('VmRSS'));
  const peak = levels.map(() => 0);
  const rps = levels.map(() => [] as number[]);
  for (let i = 0; i < N; i++) {
    for (let k = 0; k < levels.length; k++) {
      checkInterrupted();
      const li = (i + k) % levels.length;
      const a = levels[li]!.agent;
      const r = await wrk(a.port, ['/container', '/mount', '/attach'], {
        seconds: SECONDS,
        connections: CONNECTIONS,
        dir: b.work,
        during: () => (peak[li] = Math.max(peak[li]!, a.memMB('VmRSS'))),
      });
      if (r.errors) throw new Error(`wrk on the agent with ${levels[li]!.objects} objects: ${r.errors} errors of ${r.requests} requests`);
      rps[li]!.push(r.rps);
      b.log(`burst ${i + 1}/${N}, ${levels[li]!.objects} objects: ${fmt(r.rps)} req/s, peak RSS so far ${fmt(peak[li]!)} MB`);
    }
  }
  const hwm = levels.map((l) => l.agent.memMB('VmHWM'));
  await stopLevels(b, levels);

  const rows = [['objects', 'RSS idle', 'RSS peak under load', 'VmHWM', 'req/s (median burst)']];
  for (const [li, l] of levels.entries()) {
    const r = [...rps[li]!].sort((x, y) => x - y);
    rows.push([String(l.objects), `${fmt(idle[li]!)} MB`, `${fmt(peak[li]!)} MB`, `${fmt(hwm[li]!)} MB`, fmt(r[Math.floor((r.length - 1) / 2)]!)]);
  }
  const hi = sizes.indexOf(headline);
  return [
    `rss: ${N} bursts of ${SECONDS} s per agent (wrk -t1 -c${CONNECTIONS}, GET /container, /mount, /attach in turn), alternating; RSS sampled every 50 ms`,
    table(rows),
    '',
    resultLine('rss', peak[hi]!, peak[0]!, 'MB', `< 120 MB at ${headline} objects under GET load; ref: ${sizes[0]} objects`),
  ].join('\n');
});
