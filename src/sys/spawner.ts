// The agent's side of the fork server (native/spawner.c, `imageapi-spawn` in ps): tools and
// container supervisors are started by that small process instead of by forking this ~110 MB
// one on the main thread. One spawner per agent process, started at the first use and again
// after it died; the framing is described in spawner.c.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** native/build/imageapi-spawner, beside the agent's dist/ (in a checkout and in the package). */
export const spawnerPath = fileURLToPath(new URL('../../../native/build/imageapi-spawner', import.meta.url));

export interface SpawnRequest {
  file: string;
  args: string[];
  /** "tool": output kept and returned; "detached": own session, fd 3 ready pipe, outlives the agent. */
  mode: 'tool' | 'detached';
  cwd?: string;
  input?: string;
  env?: Record<string, string>;
}

export interface Exit {
  /** -1 when killed by a signal. */
  code: number;
  signal: number;
  /** More than 1 MiB of stdout or stderr: the rest was dropped. */
  overflow: boolean;
  stdout: Buffer;
  stderr: Buffer;
}

export interface Spawned {
  /** The pid once the exec succeeded; rejects with the errno's message when it did not. */
  started: Promise<number>;
  /** Detached only: the first line on fd 3, or null when fd 3 closed without one. */
  ready: Promise<string | null>;
  exited: Promise<Exit>;
  kill(signal: NodeJS.Signals | number): void;
}

interface Pending {
  started: [(pid: number) => void, (e: Error) => void];
  ready: (line: string | null) => void;
  exited: [(e: Exit) => void, (e: Error) => void];
}

export class SpawnError extends Error {
  constructor(message: string, readonly errno: number) {
    super(message);
  }
}

const SIGNALS: Record<string, number> = { SIGTERM: 15, SIGKILL: 9, SIGINT: 2, SIGHUP: 1, SIGQUIT: 3, SIGUSR1: 10, SIGUSR2: 12 };

function frame(fields: (string | Buffer)[]): Buffer {
  const parts = fields.map((f) => (typeof f === 'string' ? Buffer.from(f) : f));
  const len = parts.reduce((n, p) => n + 4 + p.length, 0);
  const out = Buffer.allocUnsafe(4 + len);
  out.writeUInt32LE(len, 0);
  let off = 4;
  for (const p of parts) {
    out.writeUInt32LE(p.length, off);
    p.copy(out, off + 4);
    off += 4 + p.length;
  }
  return out;
}

function fields(body: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let off = 0; off + 4 <= body.length; ) {
    const n = body.readUInt32LE(off);
    out.push(body.subarray(off + 4, off + 4 + n));
    off += 4 + n;
  }
  return out;
}

class Spawner {
  private child: ChildProcess | null = null;
  private readonly pending = new Map<string, Pending>();
  private nextId = 1;
  private buf: Buffer = Buffer.alloc(0);
  /** Requests whose process still runs (a supervisor's exit is watched without keeping node alive). */
  private refs = 0;

  constructor(private readonly path: string) {}

  start(req: SpawnRequest): Spawned {
    const child = this.ensure();
    const id = String(this.nextId++);
    let p!: Pending;
    const started = new Promise<number>((res, rej) => (p = { started: [res, rej], ready: () => {}, exited: [() => {}, () => {}] }));
    const ready = new Promise<string | null>((res) => (p.ready = res));
    const exited = new Promise<Exit>((res, rej) => (p.exited = [res, rej]));
    // A caller that awaits only one of them must not see the others' rejection as unhandled.
    started.catch(() => {});
    exited.catch(() => {});
    this.pending.set(id, p);
    const env = Object.entries(req.env ?? {}).map(([k, v]) => `${k}=${v}`);
    child.stdin!.write(
      frame(['run', id, req.mode, req.cwd ?? '', req.input === undefined ? '0' : '1', req.input ?? '', String(env.length), ...env, req.file, ...req.args]),
    );
    // Node is kept alive while a tool runs, and while a supervisor has not reported: a
    // supervisor's exit is watched without holding the agent's process up.
    this.hold(+1);
    void (req.mode === 'tool' ? exited : ready).then(() => this.hold(-1), () => this.hold(-1));
    return {
      started,
      ready,
      exited,
      kill: (signal) => {
        const signo = typeof signal === 'number' ? signal : SIGNALS[signal] ?? 15;
        if (this.child === child && child.stdin!.writable) child.stdin!.write(frame(['kill', id, String(signo)]));
      },
    };
  }

  private hold(delta: number): void {
    this.refs += delta;
    const out = this.child?.stdout as (NodeJS.ReadableStream & { ref?(): void; unref?(): void }) | undefined;
    if (this.refs > 0) out?.ref?.();
    else out?.unref?.();
  }

  private ensure(): ChildProcess {
    if (this.child) return this.child;
    const child = spawn(this.path, [], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.child = child;
    this.buf = Buffer.alloc(0);
    child.stdout!.on('data', (b: Buffer) => this.receive(b));
    child.stdin!.on('error', () => {}); // its end is reported by 'exit'
    const gone = (why: string) => {
      if (this.child !== child) return;
      this.child = null;
      const err = new Error(`the fork server ${why}`);
      for (const [, p] of this.pending) {
        p.started[1](err);
        p.ready(null);
        p.exited[1](err);
      }
      this.pending.clear();
    };
    child.once('error', (e) => gone(`could not start (${this.path}): ${e.message}`));
    child.once('exit', (code, sig) => gone(`exited (${sig ?? `code ${code}`})`));
    child.unref();
    (child.stdin as unknown as { unref?(): void }).unref?.();
    (child.stdout as unknown as { unref?(): void }).unref?.();
    return child;
  }

  private receive(chunk: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    while (this.buf.length >= 4) {
      const len = this.buf.readUInt32LE(0);
      if (this.buf.length < 4 + len) return;
      const f = fields(this.buf.subarray(4, 4 + len));
      this.buf = this.buf.subarray(4 + len);
      this.answer(f);
    }
  }

  private answer(f: Buffer[]): void {
    const type = f[0]!.toString();
    const id = f[1]!.toString();
    const p = this.pending.get(id);
    if (!p) return;
    switch (type) {
      case 'started':
        p.started[0](Number(f[2]!.toString()));
        break;
      case 'failed': {
        const err = new SpawnError(f[3]!.toString(), Number(f[2]!.toString()));
        this.pending.delete(id);
        p.started[1](err);
        p.ready(null);
        p.exited[1](err);
        break;
      }
      case 'ready':
        p.ready(f[2]!.toString() === '1' ? f[3]!.toString() : null);
        break;
      case 'exit':
        this.pending.delete(id);
        p.ready(null);
        p.exited[0]({
          code: Number(f[2]!.toString()),
          signal: Number(f[3]!.toString()),
          overflow: f[4]!.toString() === '1',
          stdout: Buffer.from(f[5]!),
          stderr: Buffer.from(f[6]!),
        });
        break;
    }
  }
}

let shared: Spawner | undefined;

/** Start a process through this agent's fork server. */
export function spawnVia(req: SpawnRequest): Spawned {
  return (shared ??= new Spawner(spawnerPath)).start(req);
}

