// The one way this project runs an external tool: argv arrays (never a shell string), a timeout,
// bounded output, and stderr kept for the error message.
import { execa } from 'execa';
import { AgentError, type ErrorKind } from '../model/errors.js';
import { redactText as redact } from '../model/secrets.js';

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


/** Run `file args…`; resolve with trimmed stdout/stderr, reject with an AgentError naming the tool and its stderr. */
export async function run(file: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const secrets = opts.secrets ?? [];
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
  if (res.failed) {
    const cmd = redact([file, ...args].join(' '), secrets);
    const why = res.timedOut
      ? `timed out after ${opts.timeoutMs ?? 30_000} ms`
      : res.isMaxBuffer
        ? 'produced too much output'
        : redact(String(res.stderr || res.stdout || res.shortMessage).trim(), secrets).split('\n').slice(-3).join('; ') ||
          `exit code ${res.exitCode}`;
    throw new AgentError(res.timedOut ? 'TIMEOUT' : (opts.failKind ?? 'INTERNAL'), `${cmd}: ${why}`);
  }
  return { stdout: opts.stdoutFile === undefined ? String(res.stdout) : '', stderr: String(res.stderr) };
}
