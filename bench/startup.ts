// bench/startup: how long the agent takes from its spawn until it answers HTTP, with BENCH_OBJECTS
// (1000) objects to adopt (made through the API as bench/lib/populate.ts says, then the agent
// stopped with SIGTERM, which leaves them in place), and with an empty run-dir; against a bare
// express app (`node -e` with express listening on a port, from this repository's node_modules).
// Each sample spawns the process and polls 127.0.0.1:PORT (a GET every ~1 ms) until any answer;
// then the process is stopped (SIGTERM, untimed). Rounds rotate the three, after a warm-up.
//   node dist/bench/startup.js           (root; bench/run.sh builds and runs it)
// Environment: BENCH_N (rounds, 8), BENCH_WARMUP (1), BENCH_OBJECTS (1000), BENCH_MIX (45,45).
import { join } from 'node:path';
import { freePort, spawnUntilAnswer, stopProcess } from './lib/agent.js';
import { runBench } from './lib/bench.js';
import { checkInterrupted, envNum, f2, fmt, median, quantile, resultLine, ROOT, table } from './lib/common.js';
import { baseStack, counts, deleteAll, populate } from './lib/populate.js';

const N = envNum('BENCH_N', 8);
const WARMUP = envNum('BENCH_WARMUP', 1);
const OBJECTS = envNum('BENCH_OBJECTS', 1000);

const EXPRESS = `const express = require('express');
const app = express();
app.get('/', (_req, res) => res.send('ok'));
app.listen(Number(process.argv[1]), '127.0.0.1');`;

runBench('startup', async (b) => {
  const image = b.image();
  const full = b.agent(`run-${OBJECTS}-objects`);
  const empty = b.agent('run-empty');
  await full.start();
  const stack = await baseStack(full, image);
  const made = await populate(full, stack, join(b.work, 'files'), OBJECTS, 4, (m) => b.log(m));
  const total = made.containers + made.mounts + made.attachments;
  await full.stop();
  b.log(`${total} objects made; the agent stopped, leaving them to adopt`);

  const s = { full: [] as number[], empty: [] as number[], express: [] as number[] };
  const port = await freePort();
  const steps: Array<[keyof typeof s, () => Promise<number>]> = [
    [
      'full',
      async () => {
        const r = await spawnUntilAnswer(full.argv(port), port, '/mount?id=0', { env: full.env() });
        full.adoptProcess(r.proc, port);
        // Nothing may have been dropped while adopting.
        const c = await counts(full);
        if (c.containers + c.mounts + c.attachments !== total) throw new Error(`after the restart the agent lists ${JSON.stringify(c)}, not ${total} objects:\n${r.output()}`);
        await full.stop();
        return r.ms;
      },
    ],
    [
      'empty',
      async () => {
        const r = await spawnUntilAnswer(empty.argv(port), port, '/mount?id=0', { env: empty.env() });
        empty.adoptProcess(r.proc, port);
        await empty.stop();
        return r.ms;
      },
    ],
    [
      'express',
      async () => {
        const r = await spawnUntilAnswer([process.execPath, '-e', EXPRESS, String(port)], port, '/', { cwd: ROOT, detached: false });
        await stopProcess(r.proc);
        return r.ms;
      },
    ],
  ];
  for (let i = 0; i < WARMUP + N; i++) {
    for (let k = 0; k < steps.length; k++) {
      checkInterrupted();
      const [name, fn] = steps[(i + k) % steps.length]!;
      const t = await fn();
      if (i >= WARMUP) s[name].push(t);
    }
    b.log(`${i + 1}/${WARMUP + N} rounds: ${(['full', 'empty', 'express'] as const).map((k) => `${k} ${fmt(s[k].at(-1) ?? NaN)} ms`).join(', ')}`);
  }
  // Delete what was made, through a normally started agent.
  await full.start();
  await deleteAll(full);
  await full.stop();

  const row = (label: string, xs: number[]) => [label, f2(median(xs)), f2(quantile(xs, 0.9)), f2(Math.min(...xs)), f2(Math.max(...xs))];
  return [
    `startup: spawn → first HTTP answer, ${N} rounds after ${WARMUP} warm-up, rotating; times in ms`,
    table([
      ['what', 'median', 'p90', 'min', 'max'],
      row(`imageapi, ${total} objects to adopt (${made.containers} containers, ${made.mounts} mounts, ${made.attachments} attachments)`, s.full),
      row('imageapi, empty run-dir', s.empty),
      row('bare express app (node -e)', s.express),
    ]),
    '',
    `empty run-dir: ${fmt(median(s.empty))} ms (goal < 500 ms), ${(median(s.empty) / median(s.express)).toFixed(2)}x the bare express app`,
    resultLine('startup', median(s.full), median(s.express), 'ms', `< 1 s at ${OBJECTS} objects, < 0.5 s empty; ref: bare express`),
  ].join('\n');
});
