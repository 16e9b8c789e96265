// 100 running containers of one image, started and deleted with 8 requests in flight, against
// `crun run --detach` and `crun delete --force` of as many, 8 at a time (bench/many-start and
// bench/many-delete; both measure both phases, each reports its own).
//
// Agent: the base stack once (one overlay), then per round N × POST /container
// {"command":"/bin/sleep 1000","state":"running","mount":{"id":OVERLAY},"stop_timeout":0}, P in
// flight on P kept-alive connections, timed from the first request sent to the last 201 read;
// a check that N are running (untimed); then N × DELETE /container?id=…&force=true, P in flight,
// timed likewise (stop_timeout 0: the stop signal, then at once a kill of the cgroup, as
// `crun delete --force` kills with SIGKILL). crun: the same sleep on its own copy of the stack, in
// crun-side.sh (many-run, many-delete). The two sides alternate which goes first each round.
import type { Bench } from './bench.js';
import { checkInterrupted, envNum, f2, median, now, pool, quantile, table } from './common.js';
import { baseStack } from './populate.js';

export interface ManySamples {
  n: number;
  parallel: number;
  rounds: number;
  warmup: number;
  oursStart: number[];
  oursDelete: number[];
  crunStart: number[];
  crunDelete: number[];
}

export async function manyRounds(b: Bench): Promise<ManySamples> {
  const n = envNum('BENCH_CONTAINERS', 100);
  const parallel = envNum('BENCH_PARALLEL', 8);
  const rounds = envNum('BENCH_N', 3);
  const warmup = envNum('BENCH_WARMUP', 1);
  const image = b.image();
  const agent = b.agent('run', { sockets: parallel });
  await agent.start();
  const crun = await b.crun();
  const { overlay } = await baseStack(agent, image);
  const s: ManySamples = { n, parallel, rounds, warmup, oursStart: [], oursDelete: [], crunStart: [], crunDelete: [] };

  const ours = async (keep: boolean) => {
    const t0 = now();
    const ids = await pool(n, parallel, async () => {
      const c = await agent.must('POST', '/container', { command: '/bin/sleep 1000', state: 'running', mount: { id: overlay }, stop_timeout: 0 }, 201);
      return c.id as number;
    });
    const t1 = now();
    const running = await agent.must('GET', '/container?state=running', undefined, 200);
    if (running.length !== n) throw new Error(`${running.length} of ${n} containers running`);
    const t2 = now();
    await pool(n, parallel, (i) => agent.must('DELETE', `/container?id=${ids[i]}&force=true`, undefined, 200));
    const t3 = now();
    if (keep) s.oursStart.push(t1 - t0), s.oursDelete.push(t3 - t2);
    const left = await agent.must('GET', '/container', undefined, 200);
    if (left.length) throw new Error(`${left.length} containers left after deleting`);
  };
  const theirs = async (keep: boolean) => {
    const a = await crun.run('many-run', n, parallel);
    const d = await crun.run('many-delete', n, parallel);
    if (keep) s.crunStart.push(a), s.crunDelete.push(d);
  };

  for (let i = 0; i < warmup + rounds; i++) {
    checkInterrupted();
    const keep = i >= warmup;
    if (i % 2 === 0) {
      await ours(keep);
      await theirs(keep);
    } else {
      await theirs(keep);
      await ours(keep);
    }
    b.log(`${i + 1}/${warmup + rounds} rounds`);
  }
  await agent.must('DELETE', `/mount?id=${overlay}&force=true`, undefined, 200);
  return s;
}

/** The table both reports print (times in ms). */
export function manyTable(s: ManySamples): string {
  const row = (label: string, xs: number[]) => [label, f2(median(xs)), f2(quantile(xs, 0.9)), f2(Math.min(...xs)), f2(median(xs) / s.n)];
  return [
    `${s.n} containers (/bin/sleep, one overlay), ${s.parallel} requests in flight; ${s.rounds} rounds after ${s.warmup} warm-up, alternating; times in ms`,
    table([
      ['what', 'median', 'p90', 'min', 'per container'],
      row(`imageapi: ${s.n} × POST /container (running)`, s.oursStart),
      row(`crun: ${s.n} × crun run --detach`, s.crunStart),
      row(`imageapi: ${s.n} × DELETE /container?force=true`, s.oursDelete),
      row(`crun: ${s.n} × crun delete --force`, s.crunDelete),
    ]),
  ].join('\n');
}
