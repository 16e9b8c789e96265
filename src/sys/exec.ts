// The one way this project runs an external tool: argv arrays (never a shell string), a timeout,
// bounded output, and stderr kept for the error message. The tools are started by the fork server
// (spawner.ts); a tool streaming into a file or fed as a filter goes through execa.
import { PassThrough, type Writable } from 'node:stream';
import { AgentError, type ErrorKind } from '../model/errors.js';
import { redactText as redact } from '../model/secrets.js';
import { spawnVia } from './spawner.js';

export interface RunOptions {
  timeoutMs?: number;
  input?: string;
  env?: Record<string, string>;
  /** Extra redactions applied to the command line and stderr before they reach an error message. */
  secrets?: string[];
  /** What the tool's failure means, when the caller knows (default INTERNAL: a fault of the node). */
  failKind?: ErrorKind;
  cwd?: string;
  /** Write stdout into this file (created or truncated) instead of returning it (a decompressor's output, say). */
  stdoutFile?: string;
  /** Stop the tool (SIGTERM) when this is aborted; the run rejects. */
  signal?: AbortSignal;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

const MAX_BUFFER = 1024 * 1024;
/** execa is loaded by the first run, not at the agent's start (it is ~0.1 s of loading). */
let execaModule: Promise<typeof import('execa')> | undefined;


/** Run `file args…`; resolve with trimmed stdout/stderr, reject with an AgentError naming the tool and its stderr. */
export async function run(file: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  // Output into a file, or a cancel signal: execa's streams. Everything else (nearly every tool
  // call) goes through the fork server, which costs the agent no fork of itself.
  if (opts.stdoutFile !== undefined || opts.signal !== undefined) return runExeca(file, args, opts);
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const s = spawnVia({ file, args, mode: 'tool', cwd: opts.cwd, input: opts.input, env: opts.env });
  let timedOut = false;
  let force: NodeJS.Timeout | undefined;
  const timer = setTimeout(() => {
    timedOut = true;
    s.kill('SIGTERM');
    force = setTimeout(() => s.kill('SIGKILL'), FORCE_KILL_MS);
  }, timeoutMs);
  try {
    const end = await s.exited;
    const res = { stdout: stripFinalNewline(end.stdout.toString()), stderr: stripFinalNewline(end.stderr.toString()) };
    if (timedOut || end.overflow || end.code !== 0) {
      throw failure({ timedOut, isMaxBuffer: end.overflow, ...res, exitCode: end.code, shortMessage: end.signal ? `killed by signal ${end.signal}` : `exit code ${end.code}` }, file, args, opts);
    }
    return res;
  } catch (err) {
    if (err instanceof AgentError) throw err;
    // Not started (no such command, say) or the fork server lost: the reason, like a tool's stderr.
    throw failure({ timedOut: false, isMaxBuffer: false, shortMessage: (err as Error).message }, file, args, opts);
  } finally {
    clearTimeout(timer);
    clearTimeout(force);
  }
}

/** execa's default: a tool that ignores SIGTERM at its timeout is killed this much later. */
const FORCE_KILL_MS = 5000;

const stripFinalNewline = (s: string) => s.replace(/\r?\n$/, '');

async function runExeca(file: string, args: string[], opts: RunOptions): Promise<RunResult> {
  const { execa } = await (execaModule ??= import('execa'));
  const res = await execa(file, args, {
    timeout: opts.timeoutMs ?? 30_000,
    maxBuffer: MAX_BUFFER,
    input: opts.input,
    env: opts.env,
    extendEnv: true,
    cwd: opts.cwd,
    reject: false,
    stripFinalNewline: true,
    stdin: opts.input === undefined ? 'ignore' : 'pipe',
    ...(opts.stdoutFile === undefined ? {} : { stdout: { file: opts.stdoutFile }, buffer: { stdout: false } }),
    ...(opts.signal === undefined ? {} : { cancelSignal: opts.signal }),
  });
  if (res.failed) throw failure(res, file, args, opts);
  return { stdout: opts.stdoutFile === undefined ? String(res.stdout) : '', stderr: String(res.stderr) };
}

type Ended = { timedOut: boolean; isMaxBuffer: boolean; stderr?: unknown; stdout?: unknown; shortMessage?: string; exitCode?: number };

function failure(res: Ended, file: string, args: string[], opts: RunOptions): AgentError {
  const secrets = opts.secrets ?? [];
  // (a built-in command of the fork server, `@umount`, is named as the tool it replaces)
  const cmd = redact([file.replace(/^@/, ''), ...args].join(' '), secrets);
  const why = res.timedOut
    ? `timed out after ${opts.timeoutMs ?? 30_000} ms`
    : res.isMaxBuffer
      ? 'produced too much output'
      : redact(String(res.stderr || res.stdout || res.shortMessage).trim(), secrets).split('\n').slice(-3).join('; ') ||
        `exit code ${res.exitCode}`;
  return new AgentError(res.timedOut ? 'TIMEOUT' : (opts.failKind ?? 'INTERNAL'), `${cmd}: ${why}`);
}

/**
 * Run `file args…` as a filter fed by the caller: write its input into `stdin` (a stream, end it
 * when done); its stdout goes into `opts.stdoutFile`. `done` resolves once it exited 0, or
 * rejects with an AgentError as run() does. (A decompressor fed by a download, say.)
 */
export function runFilter(file: string, args: string[], opts: RunOptions & { stdoutFile: string }): { stdin: Writable; done: Promise<void> } {
  // The caller writes at once; the tool starts once execa is loaded (lazily, as for run()).
  const stdin = new PassThrough();
  const done = (execaModule ??= import('execa')).then(async ({ execa }) => {
    const sub = execa(file, args, {
      timeout: opts.timeoutMs ?? 30_000,
      maxBuffer: MAX_BUFFER,
      env: opts.env,
      extendEnv: true,
      cwd: opts.cwd,
      reject: false,
      stdin: 'pipe',
      stdout: { file: opts.stdoutFile },
      buffer: { stdout: false },
      ...(opts.signal === undefined ? {} : { cancelSignal: opts.signal }),
    });
    // A tool that exits early breaks the pipe: its exit status (below) is the error reported.
    sub.stdin.on('error', () => {});
    stdin.pipe(sub.stdin);
    const res = await sub;
    stdin.unpipe(sub.stdin);
    stdin.resume();
    if (res.failed) throw failure(res, file, args, opts);
  });
  return { stdin, done };
}
