// The crun side: bench/crun-side.sh in a private mount namespace (crun refuses hybrid cgroup
// hosts; in there /sys/fs/cgroup is the host's cgroup2 hierarchy), serving one timed command per
// line. See crun-side.sh for the commands.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { CRUN_SIDE, HELPER } from './common.js';

export const CRUN_CGROUP = process.env.BENCH_CRUN_CGROUP === 'v1' ? 'v1' : 'v2';

export class CrunSide {
  private proc!: ChildProcess;
  private lines!: AsyncIterator<string>;
  constructor(
    readonly work: string,
    readonly image: string,
  ) {}

  async start(): Promise<void> {
    this.proc = spawn('unshare', ['-m', '--propagation', 'private', 'bash', CRUN_SIDE, this.work, this.image, HELPER, CRUN_CGROUP], {
      stdio: ['pipe', 'pipe', 'inherit'],
      detached: true, // not hit by a ^C meant for us: it quits (and unmounts) when told or when its stdin closes
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

  /** Milliseconds the command took, as timed inside the namespace (bash's $EPOCHREALTIME). */
  async run(cmd: string, ...args: Array<string | number>): Promise<number> {
    this.proc.stdin!.write(`${[cmd, ...args].join(' ')}\n`);
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
