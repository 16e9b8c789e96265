// The frame of every benchmark: a work directory $TMPDIR/imageapi-bench-*, the busybox image,
// agents and crun sides registered for teardown, and a cleanup that runs on success, failure and
// ^C alike and then checks that nothing is left (mounts, loop devices, processes, cgroups).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cgroupLayout, groupName } from '../../src/sys/cgroups.js';
import { forceCleanup, loopsOver, mountsUnder, processesWith } from '../../test/helpers/leaks.js';
import { Agent, type AgentOptions } from './agent.js';
import { BUSYBOX_IMAGE, HELPER, ignoreInterrupts, MAIN } from './common.js';
import { CrunSide } from './crun.js';
import { deleteAll } from './populate.js';

export class Bench {
  readonly work: string;
  private readonly agents: Agent[] = [];
  private readonly cruns: CrunSide[] = [];
  private readonly runDirs: string[] = [];
  private imagePath: string | null = null;

  constructor(readonly name: string) {
    this.work = mkdtempSync(join(tmpdir(), 'imageapi-bench-'));
  }

  log(msg: string): void {
    process.stderr.write(`${this.name}: ${msg}\n`);
  }

  /** The busybox squashfs of test/fixtures/busybox-image.sh (built once per benchmark). */
  image(): string {
    if (!this.imagePath) {
      const p = join(this.work, 'busybox.sqsh');
      execFileSync('bash', [BUSYBOX_IMAGE, p], { stdio: 'inherit' });
      this.imagePath = p;
    }
    return this.imagePath;
  }

  /** A fresh run-dir in the work directory, cleaned up (and checked for cgroups) at the end. */
  runDir(label: string): string {
    const d = join(this.work, label);
    mkdirSync(d, { recursive: true });
    this.runDirs.push(d);
    return d;
  }

  /** An agent on a fresh run-dir (not started). */
  agent(label: string, opts: AgentOptions = {}): Agent {
    const a = new Agent(this.runDir(label), opts);
    this.agents.push(a);
    return a;
  }

  async crun(): Promise<CrunSide> {
    execFileSync('crun', ['--version'], { stdio: 'ignore' });
    const c = new CrunSide(this.work, this.image());
    this.cruns.push(c);
    await c.start();
    return c;
  }

  /** Tear everything down; returns what is still left (empty when clean). */
  async cleanup(failed: boolean): Promise<string[]> {
    ignoreInterrupts();
    for (const c of this.cruns) await c.stop().catch((e) => this.log(`crun side: ${e}`));
    for (const a of this.agents) {
      if (!a.alive) continue;
      // What the benchmark did not delete itself (it failed half-way): through the API first.
      if (failed) await deleteAll(a, 4).catch((e) => this.log(`cleanup through the API failed: ${String(e).split('\n')[0]}`));
      await a.stop().catch((e) => this.log(`stopping the agent: ${e}`));
    }
    const leftNow = () => [...mountsUnder(this.work), ...loopsOver(this.work), ...this.runDirs.flatMap((d) => processesWith(d))];
    if (failed || leftNow().length) {
      if (!failed) this.log(`left behind, cleaning up: ${leftNow().join(', ')}`);
      for (const d of this.runDirs) forceCleanup(d, this.work);
    }
    const l = await cgroupLayout();
    const groups = (l.v2 ? [l.v2] : l.v1).flatMap((r) => this.runDirs.map((d) => join(r, groupName(d))));
    const leaks = [...leftNow(), ...groups.filter((g) => existsSync(g))];
    if (mountsUnder(this.work).length === 0) rmSync(this.work, { recursive: true, force: true });
    else leaks.push(`${this.work} (still mounted in)`);
    return leaks;
  }
}

/**
 * Run one benchmark: `body` returns the report (its last line is the result line), printed after
 * the cleanup. Exit status 1 on an error or if anything is left behind; never on timings.
 */
export function runBench(name: string, body: (b: Bench) => Promise<string>): void {
  const main = async () => {
    if (process.getuid?.() !== 0) throw new Error(`${name} needs root (it mounts and runs containers)`);
    for (const f of [MAIN, HELPER]) if (!existsSync(f)) throw new Error(`${f} missing: run npm run build`);
    const b = new Bench(name);
    let report = '';
    let failed = false;
    try {
      report = await body(b);
    } catch (err) {
      failed = true;
      const msg = err instanceof Error ? (/^interrupted/.test(err.message) ? err.message : (err.stack ?? err.message)) : String(err);
      process.stderr.write(`${name}: ${msg}\n`);
    } finally {
      const leaks = await b.cleanup(failed);
      if (leaks.length) {
        process.stderr.write(`${name}: still left behind: ${leaks.join(', ')}\n`);
        process.exitCode = 1;
      }
    }
    if (failed) process.exitCode = 1;
    else process.stdout.write(report.endsWith('\n') ? report : report + '\n');
  };
  main().catch((err) => {
    process.stderr.write(`${name}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}
