// bench/container-start: how long from POST /container (state "running") until the container's
// command has been exec'd, against `crun run` of the same command on the same kind of root
// filesystem (busybox squashfs on a loop device, overlay on top), measured in the same run,
// interleaved, after a warm-up. Prints medians, p90s, a breakdown and the ratio ours/crun.
//   node dist/bench/container-start.js          (root; bench/run.sh builds and runs it)
// Environment: BENCH_N (runs, default 50), BENCH_WARMUP (default 5), BENCH_CRUN_CGROUP (v2 | v1,
// see crun-side.sh), BENCH_JSON=FILE (also write the raw samples there).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { writeAtomic } from '../src/store/persist.js';
import { launchDetached } from '../src/sys/detached.js';
import { cgroupLayout, createCgroups, groupName, killCgroups, removeCgroups } from '../src/sys/cgroups.js';
import { forceCleanup, loopsOver, mountsUnder } from '../test/helpers/leaks.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MAIN = join(ROOT, 'dist/src/main.js');
const HELPER = join(ROOT, 'native/build/imageapi-init');
const CRUN_SIDE = join(ROOT, 'bench/crun-side.sh');
const N = Number(process.env.BENCH_N ?? 50);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 5);
const CGMODE = process.env.BENCH_CRUN_CGROUP === 'v1' ? 'v1' : 'v2';

const now = () => performance.now();

// ^C or SIGTERM: stop after the current step and clean up (the agent would leave its mounts).
let interrupted: string | null = null;
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => (interrupted = sig));

// ------------------------------------------------------------------ the agent

class Agent {
  proc!: ChildProcess;
  host = '127.0.0.1';
  port = 0;
  output = '';
  private readonly keepAlive = new http.Agent({ keepAlive: true, maxSockets: 1 });
  constructor(readonly runDir: string) {}

  async start(): Promise<void> {
    const env = { ...process.env };
    delete env.IMAGEAPI_VALIDATE_RESPONSES; // as in production: requests validated, responses not
    this.proc = spawn(process.execPath, [MAIN, '--scheme', 'http', '--port', '0', '--run-dir', this.runDir, '--log-level', 'info'], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // not hit by a ^C meant for us: we stop it after deleting what it made
    });
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`agent did not start:\n${this.output}`)), 20_000);
      this.proc.stdout!.on('data', (b: Buffer) => {
        this.output = (this.output + b.toString()).slice(-20_000);
        const m = /"address":"(http:\/\/[^"]+)"/.exec(this.output);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      });
      this.proc.stderr!.on('data', (b: Buffer) => (this.output = (this.output + b.toString()).slice(-20_000)));
      this.proc.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`agent exited with ${code}:\n${this.output}`));
      });
    });
    const u = new URL(url);
    this.host = u.hostname;
    this.port = Number(u.port);
  }

  /** One request on a kept-alive connection; resolves when the whole response body is in. */
  req(method: string, path: string, body?: unknown): Promise<{ status: number; body: any; text: string }> {
    const data = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const r = http.request(
        {
          host: this.host,
          port: this.port,
          method,
          path,
          agent: this.keepAlive,
          headers: data === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString();
            let parsed: any = text;
            try {
              parsed = text ? JSON.parse(text) : undefined;
            } catch {
              /* text */
            }
            resolve({ status: res.statusCode ?? 0, body: parsed, text });
          });
          res.on('error', reject);
        },
      );
      r.on('error', reject);
      r.end(data);
    });
  }

  async must(method: string, path: string, body: unknown, want: number): Promise<any> {
    const r = await this.req(method, path, body);
    if (r.status !== want) throw new Error(`${method} ${path} → ${r.status} (wanted ${want}): ${r.text}\nagent output:\n${this.output.slice(-3000)}`);
    return r.body;
  }

  async stop(): Promise<void> {
    this.keepAlive.destroy();
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const exited = new Promise<void>((r) => this.proc.once('exit', () => r()));
    this.proc.kill('SIGTERM');
    await exited;
  }
}

// ------------------------------------------------------------------ the crun side (own mount namespace)

class CrunSide {
  private proc!: ChildProcess;
  private lines!: AsyncIterator<string>;
  constructor(
    readonly work: string,
    readonly image: string,
  ) {}

  async start(): Promise<void> {
    this.proc = spawn('unshare', ['-m', '--propagation', 'private', 'bash', CRUN_SIDE, this.work, this.image, HELPER, CGMODE], {
      stdio: ['pipe', 'pipe', 'inherit'],
      detached: true, // likewise: it quits (and unmounts) when told or when its stdin closes
    });
    this.lines = createInterface({ input: this.proc.stdout! })[Symbol.asyncIterator]();
    const first = await this.next();
    if (first !== 'ready') throw new Error(`crun side did not start: ${first}`);
  }

  private async next(): Promise<string> {
    const r = await this.lines.next();
    if (r.done) throw new Error('the crun side exited');
    return r.value;
  }

  /** Milliseconds the command took, as timed inside the namespace. */
  async run(cmd: 'crun-run' | 'crun-detach' | 'helper', id: number): Promise<number> {
    this.proc.stdin!.write(`${cmd} ${id}\n`);
    const line = await this.next();
    const m = /^us (\d+)$/.exec(line);
    if (!m) throw new Error(`crun side, ${cmd}: ${line}`);
    return Number(m[1]) / 1000;
  }

  async stop(): Promise<void> {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const exited = new Promise<void>((r) => this.proc.once('exit', () => r()));
    this.proc.stdin!.end('quit\n');
    await exited;
  }
}

// ------------------------------------------------------------------ statistics

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo);
}
const median = (xs: number[]) => quantile(xs, 0.5);
const f2 = (x: number) => x.toFixed(2);

// ------------------------------------------------------------------ main

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('container-start needs root (it mounts and runs containers)');
  for (const f of [MAIN, HELPER]) if (!existsSync(f)) throw new Error(`${f} missing: run npm run build`);
  execFileSync('crun', ['--version'], { stdio: 'ignore' });

  const work = mkdtempSync(join(tmpdir(), 'imageapi-bench-'));
  const image = join(work, 'busybox.sqsh');
  const runDir = join(work, 'run');
  mkdirSync(runDir);
  execFileSync('bash', [join(ROOT, 'test/fixtures/busybox-image.sh'), image], { stdio: 'inherit' });

  const agent = new Agent(runDir);
  const crun = new CrunSide(work, image);
  // The helper run from this process exactly as the agent runs it (launchDetached), in a cgroup
  // group of its own (a run-dir name nobody uses, so the agent's group is never touched).
  const helperRunDir = join(work, 'helper-run');
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

  let mountId = -1;
  let failed = false;
  try {
    await agent.start();
    await crun.start();
    const mount = await agent.must(
      'POST',
      '/mount',
      {
        kind: 'overlay',
        overlay: { lower: [{ kind: 'attach', attach: { fs_type: 'squashfs', mount_options: ['ro'], attach: { kind: 'loopback', loopback: { path: image } } } }] },
      },
      201,
    );
    mountId = mount.id;
    const root: string = mount.mountpoint;
    const stateText = readFileSync(join(runDir, 'state.json'), 'utf8');

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
        if (interrupted) throw new Error(`interrupted (${interrupted}): cleaning up`);
        const t = await fn(i);
        if (i >= WARMUP) samples[name]!.push(t);
      }
      if ((i + 1) % 10 === 0 || i + 1 === total) process.stderr.write(`container-start: ${i + 1}/${total} rounds\n`);
    }
  } catch (err) {
    failed = true;
    throw err;
  } finally {
    if (mountId >= 0) await agent.req('DELETE', `/mount?id=${mountId}&force=true`).catch(() => {});
    await agent.stop().catch(() => {});
    await crun.stop().catch(() => {});
    if (failed) forceCleanup(runDir, work);
    const left = [...mountsUnder(work), ...loopsOver(work)];
    if (left.length) {
      process.stderr.write(`container-start: left behind, cleaning up: ${left.join(', ')}\n`);
      forceCleanup(runDir, work);
    }
    rmSync(work, { recursive: true, force: true });
    // The agent's and our cgroup groups go when their last container does.
    const l = await cgroupLayout();
    const groups = (l.v2 ? [l.v2] : l.v1).flatMap((r) => [runDir, helperRunDir].map((d) => join(r, groupName(d))));
    const stale = groups.filter((g) => existsSync(g));
    const leaks = [...mountsUnder(work), ...loopsOver(work), ...stale];
    if (leaks.length) {
      process.stderr.write(`container-start: still left behind: ${leaks.join(', ')}\n`);
      process.exitCode = 1;
    }
  }

  report(samples);
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
  }
  rmSync(dir, { recursive: true, force: true });
  rmSync(join(runDir, 'logs', `${id}.log`), { force: true });
  if (!line.startsWith('ok ')) throw new Error(`helper: ${line}`);
  return t;
}

function report(s: Record<string, number[]>): void {
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
  lines.push(`container-start: imageapi median ${f2(ours)} ms, crun median ${f2(crunRun)} ms, ratio X/Y = ${(ours / crunRun).toFixed(2)} (goal <= 0.5)`);
  process.stdout.write(lines.join('\n') + '\n');
  if (process.env.BENCH_JSON) writeFileSync(process.env.BENCH_JSON, JSON.stringify({ n: N, warmup: WARMUP, crun_cgroup: CGMODE, samples_ms: s }, null, 1));
}

main().catch((err) => {
  process.stderr.write(`container-start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
