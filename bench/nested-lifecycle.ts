// bench/nested-lifecycle: one nested POST /container (loop → squashfs → overlay → container, all
// defined in the one request, state "running", /bin/true) until its 201, then DELETE of the
// container with everything it defined until its 200; against the same steps as a shell script
// in crun-side.sh (losetup, mount ×2, `crun run`, umount ×2, losetup --detach, rm), measured in the
// same run, interleaved (rotating order) after a warm-up. Medians.
//   node dist/bench/nested-lifecycle.js          (root; bench/run.sh builds and runs it)
// Environment: BENCH_N (rounds, default 30), BENCH_WARMUP (default 3), BENCH_CRUN_CGROUP.
import { runBench, type Bench } from './lib/bench.js';
import { checkInterrupted, envNum, f2, median, now, quantile, resultLine, table } from './lib/common.js';
import { overlaySpec } from './lib/populate.js';

const N = envNum('BENCH_N', 30);
const WARMUP = envNum('BENCH_WARMUP', 3);

async function main(b: Bench): Promise<string> {
  const image = b.image();
  const agent = b.agent('run');
  await agent.start();
  const crun = await b.crun();
  const s = { post: [] as number[], del: [] as number[], ours: [] as number[], crun: [] as number[] };

  const ours = async (): Promise<[number, number]> => {
    const t0 = now();
    const r = await agent.req('POST', '/container', { command: '/bin/true', state: 'running', stop_timeout: 1, mount: overlaySpec(image) });
    const t1 = now();
    if (r.status !== 201) throw new Error(`POST /container → ${r.status}: ${r.text}\n${agent.output.slice(-3000)}`);
    const d = await agent.req('DELETE', `/container?id=${r.body.id}&force=true`);
    const t2 = now();
    if (d.status !== 200) throw new Error(`DELETE /container → ${d.status}: ${d.text}`);
    return [t1 - t0, t2 - t1];
  };

  for (let i = 0; i < WARMUP + N; i++) {
    checkInterrupted();
    const sides: Array<() => Promise<void>> = [
      async () => {
        const [p, d] = await ours();
        if (i >= WARMUP) s.post.push(p), s.del.push(d), s.ours.push(p + d);
      },
      async () => {
        const t = await crun.run('stack-run', i);
        if (i >= WARMUP) s.crun.push(t);
      },
    ];
    for (let k = 0; k < sides.length; k++) await sides[(i + k) % sides.length]!();
    if ((i + 1) % 10 === 0) b.log(`${i + 1}/${WARMUP + N} rounds`);
  }
  // Nothing of the stacks may remain in the agent.
  const left = await agent.must('GET', '/attach', undefined, 200);
  if (left.length) throw new Error(`attachments left in the agent: ${JSON.stringify(left)}`);

  const row = (label: string, xs: number[]) => [label, f2(median(xs)), f2(quantile(xs, 0.9)), f2(Math.min(...xs))];
  return [
    `nested-lifecycle: ${N} rounds after ${WARMUP} warm-up, interleaved; times in ms`,
    table([
      ['what', 'median', 'p90', 'min'],
      row('imageapi: nested POST /container + DELETE', s.ours),
      row('  POST (loop, squashfs, overlay, start) → 201', s.post),
      row('  DELETE ?force=true (stop, teardown) → 200', s.del),
      row('shell: losetup, mount ×2, crun run, teardown', s.crun),
    ]),
    '',
    resultLine('nested-lifecycle', median(s.ours), median(s.crun), 'ms', '<= 1.0x the shell script'),
  ].join('\n');
}

runBench('nested-lifecycle', main);
