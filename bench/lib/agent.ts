// An agent under benchmark: dist/src/main.js on its own run-dir, HTTP on 127.0.0.1 only, requests
// on kept-alive connections, its memory read from /proc.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { stringify } from 'yaml';
import { MAIN, now, sleep } from './common.js';

export interface Reply {
  status: number;
  body: any;
  text: string;
}

export interface AgentOptions {
  /** Keys of a YAML config file given with --config (e.g. `{validate_requests: false}`). */
  config?: Record<string, unknown>;
  /** Connections kept alive to the agent (parallel requests); default 1. */
  sockets?: number;
  /** Fixed port (default: an ephemeral one, read from the agent's "listening" line). */
  port?: number;
}

/** A port that is free right now (the kernel's pick), for processes whose port must be known up front. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

/** One request on `agent`'s connections; resolves when the whole body is in. */
export function request(host: string, port: number, agent: http.Agent | false, method: string, path: string, body?: unknown): Promise<Reply> {
  const data = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const r = http.request(
      {
        host,
        port,
        method,
        path,
        agent,
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

/**
 * One request whose answer is only read, not parsed: resolves when its last byte is in (timings
 * of the server, not of our JSON.parse). `text` only for an answer other than 200.
 */
export function requestRaw(host: string, port: number, agent: http.Agent | false, method: string, path: string): Promise<{ status: number; bytes: number; text: string }> {
  return new Promise((resolve, reject) => {
    const r = http.request({ host, port, method, path, agent }, (res) => {
      const chunks: Buffer[] = [];
      let bytes = 0;
      res.on('data', (c: Buffer) => {
        bytes += c.length;
        if (res.statusCode !== 200) chunks.push(c);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes, text: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    r.on('error', reject);
    r.end();
  });
}

/**
 * Spawn `argv` and poll 127.0.0.1:`port` until it answers an HTTP request (any status);
 * returns the milliseconds from just before the spawn to the answer.
 */
export async function spawnUntilAnswer(
  argv: string[],
  port: number,
  path: string,
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; detached?: boolean } = {},
): Promise<{ ms: number; proc: ChildProcess; output: () => string }> {
  let output = '';
  const t0 = now();
  const proc = spawn(argv[0]!, argv.slice(1), { cwd: opts.cwd, env: opts.env, stdio: ['ignore', 'pipe', 'pipe'], detached: opts.detached ?? true });
  proc.stdout!.on('data', (b: Buffer) => (output = (output + b.toString()).slice(-20_000)));
  proc.stderr!.on('data', (b: Buffer) => (output = (output + b.toString()).slice(-20_000)));
  const deadline = t0 + (opts.timeoutMs ?? 60_000);
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`${argv.join(' ')} exited (${proc.exitCode ?? proc.signalCode}):\n${output}`);
    const answered = await request('127.0.0.1', port, false, 'GET', path).then(
      () => true,
      () => false,
    );
    if (answered) return { ms: now() - t0, proc, output: () => output };
    if (now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`${argv.join(' ')} did not answer on port ${port}:\n${output}`);
    }
    await sleep(1);
  }
}

/** SIGTERM (then SIGKILL after `graceMs`) and wait for the exit. */
export async function stopProcess(proc: ChildProcess | undefined, graceMs = 60_000): Promise<void> {
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  proc.kill('SIGTERM');
  const t = setTimeout(() => proc.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(t);
}

export class Agent {
  proc!: ChildProcess;
  host = '127.0.0.1';
  port = 0;
  output = '';
  private keepAlive: http.Agent;
  readonly configFile?: string;

  constructor(
    readonly runDir: string,
    readonly opts: AgentOptions = {},
  ) {
    this.keepAlive = new http.Agent({ keepAlive: true, maxSockets: opts.sockets ?? 1 });
    if (opts.config) this.configFile = `${runDir}.config.yaml`; // beside the run-dir, in the work dir
  }

  /** The command line (for start-up timing, which spawns it itself). */
  argv(port: number): string[] {
    return [
      process.execPath, MAIN, '--scheme', 'http', '--host', '127.0.0.1', '--port', String(port), '--run-dir', this.runDir, '--log-level', 'info',
      ...(this.configFile ? ['--config', this.configFile] : []),
    ];
  }

  env(): NodeJS.ProcessEnv {
    const env = { ...process.env };
    delete env.IMAGEAPI_VALIDATE_RESPONSES; // as in production: requests validated, responses not
    delete env.IMAGEAPI_LOGLEVEL;
    return env;
  }

  writeConfig(): void {
    if (this.configFile) writeFileSync(this.configFile, stringify(this.opts.config));
  }

  async start(): Promise<void> {
    this.writeConfig();
    this.output = '';
    this.proc = spawn(this.argv(this.opts.port ?? 0)[0]!, this.argv(this.opts.port ?? 0).slice(1), {
      env: this.env(),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // not hit by a ^C meant for us: we stop it after deleting what it made
    });
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`agent did not start:\n${this.output}`)), 120_000);
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

  /** Take over a process started elsewhere (start-up timing) on a known port. */
  adoptProcess(proc: ChildProcess, port: number): void {
    this.proc = proc;
    this.port = port;
    proc.stdout?.on('data', (b: Buffer) => (this.output = (this.output + b.toString()).slice(-20_000)));
    proc.stderr?.on('data', (b: Buffer) => (this.output = (this.output + b.toString()).slice(-20_000)));
  }

  get alive(): boolean {
    return !!this.proc && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  get url(): string {
    return `http://${this.host}:${this.port}`;
  }

  req(method: string, path: string, body?: unknown): Promise<Reply> {
    return request(this.host, this.port, this.keepAlive, method, path, body);
  }

  /** A request whose answer is read to its last byte but not parsed (see requestRaw). */
  reqRaw(method: string, path: string): Promise<{ status: number; bytes: number; text: string }> {
    return requestRaw(this.host, this.port, this.keepAlive, method, path);
  }

  async must(method: string, path: string, body: unknown, want: number): Promise<any> {
    const r = await this.req(method, path, body);
    if (r.status !== want) throw new Error(`${method} ${path} → ${r.status} (wanted ${want}): ${r.text.slice(0, 2000)}\nagent output:\n${this.output.slice(-3000)}`);
    return r.body;
  }

  /** Resident memory of the agent process in MB (VmRSS, or VmHWM: the peak so far). */
  memMB(field: 'VmRSS' | 'VmHWM' = 'VmRSS'): number {
    const text = readFileSync(`/proc/${this.proc.pid}/status`, 'utf8');
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
    return m ? Number(m[1]) / 1024 : NaN;
  }

  /** SIGTERM: the agent saves its state and exits, leaving its objects for the next start. */
  async stop(): Promise<void> {
    this.keepAlive.destroy();
    this.keepAlive = new http.Agent({ keepAlive: true, maxSockets: this.opts.sockets ?? 1 });
    await stopProcess(this.proc);
  }
}
