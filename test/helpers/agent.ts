// Starting a real agent for a test: a temporary run-dir per agent, an ephemeral port, responses
// validated against swagger.yaml by the agent itself (IMAGEAPI_VALIDATE_RESPONSES=1 turns a
// response that breaks the spec into a 500, which every test treats as a failure).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const MAIN = join(ROOT, 'dist/src/main.js');

export interface Reply<T = any> {
  status: number;
  body: T;
  text: string;
}

export class TestAgent {
  proc!: ChildProcess;
  url = '';
  output = '';
  constructor(
    readonly runDir: string,
    readonly extraArgs: string[] = [],
  ) {}

  static newRunDir(): string {
    return mkdtempSync(join(tmpdir(), 'imageapi-test-'));
  }

  async start(): Promise<this> {
    this.output = '';
    this.proc = spawn(process.execPath, [MAIN, '--scheme', 'http', '--port', '0', '--run-dir', this.runDir, '--log-level', 'info', ...this.extraArgs], {
      env: { ...process.env, IMAGEAPI_VALIDATE_RESPONSES: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`agent did not start:\n${this.output}`)), 20_000);
      const onData = (b: Buffer) => {
        this.output += b.toString();
        const m = /"address":"(http:\/\/[^"]+)"/.exec(this.output);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      };
      this.proc.stdout!.on('data', onData);
      this.proc.stderr!.on('data', (b: Buffer) => (this.output += b.toString()));
      this.proc.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`agent exited with ${code}:\n${this.output}`));
      });
    });
    return this;
  }

  async req<T = any>(method: string, path: string, body?: unknown): Promise<Reply<T>> {
    const res = await fetch(this.url + path, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed: any = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      /* text/plain */
    }
    if (res.status >= 500 && res.status !== 501) {
      throw new Error(`${method} ${path} → ${res.status}: ${text}\nagent output:\n${this.output.slice(-3000)}`);
    }
    return { status: res.status, body: parsed as T, text };
  }

  get = <T = any>(p: string) => this.req<T>('GET', p);
  post = <T = any>(p: string, b: unknown) => this.req<T>('POST', p, b);
  del = <T = any>(p: string) => this.req<T>('DELETE', p);
  patch = <T = any>(p: string) => this.req<T>('PATCH', p);

  /** A process killed by a signal keeps exitCode null: look at both. */
  private get exited(): boolean {
    return this.proc.exitCode !== null || this.proc.signalCode !== null;
  }

  /** Graceful stop (SIGTERM): state saved, kernel objects left in place. */
  async stop(): Promise<number | null> {
    if (this.exited) return this.proc.exitCode;
    const exited = new Promise<number | null>((r) => this.proc.once('exit', (c) => r(c)));
    this.proc.kill('SIGTERM');
    return exited;
  }

  async kill9(): Promise<void> {
    if (this.exited) return;
    const exited = new Promise<void>((r) => this.proc.once('exit', () => r()));
    this.proc.kill('SIGKILL');
    await exited;
  }
}
