// bench/events-overhead: does a client following GET /events slow the API down? GET /container
// throughput of one agent holding BENCH_OBJECTS (1000) objects (bench/lib/populate.ts), in wrk
// bursts (1 thread, BENCH_CONNECTIONS=8 connections, BENCH_SECONDS=3 s) with BENCH_FOLLOWERS (1)
// /events followers connected and reading, and with none, alternating in an ABBA order, BENCH_N
// (6) bursts each; a background loop creates and deletes a loop attachment all along (in both
// halves) so the followers have events to receive. Medians; the line compares the time per
// request with followers (ours) against without (ref): the goal is <= 1.1.
//   node dist/bench/events-overhead.js      (root; bench/run.sh builds and runs it)
// Environment: BENCH_N (6), BENCH_SECONDS (3), BENCH_CONNECTIONS (8), BENCH_OBJECTS (1000), BENCH_FOLLOWERS (1).
import http from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runBench } from './lib/bench.js';
import { checkInterrupted, envNum, f2, fmt, median, resultLine, table } from './lib/common.js';
import { wrk } from './lib/load.js';
import { baseStack, deleteAll, populate } from './lib/populate.js';

const N = envNum('BENCH_N', 6);
const SECONDS = envNum('BENCH_SECONDS', 3);
const CONNECTIONS = envNum('BENCH_CONNECTIONS', 8);
const OBJECTS = envNum('BENCH_OBJECTS', 1000);
const FOLLOWERS = envNum('BENCH_FOLLOWERS', 1);

/** A follower of /events that parses every line it gets; `stop()` ends it and says how many it got. */
function follow(port: number, since: number): { stop: () => number } {
  let got = 0;
  let buf = '';
  const req = http.get({ host: '127.0.0.1', port, path: `/events?since=${since}` }, (res) => {
    res.setEncoding('utf8');
    res.on('data', (s: string) => {
      buf += s;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        JSON.parse(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        got++;
      }
    });
    res.on('error', () => {});
  });
  req.on('error', () => {});
  return {
    stop: () => {
      req.destroy();
      return got;
    },
  };
}

runBench('events-overhead', async (b) => {
  const image = b.image();
  const agent = b.agent('run-events');
  await agent.start();
  const stack = await baseStack(agent, image);
  const made = await populate(agent, stack, join(b.work, 'files'), OBJECTS, 4, (m) => b.log(m));
  // Changes all along, so that followers have something to read.
  const churnFile = join(b.work, 'churn.img');
  writeFileSync(churnFile, Buffer.alloc(1024 * 1024));
  let churning = true;
  let changes = 0;
  let churnError = '';
  const churn = (async () => {
    while (churning) {
      const a = await agent.req('POST', '/attach', { kind: 'loopback', loopback: { path: churnFile, readonly: true } });
      if (a.status !== 201) throw new Error(`churn: POST /attach → ${a.status}: ${a.text}`);
      await agent.req('DELETE', `/attach?id=${JSON.parse(a.text).id}`);
      changes += 2;
    }
  })();
  const sides = [
    { label: `${FOLLOWERS} /events follower(s)`, followers: FOLLOWERS, rps: [] as number[], p99: [] as number[], events: 0 },
    { label: 'no follower', followers: 0, rps: [] as number[], p99: [] as number[], events: 0 },
  ];
  try {
    for (let i = 0; i < N; i++) {
      for (const k of i % 2 === 0 ? [0, 1] : [1, 0]) {
        checkInterrupted();
        const s = sides[k]!;
        const since = s.followers ? JSON.parse((await agent.req('GET', '/info')).text).events.last_seq : 0;
        const fs = Array.from({ length: s.followers }, () => follow(agent.port, since));
        const r = await wrk(agent.port, ['/container'], { seconds: SECONDS, connections: CONNECTIONS, dir: b.work });
        for (const f of fs) s.events += f.stop();
        if (r.errors) throw new Error(`wrk (${s.label}): ${r.errors} errors of ${r.requests} requests`);
        s.rps.push(r.rps);
        s.p99.push(r.p99);
      }
      b.log(`${i + 1}/${N} rounds: ${sides.map((s) => `${s.label} ${fmt(s.rps.at(-1)!)} req/s`).join(', ')}`);
    }
  } finally {
    churning = false;
    await churn.catch((err) => (churnError = String(err)));
  }
  await deleteAll(agent);
  await agent.stop();
  const [withF, without] = sides.map((s) => 1000 / median(s.rps)) as [number, number];
  return [
    `events-overhead: GET /container with ${made.containers} containers, ${made.mounts} mounts, ${made.attachments} attachments; ` +
      `${N} bursts of ${SECONDS} s each (wrk -t1 -c${CONNECTIONS}), ABBA order; ${changes} changes made meanwhile`,
    table([
      ['side', 'req/s median', 'min', 'max', 'wrk p99 ms (median)', 'events read'],
      ...sides.map((s) => [s.label, fmt(median(s.rps)), fmt(Math.min(...s.rps)), fmt(Math.max(...s.rps)), f2(median(s.p99)), String(s.events)]),
    ]),
    ...(churnError ? [`NOTE: the change loop stopped: ${churnError}`] : []),
    '',
    resultLine('events-overhead', withF, without, 'ms/request', '<= 1.1'),
  ].join('\n');
});
