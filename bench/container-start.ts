// bench/container-start: how long from POST /container (state "running") until the container's
// command has been exec'd, against `crun run` of the same command on the same kind of root
// filesystem (busybox squashfs on a loop device, overlay on top), measured in the same run,
// interleaved, after a warm-up. Prints medians, p90s, a breakdown and the ratio ours/crun.
//   node dist/bench/container-start.js          (root; bench/run.sh builds and runs it)
// Environment: BENCH_N (runs, default 50), BENCH_WARMUP (default 5), BENCH_CRUN_CGROUP (v2 | v1,
// see crun-side.sh), BENCH_JSON=FILE (also write the raw samples there).
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeAtomic } from '../src/sys/fs.js';
import { launchDetached } from '../src/sys/detached.js';
import { createCgroups, killCgroups, removeAgentGroup, removeCgroups } from '../src/sys/cgroups.js';
import { runBench, type Bench } from './lib/bench.js';
import { checkInterrupted, envNum, f2, HELPER, median, now, quantile, resultLine } from './lib/common.js';
import { CRUN_CGROUP as CGMODE } from './lib/crun.js';
import { baseStack } from './lib/populate.js';

const N = envNum('BENCH_N', 50);
const WARMUP = envNum('BENCH_WARMUP', 5);

// ------------------------------------------------------------------ main

async function main(b: Bench): Promise<string> {
  const image = b.image();
  const agent = b.agent('run');
  const crun = await b.crun();
  // The helper run from this process exactly as the agent runs it (launchDetached), in a cgroup
  // group of its own (a run-dir name nobody uses, so the agent's group is never touched).
  const helperRunDir = b.runDir('helper-run');
  mkdirSync(join(helperRunDir, 'logs'), { recursive: true });

  const samples: Record<string, number[]> = {
    ours: [], // POST /container state=running: until the 201 (sent after the helper reported the exec)
    oursSleep: [], // the same with /bin/sleep 1000 (killed when deleted)
    oursCreated: [], // POST /container state=created: everything but the start
    httpFloor: [], // GET /mount?id=M: HTTP + express + request validation
    cgroup: [], // createCgroups() as the agent calls it
    helperNode: [], // launchDetached(helper) from node until "ok PID" on the ready fd
    helperNoCgroup: [], // the same without joining a cgroup
    helperBare: [], // … and without the pidfile and status file
    stateSave: [], // writeAtomic() of the agent's state file
    helperBash: [], // the helper from bash until it exits (/bin/true ran): like `crun run`
    crunRun: [], // `crun run`: create, exec, wait, delete
    crunDetach: [], // `crun run --detach`: until the process is started
  };

  await agent.start();
  const { overlay: mountId, root } = await baseStack(agent, image);
  const stateText = readFileSync(join(agent.runDir, 'state.json'), 'utf8');

  const steps: Array<[string, (i: number) => Promise<number>]> = [
    [
      'ours',
      async () => {
        const t0 = now();
        const r = await agent.req('POST', '/container', { command: '/bin/true', state: 'running', mount: { id: mountId }, stop_timeout: 1 });
        const t = now() - t0;
        if (r.status !== 201) throw new Error(`POST /container → ${r.status}: ${r.text}\n${agent.output.slice(-3000)}`);
        await agent.must('DELETE', `/container?id=${r.body.id}&force=true`, undefined, 200);
        return t;
      },
    ],
    [
      'oursSleep',
      async () => {
        // The same with a command that keeps running: nothing of the container's end (status
        // file, cgroup removal, another state save) overlaps with the request.
        const t0 = now();
        const r = await agent.req('POST', '/container', { command: '/bin/sleep 1000', state: 'running', mount: { id: mountId }, stop_timeout: 0 });
        const t = now() - t0;
        if (r.status !== 201) throw new Error(`POST /container → ${r.status}: ${r.text}`);
        await agent.must('DELETE', `/container?id=${r.body.id}&force=true`, undefined, 200);
        return t;
      },
    ],
    [
      'oursCreated',
      async () => {
        const t0 = now();
        const r = await agent.req('POST', '/container', { command: '/bin/true', state: 'created', mount: { id: mountId }, stop_timeout: 1 });
        const t = now() - t0;
        if (r.status !== 201) throw new Error(`POST /container → ${r.status}: ${r.text}`);
        await agent.must('DELETE', `/container?id=${r.body.id}&force=true`, undefined, 200);
        return t;
      },
    ],
    [
      'httpFloor',
      async () => {
        const t0 = now();
        const r = await agent.req('GET', `/mount?id=${mountId}`);
        const t = now() - t0;
        if (r.status !== 200) throw new Error(`GET /mount → ${r.status}: ${r.text}`);
        return t;
      },
    ],
    ['helperNode', (i) => helperFromNode(helperRunDir, root, String(i), { cgroup: true, files: true }, i >= WARMUP ? samples.cgroup : undefined)],
    ['helperNoCgroup', (i) => helperFromNode(helperRunDir, root, `${i}-nocg`, { cgroup: false, files: true })],
    ['helperBare', (i) => helperFromNode(helperRunDir, root, `${i}-bare`, { cgroup: false, files: false })],
    [
      'stateSave',
      async () => {
        // The agent's state file write (temp file, fsync, rename, fsync of the directory), at
        // the size of the agent's state.json.
        const t0 = now();
        await writeAtomic(join(helperRunDir, 'state.json'), stateText);
        return now() - t0;
      },
    ],
    ['helperBash', (i) => crun.run('helper', i)],
    ['crunRun', (i) => crun.run('crun-run', i)],
    ['crunDetach', (i) => crun.run('crun-detach', i)],
  ];

  const total = WARMUP + N;
  for (let i = 0; i < total; i++) {
    // Interleaved, in a rotating order, so that drift of the machine hits every column alike.
    for (let k = 0; k < steps.length; k++) {
      const [name, fn] = steps[(i + k) % steps.length]!;
      checkInterrupted();
      const t = await fn(i);
      if (i >= WARMUP) samples[name]!.push(t);
    }
    if ((i + 1) % 10 === 0 || i + 1 === total) process.stderr.write(`container-start: ${i + 1}/${total} rounds\n`);
  }
  await agent.must('DELETE', `/mount?id=${mountId}&force=true`, undefined, 200);
  return report(samples);
}

/**
 * The helper as the agent starts it (launchDetached, same arguments), from this node process;
 * returns spawn → "ok PID". Without `cgroup` it joins no cgroup, without `files` it writes no
 * pidfile or status file (each of those is fsync'd): the differences price those two steps.
 */
async function helperFromNode(
  runDir: string,
  root: string,
  id: string,
  opts: { cgroup: boolean; files: boolean },
  cgroupTimes?: number[],
): Promise<number> {
  const dir = join(runDir, id);
  mkdirSync(dir, { recursive: true });
  let cgroups: string[] = [];
  if (opts.cgroup) {
    const c0 = now();
    cgroups = await createCgroups(runDir, Number(id.replace(/\D/g, '')));
    cgroupTimes?.push(now() - c0);
  }
  const args = [
    '--root', root,
    '--log', join(runDir, 'logs', `${id}.log`),
    '--ready-fd', '3',
    ...(opts.files ? ['--pidfile', join(dir, 'pid'), '--status', join(dir, 'status')] : []),
    '--ns', 'mnt,pid,uts,ipc',
    '--hostname', `container-${id}`,
    ...cgroups.flatMap((c) => ['--cgroup', c]),
    '--', '/bin/true',
  ];
  const t0 = now();
  const launched = launchDetached(HELPER, args, 30_000);
  const line = await launched.ready;
  const t = now() - t0;
  await launched.exited;
  if (cgroups.length) {
    await killCgroups(cgroups);
    await removeCgroups(cgroups);
    await removeAgentGroup(runDir); // the agent keeps its group while it runs; this is not the agent
  }
  rmSync(dir, { recursive: true, force: true });
  rmSync(join(runDir, 'logs', `${id}.log`), { force: true });
  if (!line.startsWith('ok ')) throw new Error(`helper: ${line}`);
  return t;
}

function report(s: Record<string, number[]>): string {
  const rows: Array<[string, string, number[]]> = [
    ['imageapi: POST /container (running) → 201', 'ours', s.ours!],
    ['  the same, command /bin/sleep (keeps running)', 'sleep', s.oursSleep!],
    ['  POST /container (created, no start)', 'created', s.oursCreated!],
    ['  GET /mount?id (HTTP floor)', 'http', s.httpFloor!],
    ['  cgroup mkdir (createCgroups)', 'cgroup', s.cgroup!],
    ['  helper spawned from node → "ok PID"', 'helper-node', s.helperNode!],
    ['    … without joining the cgroup', 'helper-nocg', s.helperNoCgroup!],
    ['    … nor writing pidfile/status', 'helper-bare', s.helperBare!],
    ['  state file save (writeAtomic)', 'state-save', s.stateSave!],
    ['  helper from bash, whole run', 'helper-bash', s.helperBash!],
    ['crun run (whole run)', 'crun', s.crunRun!],
    ['crun run --detach (until started)', 'crun-detach', s.crunDetach!],
  ];
  const w = Math.max(...rows.map((r) => r[0].length));
  const lines = [`container-start: ${N} runs each after ${WARMUP} warm-up, interleaved; crun cgroups ${CGMODE}; times in ms`];
  lines.push(`${'what'.padEnd(w)}  ${'median'.padStart(7)}  ${'p90'.padStart(7)}  ${'min'.padStart(7)}`);
  for (const [label, , xs] of rows) lines.push(`${label.padEnd(w)}  ${f2(median(xs)).padStart(7)}  ${f2(quantile(xs, 0.9)).padStart(7)}  ${f2(Math.min(...xs)).padStart(7)}`);
  const ours = median(s.ours!);
  const created = median(s.oursCreated!);
  const helperNode = median(s.helperNode!);
  const cg = median(s.cgroup!);
  const crunRun = median(s.crunRun!);
  const crunDetach = median(s.crunDetach!);
  lines.push('');
  lines.push('breakdown of ours (medians, approximate):');
  lines.push(`  request + record + state save (created) ${f2(created)} ms, of which the HTTP floor ${f2(median(s.httpFloor!))} ms`);
  lines.push(`  start = running - created               ${f2(ours - created)} ms`);
  lines.push(`    cgroup creation                       ${f2(cg)} ms`);
  lines.push(`    helper spawn → exec reported          ${f2(helperNode)} ms (from bash, whole run: ${f2(median(s.helperBash!))} ms), of which`);
  lines.push(`      joining the cgroup (cgroup.procs)   ${f2(helperNode - median(s.helperNoCgroup!))} ms`);
  lines.push(`      pidfile (fsync'd) before "ok"       ${f2(median(s.helperNoCgroup!) - median(s.helperBare!))} ms`);
  lines.push(`      node spawn + helper + clone + exec  ${f2(median(s.helperBare!))} ms`);
  lines.push(`    rest of start (checks, log lines, …)  ${f2(ours - created - cg - helperNode)} ms`);
  lines.push(`  (one state file save: ${f2(median(s.stateSave!))} ms, in both the created and the running path)`);
  lines.push('');
  lines.push(`ratio vs crun run --detach: ${f2(ours)}/${f2(crunDetach)} = ${(ours / crunDetach).toFixed(2)}`);
  if (process.env.BENCH_JSON) writeFileSync(process.env.BENCH_JSON, JSON.stringify({ n: N, warmup: WARMUP, crun_cgroup: CGMODE, samples_ms: s }, null, 1));
  lines.push(resultLine('container-start', ours, crunRun, 'ms', '<= 0.5x crun run'));
  return lines.join('\n');
}

runBench('container-start', main);
