// The one way this project runs an external tool: argv arrays (never a shell string), a timeout,
// bounded output, and stderr kept for the error message.
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
  const secrets = opts.secrets ?? [];
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
  return { stdout: String(res.stdout), stderr: String(res.stderr) };
}
