// Load from a second process: wrk (Debian's wrk 4) against one agent, on loopback only.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface WrkResult {
  requests: number;
  rps: number;
  /** Non-2xx/3xx answers plus socket errors (a benchmark treats any as a failure). */
  errors: number;
  /** wrk's own latency percentiles (ms), from --latency. */
  p50: number;
  p99: number;
}

function ms(v: string, unit: string): number {
  const n = Number(v);
  return unit === 'us' ? n / 1000 : unit === 's' ? n * 1000 : unit === 'm' ? n * 60_000 : n;
}

/**
 * `wrk -t1 -cC -dSs --latency` on `paths` (round-robin, one per request) of http://127.0.0.1:PORT.
 * The Lua script goes to `dir`. `during` is called every `everyMs` while wrk runs (RSS sampling).
 */
export async function wrk(
  port: number,
  paths: string[],
  opts: { seconds: number; connections: number; dir: string; during?: () => void; everyMs?: number },
): Promise<WrkResult> {
  const script = join(opts.dir, `wrk-${paths.map((p) => p.replace(/\W/g, '')).join('-')}.lua`);
  writeFileSync(
    script,
    `local paths = {${paths.map((p) => JSON.stringify(p)).join(', ')}}\n` +
      'local i = 0\n' +
      'request = function()\n  i = i + 1\n  return wrk.format("GET", paths[(i % #paths) + 1])\nend\n',
  );
  const args = ['-t1', `-c${opts.connections}`, `-d${opts.seconds}s`, '--timeout', '60s', '--latency', '-s', script, `http://127.0.0.1:${port}`];
  const child = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const timer = opts.during ? setInterval(opts.during, opts.everyMs ?? 50) : null;
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (c) => resolve(c));
  });
  if (timer) clearInterval(timer);
  if (code !== 0) throw new Error(`wrk ${args.join(' ')} → exit ${code}:\n${out}`);
  const num = (re: RegExp) => {
    const m = re.exec(out);
    return m ? Number(m[1]) : 0;
  };
  const pct = (p: string) => {
    const m = new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(out);
    return m ? ms(m[1]!, m[2]!) : NaN;
  };
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = num(/Non-2xx or 3xx responses: (\d+)/) + (sock ? sock.slice(1).reduce((s, v) => s + Number(v), 0) : 0);
  return { requests: num(/^\s*(\d+) requests in/m), rps: num(/Requests\/sec:\s+([\d.]+)/), errors, p50: pct('50'), p99: pct('99') };
}
